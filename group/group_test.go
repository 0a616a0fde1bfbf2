package group

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/store"
)

func TestParseCommand(t *testing.T) {
	for _, tc := range []struct {
		text string
		ok   bool
		name string
		args []string
	}{
		{"#create hikers private", true, "create", []string{"hikers", "private"}},
		{"/JOIN hikers", true, "join", []string{"hikers"}},
		{"  join Hikers ", true, "join", []string{"Hikers"}},
		{"LEAVE", true, "leave", nil},
		{"Stop", true, "stop", nil},
		{"who", true, "who", nil},
		{"NICK walker", true, "nick", []string{"walker"}},
		{"#frobnicate", true, "frobnicate", nil}, // answered: unknown command
		{"join us tonight", false, "", nil},      // a post: a bare keyword is the whole message
		{"help me please", false, "", nil},
		{"stop it", false, "", nil},
		{"#1 priority", false, "", nil},
		{"//", false, "", nil},
		{"", false, "", nil},
		{"summit at noon?", false, "", nil},
	} {
		c, ok := ParseCommand(tc.text)
		if ok != tc.ok || c.Name != tc.name || !slices.Equal(c.Args, tc.args) {
			t.Errorf("ParseCommand(%q) = %+v, %v; want %s %v, %v", tc.text, c, ok, tc.name, tc.args, tc.ok)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"#create a private limit 3", "JOIN x", "stop", "/who", "# ", "#\x00", "join \u00e9t\u00e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		c, ok := ParseCommand(text)
		if ok && (c.Name == "" || len(c.Name) > 64) {
			t.Fatalf("command %+v from %q", c, text)
		}
		c.valid()
	})
}

// stager stands for the router: it gives every staged message an ID.
type stager struct{ n int }

func (s *stager) Stage(_ context.Context, m *msg.Message) (msg.Ack, error) {
	s.n++
	m.ID = fmt.Sprint("m", s.n)
	return msg.Settled{}, nil
}

// BenchmarkMembershipMemory reports the heap a membership takes: 100,000
// members of one group, each a distinct number with its default nick.
func BenchmarkMembershipMemory(b *testing.B) {
	db, err := store.Open(store.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s, err := New(Config{Access: "1065800", CountryCode: "86", KV: db, MaxLimit: 1 << 30}, &stager{})
	if err != nil {
		b.Fatal(err)
	}
	const n = 100000
	in, err := s.Create(context.Background(), "big", "+8613900000000", Options{Limit: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	g, _ := s.group(in.Name)
	addrs := make([]msg.Address, n)
	for i := range addrs {
		addrs[i] = msg.Address(fmt.Sprintf("+86139%08d", i+1))
	}
	for b.Loop() {
		g.mu.Lock()
		g.members = nil // the last round's map is garbage before the count starts
		g.mu.Unlock()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		g.mu.Lock()
		g.members = make(map[msg.Address]member)
		for _, a := range addrs {
			a = msg.Address(strings.Clone(string(a))) // each membership owns its address, as one loaded from the store does
			g.members[a] = member{nick: defaultNick(a)}
		}
		g.mu.Unlock()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/membership")
	}
}
