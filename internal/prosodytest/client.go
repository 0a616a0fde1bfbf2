package prosodytest

import (
	"crypto/tls"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	goxmpp "github.com/xmppo/go-xmpp"

	"github.com/smsbridge/bridge/internal/testutil"
)

// clientWait bounds every wait of a Client.
const clientWait = 10 * time.Second

// Client is a go-xmpp client with its stanzas recorded by a reader
// goroutine, which also answers pings (go-xmpp does that inside Recv) and
// approves every subscription request, as a client does for a gateway it
// asked to join.
type Client struct {
	*goxmpp.Client
	mu   sync.Mutex
	got  []any
	done chan struct{}
}

// Login logs user in over STARTTLS and ends the session when t ends.
func (srv *Server) Login(t testing.TB, user, pass, resource string) *Client {
	t.Helper()
	c, err := srv.Dial(user, pass, resource)
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	t.Cleanup(c.Close)
	return c
}

// Dial logs user in over STARTTLS; the caller closes the Client.
func (srv *Server) Dial(user, pass, resource string) (*Client, error) {
	_, host, _ := strings.Cut(user, "@")
	gc, err := goxmpp.Options{
		Host: srv.C2SAddr, User: user, Password: pass, Resource: resource,
		// PLAIN inside verified TLS: go-xmpp's SCRAM fails against Prosody
		// 0.12 (package doc).
		NoTLS: true, StartTLS: true, Mechanism: "PLAIN",
		TLSConfig:   &tls.Config{RootCAs: srv.CertPool(), ServerName: host, MinVersion: tls.VersionTLS12},
		DialTimeout: 5 * time.Second,
	}.NewClient()
	if err != nil {
		return nil, err
	}
	c := &Client{Client: gc, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			st, err := gc.Recv()
			if err != nil {
				return
			}
			if p, ok := st.(goxmpp.Presence); ok && p.Type == "subscribe" {
				gc.ApproveSubscription(p.From)
			}
			c.mu.Lock()
			c.got = append(c.got, st)
			c.mu.Unlock()
		}
	}()
	return c, nil
}

// Close ends the stream and waits for the reader to see the server close
// it before closing the connection: go-xmpp's Close reads the stream
// itself, which would race with the reader.
func (c *Client) Close() {
	c.SendOrg("</stream:stream>")
	select {
	case <-c.done:
	case <-time.After(clientWait):
	}
	c.Client.Close()
}

// Wait waits for a stanza the predicate accepts and returns it.
func (c *Client) Wait(t testing.TB, what string, pred func(st any) bool) any {
	t.Helper()
	var found any
	testutil.WaitForState(t, clientWait, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, st := range c.got {
			if pred(st) {
				found = st
				return true
			}
		}
		return false
	}, func() string { return "no " + what + "; got " + c.Dump() })
	return found
}

// WaitChat waits for a message the predicate accepts.
func (c *Client) WaitChat(t testing.TB, what string, pred func(goxmpp.Chat) bool) goxmpp.Chat {
	t.Helper()
	return c.Wait(t, what, func(st any) bool {
		ch, ok := st.(goxmpp.Chat)
		return ok && pred(ch)
	}).(goxmpp.Chat)
}

// WaitIQ waits for an IQ answer with id.
func (c *Client) WaitIQ(t testing.TB, id string) goxmpp.IQ {
	t.Helper()
	return c.Wait(t, "answer to IQ "+id, func(st any) bool {
		iq, ok := st.(goxmpp.IQ)
		return ok && iq.ID == id
	}).(goxmpp.IQ)
}

// Received returns every stanza received so far.
func (c *Client) Received() []any {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]any(nil), c.got...)
}

func (c *Client) Dump() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, st := range c.got {
		fmt.Fprintf(&b, "\n  %T %+v", st, st)
	}
	return b.String()
}

// Elem finds the child element of a message with the given local name.
func Elem(ch goxmpp.Chat, local string) (goxmpp.XMLElement, bool) {
	for _, e := range ch.OtherElem {
		if e.XMLName.Local == local {
			return e, true
		}
	}
	return goxmpp.XMLElement{}, false
}

func Attr(e goxmpp.XMLElement, name string) string {
	for _, a := range e.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// Befriend makes the users a and b (bare JIDs, with these passwords)
// contacts of each other, through clients of their own that it closes.
func (srv *Server) Befriend(t testing.TB, a, aPass, b, bPass string) {
	t.Helper()
	ca, err := srv.Dial(a, aPass, "setup")
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cb, err := srv.Dial(b, bPass, "setup")
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	// Prosody does not forward the approval itself; it pushes the roster
	// change and sends the presence of the new contact's resources.
	subscribed := func(from string) func(any) bool {
		return func(st any) bool {
			p, ok := st.(goxmpp.Presence)
			return ok && (p.Type == "subscribed" || p.Type == "" && p.From == from+"/setup")
		}
	}
	ca.RequestSubscription(b)
	ca.Wait(t, b+"'s approval", subscribed(b))
	cb.RequestSubscription(a)
	cb.Wait(t, a+"'s approval", subscribed(a))
}
