package xmppwire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// countingConn records each write it is given; err, if set, fails them.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
	err    error
	closed bool
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	c.writes = append(c.writes, bytes.Clone(b))
	return len(b), nil
}

func (c *countingConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return nil
}

func (c *countingConn) got() (n int, all []byte, closed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.writes), bytes.Join(c.writes, nil), c.closed
}

func TestGatherConnGathersInOrder(t *testing.T) {
	under := &countingConn{}
	g := NewGatherConn(under, time.Hour) // only Close writes
	var want bytes.Buffer
	for i := range 100 {
		s := fmt.Sprintf("<message id='%d'/>", i)
		want.WriteString(s)
		if n, err := g.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("write %d: %d, %v", i, n, err)
		}
	}
	if n, _, _ := under.got(); n != 0 {
		t.Fatalf("%d writes before the delay ended", n)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	n, all, closed := under.got()
	if n != 1 || !bytes.Equal(all, want.Bytes()) || !closed {
		t.Fatalf("%d writes of %d bytes (closed %v), want one of the %d written in order", n, len(all), closed, want.Len())
	}
}

func TestGatherConnWritesAfterDelay(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	g := NewGatherConn(a, time.Millisecond)
	defer g.Close()
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 64)
		n, _ := io.ReadAtLeast(b, buf, len("<a/><b/>"))
		got <- buf[:n]
	}()
	for _, s := range []string{"<a/>", "<b/>"} {
		if _, err := g.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case p := <-got:
		if string(p) != "<a/><b/>" {
			t.Fatalf("read %q", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing written after the delay")
	}
}

func TestGatherConnFailedWrite(t *testing.T) {
	broken := errors.New("broken pipe")
	under := &countingConn{err: broken}
	g := NewGatherConn(under, time.Millisecond)
	if _, err := g.Write([]byte("<a/>")); err != nil {
		t.Fatalf("a write is held before it fails: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := g.Write([]byte("<b/>"))
		if errors.Is(err, broken) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes still taken after the connection failed (last: %v)", err)
		}
		time.Sleep(time.Millisecond)
	}
	if _, _, closed := under.got(); !closed {
		t.Fatal("the failed connection was not closed")
	}
}

func TestGatherConnBoundsWhatItHolds(t *testing.T) {
	under := &countingConn{}
	g := NewGatherConn(under, 20*time.Millisecond)
	defer g.Close()
	big := bytes.Repeat([]byte("x"), maxGather/2+1)
	if _, err := g.Write(big); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := under.got(); n != 0 {
		t.Fatalf("%d writes before the delay ended", n)
	}
	// Past the bound: this write waits for the one held to go out.
	if _, err := g.Write(big); err != nil {
		t.Fatal(err)
	}
	if n, all, _ := under.got(); n != 1 || len(all) != len(big) {
		t.Fatalf("the second write returned with %d writes (%d bytes) out, want the first alone", n, len(all))
	}
	g.Close()
	if n, all, _ := under.got(); n != 2 || len(all) != 2*len(big) {
		t.Fatalf("%d writes of %d bytes after Close, want 2 of %d", n, len(all), 2*len(big))
	}
}
