package hmacsig_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/hmacsig"
)

// The signature matches one computed independently:
// printf '%s' '1700000000.{"id":"m1"}' | openssl dgst -sha256 -hmac s3cret
func TestSignKnownVector(t *testing.T) {
	got := hmacsig.Sign([]byte("s3cret"), "1700000000", []byte(`{"id":"m1"}`))
	want := "sha256=b8df49b22a762064a17ff5f2ff10a4f792f34885af358dbb1711c5dec8e1649b"
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	secret := []byte("s3cret")
	body := []byte(`{"id":"m1"}`)
	now := time.Unix(1700000000, 500e6)
	sig := hmacsig.Sign(secret, "1700000000", body)
	ok := func(ts, sig string, body []byte, now time.Time) error {
		return hmacsig.Verify(secret, ts, sig, body, now, time.Minute)
	}
	if err := ok("1700000000", sig, body, now); err != nil {
		t.Fatalf("good request refused: %v", err)
	}
	if err := ok("1700000000", strings.ToUpper(sig[:7])+strings.ToUpper(sig[7:]), body, now); !errors.Is(err, hmacsig.ErrBadSignature) {
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
		"body changed":    {"1700000000", sig, []byte(`{"id":"m2"}`), now, hmacsig.ErrBadSignature},
		"ts changed":      {"1700000001", sig, body, now, hmacsig.ErrBadSignature},
		"no prefix":       {"1700000000", sig[7:], body, now, hmacsig.ErrBadSignature},
		"short":           {"1700000000", sig[:len(sig)-2], body, now, hmacsig.ErrBadSignature},
		"not hex":         {"1700000000", sig[:len(sig)-1] + "g", body, now, hmacsig.ErrBadSignature},
		"empty sig":       {"1700000000", "", body, now, hmacsig.ErrBadSignature},
		"too old":         {"1700000000", sig, body, now.Add(62 * time.Second), hmacsig.ErrStale},
		"from the future": {"1700000000", sig, body, now.Add(-62 * time.Second), hmacsig.ErrStale},
		"empty ts":        {"", sig, body, now, hmacsig.ErrBadTimestamp},
		"signed ts":       {"+1700000000", sig, body, now, hmacsig.ErrBadTimestamp},
		"negative ts":     {"-1", sig, body, now, hmacsig.ErrBadTimestamp},
		"fraction":        {"1700000000.0", sig, body, now, hmacsig.ErrBadTimestamp},
		"space":           {" 1700000000", sig, body, now, hmacsig.ErrBadTimestamp},
		"huge ts":         {"99999999999999999999", sig, body, now, hmacsig.ErrBadTimestamp},
	} {
		if err := ok(tc.ts, tc.sig, tc.body, tc.now); !errors.Is(err, tc.want) {
			t.Errorf("%s: Verify = %v, want %v", name, err, tc.want)
		}
	}
	if err := hmacsig.Verify([]byte("other"), "1700000000", sig, body, now, 0); !errors.Is(err, hmacsig.ErrBadSignature) {
		t.Errorf("wrong secret: %v", err)
	}
	if err := hmacsig.Verify(nil, "1700000000", hmacsig.Sign(nil, "1700000000", body), body, now, 0); !errors.Is(err, hmacsig.ErrNoSecret) {
		t.Errorf("empty secret: %v", err)
	}
	// skew <= 0 means DefaultSkew.
	if err := hmacsig.Verify(secret, "1700000000", sig, body, now.Add(hmacsig.DefaultSkew-time.Second), 0); err != nil {
		t.Errorf("within default skew refused: %v", err)
	}
	if err := hmacsig.Verify(secret, "1700000000", sig, body, now.Add(hmacsig.DefaultSkew+2*time.Second), 0); !errors.Is(err, hmacsig.ErrStale) {
		t.Errorf("beyond default skew: %v", err)
	}
}
