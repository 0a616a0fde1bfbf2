package provision

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/store"
)

func memDB(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func open(t testing.TB, kv KV) *Store {
	t.Helper()
	s, err := Open(Options{KV: kv, Domain: "im.example", CountryCode: "86", SMSC: true,
		StaticAccounts: map[string]string{"cfgesme": "cfgpw"}, HashIterations: 64})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAccounts(t *testing.T) {
	ctx := context.Background()
	s := open(t, memDB(t))
	a, err := s.CreateAccount(ctx, AccountSpec{SystemID: "esme1", Password: "pw1", AllowedSources: []string{"+8613", "1065"}, TPS: 50, Window: 10})
	if err != nil {
		t.Fatal(err)
	}
	if a.TPS != 50 || a.Window != 10 || len(a.AllowedSources) != 2 || a.AllowedSources[0] != "8613" {
		t.Fatalf("account = %+v", a)
	}
	cases := []struct {
		id, pw    string
		ok, known bool
	}{{"esme1", "pw1", true, true}, {"esme1", "pw2", false, true}, {"nobody", "pw1", false, false},
		{"cfgesme", "cfgpw", true, true}, {"cfgesme", "x", false, true}}
	for _, c := range cases {
		if ok, known := s.CheckAccount(c.id, c.pw); ok != c.ok || known != c.known {
			t.Errorf("CheckAccount(%s,%s) = %v,%v want %v,%v", c.id, c.pw, ok, known, c.ok, c.known)
		}
	}
	if !s.SourceAllowed("esme1", "8613900000000") || !s.SourceAllowed("esme1", "+10650001") || s.SourceAllowed("esme1", "4471234") {
		t.Fatal("SourceAllowed wrong")
	}
	if _, err := s.CreateAccount(ctx, AccountSpec{SystemID: "esme1", Password: "x"}); !errors.Is(err, ErrExists) {
		t.Fatalf("dup: %v", err)
	}
	if _, err := s.CreateAccount(ctx, AccountSpec{SystemID: "cfgesme", Password: "x"}); !errors.Is(err, ErrStatic) {
		t.Fatalf("static: %v", err)
	}
	for _, sp := range []AccountSpec{{SystemID: "", Password: "x"}, {SystemID: "0123456789abcdef", Password: "x"},
		{SystemID: "e", Password: ""}, {SystemID: "e", Password: "x", TPS: -1}, {SystemID: "e", Password: "x", AllowedSources: []string{"abc"}}} {
		if _, err := s.CreateAccount(ctx, sp); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", sp, err)
		}
	}
	if got := s.Accounts(); len(got) != 2 || got[0].SystemID != "esme1" || !got[1].Static {
		t.Fatalf("Accounts = %+v", got)
	}
	if err := s.DeleteAccount(ctx, "esme1"); err != nil {
		t.Fatal(err)
	}
	if _, known := s.CheckAccount("esme1", "pw1"); known {
		t.Fatal("deleted account still known")
	}
}

func TestRoutes(t *testing.T) {
	ctx := context.Background()
	s := open(t, memDB(t))
	if _, err := s.CreateAccount(ctx, AccountSpec{SystemID: "esme1", Password: "pw1"}); err != nil {
		t.Fatal(err)
	}
	err := s.SetRoutes(ctx, []Route{{Name: "default", Target: "smsc"}, {Name: "cn-mobile", Target: "esme:esme1", Prefix: "+86138"}, {Name: "cn", Target: "smsc", Prefix: "86"}})
	if err != nil {
		t.Fatal(err)
	}
	for to, want := range map[msg.Address]string{"+8613800000001": "cn-mobile", "+8613900000001": "cn", "+4420000000": "default"} {
		if r, ok := s.RouteFor(to); !ok || r.Name != want {
			t.Errorf("RouteFor(%s) = %v %v, want %s", to, r, ok, want)
		}
	}
	if _, ok := s.RouteFor("sip:alice@im.example"); ok {
		t.Error("an IM address matched a route")
	}
	for _, bad := range [][]Route{{{Name: "", Target: "smsc"}}, {{Name: "a", Target: "mars"}}, {{Name: "a", Target: "esme:"}},
		{{Name: "a", Target: "smsc", Prefix: "86x"}}, {{Name: "a", Target: "smsc"}, {Name: "a", Target: "smsc"}}} {
		if err := s.SetRoutes(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%v: %v", bad, err)
		}
	}
	// Routes to nowhere, and a prefix twice (only the first route of it
	// would ever be used), are refused with the reason.
	for want, bad := range map[string][]Route{
		"names no SMPP account": {{Name: "a", Target: "esme:nobody"}},
		"route a's already":     {{Name: "a", Target: "smsc", Prefix: "86"}, {Name: "b", Target: "esme:esme1", Prefix: "+86"}},
	} {
		if err := s.SetRoutes(ctx, bad); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: %v, want ErrInvalid saying %q", bad, err, want)
		}
	}
	if err := s.SetRoutes(ctx, []Route{{Name: "cfg", Target: "esme:cfgesme"}}); err != nil {
		t.Errorf("a route to a static account: %v", err)
	}
	noSMSC, err := Open(Options{Domain: "im.example", ConfiguredAccount: func(id string) bool { return id == "reloaded" }})
	if err != nil {
		t.Fatal(err)
	}
	if err := noSMSC.SetRoutes(ctx, []Route{{Name: "up", Target: "smsc"}}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "no SMSC is configured") {
		t.Errorf("route to smsc without one: %v", err)
	}
	if err := noSMSC.SetRoutes(ctx, []Route{{Name: "rx", Target: "esme:reloaded"}}); err != nil {
		t.Errorf("a route to a configured account: %v", err)
	}
	if err := s.SetRoutes(ctx, []Route{{Name: "default", Target: "smsc"}, {Name: "cn-mobile", Target: "esme:esme1", Prefix: "+86138"}, {Name: "cn", Target: "smsc", Prefix: "86"}}); err != nil {
		t.Fatal(err)
	}
	if len(s.Routes()) != 3 {
		t.Fatal("a refused table replaced the good one")
	}
	// The account a route targets cannot be deleted from under it.
	if err := s.DeleteAccount(ctx, "esme1"); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "cn-mobile") {
		t.Fatalf("deleting a route's target: %v", err)
	}
	if err := s.SetRoutes(ctx, []Route{{Name: "default", Target: "smsc"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAccount(ctx, "esme1"); err != nil {
		t.Fatalf("deleting an account no route targets: %v", err)
	}
}

// TestPersistence reopens an on-disk store: everything provisioned, and
// nothing in plain text, survives.
func TestPersistence(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s := open(t, db)
	if _, err := s.CreateAccount(ctx, AccountSpec{SystemID: "esme1", Password: "pw-esme", TPS: 5}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRoutes(ctx, []Route{{Name: "all", Target: "smsc"}}); err != nil {
		t.Fatal(err)
	}
	err = db.Iterate([]byte("prov/"), func(k, v []byte) error {
		if strings.Contains(string(v), "pw-esme") {
			t.Errorf("%s holds a plain password: %s", k, v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	db2, err := store.Open(store.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	s2 := open(t, db2)
	if ok, known := s2.CheckAccount("esme1", "pw-esme"); !ok || !known {
		t.Fatal("account lost")
	}
	if r, ok := s2.RouteFor("+4412345678"); !ok || r.Name != "all" {
		t.Fatal("routes lost")
	}
}

func BenchmarkCheckAccount(b *testing.B) {
	s, _ := Open(Options{Domain: "d"}) // default PBKDF2 cost
	if _, err := s.CreateAccount(context.Background(), AccountSpec{SystemID: "e", Password: "pw"}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, _ := s.CheckAccount("e", "pw"); !ok {
			b.Fatal("refused")
		}
	}
}
