package login

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The values the login side keeps in its KV, and their parsers. Every
// parser refuses what the matching encoder would not write, so a record
// round-trips exactly.

var errBadRecord = errors.New("login: malformed stored record")

// Used social session id: key kvSocialPrefix + site 0x00 session id, value
// the decimal Unix second until which the session id is remembered (the
// token's expiry plus the leeway, rounded up).

func encodeSocialRecord(until time.Time) []byte {
	s := until.Unix()
	if until.After(time.Unix(s, 0)) {
		s++
	}
	return []byte(strconv.FormatInt(s, 10))
}

func decodeSocialRecord(val []byte) (time.Time, error) {
	s := string(val)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || s != strconv.FormatInt(n, 10) {
		return time.Time{}, fmt.Errorf("%w: social session expiry %q", errBadRecord, clip(val))
	}
	return time.Unix(n, 0), nil
}

// Issued SIP credential: key kvCredPrefix + user 0x00 device, value credRecord
// as JSON. The password is never stored, only its HA1 for Realm.
type credRecord struct {
	HA1     string `json:"ha1"`                  // lower-case hex md5(user:realm:password)
	HA1S256 string `json:"ha1_sha256,omitempty"` // lower-case hex sha256(user:realm:password)
	Realm   string `json:"realm"`                // the realm HA1 is for
	Issued  int64  `json:"iat"`                  // Unix nanoseconds
	Expires int64  `json:"exp"`                  // Unix nanoseconds
}

func (r credRecord) encode() []byte {
	b, _ := json.Marshal(r) // strings and integers only: cannot fail
	return b
}

func decodeCredRecord(val []byte) (credRecord, error) {
	var r credRecord
	if err := json.Unmarshal(val, &r); err != nil {
		return credRecord{}, fmt.Errorf("%w: credential: %v", errBadRecord, err)
	}
	if !isLowerHex(r.HA1, 32) || r.HA1S256 != "" && !isLowerHex(r.HA1S256, 64) || r.Realm == "" || r.Issued <= 0 || r.Expires <= 0 {
		return credRecord{}, fmt.Errorf("%w: credential %q", errBadRecord, clip(val))
	}
	return r, nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// validDevice: a device id is 1-64 characters of [A-Za-z0-9._:-].
func validDevice(d string) bool {
	if d == "" || len(d) > 64 {
		return false
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// validUser: an IM user name that can be a key part: 1-256 bytes, no NUL.
func validUser(u string) bool { return u != "" && len(u) <= 256 && !strings.ContainsRune(u, 0) }

func credKey(user, device string) []byte { return []byte(kvCredPrefix + user + "\x00" + device) }

// splitCredKey is credKey's inverse.
func splitCredKey(key []byte) (user, device string, ok bool) {
	rest, ok := strings.CutPrefix(string(key), kvCredPrefix)
	if !ok {
		return "", "", false
	}
	user, device, ok = strings.Cut(rest, "\x00")
	if !ok || !validUser(user) || !validDevice(device) {
		return "", "", false
	}
	return user, device, true
}
