package directory

import (
	"errors"
	"testing"
)

// TestSHA256Credential: a password gives a user both digest credentials,
// kept across a restart; a new MD5-only HA1 leaves no SHA-256 one of the
// old password; a static user may carry both.
func TestSHA256Credential(t *testing.T) {
	k := newDisk(t)
	d := openDir(t, k.db, nil)
	if _, err := d.CreateUser(ctx, UserSpec{Name: "alice", Password: "topsecret"}); err != nil {
		t.Fatal(err)
	}
	want := HA1SHA256Of("alice", domain, "topsecret")
	if got, ok := d.HA1SHA256("alice"); !ok || got != want {
		t.Fatalf("HA1SHA256 = %q %v, want %q", got, ok, want)
	}
	k.reopen()
	d = openDir(t, k.db, nil)
	if got, ok := d.HA1SHA256("alice"); !ok || got != want {
		t.Fatalf("after reopen: HA1SHA256 = %q %v, want %q", got, ok, want)
	}
	if md5, ok := d.HA1("alice"); !ok || md5 != HA1Of("alice", domain, "topsecret") {
		t.Fatalf("after reopen: HA1 = %q %v", md5, ok)
	}
	if _, _, err := d.PutUser(ctx, "alice", UserSpec{HA1: HA1Of("alice", domain, "newpw")}); err != nil {
		t.Fatal(err)
	}
	if got, ok := d.HA1SHA256("alice"); ok {
		t.Fatalf("SHA-256 credential of the old password kept: %q", got)
	}
	if _, err := d.CreateUser(ctx, UserSpec{Name: "bob", HA1SHA256: want}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("ha1_sha256 without ha1: %v", err)
	}
	if _, err := d.CreateUser(ctx, UserSpec{Name: "bob", HA1: HA1Of("bob", domain, "pw"), HA1SHA256: "xyz"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad ha1_sha256: %v", err)
	}

	s := openDir(t, k.db, map[string]string{"carol": HA1Of("carol", domain, "pw") + ":" + HA1SHA256Of("carol", domain, "pw"), "dave": HA1Of("dave", domain, "pw")})
	if got, ok := s.HA1SHA256("carol"); !ok || got != HA1SHA256Of("carol", domain, "pw") {
		t.Fatalf("static carol: %q %v", got, ok)
	}
	if _, ok := s.HA1SHA256("dave"); ok {
		t.Fatal("static dave has a SHA-256 credential he was not given")
	}
}
