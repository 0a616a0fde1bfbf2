package sip

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/bridge/config"
)

// RFC 2617 §3.5 example.
func TestDigestResponseRFC2617(t *testing.T) {
	c := credentials{
		Username: "Mufasa", Realm: "testrealm@host.com", Nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
		URI: "/dir/index.html", QOP: "auth", NC: "00000001", CNonce: "0a4f113b",
	}
	ha1 := config.HA1("Mufasa", "testrealm@host.com", "Circle Of Life")
	if got := digestResponse(ha1, "GET", c); got != "6629fae49393a05397450978507c4ef1" {
		t.Fatalf("response = %s", got)
	}
}

func TestNonces(t *testing.T) {
	now := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	n := nonces{key: []byte("k1"), now: func() time.Time { return now }}
	v := n.issue()
	if err := n.check(v); err != nil {
		t.Fatalf("fresh nonce: %v", err)
	}
	other := nonces{key: []byte("k2"), now: n.now}
	if err := other.check(v); !errors.Is(err, errBadNonce) {
		t.Fatalf("nonce of another key: %v, want errBadNonce", err)
	}
	for _, bad := range []string{"", "x", v[:len(v)-2] + "AA", v + "A"} {
		if err := n.check(bad); !errors.Is(err, errBadNonce) {
			t.Errorf("check(%q) = %v, want errBadNonce", bad, err)
		}
	}
	now = now.Add(nonceTTL + time.Second)
	if err := n.check(v); !errors.Is(err, errStaleNonce) {
		t.Fatalf("old nonce: %v, want errStaleNonce", err)
	}
}

func TestVerify(t *testing.T) {
	n := nonces{key: []byte("k"), now: time.Now}
	nonce := n.issue()
	ha1 := func(u string) (string, bool) {
		if u == "alice" {
			return config.HA1("alice", "example.test", "pw"), true
		}
		return "", false
	}
	c := credentials{Username: "alice", Realm: "example.test", Nonce: nonce, URI: "sip:example.test", QOP: "auth", NC: "00000001", CNonce: "abc"}
	c.Response = digestResponse(ha1Must(ha1, "alice"), "REGISTER", c)
	hdr := func(c credentials) string {
		return `Digest username="` + c.Username + `", realm="` + c.Realm + `", nonce="` + c.Nonce + `", uri="` + c.URI +
			`", response="` + c.Response + `", qop=auth, nc=` + c.NC + `, cnonce="` + c.CNonce + `", algorithm=MD5`
	}
	if u, err := n.verify(hdr(c), "REGISTER", "example.test", lookups{ha1: ha1}, lookups{}); err != nil || u != "alice" {
		t.Fatalf("verify good credentials: %q %v", u, err)
	}
	if _, err := n.verify(hdr(c), "MESSAGE", "example.test", lookups{ha1: ha1}, lookups{}); !errors.Is(err, errBadResponse) {
		t.Errorf("other method: %v, want errBadResponse", err)
	}
	if _, err := n.verify(hdr(c), "REGISTER", "other.test", lookups{ha1: ha1}, lookups{}); !errors.Is(err, errBadResponse) {
		t.Errorf("other realm: %v", err)
	}
	bob := c
	bob.Username = "bob"
	if _, err := n.verify(hdr(bob), "REGISTER", "example.test", lookups{ha1: ha1}, lookups{}); !errors.Is(err, errUnknownUser) {
		t.Errorf("unknown user: %v", err)
	}
	if _, err := n.verify("", "REGISTER", "example.test", lookups{ha1: ha1}, lookups{}); !errors.Is(err, errNoCredentials) {
		t.Errorf("no header: %v", err)
	}
	// RFC 2069 style (no qop) is still accepted.
	old := credentials{Username: "alice", Realm: "example.test", Nonce: nonce, URI: "sip:example.test"}
	old.Response = digestResponse(ha1Must(ha1, "alice"), "REGISTER", old)
	h := `Digest username="alice", realm="example.test", nonce="` + nonce + `", uri="sip:example.test", response="` + old.Response + `"`
	if _, err := n.verify(h, "REGISTER", "example.test", lookups{ha1: ha1}, lookups{}); err != nil {
		t.Errorf("no-qop credentials: %v", err)
	}
}

func ha1Must(f func(string) (string, bool), u string) string {
	h, _ := f(u)
	return h
}

