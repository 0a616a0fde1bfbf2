package sip

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
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
		if _, verr := n.verify(v, "REGISTER", "r", lookups{ha1: func(string) (string, bool) { return "00", true }}, lookups{ha1: func(string) (string, bool) { return "00", true }}); verr == nil {
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

// FuzzParseResponseHead: the fast path's response reader never panics, and
// whatever it accepts agrees with sipgo's full parser on the status code and
// the top Via's branch, the two things a transaction is matched and ended by.
func FuzzParseResponseHead(f *testing.F) {
	f.Add([]byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;rport=5060;branch=z9hG4bKabc1;received=127.0.0.1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("SIP/2.0 100 Trying\r\nv: SIP/2.0/UDP h;branch=z9hG4bKp, SIP/2.0/UDP g;branch=z9hG4bKq\r\n\r\n"))
	f.Add([]byte("SIP/2.0 480 Temporarily Unavailable\r\nCall-ID: x\r\nvia:SIP/2.0/UDP h ; branch=z9hG4bKs ;rport\r\n\r\n"))
	f.Add([]byte("MESSAGE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKr\r\n\r\n"))
	f.Add([]byte("SIP/2.0 2000 OK\r\n\r\n"))
	f.Add([]byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		code, reason, branch, ok := parseResponseHead(b)
		if !ok {
			return
		}
		if code < 100 || code > 999 || len(branch) == 0 || strings.ContainsAny(string(branch), "; ,\t\r\n") || strings.ContainsAny(string(reason), "\r\n") {
			t.Fatalf("accepted %q: code %d reason %q branch %q", b, code, reason, branch)
		}
		m, err := sip.ParseMessage(b)
		if err != nil {
			return // sipgo is stricter; we only need to agree where it parses
		}
		res, isRes := m.(*sip.Response)
		if !isRes {
			t.Fatalf("%q: we read a response, sipgo a %T", b, m)
		}
		if res.StatusCode != code {
			t.Fatalf("%q: code %d, sipgo %d", b, code, res.StatusCode)
		}
		if via := res.Via(); via != nil {
			if br, _ := via.Params.Get("branch"); strings.TrimSpace(br) != "" && strings.TrimSpace(br) != string(branch) {
				t.Fatalf("%q: branch %q, sipgo %q", b, branch, br)
			}
		}
	})
}

// FuzzTopViaBranch: the retransmission scan never panics, and a branch it
// returns for a message sipgo parses is sipgo's top Via branch: the scan
// and the parse must build the same transaction key.
func FuzzTopViaBranch(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		branch, ok := topViaBranch(b)
		if !ok {
			return
		}
		m, err := sip.ParseMessage(b)
		if err != nil {
			return // no key of its own: only one a parsed request left is answered
		}
		req, isReq := m.(*sip.Request)
		if !isReq {
			return
		}
		via := req.Via()
		if via == nil {
			t.Fatalf("%q: branch %q, sipgo finds no Via", b, branch)
		}
		if br, has := via.Params.Get("branch"); !has || br != string(branch) {
			t.Fatalf("%q: branch %q, sipgo %q (%v)", b, branch, br, has)
		}
	})
}

// FuzzCheckRequest: the malformed-request screen never panics; a request it
// passes is one sipgo parses with everything a response needs; the answer
// to one it rejects is one response with the rejection's status, no header
// line broken by a stray CR or LF, and, when sipgo reads the request's top
// Via, that Via's branch (control bytes blanked). Seeds: the requests TestMalformedSIPAnswered in
// cmd/bridge sends (go test ./cmd/bridge -run TestMalformedSIPAnswered
// -sip-corpus $PWD/sip/testdata/fuzz/FuzzCheckRequest writes them).
func FuzzCheckRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r := checkRequest(b)
		if r == nil && strings.HasPrefix(string(b), "SIP/") {
			return // responses are not screened
		}
		if r == nil {
			m, err := sip.ParseMessage(b)
			if err != nil {
				t.Fatalf("passed %q, which sipgo refuses: %v", b, err)
			}
			if req, ok := m.(*sip.Request); ok && (req.Via() == nil || req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil) {
				t.Fatalf("passed %q without a header a response needs", b)
			}
			return
		}
		wire, ok := rejectionResponse(b, r, "fuzz")
		if !ok {
			return
		}
		head, rest, found := strings.Cut(string(wire), "\r\n\r\n")
		if !found || rest != "" || strings.ContainsAny(strings.ReplaceAll(head, "\r\n", ""), "\r\n") {
			t.Fatalf("answer to %q is not one response: %q", b, wire)
		}
		if want := "SIP/2.0 " + strconv.Itoa(r.code) + " " + r.reason + "\r\n"; !strings.HasPrefix(head+"\r\n", want) {
			t.Fatalf("answer %q does not start %q", wire, want)
		}
		m, err := sip.ParseMessage(b)
		if err != nil {
			return
		}
		req, isReq := m.(*sip.Request)
		if !isReq || req.Via() == nil {
			return
		}
		reqBranch, _ := req.Via().Params.Get("branch")
		if strings.ContainsFunc(reqBranch, func(c rune) bool { return c < ' ' || c == 0x7f }) {
			return // control bytes are blanked in the copy
		}
		if res, err := sip.ParseMessage(wire); err == nil && res.Via() != nil {
			if br, _ := res.Via().Params.Get("branch"); br != reqBranch {
				t.Fatalf("answer to %q has branch %q, the request %q", b, br, reqBranch)
			}
		}
	})
}
