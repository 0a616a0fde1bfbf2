package login

import "context"

// KV is the durable key-value store the login side keeps its state in (used
// social session ids, issued SIP credentials); the bridge's *store.DB
// satisfies it. Put and Delete must be durable when they return nil. Get
// answers an error for a missing key.
//
// Keys written (values in records.go):
//
//	login/social/<site> 0x00 <session id>   a used social token's session id
//	login/cred/<user> 0x00 <device>         an issued SIP credential (HA1, never the password)
type KV interface {
	Put(ctx context.Context, key, val []byte) error
	Get(key []byte) ([]byte, error)
	Delete(ctx context.Context, key []byte) error
	Iterate(prefix []byte, fn func(key, val []byte) error) error
}

// Key prefixes in the KV.
const (
	kvSocialPrefix = "login/social/"
	kvCredPrefix   = "login/cred/"
)
