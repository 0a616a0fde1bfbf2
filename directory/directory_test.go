package directory

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/store"
)

const (
	domain   = "im.example"
	staticH  = "0123456789abcdef0123456789abcdef"
	staticH2 = "fedcba9876543210fedcba9876543210"
)

var ctx = context.Background()

// disk is an on-disk store that a test can close and reopen.
type disk struct {
	t   testing.TB
	dir string
	db  *store.DB
}

func newDisk(t testing.TB) *disk {
	k := &disk{t: t, dir: t.TempDir()}
	k.open()
	t.Cleanup(func() { k.db.Close() })
	return k
}

func (k *disk) open() {
	db, err := store.Open(store.Options{Dir: k.dir})
	if err != nil {
		k.t.Fatal(err)
	}
	k.db = db
}

func (k *disk) reopen() {
	if err := k.db.Close(); err != nil {
		k.t.Fatal(err)
	}
	k.open()
}

func openDir(t testing.TB, kv KV, static map[string]string) *Directory {
	t.Helper()
	d, err := Open(Options{KV: kv, Domain: domain, CountryCode: "86", Static: static})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustResolve(t *testing.T, d *Directory, a msg.Address, name string) Person {
	t.Helper()
	p, ok := d.Resolve(a)
	if !ok || p.Name != name {
		t.Fatalf("Resolve(%s) = %+v %v; want user %q", a, p, ok, name)
	}
	return p
}

func mustMiss(t *testing.T, d *Directory, a msg.Address) {
	t.Helper()
	if p, ok := d.Resolve(a); ok {
		t.Fatalf("Resolve(%s) = %+v; want nothing", a, p)
	}
}

func TestUsers(t *testing.T) {
	k := newDisk(t)
	d := openDir(t, k.db, map[string]string{"carol": staticH})
	u, err := d.CreateUser(ctx, UserSpec{Name: "Alice", Password: "secret", MSISDN: "13800000001", Display: "Alice A"})
	if err != nil {
		t.Fatal(err)
	}
	want := []msg.Address{"sip:alice@im.example", "+8613800000001"}
	if u.Name != "alice" || u.Kind != KindLocal || !slices.Equal(u.Addresses, want) || !u.SIPCredential || u.Display != "Alice A" || u.Created.IsZero() {
		t.Fatalf("user = %+v", u)
	}
	if h, ok := d.HA1("alice"); !ok || h != HA1Of("alice", domain, "secret") {
		t.Fatalf("HA1 = %q %v", h, ok)
	}
	if h, ok := d.HA1("ALICE"); !ok || h != HA1Of("alice", domain, "secret") {
		t.Fatalf("HA1 of another spelling = %q %v", h, ok)
	}
	if !d.CheckPassword("alice", "secret") || d.CheckPassword("alice", "wrong") || d.CheckPassword("nobody", "") {
		t.Fatal("CheckPassword wrong")
	}
	p := mustResolve(t, d, "+8613800000001", "alice")
	if p.Number != "+8613800000001" || !slices.Equal(p.Endpoints, want) {
		t.Fatalf("person = %+v", p)
	}
	mustResolve(t, d, "sip:alice@im.example", "alice")

	if _, err := d.CreateUser(ctx, UserSpec{Name: "ALICE"}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate create: %v", err)
	}
	if _, err := d.CreateUser(ctx, UserSpec{Name: "bob", MSISDN: "+8613800000001"}); !errors.Is(err, ErrOwned) || strings.Contains(err.Error(), "alice") {
		t.Fatalf("number taken: %v (must be ErrOwned, not naming the owner)", err)
	}
	if _, err := d.CreateUser(ctx, UserSpec{Name: "8613800000001"}); !errors.Is(err, ErrOwned) {
		t.Fatalf("a numeric user whose number is bound elsewhere: %v", err)
	}
	if _, err := d.CreateUser(ctx, UserSpec{Name: "Carol"}); !errors.Is(err, ErrStatic) {
		t.Fatalf("static shadow: %v", err)
	}
	if _, err := d.CreateUser(ctx, UserSpec{Name: "sp ace"}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "' '") {
		t.Fatalf("sp ace: %v", err)
	}
	if _, err := d.CreateUser(ctx, UserSpec{Name: "alice~shop"}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "'~'") {
		t.Fatalf("reserved: %v", err)
	}

	// Replace keeps the credential when none is given and moves the number.
	u, created, err := d.PutUser(ctx, "alice", UserSpec{MSISDN: "+8613800000002"})
	if err != nil || created || !u.SIPCredential || !slices.Equal(u.Addresses, []msg.Address{"sip:alice@im.example", "+8613800000002"}) || u.Display != "" {
		t.Fatalf("put = %+v %v %v", u, created, err)
	}
	mustMiss(t, d, "+8613800000001")
	if _, _, err := d.PutUser(ctx, "alice", UserSpec{Name: "bob"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("name mismatch: %v", err)
	}
	if _, created, err := d.PutUser(ctx, "Dave", UserSpec{HA1: strings.ToUpper(staticH2)}); err != nil || !created {
		t.Fatalf("put creates: %v %v", created, err)
	}
	if h, _ := d.HA1("dave"); h != staticH2 {
		t.Fatalf("HA1 given = %q", h)
	}
	// A numeric user is its number.
	u, err = d.CreateUser(ctx, UserSpec{Name: "13800000009", Password: "n"})
	if err != nil || u.Addresses[0] != "+8613800000009" {
		t.Fatalf("numeric = %+v %v", u, err)
	}
	p = mustResolve(t, d, "+8613800000009", "13800000009")
	if p.Number != "+8613800000009" {
		t.Fatalf("numeric person = %+v", p)
	}
	for _, sp := range []UserSpec{
		{Name: ""}, {Name: "a b"}, {Name: "al#ice"}, {Name: "x@y"}, {Name: strings.Repeat("a", 65)},
		{Name: "ok", MSISDN: "12ab"}, {Name: "ok", Password: "p", HA1: staticH},
		{Name: "ok", HA1: "zz"}, {Name: "ok", Display: strings.Repeat("d", 129)}, {Name: "0001"},
	} {
		if _, err := d.CreateUser(ctx, sp); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: err = %v, want ErrInvalid", sp, err)
		}
	}
	names := []string{}
	for _, u := range d.Users() {
		names = append(names, u.Name+"/"+u.Kind)
	}
	if !slices.Equal(names, []string{"13800000009/local", "alice/local", "carol/static", "dave/local"}) {
		t.Fatalf("Users = %v", names)
	}

	if err := d.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.HA1("alice"); ok {
		t.Fatal("deleted user still authenticates")
	}
	mustMiss(t, d, "+8613800000002")
	mustMiss(t, d, "sip:alice@im.example")
	if err := d.DeleteUser(ctx, "alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if err := d.DeleteUser(ctx, "carol"); !errors.Is(err, ErrStatic) {
		t.Fatalf("delete static: %v", err)
	}
	// The number is free again.
	if _, err := d.CreateUser(ctx, UserSpec{Name: "erin", MSISDN: "+8613800000002"}); err != nil {
		t.Fatal(err)
	}
}

func TestBindUnbind(t *testing.T) {
	d := openDir(t, newDisk(t).db, map[string]string{"carol": staticH, "13900000000": staticH2})
	for _, n := range []string{"alice", "bob"} {
		if _, err := d.CreateUser(ctx, UserSpec{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	u, err := d.Bind(ctx, "alice", "sip:Alice@Other.Example;transport=tcp")
	if err != nil || !slices.Contains(u.Addresses, "sip:Alice@other.example") {
		t.Fatalf("bind = %+v %v", u, err)
	}
	if _, err := d.Bind(ctx, "alice", "sip:Alice@other.example"); err != nil {
		t.Fatalf("binding again is harmless: %v", err)
	}
	if _, err := d.Bind(ctx, "bob", "sips:Alice@OTHER.example"); !errors.Is(err, ErrOwned) {
		t.Fatalf("owned: %v", err)
	}
	if _, err := d.Bind(ctx, "bob", "sip:alice@other.example"); err != nil {
		t.Fatalf("another user part (case-sensitive) is another address: %v", err)
	}
	if _, err := d.Bind(ctx, "nobody", "+8613800000001"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no user: %v", err)
	}
	if _, err := d.Bind(ctx, "carol", "+8613800000001"); !errors.Is(err, ErrStatic) {
		t.Fatalf("static: %v", err)
	}
	if _, err := d.Bind(ctx, "alice", "+8613900000000"); !errors.Is(err, ErrOwned) {
		t.Fatalf("a static user's number: %v", err)
	}
	if _, err := d.Bind(ctx, "alice", "bob"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("not an address: %v", err)
	}
	if _, err := d.Bind(ctx, "alice", "sip:bob@im.example"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("another user's own AOR: %v", err)
	}
	if _, err := d.Bind(ctx, "alice", "xmpp:bob@im.example"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("another user's JID in our domain: %v", err)
	}
	if _, err := d.Bind(ctx, "alice", "xmpp:Alice@im.example"); err != nil {
		t.Fatalf("own JID in our domain: %v", err)
	}
	if u, err := d.Bind(ctx, "alice", "sip:ALICE@im.example"); err != nil || len(u.Addresses) != 3 {
		t.Fatalf("own AOR binds as a no-op: %+v %v", u, err)
	}
	if _, err := d.Unbind(ctx, "alice", "sip:alice@im.example"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("unbind own AOR: %v", err)
	}
	if _, err := d.Unbind(ctx, "alice", "+8613800000005"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unbind what is not bound: %v", err)
	}
	u, err = d.Unbind(ctx, "alice", "sip:Alice@other.example")
	if err != nil || slices.Contains(u.Addresses, "sip:Alice@other.example") {
		t.Fatalf("unbind = %+v %v", u, err)
	}
	mustMiss(t, d, "sip:Alice@other.example")
	if _, err := d.Bind(ctx, "bob", "sip:Alice@other.example"); err != nil {
		t.Fatalf("unbound address is free: %v", err)
	}
	for i := range MaxBound - 2 {
		if _, err := d.Bind(ctx, "bob", msg.Address(fmt.Sprintf("+861380000%04d", i))); err != nil {
			t.Fatal(i, err)
		}
	}
	if _, err := d.Bind(ctx, "bob", "+8613999999999"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("limit: %v", err)
	}
}

// TestConcurrentBind: of concurrent binds of one address exactly one wins
// and the others get ErrOwned (run with -race).
func TestConcurrentBind(t *testing.T) {
	d := openDir(t, newDisk(t).db, nil)
	const users = 8
	for i := range users {
		if _, err := d.CreateUser(ctx, UserSpec{Name: fmt.Sprintf("u%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 20 {
		addr := msg.Address(fmt.Sprintf("+86139%08d", round))
		var wins, owned atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range users {
			wg.Go(func() {
				<-start
				_, err := d.Bind(ctx, fmt.Sprintf("u%d", i), addr)
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, ErrOwned):
					owned.Add(1)
				default:
					t.Errorf("bind: %v", err)
				}
			})
			wg.Go(func() { // readers race the writers
				<-start
				for range 50 {
					d.Resolve(addr)
				}
			})
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 || owned.Load() != users-1 {
			t.Fatalf("round %d: %d wins, %d ErrOwned", round, wins.Load(), owned.Load())
		}
		if _, ok := d.Resolve(addr); !ok {
			t.Fatal("the winner does not resolve")
		}
	}
	// Two concurrent first logins of one account create one user.
	var created atomic.Int32
	names := make([]string, 8)
	var wg sync.WaitGroup
	for i := range names {
		wg.Go(func() {
			n, c, err := d.EnsureExternal(ctx, KindSocial, "weibo", "race", "")
			if err != nil {
				t.Error(err)
			}
			if c {
				created.Add(1)
			}
			names[i] = n
		})
	}
	wg.Wait()
	if u := slices.Compact(slices.Clone(names)); created.Load() != 1 || len(u) != 1 || u[0] != "race!weibo" {
		t.Fatalf("created %d times, names %v", created.Load(), names)
	}
}

func TestResolveEveryKind(t *testing.T) {
	d := openDir(t, newDisk(t).db, map[string]string{"carol": staticH, "+8613900000000": staticH2})
	if _, err := d.CreateUser(ctx, UserSpec{Name: "alice", MSISDN: "13800000001"}); err != nil {
		t.Fatal(err)
	}
	for _, a := range []msg.Address{"sip:alice@elsewhere.example", "xmpp:alice@jabber.example", "+8613800000003", "partner:shop:Alice", "social:weibo:ALICE"} {
		if _, err := d.Bind(ctx, "alice", a); err != nil {
			t.Fatal(a, err)
		}
	}
	if _, err := d.CreateUser(ctx, UserSpec{Name: "13800000002"}); err != nil {
		t.Fatal(err)
	}
	ext, _, err := d.EnsureExternal(ctx, KindPartner, "shop", "bob", "Bob")
	if err != nil {
		t.Fatal(err)
	}
	wantEnd := []msg.Address{"sip:alice@im.example", "+8613800000001", "sip:alice@elsewhere.example", "xmpp:alice@jabber.example", "+8613800000003"}
	for _, a := range []msg.Address{"sip:alice@im.example", "+8613800000001", "+8613800000003", "sip:alice@elsewhere.example", "xmpp:alice@jabber.example", "partner:shop:Alice", "social:weibo:ALICE"} {
		p := mustResolve(t, d, a, "alice")
		if !slices.Equal(p.Endpoints, wantEnd) || p.Number != "+8613800000001" {
			t.Fatalf("Resolve(%s) = %+v", a, p)
		}
	}
	if u, _ := d.User("alice"); !slices.Equal(u.Addresses, append(wantEnd, "partner:shop:Alice", "social:weibo:ALICE")) {
		t.Fatalf("addresses = %v", u.Addresses)
	}
	p := mustResolve(t, d, "+8613800000002", "13800000002")
	if p.Number != "+8613800000002" || !slices.Equal(p.Endpoints, []msg.Address{"+8613800000002"}) {
		t.Fatalf("numeric = %+v", p)
	}
	p = mustResolve(t, d, "partner:shop:bob", ext)
	if p.Number != "" || !slices.Equal(p.Endpoints, []msg.Address{msg.Address("sip:" + ext + "@im.example")}) {
		t.Fatalf("external = %+v", p)
	}
	mustResolve(t, d, msg.Address("sip:"+ext+"@im.example"), ext)
	p = mustResolve(t, d, "sip:carol@im.example", "carol")
	if p.Number != "" || len(p.Endpoints) != 1 {
		t.Fatalf("static = %+v", p)
	}
	if p := mustResolve(t, d, "+8613900000000", "+8613900000000"); p.Number != "+8613900000000" {
		t.Fatalf("static numeric = %+v", p)
	}
	for _, a := range []msg.Address{"partner:shop:alice", "social:weibo:alice", "sip:Alice@elsewhere.example", "+8613800000009", "sip:nobody@im.example", ""} {
		mustMiss(t, d, a)
	}
	// msg.FromAOR's forms of our users are canonical.
	for in, name := range map[string]string{"sip:Alice@IM.example": "alice", "<sip:13800000002@im.example>": "13800000002"} {
		a, err := msg.FromAOR(in, "86")
		if err != nil {
			t.Fatal(err)
		}
		mustResolve(t, d, a, name)
	}
	if n := testing.AllocsPerRun(1000, func() { d.Resolve("+8613800000001"); d.Resolve("+8613800000009") }); n != 0 {
		t.Fatalf("Resolve allocates %v times", n)
	}
}

func TestExternalUsers(t *testing.T) {
	k := newDisk(t)
	d := openDir(t, k.db, nil)
	var changed []string
	d.OnChange(func(n string) { changed = append(changed, n) })
	type ext struct{ kind, site, account string }
	cases := []struct {
		ext
		want string
	}{
		{ext{KindPartner, "shop", "alice"}, "alice~shop"},
		{ext{KindSocial, "weibo", "vcase"}, "vcase!weibo"},
		{ext{KindSocial, "weibo", "VCASE"}, "vcase=" + accountHash("VCASE") + "!weibo"},
		{ext{KindPartner, "x", "bob"}, "bob~x"}, // one site id, two kinds: two users
		{ext{KindSocial, "x", "bob"}, "bob!x"},
		{ext{KindPartner, "Shop", "bob"}, "bob~shop"}, // "bob#shop" at login
	}
	for _, c := range cases {
		n, created, err := d.EnsureExternal(ctx, c.kind, c.site, c.account, "Display "+c.account)
		if err != nil || !created || n != c.want {
			t.Fatalf("EnsureExternal(%v) = %q %v %v; want %q created", c.ext, n, created, err, c.want)
		}
		u, ok := d.User(n)
		if !ok || u.Kind != c.kind || u.SIPCredential || u.Display != "Display "+c.account {
			t.Fatalf("user %q = %+v", n, u)
		}
		addr := msg.Address(c.kind + ":" + strings.ToLower(c.site) + ":" + c.account)
		mustResolve(t, d, addr, c.want)
	}
	if len(changed) != len(cases) {
		t.Fatalf("OnChange heard %v", changed)
	}
	// Local "bob.shop" is someone else than partner "bob#shop".
	if _, err := d.CreateUser(ctx, UserSpec{Name: "bob.shop"}); err != nil {
		t.Fatal(err)
	}
	mustResolve(t, d, "sip:bob.shop@im.example", "bob.shop")
	mustResolve(t, d, "partner:shop:bob", "bob~shop")
	if _, _, err := d.EnsureExternal(ctx, "email", "x", "y", ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("kind: %v", err)
	}
	if _, _, err := d.EnsureExternal(ctx, KindSocial, "we ibo", "y", ""); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "' '") {
		t.Fatalf("site: %v", err)
	}
	// A taken derived name gets a counter: the account's address was moved away.
	if _, err := d.Unbind(ctx, "alice~shop", "partner:shop:alice"); err != nil {
		t.Fatal(err)
	}
	if n, created, err := d.EnsureExternal(ctx, KindPartner, "shop", "alice", ""); err != nil || !created || n != "alice=2~shop" {
		t.Fatalf("counter: %q %v %v", n, created, err)
	}
	cases[0].want = "alice=2~shop"
	// External users can be given a password and addresses like others.
	if _, _, err := d.PutUser(ctx, "vcase!weibo", UserSpec{Password: "pw", Display: "V"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Bind(ctx, "vcase!weibo", "+8613800000077"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.PutUser(ctx, "ghost~shop", UserSpec{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("derived names are not created by PutUser: %v", err)
	}

	// Durable: "newly created" only once, across a reopen.
	k.reopen()
	d = openDir(t, k.db, nil)
	for _, c := range cases {
		n, created, err := d.EnsureExternal(ctx, c.kind, c.site, c.account, "")
		if err != nil || created || n != c.want {
			t.Fatalf("after reopen EnsureExternal(%v) = %q %v %v", c.ext, n, created, err)
		}
	}
	if !d.CheckPassword("vcase!weibo", "pw") {
		t.Fatal("password of an external user lost")
	}
	mustResolve(t, d, "+8613800000077", "vcase!weibo")
	if u, _ := d.User("VCASE!weibo"); u.Kind != KindSocial || u.Display != "V" {
		t.Fatalf("after reopen = %+v", u)
	}
}

func TestDurability(t *testing.T) {
	k := newDisk(t)
	d := openDir(t, k.db, nil)
	if _, err := d.CreateUser(ctx, UserSpec{Name: "alice", Password: "topsecret", MSISDN: "+8613800000001", Display: "Alice", Offline: OfflineSMS}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateUser(ctx, UserSpec{Name: "odd", Offline: "later"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("offline %q: %v", "later", err)
	}
	for _, a := range []msg.Address{"sip:Alice@other.example", "xmpp:alice@jabber.example", "social:weibo:Alice"} {
		if _, err := d.Bind(ctx, "alice", a); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.CreateUser(ctx, UserSpec{Name: "gone", MSISDN: "+8613800000002"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.PutContact(ctx, "gone", Contact{Display: "x", Addresses: []msg.Address{"+8613800000005"}}); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteUser(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	c, _, err := d.PutContact(ctx, "alice", Contact{Display: "Bob", Addresses: []msg.Address{"+8613800000009", "sip:bob@else.example"}})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := d.User("alice")
	err = k.db.Iterate([]byte("dir/"), func(k, v []byte) error {
		if strings.Contains(string(v), "topsecret") {
			t.Errorf("%s holds a plain password", k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	k.reopen()
	d = openDir(t, k.db, nil)
	after, ok := d.User("alice")
	if !ok || !slices.Equal(after.Addresses, before.Addresses) || after.Display != "Alice" || !after.Created.Equal(before.Created) ||
		after.Offline != OfflineSMS || !d.OfflineSMS("alice") {
		t.Fatalf("after reopen %+v, before %+v", after, before)
	}
	if _, _, err := d.PutUser(ctx, "alice", UserSpec{Display: "Alice"}); err != nil || d.OfflineSMS("alice") {
		t.Fatalf("a PUT without offline keeps sending SMS: %v", err)
	}
	if !d.CheckPassword("alice", "topsecret") {
		t.Fatal("credential lost")
	}
	for _, a := range before.Addresses {
		mustResolve(t, d, a, "alice")
	}
	mustMiss(t, d, "+8613800000002")
	if _, ok := d.User("gone"); ok {
		t.Fatal("deleted user came back")
	}
	cs, err := d.Contacts("alice")
	if err != nil || len(cs) != 1 || cs[0].ID != c.ID || !slices.Equal(cs[0].Addresses, c.Addresses) {
		t.Fatalf("contacts after reopen = %+v %v", cs, err)
	}
	if _, err := d.CreateUser(ctx, UserSpec{Name: "gone"}); err != nil {
		t.Fatal(err)
	}
	if cs, err := d.Contacts("gone"); err != nil || len(cs) != 0 {
		t.Fatalf("a new user inherited contacts: %+v %v", cs, err)
	}
}

// TestMigration opens a store holding provision's users: they resolve and
// authenticate, their old keys are gone, and opening again changes nothing.
func TestMigration(t *testing.T) {
	k := newDisk(t)
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	old := []map[string]any{
		{"name": "alice", "aor": "sip:alice@im.example", "msisdn": "+8613800000001", "display": "Alice", "ha1": HA1Of("alice", domain, "pw-a"), "created": created, "updated": created},
		{"name": "bob", "aor": "sip:bob@im.example", "ha1": HA1Of("bob", domain, "pw-b"), "created": created, "updated": created},
		{"name": "13800000002", "aor": "+8613800000002", "msisdn": "+8613800000002", "created": created, "updated": created},
		{"name": "carol", "aor": "sip:carol@im.example", "msisdn": "+8613800000003", "created": created, "updated": created},
	}
	for _, o := range old {
		b, _ := json.Marshal(o)
		if err := k.db.Put(ctx, []byte("prov/u/"+o["name"].(string)), b); err != nil {
			t.Fatal(err)
		}
	}
	// carol was already migrated by a run that stopped before deleting her
	// old key (and has changed since): the directory's record wins.
	b, _ := json.Marshal(userRec{Name: "carol", Kind: KindLocal, Display: "Carol v2", Bound: []msg.Address{"+8613800000004"}, Created: created, Updated: created})
	if err := k.db.Put(ctx, []byte("dir/u/carol"), b); err != nil {
		t.Fatal(err)
	}

	check := func(d *Directory) {
		t.Helper()
		if !d.CheckPassword("alice", "pw-a") || !d.CheckPassword("bob", "pw-b") {
			t.Fatal("HA1 not kept")
		}
		p := mustResolve(t, d, "+8613800000001", "alice")
		if p.Number != "+8613800000001" {
			t.Fatalf("alice = %+v", p)
		}
		mustResolve(t, d, "sip:bob@im.example", "bob")
		mustResolve(t, d, "+8613800000002", "13800000002")
		mustResolve(t, d, "+8613800000004", "carol")
		mustMiss(t, d, "+8613800000003")
		if u, _ := d.User("alice"); u.Display != "Alice" || !u.Created.Equal(created) || u.Kind != KindLocal {
			t.Fatalf("alice = %+v", u)
		}
		if u, _ := d.User("carol"); u.Display != "Carol v2" {
			t.Fatalf("carol = %+v", u)
		}
		n := 0
		if err := k.db.Iterate([]byte("prov/u/"), func(k, v []byte) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("%d old keys left", n)
		}
		if len(d.Users()) != 4 {
			t.Fatalf("users = %+v", d.Users())
		}
	}
	check(openDir(t, k.db, nil))
	k.reopen()
	check(openDir(t, k.db, nil))
}

func TestStatic(t *testing.T) {
	k := newDisk(t)
	d := openDir(t, k.db, map[string]string{"Carol": staticH})
	var changed []string
	d.OnChange(func(n string) { changed = append(changed, n) })
	if h, ok := d.HA1("carol"); !ok || h != staticH {
		t.Fatalf("HA1 = %q %v", h, ok)
	}
	if u, ok := d.User("CAROL"); !ok || u.Kind != KindStatic || !u.SIPCredential || u.Addresses[0] != "sip:carol@im.example" {
		t.Fatalf("user = %+v", u)
	}
	if _, _, err := d.PutUser(ctx, "carol", UserSpec{}); !errors.Is(err, ErrStatic) {
		t.Fatalf("put: %v", err)
	}
	if _, err := d.Unbind(ctx, "carol", "+8613800000001"); !errors.Is(err, ErrStatic) {
		t.Fatalf("unbind: %v", err)
	}
	if _, _, err := d.PutContact(ctx, "carol", Contact{}); !errors.Is(err, ErrStatic) {
		t.Fatalf("contact: %v", err)
	}
	if cs, err := d.Contacts("carol"); err != nil || len(cs) != 0 {
		t.Fatalf("contacts = %v %v", cs, err)
	}
	// CheckPassword uses the name as configured (its HA1 was made with it).
	d2 := openDir(t, nil, map[string]string{"Dan": HA1Of("Dan", domain, "pw")})
	if !d2.CheckPassword("dan", "pw") {
		t.Fatal("static password")
	}

	if _, err := d.CreateUser(ctx, UserSpec{Name: "dave", Password: "d"}); err != nil {
		t.Fatal(err)
	}
	// Reload: carol goes, dave becomes static and shadows the stored dave.
	if err := d.Reload(map[string]string{"dave": staticH2}); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.User("carol"); ok {
		t.Fatal("carol still there")
	}
	mustMiss(t, d, "sip:carol@im.example")
	if h, _ := d.HA1("dave"); h != staticH2 {
		t.Fatalf("dave's HA1 = %q", h)
	}
	if u, _ := d.User("dave"); u.Kind != KindStatic {
		t.Fatalf("dave = %+v", u)
	}
	if len(d.Users()) != 1 {
		t.Fatalf("Users = %+v", d.Users())
	}
	if !slices.Equal(changed, []string{"dave", "carol", "dave"}) { // created, then reloaded
		t.Fatalf("changed = %v", changed)
	}
	for _, bad := range []map[string]string{{"a b": staticH}, {"x": "nothex"}, {"13800000001": staticH, "8613800000001": staticH}} {
		if err := d.Reload(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Reload(%v) = %v", bad, err)
		}
	}
	if h, _ := d.HA1("dave"); h != staticH2 {
		t.Fatal("a refused reload changed the static users")
	}
	// Static users live only in memory.
	k.reopen()
	d = openDir(t, k.db, nil)
	if !d.CheckPassword("dave", "d") {
		t.Fatal("the stored dave is back once not shadowed")
	}
	if _, ok := d.User("carol"); ok {
		t.Fatal("a static user was stored")
	}
}

func TestContacts(t *testing.T) {
	d := openDir(t, newDisk(t).db, nil)
	if _, err := d.CreateUser(ctx, UserSpec{Name: "alice"}); err != nil {
		t.Fatal(err)
	}
	var changed []string
	d.OnChange(func(n string) { changed = append(changed, n) })
	c, created, err := d.PutContact(ctx, "Alice", Contact{Display: " Bob ", Addresses: []msg.Address{"13800000009", "+8613800000009", "sip:Bob@Else.example"}})
	if err != nil || !created || c.ID != "c1" || c.Display != "Bob" || !slices.Equal(c.Addresses, []msg.Address{"+8613800000009", "sip:Bob@else.example"}) {
		t.Fatalf("put = %+v %v %v", c, created, err)
	}
	c2, _, err := d.PutContact(ctx, "alice", Contact{Display: "Carol", Addresses: []msg.Address{"xmpp:carol@jabber.example"}})
	if err != nil || c2.ID != "c2" {
		t.Fatalf("second = %+v %v", c2, err)
	}
	if _, _, err := d.PutContact(ctx, "alice", Contact{Addresses: []msg.Address{"+8613800000009"}}); !errors.Is(err, ErrExists) {
		t.Fatalf("an address in two contacts: %v", err)
	}
	if _, err := d.BindContact(ctx, "alice", "c2", "+8613800000009"); !errors.Is(err, ErrExists) {
		t.Fatalf("bind held elsewhere: %v", err)
	}
	c2, err = d.BindContact(ctx, "alice", "c2", "social:weibo:Carol")
	if err != nil || len(c2.Addresses) != 2 {
		t.Fatalf("bind = %+v %v", c2, err)
	}
	if _, err := d.BindContact(ctx, "alice", "c2", "nonsense"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad address: %v", err)
	}
	c2, err = d.UnbindContact(ctx, "alice", "c2", "xmpp:carol@jabber.example")
	if err != nil || !slices.Equal(c2.Addresses, []msg.Address{"social:weibo:Carol"}) {
		t.Fatalf("unbind = %+v %v", c2, err)
	}
	if _, err := d.UnbindContact(ctx, "alice", "c2", "xmpp:carol@jabber.example"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unbind twice: %v", err)
	}
	// Replace by ID; a client-chosen ID creates.
	if c, created, err := d.PutContact(ctx, "alice", Contact{ID: "c1", Display: "Robert"}); err != nil || created || c.Display != "Robert" {
		t.Fatalf("replace = %+v %v %v", c, created, err)
	}
	if _, created, err := d.PutContact(ctx, "alice", Contact{ID: "mine", Display: "M"}); err != nil || !created {
		t.Fatalf("own id: %v %v", created, err)
	}
	if _, _, err := d.PutContact(ctx, "alice", Contact{ID: "bad id"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad id: %v", err)
	}
	if err := d.DeleteContact(ctx, "alice", "c2"); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteContact(ctx, "alice", "c2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	cs, err := d.Contacts("alice")
	if err != nil || len(cs) != 2 || cs[0].ID != "c1" || cs[1].ID != "mine" {
		t.Fatalf("contacts = %+v %v", cs, err)
	}
	// IDs are not reused.
	if c, _, _ := d.PutContact(ctx, "alice", Contact{}); c.ID != "c3" {
		t.Fatalf("id = %q", c.ID)
	}
	if _, err := d.Contacts("nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no user: %v", err)
	}
	if _, _, err := d.PutContact(ctx, "nobody", Contact{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("no user: %v", err)
	}
	if len(changed) != 8 || slices.ContainsFunc(changed, func(n string) bool { return n != "alice" }) {
		t.Fatalf("changed = %v", changed)
	}
}

func TestOnChange(t *testing.T) {
	d := openDir(t, nil, nil)
	var changed []string
	d.OnChange(func(n string) { changed = append(changed, n) })
	d.CreateUser(ctx, UserSpec{Name: "a"})
	d.PutUser(ctx, "a", UserSpec{Display: "A"})
	d.Bind(ctx, "a", "+8613800000001")
	d.Bind(ctx, "a", "+8613800000001") // no change
	d.Unbind(ctx, "a", "+8613800000001")
	d.CreateUser(ctx, UserSpec{Name: "a"}) // refused
	d.DeleteUser(ctx, "a")
	if !slices.Equal(changed, []string{"a", "a", "a", "a", "a"}) {
		t.Fatalf("changed = %v", changed)
	}
}

func TestOpenOptions(t *testing.T) {
	if _, err := Open(Options{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no domain: %v", err)
	}
	if _, err := Open(Options{Domain: "bad domain"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad domain: %v", err)
	}
	if _, err := Open(Options{Domain: "d", CountryCode: "+86"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad cc: %v", err)
	}
	if _, err := Open(Options{Domain: "d", Static: map[string]string{"x": "y"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad static: %v", err)
	}
}

// TestSkipsBadRecords: an unreadable or conflicting stored record does not
// stop Open.
func TestSkipsBadRecords(t *testing.T) {
	k := newDisk(t)
	put := func(key string, v any) {
		b, _ := json.Marshal(v)
		if s, ok := v.(string); ok {
			b = []byte(s)
		}
		if err := k.db.Put(ctx, []byte(key), b); err != nil {
			t.Fatal(err)
		}
	}
	put("dir/u/a", userRec{Name: "a", Kind: KindLocal, Bound: []msg.Address{"+8613800000001"}})
	put("dir/u/b", userRec{Name: "b", Kind: KindLocal, Bound: []msg.Address{"+8613800000001", "+8613800000002", "junk"}})
	put("dir/u/c", "{not json")
	put("dir/u/d", userRec{Name: "D", Kind: KindLocal})
	put("dir/u/e", userRec{Name: "e", Kind: "alien"})
	put("prov/u/f", "{not json")
	d := openDir(t, k.db, nil)
	mustResolve(t, d, "+8613800000001", "a")
	mustResolve(t, d, "+8613800000002", "b")
	if len(d.Users()) != 2 {
		t.Fatalf("users = %+v", d.Users())
	}
}
