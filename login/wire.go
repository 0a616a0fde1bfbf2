package login

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// The bridge ↔ partner-site protocol (JSON over HTTP(S)). Every request the
// bridge sends carries three headers:
//
//	X-Bridge-Server-Id: <the bridge's server id at this site>
//	X-Bridge-Timestamp: <unix seconds>
//	X-Bridge-Signature: hex(HMAC-SHA256(server secret, SigningString(...)))
//
// The site checks that the server id is the one it authorized, that the
// timestamp is within MaxSkew of its clock and that the signature matches:
// only then does it look at the body. The body of a verify request is a
// VerifyRequest; the answer is a VerifyResponse with HTTP 200 whether the
// user is allowed or not. 401/403 mean the site refused the bridge itself.
// Contacts and posts are GET <url>?user=<user> answering ContactsResponse
// and PostsResponse.
const (
	HeaderServerID  = "X-Bridge-Server-Id"
	HeaderTimestamp = "X-Bridge-Timestamp"
	HeaderSignature = "X-Bridge-Signature"
	// MaxSkew is how far the timestamp may be from the site's clock.
	MaxSkew = 5 * time.Minute
)

// VerifyRequest asks a site whether User may log in. Exactly one of
// Password and Digest is set.
type VerifyRequest struct {
	ServerID string        `json:"server_id"` // repeated from the header, covered by the signature
	User     string        `json:"user"`      // the site's user name, without "#site"
	Password string        `json:"password,omitempty"`
	Digest   *DigestParams `json:"digest,omitempty"`
}

// VerifyResponse is the site's answer.
type VerifyResponse struct {
	Allow   bool   `json:"allow"`
	User    string `json:"user,omitempty"`    // canonical user name at the site
	Display string `json:"display,omitempty"` // display name
	Reason  string `json:"reason,omitempty"`  // why not, for logs
}

// Contact is one entry of a user's contact list at a site.
type Contact struct {
	User    string `json:"user"`
	Display string `json:"display,omitempty"`
}

// Post is one item the site published.
type Post struct {
	ID        string `json:"id"`
	Title     string `json:"title"`
	Body      string `json:"body,omitempty"`
	URL       string `json:"url,omitempty"`
	Published int64  `json:"published"` // unix seconds
}

// ContactsResponse is the body of a contacts answer.
type ContactsResponse struct {
	Contacts []Contact `json:"contacts"`
}

// PostsResponse is the body of a posts answer.
type PostsResponse struct {
	Posts []Post `json:"posts"`
}

// SigningString is what the request signature covers: method, request URI
// (path and query), timestamp, server id and the SHA-256 of the body, one per
// line, so that no part can be moved into another.
func SigningString(method, requestURI, serverID string, ts int64, body []byte) string {
	h := sha256.Sum256(body)
	return method + "\n" + requestURI + "\n" + strconv.FormatInt(ts, 10) + "\n" + serverID + "\n" + hex.EncodeToString(h[:])
}

// Sign returns the hex HMAC-SHA256 of SigningString under secret.
func Sign(secret, method, requestURI, serverID string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(SigningString(method, requestURI, serverID, ts, body)))
	return hex.EncodeToString(m.Sum(nil))
}

// CheckSignature is the site side of Sign: constant-time comparison plus the
// timestamp window. tsHeader is the raw X-Bridge-Timestamp value.
func CheckSignature(secret, method, requestURI, serverID, tsHeader, sig string, body []byte, now time.Time) bool {
	ts, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		return false
	}
	if d := now.Sub(time.Unix(ts, 0)); d > MaxSkew || d < -MaxSkew {
		return false
	}
	want := Sign(secret, method, requestURI, serverID, ts, body)
	return hmac.Equal([]byte(want), []byte(sig))
}
