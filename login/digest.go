package login

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"
)

// DigestParams are the fields of a SIP digest Authorization (RFC 2617
// §3.2.2) plus the request method, as forwarded to a partner site so that it
// can check the response against the password only it knows. The bridge
// itself checks that the nonce is one it issued and still fresh before it
// forwards anything: the site cannot know the bridge's nonces.
type DigestParams struct {
	Username  string `json:"username"` // as the UA sent it, e.g. "alice#shop"
	Realm     string `json:"realm"`
	Nonce     string `json:"nonce"`
	URI       string `json:"uri"`
	Method    string `json:"method"` // e.g. "REGISTER"
	Response  string `json:"response"`
	CNonce    string `json:"cnonce,omitempty"`
	NC        string `json:"nc,omitempty"`
	QOP       string `json:"qop,omitempty"`       // "" or "auth"
	Algorithm string `json:"algorithm,omitempty"` // "" or "MD5"
}

// HA1 is md5(user:realm:password) in lower-case hex.
func HA1(user, realm, password string) string { return md5hex(user + ":" + realm + ":" + password) }

// HA1SHA256 is sha256(user:realm:password) in lower-case hex: the
// credential of SHA-256 digest (RFC 8760).
func HA1SHA256(user, realm, password string) string {
	h := sha256.Sum256([]byte(user + ":" + realm + ":" + password))
	return hex.EncodeToString(h[:])
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// ExpectedResponse computes the digest response for HA1 ha1 (RFC 2617
// §3.2.2.1, MD5, qop absent or "auth").
func (d DigestParams) ExpectedResponse(ha1 string) string {
	ha2 := md5hex(d.Method + ":" + d.URI)
	if strings.EqualFold(d.QOP, "auth") {
		return md5hex(strings.ToLower(ha1) + ":" + d.Nonce + ":" + d.NC + ":" + d.CNonce + ":auth:" + ha2)
	}
	return md5hex(strings.ToLower(ha1) + ":" + d.Nonce + ":" + ha2)
}

// Valid reports whether the parameters are complete and of a supported kind.
func (d DigestParams) Valid() bool {
	if d.Username == "" || d.Nonce == "" || d.URI == "" || d.Method == "" || d.Response == "" {
		return false
	}
	if d.Algorithm != "" && !strings.EqualFold(d.Algorithm, "MD5") {
		return false
	}
	switch strings.ToLower(d.QOP) {
	case "":
		return true
	case "auth":
		return d.NC != "" && d.CNonce != ""
	}
	return false
}

// Check reports whether the response matches password, in constant time.
func (d DigestParams) Check(password string) bool {
	if !d.Valid() {
		return false
	}
	want := d.ExpectedResponse(HA1(d.Username, d.Realm, password))
	return subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(d.Response))) == 1
}
