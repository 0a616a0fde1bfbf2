package directory

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/smsbridge/bridge/msg"
)

func TestImportCSV(t *testing.T) {
	k := newDisk(t)
	d := openDir(t, k.db, map[string]string{"stat": staticH})
	changes := 0
	d.OnChange(func(string) { changes++ })
	in := "user,password,msisdn,display\n# a comment\nalice,pw-a,13800000001,Alice\nBob,pw-b,,\"Bob, Jr.\"\ncarol,pw-c\n"
	n, err := d.ImportCSV(ctx, strings.NewReader(in))
	if err != nil || n != 3 {
		t.Fatalf("import = %d, %v", n, err)
	}
	if u, ok := d.User("bob"); !ok || u.Display != "Bob, Jr." || len(u.Addresses) != 1 {
		t.Fatalf("bob = %+v", u)
	}
	mustResolve(t, d, "+8613800000001", "alice")
	if !d.CheckPassword("carol", "pw-c") || changes != 3 {
		t.Fatalf("carol not usable or %d changes notified", changes)
	}
	// Re-import with an empty password keeps the credential.
	if _, err := d.ImportCSV(ctx, strings.NewReader("carol,,+8613800000009,Carol\n")); err != nil {
		t.Fatal(err)
	}
	if !d.CheckPassword("carol", "pw-c") {
		t.Fatal("credential lost on re-import")
	}
	mustResolve(t, d, "+8613800000009", "carol")

	bad := map[string]string{
		"alice,pw\nbob,pw,notanumber\n":         "line 2: ",
		"x,pw\nX,pw2\n":                         "line 2: user \"x\" already on line 1",
		"a,pw,13800000005\nb,pw,13800000005\n":  "line 2: msisdn +8613800000005 already on line 1",
		"13800000006,pw\nb,pw,+8613800000006\n": "line 2: msisdn +8613800000006 already on line 1",
		"user,password\nok,pw\nonly\n":          "line 3: 1 columns",
		"user,pass\n":                           "line 1: header column 2",
		"a,\"unterminated\n":                    "csv line",
		"dave,pw,13800000001\n":                 "line 1: address owned by another user",
		"ok,pw\nb c,pw\n":                       "line 2: user name \"b c\": character ' '",
		"e,pw\nf,pw,1,2,3\n":                    "line 2: 5 columns",
		"g,pw\nh,p,,,\n":                        "line 2: 5 columns",
		"stat,pw\n":                             "line 1: defined in the static configuration",
		"a~b,pw\n":                              "line 1: user name \"a~b\": character '~' (U+007E) is reserved",
	}
	before := len(d.Users())
	for in, want := range bad {
		n, err := d.ImportCSV(ctx, strings.NewReader(in))
		if err == nil || n != 0 || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("import %q = %d, %v; want an error with %q", in, n, err, want)
		}
	}
	if len(d.Users()) != before {
		t.Fatal("a refused import wrote users")
	}
	k.reopen()
	d = openDir(t, k.db, nil)
	if !d.CheckPassword("alice", "pw-a") || len(d.Users()) != 3 {
		t.Fatal("imported users not durable")
	}
	if u, _ := d.User("carol"); !slices.Equal(u.Addresses, []msg.Address{"sip:carol@im.example", "+8613800000009"}) {
		t.Fatalf("carol = %+v", u)
	}
}

func BenchmarkImportCSV(b *testing.B) {
	var sb strings.Builder
	for i := range 1000 {
		sb.WriteString("user" + strings.Repeat("x", i%3) + strconv.Itoa(i) + ",pw\n")
	}
	in := sb.String()
	for b.Loop() {
		d := openDir(b, nil, nil)
		if n, err := d.ImportCSV(ctx, strings.NewReader(in)); err != nil || n != 1000 {
			b.Fatal(n, err)
		}
	}
}
