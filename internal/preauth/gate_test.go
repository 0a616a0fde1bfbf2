package preauth

import (
	"net"
	"testing"
)

func addr(ip string, port int) net.Addr { return &net.TCPAddr{IP: net.ParseIP(ip), Port: port} }

func TestGateEvictsOldest(t *testing.T) {
	g := New(3, 2)
	var gone []int
	admit := func(ip string, id int) *Ticket {
		return g.Admit(addr(ip, id), func() { gone = append(gone, id) })
	}
	t1 := admit("10.0.0.1", 1)
	admit("10.0.0.1", 2)
	admit("10.0.0.1", 3) // per source: 1 goes
	if len(gone) != 1 || gone[0] != 1 {
		t.Fatalf("evicted %v, want [1]", gone)
	}
	if t1.Done() {
		t.Error("Done of an evicted place reports true")
	}
	admit("10.0.0.2", 4)
	admit("10.0.0.3", 5) // all: 2 goes
	if len(gone) != 2 || gone[1] != 2 {
		t.Fatalf("evicted %v, want [1 2]", gone)
	}
	t6 := admit("10.0.0.3", 6) // all: 3 goes
	if !t6.Done() || g.Len() != 2 {
		t.Fatalf("Done false or Len %d, want 2", g.Len())
	}
	if t6.Done(); g.Len() != 2 {
		t.Fatal("a second Done changed the count")
	}
}
