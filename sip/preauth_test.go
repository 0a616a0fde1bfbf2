package sip

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// TCP connections that send nothing hold a place among MaxPreauth (and
// MaxPreauthPerSource per IP) only until their first request's deadline,
// and a flood of them evicts the oldest rather than keep a real client
// out: after 20 idle connections from one address, a client that sends a
// request at once is answered, the idle ones are closed, and a connection
// whose first request passed is no longer timed out.
func TestTCPConnectionsBeforeFirstRequest(t *testing.T) {
	cfg := baseConfig()
	cfg.MaxPreauth, cfg.MaxPreauthPerSource, cfg.PreauthTimeout = 8, 4, 700*time.Millisecond
	pres, _ := presence.Open(presence.Options{})
	s := startServer(t, cfg, pres, submitFunc(func(context.Context, *msg.Message) error { return nil }))

	var idle []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		idle = append(idle, c)
	}
	// The oldest of them lost their places to the newer ones at once.
	closed := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		return err != nil && !strings.Contains(err.Error(), "timeout")
	}
	testutil.WaitFor(t, "the oldest idle connection closed by the newer ones", 5*time.Second, func() bool { return closed(idle[0]) })

	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	host, _ := hostPort(t, s.Addr())
	options := "OPTIONS sip:" + testDomain + " SIP/2.0\r\n" +
		"Via: SIP/2.0/TCP " + c.LocalAddr().String() + ";branch=z9hG4bK-pa1\r\n" +
		"From: <sip:probe@" + testDomain + ">;tag=1\r\nTo: <sip:" + testDomain + ">\r\n" +
		"Call-ID: preauth-1@" + host + "\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	if _, err := c.Write([]byte(options)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "SIP/2.0 ") {
		t.Fatalf("a client's first request among idle connections: %q %v", line, err)
	}
	// Past the deadline every idle connection is gone; the client that
	// sent a request keeps its connection.
	testutil.WaitFor(t, "idle connections closed after the first-request deadline", 5*time.Second, func() bool {
		for _, ic := range idle {
			if !closed(ic) {
				return false
			}
		}
		return true
	})
	if n := s.preauth.Len(); n != 0 {
		t.Fatalf("%d places still taken", n)
	}
	time.Sleep(cfg.PreauthTimeout)
	if _, err := c.Write([]byte("\r\n\r\n")); err != nil || closed(c) {
		t.Fatalf("the connection whose request passed was closed: %v", err)
	}
}