func TestVerifyIssued(t *testing.T) {
	n := nonces{key: []byte("k"), now: time.Now}
	nonce := n.issue()
	const realm = "example.test"
	hdr := func(user, password string) string {
		c := credentials{Username: user, Realm: realm, Nonce: nonce, URI: "sip:" + realm, QOP: "auth", NC: "00000001", CNonce: "abc"}
		c.Response = digestResponse(config.HA1(user, realm, password), "REGISTER", c)
		return `Digest username="` + c.Username + `", realm="` + realm + `", nonce="` + nonce + `", uri="` + c.URI +
			`", response="` + c.Response + `", qop=auth, nc=00000001, cnonce="abc"`
	}
	ha1 := func(u string) (string, bool) {
		if u == "both" {
			return config.HA1(u, realm, "ordinary"), true
		}
		return "", false
	}
	issued := func(u string) []string {
		switch u {
		case "dev", "both":
			return []string{config.HA1(u, realm, "phone"), strings.ToUpper(config.HA1(u, realm, "laptop"))}
		}
		return nil
	}
	for _, c := range []struct {
		user, pw string
		want     error
	}{
		{"dev", "phone", nil},
		{"dev", "laptop", nil},
		{"dev", "guess", errBadResponse},
		{"both", "ordinary", nil},
		{"both", "laptop", nil},
		{"both", "guess", errBadResponse},
		{"nobody", "phone", errUnknownUser},
	} {
		u, err := n.verify(hdr(c.user, c.pw), "REGISTER", realm, lookups{ha1, issued}, lookups{})
		if !errors.Is(err, c.want) || (c.want == nil && u != c.user) {
			t.Errorf("%s/%s: %q %v, want %v", c.user, c.pw, u, err, c.want)
		}
	}
	// Issued alone is enough for a server.
	if _, err := n.verify(hdr("dev", "phone"), "REGISTER", realm, lookups{issued: issued}, lookups{}); err != nil {
		t.Errorf("issued only: %v", err)
	}
}

// RFC 7616 §3.9.1 example, SHA-256 (the digest computation RFC 8760 uses).
func TestDigestResponseSHA256(t *testing.T) {
	c := credentials{
		Username: "Mufasa", Realm: "http-auth@example.org", Nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
		URI: "/dir/index.html", QOP: "auth", NC: "00000001", CNonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", Algorithm: "SHA-256",
	}
	ha1 := sha256hex("Mufasa:http-auth@example.org:Circle of Life")
	if got := digestResponse(ha1, "GET", c); got != "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1" {
		t.Fatalf("response = %s", got)
	}
}

// TestVerifySHA256: a SHA-256 response is checked against the SHA-256
// credential only, an MD5 one against the MD5 credential only.
func TestVerifySHA256(t *testing.T) {
	n := nonces{key: []byte("k"), now: time.Now}
	const realm = "example.test"
	hdr := func(alg, ha1 string) string {
		c := credentials{Username: "alice", Realm: realm, Nonce: n.issue(), URI: "sip:" + realm, QOP: "auth", NC: "00000001", CNonce: "abc", Algorithm: alg}
		c.Response = digestResponse(ha1, "REGISTER", c)
		return `Digest username="alice", realm="` + realm + `", nonce="` + c.Nonce + `", uri="` + c.URI +
			`", response="` + c.Response + `", qop=auth, nc=00000001, cnonce="abc", algorithm=` + alg
	}
	md5 := config.HA1("alice", realm, "pw")
	s256 := sha256hex("alice:" + realm + ":pw")
	md5l := lookups{ha1: func(string) (string, bool) { return md5, true }}
	s256l := lookups{issued: func(string) []string { return []string{s256} }}
	if u, err := n.verify(hdr("SHA-256", s256), "REGISTER", realm, md5l, s256l); err != nil || u != "alice" {
		t.Fatalf("SHA-256: %q %v", u, err)
	}
	if _, err := n.verify(hdr("MD5", md5), "REGISTER", realm, md5l, s256l); err != nil {
		t.Fatalf("MD5 beside SHA-256: %v", err)
	}
	if _, err := n.verify(hdr("SHA-256", md5), "REGISTER", realm, md5l, s256l); !errors.Is(err, errBadResponse) {
		t.Fatalf("SHA-256 response from the MD5 HA1: %v", err)
	}
	if _, err := n.verify(hdr("SHA-256", s256), "REGISTER", realm, md5l, lookups{}); !errors.Is(err, errUnknownUser) {
		t.Fatalf("SHA-256 for a user without a SHA-256 credential: %v", err)
	}
	if _, err := parseDigest(strings.Replace(hdr("SHA-256", s256), "SHA-256", "SHA-512-256", 1)); err == nil {
		t.Fatal("SHA-512-256 accepted")
	}
}
