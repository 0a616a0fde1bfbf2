package fusion

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// keyPrefix starts the KV key of every stored account:
// keyPrefix + user + "\x00" + bare JID.
const keyPrefix = "fusion/acct/"

// sealVersion is the first byte of a sealed record; it is part of the
// additional data, so a record cannot be read as another format.
const sealVersion = 1

// record is what is stored, sealed, for one bound account.
type record struct {
	User     string    `json:"user"`
	JID      string    `json:"jid"`
	Password string    `json:"password"`
	Bound    time.Time `json:"bound"`
}

// errUnreadable: a stored record does not open with the configured key
// (another key, or damaged).
var errUnreadable = errors.New("fusion: stored account does not open with the configured key")

func storageKey(user, bare string) string { return keyPrefix + user + "\x00" + bare }

// splitKey reads user and bare JID back out of a storage key.
func splitKey(k string) (user, bare string, ok bool) {
	rest, ok := strings.CutPrefix(k, keyPrefix)
	if !ok {
		return "", "", false
	}
	user, bare, ok = strings.Cut(rest, "\x00")
	return user, bare, ok && user != "" && bare != ""
}

// sealer seals records with AES-256-GCM under the configured key.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (sealer, error) {
	if len(key) != 32 {
		return sealer{}, fmt.Errorf("fusion: the key must be 32 bytes (AES-256), not %d", len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return sealer{}, fmt.Errorf("fusion: key: %w", err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return sealer{}, fmt.Errorf("fusion: key: %w", err)
	}
	return sealer{aead: g}, nil
}

// ad is the additional data of the record stored under storage key k:
// binding the record to its key means a record copied under another
// user's key (or another account's) does not open.
func ad(k string) []byte { return append([]byte{sealVersion}, k...) }

// seal encrypts rec for storage under k: version, random nonce, then the
// ciphertext with its tag.
func (s sealer) seal(k string, rec record) ([]byte, error) {
	plain, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("fusion: encode account: %w", err)
	}
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	out[0] = sealVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("fusion: nonce: %w", err)
	}
	return s.aead.Seal(out, out[1:], plain, ad(k)), nil
}

// open decrypts the record stored under k and checks that it names the
// user and JID the key does.
func (s sealer) open(k string, sealed []byte) (record, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() || sealed[0] != sealVersion {
		return record{}, fmt.Errorf("%w: not a sealed record", errUnreadable)
	}
	plain, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], ad(k))
	if err != nil {
		return record{}, errUnreadable
	}
	var rec record
	if err := json.Unmarshal(plain, &rec); err != nil {
		return record{}, fmt.Errorf("%w: %v", errUnreadable, err)
	}
	if storageKey(rec.User, rec.JID) != k {
		return record{}, fmt.Errorf("%w: record names another account", errUnreadable)
	}
	return rec, nil
}
