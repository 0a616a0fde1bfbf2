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

func open(t testing.TB, kv KV, static map[string]string) *Store {
	t.Helper()
	s, err := Open(Options{KV: kv, Domain: "im.example", CountryCode: "86", StaticUsers: static,
		StaticAccounts: map[string]string{"cfgesme": "cfgpw"}, HashIterations: 64})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestUsersRoundTripAndMapping(t *testing.T) {
	ctx := context.Background()
	s := open(t, memDB(t), map[string]string{"carol": "0123456789abcdef0123456789abcdef"})
	u, err := s.CreateUser(ctx, UserSpec{Name: "Alice", Password: "secret", MSISDN: "13800000001", Display: "Alice A"})
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "alice" || u.AOR != "sip:alice@im.example" || u.MSISDN != "+8613800000001" || !u.SIPCredential {
		t.Fatalf("user = %+v", u)
	}
	if h, ok := s.HA1("alice"); !ok || h != HA1Of("alice", "im.example", "secret") {
		t.Fatalf("HA1 = %q %v", h, ok)
	}
	if h, ok := s.HA1("carol"); !ok || h != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("static HA1 = %q %v", h, ok)
	}
	if !s.CheckPassword("alice", "secret") || s.CheckPassword("alice", "wrong") || s.CheckPassword("nobody", "") {
		t.Fatal("CheckPassword wrong")
	}
	if a, ok := s.IMAddressOf("+8613800000001"); !ok || a != "sip:alice@im.example" {
		t.Fatalf("IMAddressOf = %q %v", a, ok)
	}
	if m, ok := s.MSISDNOf("sip:alice@im.example"); !ok || m != "+8613800000001" {
		t.Fatalf("MSISDNOf = %q %v", m, ok)
	}
	if _, err := s.CreateUser(ctx, UserSpec{Name: "alice"}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if _, err := s.CreateUser(ctx, UserSpec{Name: "bob", MSISDN: "+8613800000001"}); !errors.Is(err, ErrExists) {
		t.Fatalf("msisdn taken: %v", err)
	}
	if _, err := s.CreateUser(ctx, UserSpec{Name: "carol"}); !errors.Is(err, ErrStatic) {
		t.Fatalf("static shadow: %v", err)
	}
	// Replace keeps the credential when none is given, moves the number.
	u, created, err := s.PutUser(ctx, "alice", UserSpec{MSISDN: "+8613800000002"})
	if err != nil || created || !u.SIPCredential || u.MSISDN != "+8613800000002" {
		t.Fatalf("put = %+v %v %v", u, created, err)
	}
	if _, ok := s.IMAddressOf("+8613800000001"); ok {
		t.Fatal("old msisdn still mapped")
	}
	if _, _, err := s.PutUser(ctx, "alice", UserSpec{Name: "bob"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("name mismatch: %v", err)
	}
	if err := s.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.HA1("alice"); ok {
		t.Fatal("deleted user still authenticates")
	}
	if err := s.DeleteUser(ctx, "alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestUserValidation(t *testing.T) {
	s := open(t, nil, nil)
	for _, sp := range []UserSpec{
		{Name: ""}, {Name: "a b"}, {Name: "al#ice"}, {Name: "x@y"}, {Name: strings.Repeat("a", 65)},
		{Name: "ok", MSISDN: "12ab"}, {Name: "ok", Password: "p", HA1: "0123456789abcdef0123456789abcdef"},
		{Name: "ok", HA1: "zz"}, {Name: "ok", Display: strings.Repeat("d", 129)},
	} {
		if _, err := s.CreateUser(context.Background(), sp); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: err = %v, want ErrInvalid", sp, err)
		}
	}
}

func TestAccounts(t *testing.T) {
	ctx := context.Background()
	s := open(t, memDB(t), nil)
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
	s := open(t, memDB(t), nil)
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
	if len(s.Routes()) != 3 {
		t.Fatal("a refused table replaced the good one")
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
	s := open(t, db, nil)
	if _, err := s.CreateUser(ctx, UserSpec{Name: "alice", Password: "topsecret", MSISDN: "+8613800000001"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAccount(ctx, AccountSpec{SystemID: "esme1", Password: "pw-esme", TPS: 5}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRoutes(ctx, []Route{{Name: "all", Target: "smsc"}}); err != nil {
		t.Fatal(err)
	}
	err = db.Iterate([]byte("prov/"), func(k, v []byte) error {
		if strings.Contains(string(v), "topsecret") || strings.Contains(string(v), "pw-esme") {
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
	s2 := open(t, db2, nil)
	if !s2.CheckPassword("alice", "topsecret") {
		t.Fatal("user lost")
	}
	if a, ok := s2.IMAddressOf("+8613800000001"); !ok || a != "sip:alice@im.example" {
		t.Fatal("mapping lost")
	}
	if ok, known := s2.CheckAccount("esme1", "pw-esme"); !ok || !known {
		t.Fatal("account lost")
	}
	if r, ok := s2.RouteFor("+4412345678"); !ok || r.Name != "all" {
		t.Fatal("routes lost")
	}
}

func TestImportCSV(t *testing.T) {
	ctx := context.Background()
	s := open(t, memDB(t), nil)
	changes := 0
	s.OnChange(func() { changes++ })
	in := "user,password,msisdn,display\n# a comment\nalice,pw-a,13800000001,Alice\nbob,pw-b,,\"Bob, Jr.\"\ncarol,pw-c\n"
	n, err := s.ImportCSV(ctx, strings.NewReader(in))
	if err != nil || n != 3 {
		t.Fatalf("import = %d, %v", n, err)
	}
	if u, ok := s.User("bob"); !ok || u.Display != "Bob, Jr." || u.MSISDN != "" {
		t.Fatalf("bob = %+v", u)
	}
	if !s.CheckPassword("carol", "pw-c") || changes == 0 {
		t.Fatal("carol not usable or no change notified")
	}
	// Re-import with an empty password keeps the credential.
	if _, err := s.ImportCSV(ctx, strings.NewReader("carol,,+8613800000009,Carol\n")); err != nil {
		t.Fatal(err)
	}
	if !s.CheckPassword("carol", "pw-c") {
		t.Fatal("credential lost on re-import")
	}

	bad := map[string]string{
		"alice,pw\nbob,pw,notanumber\n":          "line 2: ",
		"x,pw\nx,pw2\n":                          "line 2: user \"x\" already on line 1",
		"a,pw,13800000005\nb,pw,13800000005\n":   "line 2: msisdn +8613800000005 already on line 1",
		"user,password\nok,pw\nonly\n":           "line 3: 1 columns",
		"user,pass\n":                            "line 1: header column 2",
		"a,\"unterminated\n":                     "csv line",
		"dave,pw,13800000001\n":                  "line 1: ", // alice's number
		"ok,pw\nb c,pw\n":                        "line 2: ",
		"e,pw\nf,pw,1,2,3\n":                     "line 2: 5 columns",
		strings.Repeat("g,pw\n", 1) + "h,p,,,\n": "line 2: 5 columns",
	}
	before := len(s.Users())
	for in, want := range bad {
		n, err := s.ImportCSV(ctx, strings.NewReader(in))
		if err == nil || n != 0 || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("import %q = %d, %v; want an error with %q", in, n, err, want)
		}
	}
	if len(s.Users()) != before {
		t.Fatal("a refused import wrote users")
	}
}

func TestReloadSeesOfflineChanges(t *testing.T) {
	ctx := context.Background()
	db := memDB(t)
	a := open(t, db, nil)
	b := open(t, db, nil)
	if _, err := b.CreateUser(ctx, UserSpec{Name: "zed", Password: "z"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.User("zed"); ok {
		t.Fatal("cache is not a cache")
	}
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	if !a.CheckPassword("zed", "z") {
		t.Fatal("reload missed the user")
	}
}

func BenchmarkHA1(b *testing.B) {
	s := open(b, nil, nil)
	if _, err := s.CreateUser(context.Background(), UserSpec{Name: "alice", Password: "x"}); err != nil {
		b.Fatal(err)
	}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := s.HA1("alice"); !ok {
				b.Fatal("miss")
			}
		}
	})
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

func BenchmarkImportCSV(b *testing.B) {
	var sb strings.Builder
	for i := range 1000 {
		sb.WriteString("user" + strings.Repeat("x", i%3) + itoa(i) + ",pw\n")
	}
	in := sb.String()
	for b.Loop() {
		s := open(b, memDB(b), nil)
		if n, err := s.ImportCSV(context.Background(), strings.NewReader(in)); err != nil || n != 1000 {
			b.Fatal(n, err)
		}
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var d []byte
	for ; i > 0; i /= 10 {
		d = append([]byte{byte('0' + i%10)}, d...)
	}
	return string(d)
}
