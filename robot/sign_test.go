package robot_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/bridge/robot"
)

// The signature matches one computed independently:
// printf '%s' '1700000000.{"id":"m1"}' | openssl dgst -sha256 -hmac s3cret
func TestSignKnownVector(t *testing.T) {
	got := robot.Sign([]byte("s3cret"), "1700000000", []byte(`{"id":"m1"}`))
	want := "sha256=b8df49b22a762064a17ff5f2ff10a4f792f34885af358dbb1711c5dec8e1649b"
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	secret := []byte("s3cret")
	body := []byte(`{"id":"m1"}`)
	now := time.Unix(1700000000, 500e6)
	sig := robot.Sign(secret, "1700000000", body)
	ok := func(ts, sig string, body []byte, now time.Time) error {
		return robot.Verify(secret, ts, sig, body, now, time.Minute)
	}
	if err := ok("1700000000", sig, body, now); err != nil {
		t.Fatalf("good request refused: %v", err)
	}
	if err := ok("1700000000", strings.ToUpper(sig[:7])+strings.ToUpper(sig[7:]), body, now); !errors.Is(err, robot.ErrBadSignature) {
		t.Errorf("upper-case prefix accepted: %v", err)
	}
	if err := ok("1700000000", sig[:7]+strings.ToUpper(sig[7:]), body, now); err != nil {
		t.Errorf("upper-case hex refused: %v", err)
	}
	// The edges of the skew, both ways.
	if err := ok("1700000000", sig, body, now.Add(60*time.Second)); err != nil {
		t.Errorf("60 s late refused with 1 min skew: %v", err)
	}
	for name, tc := range map[string]struct {
		ts, sig string
		body    []byte
		now     time.Time
		want    error
	}{
		"body changed":    {"1700000000", sig, []byte(`{"id":"m2"}`), now, robot.ErrBadSignature},
		"ts changed":      {"1700000001", sig, body, now, robot.ErrBadSignature},
		"no prefix":       {"1700000000", sig[7:], body, now, robot.ErrBadSignature},
		"short":           {"1700000000", sig[:len(sig)-2], body, now, robot.ErrBadSignature},
		"not hex":         {"1700000000", sig[:len(sig)-1] + "g", body, now, robot.ErrBadSignature},
		"empty sig":       {"1700000000", "", body, now, robot.ErrBadSignature},
		"too old":         {"1700000000", sig, body, now.Add(62 * time.Second), robot.ErrStale},
		"from the future": {"1700000000", sig, body, now.Add(-62 * time.Second), robot.ErrStale},
		"empty ts":        {"", sig, body, now, robot.ErrBadTimestamp},
		"signed ts":       {"+1700000000", sig, body, now, robot.ErrBadTimestamp},
		"negative ts":     {"-1", sig, body, now, robot.ErrBadTimestamp},
		"fraction":        {"1700000000.0", sig, body, now, robot.ErrBadTimestamp},
		"space":           {" 1700000000", sig, body, now, robot.ErrBadTimestamp},
		"huge ts":         {"99999999999999999999", sig, body, now, robot.ErrBadTimestamp},
	} {
		if err := ok(tc.ts, tc.sig, tc.body, tc.now); !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify = %v, want %v", name, err, tc.want)
		}
	}
	if err := robot.Verify([]byte("other"), "1700000000", sig, body, now, 0); !errors.Is(err, robot.ErrBadSignature) {
		t.Errorf("wrong secret: %v", err)
	}
	if err := robot.Verify(nil, "1700000000", robot.Sign(nil, "1700000000", body), body, now, 0); !errors.Is(err, robot.ErrNoSecret) {
		t.Errorf("empty secret: %v", err)
	}
	// skew <= 0 means DefaultSkew.
	if err := robot.Verify(secret, "1700000000", sig, body, now.Add(robot.DefaultSkew-time.Second), 0); err != nil {
		t.Errorf("within default skew refused: %v", err)
	}
	if err := robot.Verify(secret, "1700000000", sig, body, now.Add(robot.DefaultSkew+2*time.Second), 0); !errors.Is(err, robot.ErrStale) {
		t.Errorf("beyond default skew: %v", err)
	}
}
