package sip

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

func quoteDigest(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// FuzzParseDigest: the Authorization parser never panics, what it accepts
// has the mandatory fields, and re-rendering what it parsed gives the same
// credentials. verify on arbitrary input never panics or authenticates.
func FuzzParseDigest(f *testing.F) {
	f.Add(`Digest username="alice", realm="example.test", nonce="abc", uri="sip:example.test", response="0123456789abcdef0123456789abcdef", algorithm=MD5, qop=auth, nc=00000001, cnonce="xyz"`)
	f.Add(`Digest username="a\"b", realm="r", nonce="n", uri="sip:x", response="ff"`)
	f.Add(`Basic dXNlcjpwYXNz`)
	f.Add(`Digest username="unterminated`)
	f.Add(`Digest ,,, username = "u" ,realm="r",nonce=n,uri=u,response=r,opaque=""`)
	n := nonces{key: []byte("fuzz-key"), now: time.Now}
	f.Fuzz(func(t *testing.T, v string) {
		c, err := parseDigest(v)
		if _, verr := n.verify(v, "REGISTER", "r", func(string) (string, bool) { return "00", true }); verr == nil {
			t.Fatalf("verify accepted %q", v)
		}
		if err != nil {
			return
		}
		if c.Username == "" || c.Nonce == "" || c.Response == "" || c.URI == "" {
			t.Fatalf("accepted without mandatory fields: %+v", c)
		}
		var b strings.Builder
		b.WriteString("Digest username=" + quoteDigest(c.Username) + ", realm=" + quoteDigest(c.Realm) +
			", nonce=" + quoteDigest(c.Nonce) + ", uri=" + quoteDigest(c.URI) + ", response=" + quoteDigest(c.Response) +
			", cnonce=" + quoteDigest(c.CNonce) + ", nc=" + quoteDigest(c.NC) + ", opaque=" + quoteDigest(c.Opaque))
		if c.Algorithm != "" {
			b.WriteString(", algorithm=" + quoteDigest(c.Algorithm))
		}
		if c.QOP != "" {
			b.WriteString(", qop=" + quoteDigest(c.QOP))
		}
		c2, err := parseDigest(b.String())
		if err != nil {
			t.Fatalf("re-rendered %q does not parse: %v", b.String(), err)
		}
		if c2 != c {
			t.Fatalf("round trip changed credentials:\n%+v\n%+v", c, c2)
		}
	})
}

// FuzzMediaType: Content-Type parsing never panics and returns a lower-case
// type/subtype.
func FuzzMediaType(f *testing.F) {
	for _, s := range []string{"text/plain", "text/plain; charset=UTF-8", `Text/Plain;charset="iso-8859-1"`, "text/html", "", ";", "text/plain;;charset", "a/b;c=d;e=f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		typ, cs, err := mediaType(v)
		if err != nil {
			return
		}
		if typ != strings.ToLower(typ) || cs != strings.ToLower(cs) || strings.Count(typ, "/") < 1 {
			t.Fatalf("mediaType(%q) = %q, %q", v, typ, cs)
		}
		if typ2, _, err := mediaType(typ); err != nil || typ2 != typ {
			t.Fatalf("type %q does not re-parse: %q %v", typ, typ2, err)
		}
	})
}

// FuzzParseDeltaSeconds: Expires values parse to a bounded number that
// formats back to an equal value.
func FuzzParseDeltaSeconds(f *testing.F) {
	for _, s := range []string{"3600", "0", " 60 ", "-1", "+5", "4294967295", "4294967296", "99999999999", "1e3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		n, err := parseDeltaSeconds(v)
		if err != nil {
			return
		}
		if n < 0 || n > maxExpiresValue {
			t.Fatalf("parseDeltaSeconds(%q) = %d out of range", v, n)
		}
		if n2, err := parseDeltaSeconds(strconv.FormatInt(n, 10)); err != nil || n2 != n {
			t.Fatalf("%d does not round trip: %d %v", n, n2, err)
		}
	})
}
