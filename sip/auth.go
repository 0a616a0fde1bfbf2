package sip

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// nonceTTL bounds how long a challenge can be answered; older nonces get a
// fresh challenge with stale=true so the UA retries without asking the user.
const nonceTTL = 5 * time.Minute

// Digest authentication outcomes.
var (
	errNoCredentials = errors.New("no digest credentials")
	errStaleNonce    = errors.New("stale nonce")
	errBadNonce      = errors.New("nonce not issued by us")
	errBadResponse   = errors.New("wrong digest response")
	errUnknownUser   = errors.New("unknown user")
)

// credentials are the fields of an Authorization: Digest header (RFC 2617 §3.2.2).
type credentials struct {
	Username, Realm, Nonce, URI, Response string
	Algorithm, Opaque, QOP, NC, CNonce    string
}

// parseDigest parses the value of an Authorization (or Proxy-Authorization)
// header. It accepts quoted and token values in any order, tolerates extra
// whitespace and unknown parameters, and rejects anything that is not Digest.
func parseDigest(v string) (credentials, error) {
	var c credentials
	v = strings.TrimSpace(v)
	scheme, rest, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Digest") {
		return c, fmt.Errorf("auth scheme %q is not Digest", scheme)
	}
	s := rest
	for {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			break
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return c, fmt.Errorf("digest parameter without value near %q", clip(s))
		}
		name := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			// quoted-string with backslash escapes (RFC 3261 §25.1)
			var b strings.Builder
			i := 1
			closed := false
			for i < len(s) {
				ch := s[i]
				if ch == '\\' && i+1 < len(s) {
					b.WriteByte(s[i+1])
					i += 2
					continue
				}
				if ch == '"' {
					closed = true
					i++
					break
				}
				b.WriteByte(ch)
				i++
			}
			if !closed {
				return c, fmt.Errorf("unterminated quoted value for %q", name)
			}
			val, s = b.String(), s[i:]
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			val, s = strings.TrimSpace(s[:end]), s[end:]
		}
		switch name {
		case "username":
			c.Username = val
		case "realm":
			c.Realm = val
		case "nonce":
			c.Nonce = val
		case "uri":
			c.URI = val
		case "response":
			c.Response = strings.ToLower(val)
		case "algorithm":
			c.Algorithm = val
		case "opaque":
			c.Opaque = val
		case "qop":
			c.QOP = strings.ToLower(val)
		case "nc":
			c.NC = val
		case "cnonce":
			c.CNonce = val
		}
	}
	if c.Username == "" || c.Nonce == "" || c.Response == "" || c.URI == "" {
		return c, errors.New("digest credentials miss username, nonce, uri or response")
	}
	switch {
	case c.Algorithm == "" || strings.EqualFold(c.Algorithm, "MD5"):
		c.Algorithm = "MD5"
	case strings.EqualFold(c.Algorithm, "SHA-256"):
		c.Algorithm = "SHA-256"
	default:
		return c, fmt.Errorf("digest algorithm %q not supported", c.Algorithm)
	}
	if c.QOP != "" && c.QOP != "auth" {
		return c, fmt.Errorf("digest qop %q not supported", c.QOP)
	}
	if c.QOP == "auth" && (c.NC == "" || c.CNonce == "") {
		return c, errors.New("digest qop=auth without nc or cnonce")
	}
	return c, nil
}

func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// nonces issues and checks stateless nonces: base64url(unix-nanos ‖
// HMAC-SHA256(key, unix-nanos)[:16]). No table of issued nonces is kept, so
// challenging a flood of clients costs no memory; replay within the TTL is
// possible, as with any stateless digest scheme over plain UDP.
type nonces struct {
	key []byte
	now func() time.Time
}

func (n nonces) mac(ts []byte) []byte {
	h := hmac.New(sha256.New, n.key)
	h.Write(ts)
	return h.Sum(nil)[:16]
}

