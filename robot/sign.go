package robot

import (
	"time"

	"github.com/smsbridge/bridge/internal/hmacsig"
)

// Headers of a webhook request.
const (
	HeaderTimestamp      = "X-Robot-Timestamp" // unix seconds, decimal
	HeaderSignature      = "X-Robot-Signature" // Sign(secret, timestamp, body)
	HeaderIdempotencyKey = "Idempotency-Key"   // the post id, the same on every attempt
)

// DefaultSkew is how far a request's timestamp may be from the robot
// server's clock when Verify is given no skew.
const DefaultSkew = hmacsig.DefaultSkew

// Errors of Verify.
var (
	ErrNoSecret     = hmacsig.ErrNoSecret
	ErrBadTimestamp = hmacsig.ErrBadTimestamp
	ErrStale        = hmacsig.ErrStale
	ErrBadSignature = hmacsig.ErrBadSignature
)

// Sign returns "sha256=" and the hex HMAC-SHA256 under secret of
// ts + "." + body: the X-Robot-Signature of a request.
func Sign(secret []byte, ts string, body []byte) string { return hmacsig.Sign(secret, ts, body) }

// Verify checks a request's X-Robot-Timestamp ts and X-Robot-Signature sig
// over its body (hmacsig.Verify): robot servers written in Go call it.
func Verify(secret []byte, ts, sig string, body []byte, now time.Time, skew time.Duration) error {
	return hmacsig.Verify(secret, ts, sig, body, now, skew)
}
