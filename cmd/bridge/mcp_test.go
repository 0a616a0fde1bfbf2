package main

import (
	"context"
	"testing"
	"time"

	"github.com/fiorix/go-smpp/smpp/pdu/pdutext"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/mcp"
)

// A handset on the compressed MCP link registers, receives an SMS an ESME
// sent it, and its reply leaves as SMS at the SMSC.
func TestHandsetOverMCP(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), append(sipUserFlag("8613800000040", "hpw"), "--smsc", sc.url(), "--mcp-listen", "127.0.0.1:0")...)
	if b.addrs.MCP == "" {
		t.Fatal("MCP link not listening")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h, err := mcp.Dial(ctx, b.addrs.MCP, true)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Register(ctx, "8613800000040", "wrong", testDomain, 600); err == nil {
		t.Fatal("register with a wrong password succeeded")
	}
	h.Close()
	if h, err = mcp.Dial(ctx, b.addrs.MCP, true); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Register(ctx, "8613800000040", "hpw", testDomain, 600); err != nil {
		t.Fatalf("register: %v", err)
	}
	const text = "短信到手机客户端 over MCP 😀"
	if _, err := fiorixSubmit(t, b, "esme1", "secret1", "8613900000040", "8613800000040", pdutext.UCS2(text)); err != nil {
		t.Fatal(err)
	}
	select {
	case in := <-h.Messages():
		if in.Text != text {
			t.Fatalf("handset got %q, want %q", in.Text, text)
		}
	case <-ctx.Done():
		t.Fatal("no message at the handset")
	}
	code, err := h.SendMessage(ctx, "tel:+8613900000040", "reply from the handset", false)
	if err != nil || (code != 200 && code != 280) {
		t.Fatalf("handset M answered %d, %v", code, err)
	}
	testutil.WaitFor(t, "reply at the SMSC", 10*time.Second, func() bool { return sc.texts(t)["8613900000040"] == "reply from the handset" })
	p := sc.received()[0]
	if p.SourceAddr != "8613800000040" {
		t.Fatalf("reply source %q", p.SourceAddr)
	}
	if p.RegisteredDelivery != 0 { // an MCP sender has no way to hear a receipt
		t.Fatalf("registered_delivery %d for an MCP sender's message", p.RegisteredDelivery)
	}
}
