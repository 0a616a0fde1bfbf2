package smpp

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/internal/tlsconf/tlstest"
)

// The client binds over TLS to a server behind a TLS listener, verifying
// its certificate; against roots that do not know the server it never
// binds.
func TestClientOverTLS(t *testing.T) {
	ca := tlstest.NewCA(t)
	leaf := ca.Issue("smsc", "127.0.0.1")
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, tls.NewListener(raw, leaf.ServerConfig(t)), &echo{}, nil)
	addr := raw.Addr().String()

	c := startClient(t, ClientConfig{Addr: addr, SystemID: "esme1", Password: "secret", TLS: ca.ClientConfig("")})
	testutil.WaitFor(t, "bind over TLS", 10*time.Second, c.Bound)
	p := &PDU{ID: SubmitSM, SourceAddr: "1", DestAddr: "2", ShortMessage: []byte("tls")}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := c.Send(ctx, p)
	if err != nil || resp.MessageID != "id-tls" {
		t.Fatalf("submit over TLS: %+v %v", resp, err)
	}

	other := tlstest.NewCA(t)
	bad := NewClient(ClientConfig{Addr: addr, SystemID: "esme1", Password: "secret", TLS: other.ClientConfig("")})
	if err := bad.once(context.Background()); err == nil {
		t.Fatal("bound to a server whose certificate no trusted CA signed")
	}
	plain := NewClient(ClientConfig{Addr: addr, SystemID: "esme1", Password: "secret", RespTimeout: time.Second, DialTimeout: time.Second})
	ctx2, cancel2 := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel2()
	if err := plain.once(ctx2); err == nil {
		t.Fatal("a plain bind to a TLS listener succeeded")
	}
}
