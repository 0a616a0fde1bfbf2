package fusion

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"testing"
	"time"

	"mellium.im/xmlstream"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

func TestSealOpen(t *testing.T) {
	s, err := newSealer(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	k := storageKey("alice", alice)
	rec := record{User: "alice", JID: alice, Password: "correct horse battery staple", Bound: time.Unix(1, 0).UTC()}
	sealed, err := s.seal(k, rec)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(rec.Password)) || bytes.Contains(sealed, []byte(alice)) {
		t.Fatalf("sealed record shows its content: %q", sealed)
	}
	again, _ := s.seal(k, rec)
	if bytes.Equal(sealed, again) {
		t.Error("two seals of one record are equal: the nonce is not fresh")
	}
	got, err := s.open(k, sealed)
	if err != nil || got != rec {
		t.Fatalf("open: %+v, %v", got, err)
	}

	// The record moved under another user's key, or another account's,
	// does not open.
	for _, other := range []string{storageKey("eve", alice), storageKey("alice", "alice@else.test")} {
		if _, err := s.open(other, sealed); !errors.Is(err, errUnreadable) {
			t.Errorf("record opened under %q: %v", other, err)
		}
	}
	// A record sealed for another key but claiming this one inside.
	forged, _ := s.seal(k, record{User: "eve", JID: alice, Password: "x"})
	if _, err := s.open(k, forged); !errors.Is(err, errUnreadable) {
		t.Errorf("record naming another user opened: %v", err)
	}
	// Another key, a flipped bit, a truncated record.
	s2, _ := newSealer(newKey(t))
	if _, err := s2.open(k, sealed); !errors.Is(err, errUnreadable) {
		t.Errorf("opened with another key: %v", err)
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-1] ^= 1
	for _, bad := range [][]byte{flipped, sealed[:10], nil, append([]byte{9}, sealed[1:]...)} {
		if _, err := s.open(k, bad); !errors.Is(err, errUnreadable) {
			t.Errorf("opened a damaged record: %v", err)
		}
	}
	if _, err := newSealer(make([]byte, 16)); err == nil {
		t.Error("a 16-byte key was taken")
	}
}

func TestParseContact(t *testing.T) {
	good := []struct{ in, user, account, contact string }{
		{"alice|alice@other.test|bob@other.test/phone", "alice", alice, "bob@other.test/phone"},
		{"alice|alice@other.test|bob@other.test", "alice", alice, "bob@other.test"},
		{"a b|alice@other.test|bob@other.test/res|with|bars", "a b", alice, "bob@other.test/res|with|bars"},
		{"alice|alice@other.test|b|ob@other.test/x", "alice", alice, "b|ob@other.test/x"},
	}
	for _, c := range good {
		user, account, contact, err := parseContact(c.in)
		if err != nil || user != c.user || account.String() != c.account || contact.String() != c.contact {
			t.Errorf("parseContact(%q) = %q, %q, %q, %v", c.in, user, account, contact, err)
			continue
		}
		if back := contactOf(user, account, contact); back != c.in {
			t.Errorf("contactOf(parseContact(%q)) = %q", c.in, back)
		}
	}
	for _, in := range []string{
		"", "alice", "alice|alice@other.test", "|alice@other.test|bob@other.test",
		"alice|other.test|bob@other.test", "alice|alice@other.test/r|bob@other.test",
		"alice|Alice@other.test|bob@other.test", "alice|alice@other.test|other.test",
		"alice|alice@other.test|Bob@other.test", "a\x00|alice@other.test|bob@other.test",
		"alice|alice@other.test|bob@@other.test",
	} {
		if _, _, _, err := parseContact(in); !errors.Is(err, errContact) {
			t.Errorf("parseContact(%q) = %v, want errContact", in, err)
		}
	}
}

// saslErr stands in for mellium's SASL failure, which marshals itself.
type saslErr struct{ cond string }

func (e saslErr) Error() string { return e.cond }
func (e saslErr) TokenReader() xml.TokenReader {
	return xmlstream.Wrap(xmlstream.Wrap(nil, xml.StartElement{Name: xml.Name{Local: e.cond}}),
		xml.StartElement{Name: xml.Name{Space: nsSASL, Local: "failure"}})
}

func TestSASLFailure(t *testing.T) {
	if cond, ok := saslFailure(errors.Join(errors.New("x"), saslErr{"not-authorized"})); !ok || cond != "not-authorized" {
		t.Errorf("saslFailure = %q, %v", cond, ok)
	}
	if _, ok := saslFailure(errors.New("dial: refused")); ok {
		t.Error("a plain error read as a SASL failure")
	}
}

