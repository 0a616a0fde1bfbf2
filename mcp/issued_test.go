package mcp

import (
	"context"
	"errors"
	"testing"

	"github.com/smsbridge/bridge/login"
	"github.com/smsbridge/bridge/msg"
)

// Handsets of one user log in with the SIP passwords issued to their
// devices (Config.Issued), next to the ordinary users of Config.HA1.
func TestRegisterIssuedPerDevice(t *testing.T) {
	creds, err := login.NewCredentials(login.CredentialsConfig{Realm: domain})
	if err != nil {
		t.Fatal(err)
	}
	b := startBridge(t, func(c *Config) { c.Issued = creds.Issued })
	const user = "dave~shop"
	phone, err := creds.Issue(context.Background(), user, "phone")
	if err != nil {
		t.Fatal(err)
	}
	laptop, err := creds.Issue(context.Background(), user, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{phone.Password, laptop.Password} {
		if err := b.dial(t, true).Register(ctx(t), user, pw, domain, 600); err != nil {
			t.Fatalf("register with an issued password: %v", err)
		}
	}
	if n := len(b.pres.Bindings(msg.Address("sip:" + user + "@" + domain))); n != 2 {
		t.Fatalf("%d bindings, want 2", n)
	}
	var se *StatusError
	if err := b.dial(t, true).Register(ctx(t), user, "guess", domain, 600); !errors.As(err, &se) || se.Code != 401 {
		t.Fatalf("guessed password: %v", err)
	}
	if err := creds.Revoke(context.Background(), user, "phone"); err != nil {
		t.Fatal(err)
	}
	if err := b.dial(t, true).Register(ctx(t), user, phone.Password, domain, 600); !errors.As(err, &se) || se.Code != 401 {
		t.Fatalf("revoked device: %v", err)
	}
	if err := b.dial(t, true).Register(ctx(t), user, laptop.Password, domain, 600); err != nil {
		t.Fatalf("the other device after one's logout: %v", err)
	}
	b.login(t, "alice") // ordinary users unaffected

	// Issued alone is a valid configuration.
	if _, err := New(Config{Domain: domain, Issued: creds.Issued}, b.pres, b.rt); err != nil {
		t.Fatalf("Issued without HA1: %v", err)
	}
}
