package ssoticket_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/bridge/login/ssoticket"
)

var (
	k1 = [32]byte{1, 2, 3}
	k2 = [32]byte{9, 9, 9}
	t0 = time.Unix(1_700_000_000, 0)
)

func seal(t *testing.T, key [32]byte, kid, svc string, ttl time.Duration) string {
	t.Helper()
	tk, err := ssoticket.Seal(key, ssoticket.Claims{User: "alice@im.example", Service: svc, KeyID: kid, IssuedAt: t0.Unix(), Expires: t0.Add(ttl).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func at(tm time.Time) func() time.Time { return func() time.Time { return tm } }

func TestVerify(t *testing.T) {
	tk := seal(t, k1, "k1", "wiki", 2*time.Minute)
	v := ssoticket.Verifier{Keys: map[string][32]byte{"k1": k1, "k2": k2}, Service: "wiki", Now: at(t0.Add(time.Minute))}
	c, err := v.Verify(tk)
	if err != nil {
		t.Fatal(err)
	}
	if c.User != "alice@im.example" || c.Service != "wiki" || c.KeyID != "k1" || len(c.ID) != 32 || c.Expires != t0.Add(2*time.Minute).Unix() {
		t.Fatalf("claims %+v", c)
	}
	if tk2 := seal(t, k1, "k1", "wiki", 2*time.Minute); tk2 == tk {
		t.Fatal("two tickets for the same claims are equal: nonce or id not random")
	}

	body := tk[strings.LastIndexByte(tk, '.')+1:]
	raw, _ := base64.RawURLEncoding.DecodeString(body)
	cases := map[string]struct {
		ticket string
		v      ssoticket.Verifier
		want   error
	}{
		"expired":        {tk, ssoticket.Verifier{Keys: v.Keys, Service: "wiki", Now: at(t0.Add(2*time.Minute + time.Second))}, ssoticket.ErrExpired},
		"future":         {tk, ssoticket.Verifier{Keys: v.Keys, Service: "wiki", Now: at(t0.Add(-time.Minute))}, ssoticket.ErrNotYetValid},
		"wrong service":  {tk, ssoticket.Verifier{Keys: v.Keys, Service: "mail", Now: v.Now}, ssoticket.ErrWrongService},
		"wrong key":      {tk, ssoticket.Verifier{Keys: map[string][32]byte{"k1": k2}, Service: "wiki", Now: v.Now}, ssoticket.ErrBadSeal},
		"unknown key id": {tk, ssoticket.Verifier{Keys: map[string][32]byte{"k2": k2}, Service: "wiki", Now: v.Now}, ssoticket.ErrUnknownKey},
		"header swapped": {"sso1.k2." + body, v, ssoticket.ErrBadSeal},
		"truncated":      {tk[:len(tk)-4], v, ssoticket.ErrBadSeal},
		"bad prefix":     {"sso2" + tk[4:], v, ssoticket.ErrMalformed},
		"no body":        {"sso1.k1.", v, ssoticket.ErrMalformed},
		"bad base64":     {"sso1.k1.!!!!", v, ssoticket.ErrMalformed},
		"bad key id":     {"sso1.k/1." + body, v, ssoticket.ErrMalformed},
		"empty":          {"", v, ssoticket.ErrMalformed},
		"huge":           {"sso1.k1." + strings.Repeat("A", 5000), v, ssoticket.ErrMalformed},
	}
	for i := range raw {
		if i%7 != 0 && i != len(raw)-1 {
			continue
		}
		b := append([]byte(nil), raw...)
		b[i] ^= 0x40
		cases[fmt.Sprintf("tampered byte %d", i)] = struct {
			ticket string
			v      ssoticket.Verifier
			want   error
		}{"sso1.k1." + base64.RawURLEncoding.EncodeToString(b), v, ssoticket.ErrBadSeal}
	}
	for name, c := range cases {
		if _, err := c.v.Verify(c.ticket); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	// leeway tolerates a small skew
	if _, err := (ssoticket.Verifier{Keys: v.Keys, Service: "wiki", Now: at(t0.Add(2*time.Minute + time.Second)), Leeway: 5 * time.Second}).Verify(tk); err != nil {
		t.Errorf("leeway: %v", err)
	}
}

func TestSealRejectsBadKeyID(t *testing.T) {
	for _, kid := range []string{"", "a.b", strings.Repeat("k", 65), "k 1"} {
		if _, err := ssoticket.Seal(k1, ssoticket.Claims{KeyID: kid}); !errors.Is(err, ssoticket.ErrMalformed) {
			t.Errorf("key id %q: %v", kid, err)
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	c := ssoticket.Claims{User: "alice@im.example", Service: "wiki", KeyID: "k1", IssuedAt: t0.Unix(), Expires: t0.Unix() + 120}
	for b.Loop() {
		if _, err := ssoticket.Seal(k1, c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	tk, _ := ssoticket.Seal(k1, ssoticket.Claims{User: "alice@im.example", Service: "wiki", KeyID: "k1", IssuedAt: t0.Unix(), Expires: t0.Unix() + 120})
	v := ssoticket.Verifier{Keys: map[string][32]byte{"k1": k1}, Service: "wiki", Now: at(t0)}
	for b.Loop() {
		if _, err := v.Verify(tk); err != nil {
			b.Fatal(err)
		}
	}
}

func TestVerifyReplay(t *testing.T) {
	now := t0.Add(time.Minute)
	clock := func() time.Time { return now }
	cache := &ssoticket.MemoryReplay{Now: clock}
	v := ssoticket.Verifier{Keys: map[string][32]byte{"k1": k1}, Service: "wiki", Now: clock, Replay: cache}
	tk := seal(t, k1, "k1", "wiki", 2*time.Minute)
	if _, err := v.Verify(tk); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(tk); !errors.Is(err, ssoticket.ErrReplayed) {
		t.Fatalf("second use: %v", err)
	}
	// A ticket refused for another reason is not remembered.
	other := seal(t, k1, "k1", "mail", 2*time.Minute)
	if _, err := v.Verify(other); !errors.Is(err, ssoticket.ErrWrongService) {
		t.Fatal(err)
	}
	if _, err := (ssoticket.Verifier{Keys: v.Keys, Now: clock, Replay: cache}).Verify(other); err != nil {
		t.Fatalf("ticket refused earlier for its service: %v", err)
	}
	// Without Replay a ticket verifies again.
	if _, err := (ssoticket.Verifier{Keys: v.Keys, Service: "wiki", Now: clock}).Verify(tk); err != nil {
		t.Fatal(err)
	}
	// A ticket without a usable id cannot be single-use.
	noID, err := ssoticket.Seal(k1, ssoticket.Claims{Service: "wiki", KeyID: "k1", IssuedAt: t0.Unix(), Expires: t0.Unix() + 120, ID: "a b"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(noID); !errors.Is(err, ssoticket.ErrMalformed) {
		t.Fatalf("ticket id with a space: %v", err)
	}
	// Once expired, the id is forgotten by the cache (the ticket itself is
	// refused as expired anyway).
	now = t0.Add(3 * time.Minute)
	if r, _ := cache.Seen(mustOpen(t, tk).ID, now.Add(time.Minute)); r {
		t.Fatal("expired id still remembered")
	}
	for id, ok := range map[string]bool{"0123abcdef": true, "A_b-9": true, "": false, "a.b": false, strings.Repeat("a", 129): false, strings.Repeat("a", 128): true} {
		if ssoticket.ValidTicketID(id) != ok {
			t.Errorf("ValidTicketID(%q) != %v", id, ok)
		}
	}
}

func mustOpen(t *testing.T, tk string) ssoticket.Claims {
	t.Helper()
	c, err := ssoticket.Open(tk, map[string][32]byte{"k1": k1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