func testConfig(kv KV, key []byte) Config {
	pres, _ := presence.Open(presence.Options{})
	return Config{Key: key, KV: kv, Stager: &testutil.Stager{}, Presence: pres, Owner: owner, UserAddress: userAddress}
}

func TestNewChecksConfig(t *testing.T) {
	key := newKey(t)
	for name, mod := range map[string]func(*Config){
		"no key":         func(c *Config) { c.Key = nil },
		"short key":      func(c *Config) { c.Key = key[:16] },
		"no KV":          func(c *Config) { c.KV = nil },
		"no Stager":      func(c *Config) { c.Stager = nil },
		"no Presence":    func(c *Config) { c.Presence = nil },
		"no Owner":       func(c *Config) { c.Owner = nil },
		"no UserAddress": func(c *Config) { c.UserAddress = nil },
	} {
		cfg := testConfig(testutil.NewMemKV(), key)
		mod(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestBindRefusesBadInput(t *testing.T) {
	p, err := New(testConfig(testutil.NewMemKV(), newKey(t)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, c := range []struct{ user, jid, pw string }{
		{"", alice, "pw"}, {"a|b", alice, "pw"}, {"a\x00b", alice, "pw"},
		{"alice", "other.test", "pw"}, {"alice", alice + "/res", "pw"}, {"alice", "a|b@other.test", "pw"},
		{"alice", "not a jid@", "pw"}, {"alice", alice, ""},
	} {
		if _, err := p.Bind(ctx, c.user, c.jid, c.pw); !errors.Is(err, ErrInvalid) {
			t.Errorf("Bind(%q, %q, %q) = %v, want ErrInvalid", c.user, c.jid, c.pw, err)
		}
	}
	if err := p.Unbind(ctx, "alice", alice); !errors.Is(err, ErrNotFound) {
		t.Errorf("Unbind of nothing: %v", err)
	}
}

// A stored account, loaded while Run is not running, is offline: SendIM
// says so at once, and refuses whatever is not its owner's.
func TestSendIMWithoutSession(t *testing.T) {
	kv, key := testutil.NewMemKV(), newKey(t)
	s, _ := newSealer(key)
	k := storageKey("alice", alice)
	sealed, _ := s.seal(k, record{User: "alice", JID: alice, Password: "pw"})
	kv.Put(context.Background(), []byte(k), sealed)
	kv.Put(context.Background(), []byte(keyPrefix+"garbage"), []byte("x"))
	p, err := New(testConfig(kv, key))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Accounts("alice"); len(got) != 1 || got[0].State != StateOffline || got[0].JID != alice {
		t.Fatalf("accounts %+v", got)
	}
	ctx := context.Background()
	b := presence.Binding{AOR: bobAOR, Contact: "alice|" + alice + "|" + bob + "/phone", Via: Via}
	m := &msg.Message{ID: "1", From: aliceAddr, Text: "x"}
	if err := p.SendIM(ctx, m, b); !errors.Is(err, ErrNotConnected) {
		t.Errorf("SendIM while offline: %v", err)
	}
	if err := p.SendIM(ctx, &msg.Message{ID: "2", From: eveAddr}, b); !errors.Is(err, ErrNotOwner) {
		t.Errorf("SendIM from eve: %v", err)
	}
	nobody := b
	nobody.Contact = "alice|carol@other.test|" + bob + "/phone"
	if err := p.SendIM(ctx, m, nobody); !errors.Is(err, ErrNotFound) {
		t.Errorf("SendIM through an account not bound: %v", err)
	}
	bad := b
	bad.Contact = "bob@other.test/phone"
	if err := p.SendIM(ctx, m, bad); !errors.Is(err, errContact) {
		t.Errorf("SendIM to a foreign contact: %v", err)
	}
	if err := p.SendIM(ctx, nil, b); err == nil {
		t.Error("SendIM of nil succeeded")
	}
}

func FuzzParseContact(f *testing.F) {
	for _, s := range []string{"alice|alice@other.test|bob@other.test/phone", "a|b@c|d@e", "a|b@c|d|e@f/g|h", "||", "a|b|c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		user, account, contact, err := parseContact(s)
		if err != nil {
			return
		}
		if !validUser(user) || account.Localpart() == "" || account.Resourcepart() != "" || contact.Localpart() == "" {
			t.Fatalf("parseContact(%q) = %q, %q, %q", s, user, account, contact)
		}
		if back := contactOf(user, account, contact); back != s {
			t.Fatalf("parseContact(%q) written back as %q", s, back)
		}
	})
}
