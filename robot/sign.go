package robot

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Headers of a webhook request.
const (
	HeaderTimestamp      = "X-Robot-Timestamp" // unix seconds, decimal
	HeaderSignature      = "X-Robot-Signature" // Sign(secret, timestamp, body)
	HeaderIdempotencyKey = "Idempotency-Key"   // the post id, the same on every attempt
)

// DefaultSkew is how far a request's timestamp may be from the robot
// server's clock when Verify is given no skew.
const DefaultSkew = 5 * time.Minute

// Errors of Verify.
var (
	ErrNoSecret     = errors.New("robot: empty secret")
	ErrBadTimestamp = errors.New("robot: malformed timestamp")
	ErrStale        = errors.New("robot: timestamp outside the allowed skew")
	ErrBadSignature = errors.New("robot: bad signature")
)

const sigPrefix = "sha256="

// Sign returns "sha256=" and the hex HMAC-SHA256 under secret of
// ts + "." + body: the X-Robot-Signature of a request.
func Sign(secret []byte, ts string, body []byte) string {
	return sigPrefix + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a request's X-Robot-Timestamp ts and X-Robot-Signature sig
// over its body: the signature in constant time, and that ts (unix seconds,
// digits only) is within skew of now (DefaultSkew if skew <= 0), so a
// captured request cannot be replayed later.
func Verify(secret []byte, ts, sig string, body []byte, now time.Time, skew time.Duration) error {
	if len(secret) == 0 {
		return ErrNoSecret
	}
	if ts == "" || len(ts) > 18 || strings.TrimLeft(ts, "0123456789") != "" {
		return ErrBadTimestamp
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrBadTimestamp
	}
	hexSig, ok := strings.CutPrefix(sig, sigPrefix)
	if !ok || len(hexSig) != 2*sha256.Size {
		return ErrBadSignature
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil || !hmac.Equal(got, mac(secret, ts, body)) {
		return ErrBadSignature
	}
	if skew <= 0 {
		skew = DefaultSkew
	}
	d := now.Unix() - sec
	if d < 0 {
		d = -d
	}
	if d > int64(skew/time.Second) {
		return fmt.Errorf("%w: %ds from now", ErrStale, now.Unix()-sec)
	}
	return nil
}