func (n nonces) issue() string {
	var buf [8 + 16]byte
	binary.BigEndian.PutUint64(buf[:8], uint64(n.now().UnixNano()))
	copy(buf[8:], n.mac(buf[:8]))
	return base64.RawURLEncoding.EncodeToString(buf[:])
}

// check reports errBadNonce for a forged nonce and errStaleNonce for one of
// ours that is too old.
func (n nonces) check(nonce string) error {
	raw, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(raw) != 24 {
		return errBadNonce
	}
	if !hmac.Equal(raw[8:], n.mac(raw[:8])) {
		return errBadNonce
	}
	issued := time.Unix(0, int64(binary.BigEndian.Uint64(raw[:8])))
	if age := n.now().Sub(issued); age > nonceTTL || age < -time.Minute {
		return errStaleNonce
	}
	return nil
}

// digestResponse computes the expected response (RFC 2617 §3.2.2.1, with
// SHA-256 in place of MD5 per RFC 8760) from HA1.
func digestResponse(ha1, method string, c credentials) string {
	h := md5hex
	if c.Algorithm == "SHA-256" {
		h = sha256hex
	}
	ha2 := h(method + ":" + c.URI)
	if c.QOP == "auth" {
		return h(ha1 + ":" + c.Nonce + ":" + c.NC + ":" + c.CNonce + ":auth:" + ha2)
	}
	return h(ha1 + ":" + c.Nonce + ":" + ha2)
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// lookups are the credential lookups of one digest algorithm: the user's
// own HA1, then the HA1s issued to their devices. Either may be nil.
type lookups struct {
	ha1    func(string) (string, bool)
	issued func(string) []string
}

// verify checks an Authorization header value for method against realm and
// the credentials of its username: the HA1 lookup, then, when that has no
// match, each HA1 issued returns (one per device). Every candidate is
// compared in constant time and all of them are compared, so the time
// tells nothing about which one matched. It returns the authenticated
// username.
func (n nonces) verify(header, method, realm string, md5, sha256 lookups) (string, error) {
	if header == "" {
		return "", errNoCredentials
	}
	c, err := parseDigest(header)
	if err != nil {
		return "", fmt.Errorf("authorization: %w", err)
	}
	if c.Realm != realm {
		return "", fmt.Errorf("authorization: realm %q is not %q: %w", c.Realm, realm, errBadResponse)
	}
	ha1, issued := md5.ha1, md5.issued
	if c.Algorithm == "SHA-256" {
		ha1, issued = sha256.ha1, sha256.issued
	}
	var match, known bool
	if ha1 != nil {
		if secret, ok := ha1(c.Username); ok {
			known = true
			match = digestMatches(secret, method, c)
		}
	}
	if !match && issued != nil {
		for _, secret := range issued(c.Username) {
			known = true
			if digestMatches(secret, method, c) {
				match = true
			}
		}
	}
	if !known {
		return "", fmt.Errorf("%w %q", errUnknownUser, c.Username)
	}
	// Check the response before the nonce age so that a stale nonce is only
	// reported to a UA that knows the password (RFC 2617 §3.2.1 stale).
	if !match {
		return "", errBadResponse
	}
	if err := n.check(c.Nonce); err != nil {
		return "", err
	}
	return c.Username, nil
}

// digestMatches compares c's response with the one HA1 secret gives, in
// constant time.
func digestMatches(secret, method string, c credentials) bool {
	want := digestResponse(strings.ToLower(secret), method, c)
	return subtle.ConstantTimeCompare([]byte(want), []byte(c.Response)) == 1
}

// challenge renders a WWW-Authenticate value for algorithm (MD5 or SHA-256).
func (n nonces) challenge(realm, algorithm string, stale bool) string {
	v := `Digest realm="` + realm + `", nonce="` + n.issue() + `", algorithm=` + algorithm + `, qop="auth"`
	if stale {
		v += ", stale=true"
	}
	return v
}
