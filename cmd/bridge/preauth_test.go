package main

import (
	"errors"
	"net"
	"testing"
	"time"

	fsmpp "github.com/fiorix/go-smpp/smpp"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutext"
)

// idleConns opens n connections to addr that never send a byte, spread
// over the loopback sources 127.0.0.2 ... 127.0.0.(1+sources).
func idleConns(t *testing.T, addr string, n, sources int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for i := range n {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i%sources))}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("idle connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	return conns
}

// closedByPeer reports whether the other end has closed c, waiting up to d.
func closedByPeer(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	_, err := c.Read(b[:])
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestSMPPBindDespiteIdleConnections: 1,024 connections that never bind
// neither keep a carrier from binding nor stay: each source keeps at most
// --preauth-per-source of them, the listener --preauth-max, and those go
// after --preauth-timeout.
func TestSMPPBindDespiteIdleConnections(t *testing.T) {
	addr := freeTCPPort(t)
	p := startProc(t, addr, "--data-dir", t.TempDir(), "--preauth-timeout", "3s")
	defer p.stop()
	rss0 := p.rssKB()
	conns := idleConns(t, addr, 1024, 8)
	time.Sleep(500 * time.Millisecond)
	if rss := p.rssKB(); rss0 > 0 {
		// Informative: 256 are held, the rest were closed.
		t.Logf("RSS %d kB before, %d kB with 1,024 idle connections opened (+%d kB)", rss0, rss, rss-rss0)
	}
	if !closedByPeer(conns[0], 2*time.Second) {
		t.Error("the first idle connection of its source is still open past --preauth-per-source")
	}
	if closedByPeer(conns[len(conns)-1], 100*time.Millisecond) {
		t.Error("the newest idle connection was closed at once")
	}

	tx := &fsmpp.Transceiver{Addr: addr, User: "esme1", Passwd: "secret1", RespTimeout: 5 * time.Second}
	st := tx.Bind()
	defer tx.Close()
	select {
	case s := <-st:
		if s.Error() != nil {
			t.Fatalf("carrier's bind behind 1,024 idle connections: %v", s.Error())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("carrier's bind behind 1,024 idle connections timed out")
	}
	if !closedByPeer(conns[len(conns)-1], 5*time.Second) {
		t.Error("an idle connection outlived --preauth-timeout")
	}
	// The bound session stays after the idle ones' timeout.
	if _, err := tx.Submit(&fsmpp.ShortMessage{Src: "8613900000031", Dst: "8613800000031", Text: pdutext.Raw("still bound"),
		SourceAddrTON: 1, SourceAddrNPI: 1, DestAddrTON: 1, DestAddrNPI: 1}); err != nil {
		t.Fatalf("submit on the bound session: %v", err)
	}
}
