// Package hmacsig signs and checks the bodies of the bridge's outgoing
// webhooks (robots, delivery reports, MO applications): "sha256=" and the
// hex HMAC-SHA256 under a shared secret of timestamp + "." + body. The
// timestamp is in the signed bytes so a captured request cannot be
// replayed later, only within the receiver's allowed skew.
package hmacsig

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultSkew is how far a request's timestamp may be from the receiver's
// clock when Verify is given no skew.
const DefaultSkew = 5 * time.Minute

// Errors of Verify.
var (
	ErrNoSecret     = errors.New("signature: empty secret")
	ErrBadTimestamp = errors.New("signature: malformed timestamp")
	ErrStale        = errors.New("signature: timestamp outside the allowed skew")
	ErrBadSignature = errors.New("signature: bad signature")
)

const prefix = "sha256="

// Sign returns "sha256=" and the hex HMAC-SHA256 under secret of
// ts + "." + body.
func Sign(secret []byte, ts string, body []byte) string {
	return prefix + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a request's timestamp ts and signature sig over its body:
// the signature in constant time, and that ts (unix seconds, digits only)
// is within skew of now (DefaultSkew if skew <= 0).
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
	hexSig, ok := strings.CutPrefix(sig, prefix)
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

// NoRedirects is the HTTP client of a signed webhook: it does not follow
// a redirect, which is no answer (a redirected POST would become a GET
// elsewhere); the caller retries at the URL it was given. transport nil
// is http.DefaultTransport.
func NoRedirects(transport http.RoundTripper) *http.Client {
	return &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
