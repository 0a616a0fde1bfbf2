package smpp

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
)

// What an operator reads of a bind: who, how, from where, since when, and
// the requests in flight each way while one is held unanswered.
func TestSessionAndClientInfo(t *testing.T) {
	hold := make(chan struct{})
	srv, addr := startServer(t, &echo{hold: hold}, func(c *ServerConfig) { c.InboundWindow = 7 })
	before := time.Now()
	c := startClient(t, ClientConfig{Addr: addr, SystemID: "esme1", Password: "secret", Window: 5, MinBackoff: time.Hour})
	// Both ends: the server counts the bind once it answered, the client once it read the answer.
	testutil.WaitFor(t, "bind", 10*time.Second, func() bool { return len(srv.BoundSessions()) == 1 && c.Info().Bound && c.Session() != nil })

	got := srv.BoundSessions()[0]
	local := c.Session().conn.LocalAddr().String()
	if got.SystemID != "esme1" || got.Bind != BindTransceiver || got.Remote != local || got.Since.Before(before) || got.Inbound != 7 {
		t.Fatalf("server sees %+v; want esme1 transceiver from %s since after %v, inbound 7", got, local, before)
	}
	ci := c.Info()
	if !ci.Bound || ci.Addr != addr || ci.SystemID != "esme1" || ci.Bind != BindTransceiver || ci.Since.Before(before) ||
		ci.LastErr != nil || ci.Session.Window != 5 || ci.Session.WindowUsed != 0 {
		t.Fatalf("client info %+v", ci)
	}

	sent := make(chan error, 1)
	go func() {
		_, err := c.Send(context.Background(), &PDU{ID: SubmitSM, SourceAddr: "1", DestAddr: "2", ShortMessage: []byte("held")})
		sent <- err
	}()
	testutil.WaitForState(t, 10*time.Second, func() bool {
		return c.Info().Session.WindowUsed == 1 && srv.BoundSessions()[0].InboundUsed == 1
	}, func() string {
		return fmt.Sprintf("client window %d used, server inbound %d used", c.Info().Session.WindowUsed, srv.BoundSessions()[0].InboundUsed)
	})
	close(hold)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the window free again", 10*time.Second, func() bool {
		return c.Info().Session.WindowUsed == 0 && srv.BoundSessions()[0].InboundUsed == 0
	})

	upSince := c.Info().Since
	for _, s := range srv.Sessions("esme1") {
		s.close(errors.New("test ends the session"))
	}
	testutil.WaitFor(t, "the client down, with the reason", 10*time.Second, func() bool {
		ci := c.Info()
		return !ci.Bound && ci.LastErr != nil && ci.Since.After(upSince)
	})
	if n := len(srv.BoundSessions()); n != 0 {
		t.Fatalf("server still lists %d sessions", n)
	}
}
