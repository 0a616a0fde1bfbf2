package api

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/msg"
)

const (
	senderTok = "sender-token-0123456789"
	readerTok = "reader-token-0123456789"
	provTok   = "provisioner-token-01234"
)

func withClients(cs ...Client) envOpt {
	return func(c *Config, _ *msg.Stager) { c.Clients = append(c.Clients, cs...) }
}

// TestClientRoles: each client reaches only what its roles allow, and a
// client that reads sees its own messages only.
func TestClientRoles(t *testing.T) {
	e := startEnv(t, withClients(
		Client{Name: "shop", Roles: []string{RoleSend, RoleRead}, Token: senderTok},
		Client{Name: "auditor", Roles: []string{RoleRead}, Token: readerTok},
		Client{Name: "crm", Roles: []string{RoleProvision}, Token: provTok},
	))
	send := `{"from":"+8613800000001","to":"+8613800000002","text":"role test"}`
	code, body, _ := e.doTok(t, senderTok, "POST", "/v1/messages", js, send)
	if code != 202 {
		t.Fatalf("sender sends: %d %s", code, body)
	}
	var id struct{ ID string }
	if err := json.Unmarshal([]byte(body), &id); err != nil || id.ID == "" {
		t.Fatalf("send answer %s", body)
	}
	for _, c := range []struct {
		name, tok, method, path, body string
		want                          int
	}{
		{"sender reads its own", senderTok, "GET", "/v1/messages/" + id.ID, "", 200},
		{"another reader does not see it", readerTok, "GET", "/v1/messages/" + id.ID, "", 404},
		{"admin token sees every message", testToken, "GET", "/v1/messages/" + id.ID, "", 200},
		{"provisioner cannot read messages", provTok, "GET", "/v1/messages/" + id.ID, "", 403},
		{"reader cannot send", readerTok, "POST", "/v1/messages", send, 403},
		{"provisioner cannot send", provTok, "POST", "/v1/messages", send, 403},
		{"sender cannot provision", senderTok, "GET", "/v1/users", "", 403},
		{"sender cannot change routes", senderTok, "PUT", "/v1/routes", `[]`, 403},
		{"provisioner lists users", provTok, "GET", "/v1/users", "", 200},
		{"provisioner lists accounts", provTok, "GET", "/v1/accounts", "", 200},
	} {
		code, body, _ := e.doTok(t, c.tok, c.method, c.path, js, c.body)
		if code != c.want {
			t.Errorf("%s: %s %s = %d %s, want %d", c.name, c.method, c.path, code, body, c.want)
		}
		if code == 403 && !strings.Contains(body, "role") {
			t.Errorf("%s: 403 without the role named: %s", c.name, body)
		}
	}
}

// TestClientRate: a client past its rate gets 429 with Retry-After; another
// client is not slowed by it.
func TestClientRate(t *testing.T) {
	e := startEnv(t, withClients(
		Client{Name: "slow", Roles: []string{RoleProvision}, Rate: 0.5, Token: provTok},
		Client{Name: "fast", Roles: []string{RoleProvision}, Token: readerTok},
	))
	if code, body, _ := e.doTok(t, provTok, "GET", "/v1/accounts", "", ""); code != 200 {
		t.Fatalf("first request: %d %s", code, body)
	}
	code, body, h := e.doTok(t, provTok, "GET", "/v1/accounts", "", "")
	if code != 429 || h.Get("Retry-After") != "2" || !strings.Contains(body, "rate") {
		t.Fatalf("second request within 2s: %d %s Retry-After=%q", code, body, h.Get("Retry-After"))
	}
	for range 5 {
		if code, body, _ := e.doTok(t, readerTok, "GET", "/v1/accounts", "", ""); code != 200 {
			t.Fatalf("unlimited client: %d %s", code, body)
		}
	}
}

// TestPublicLoginLimited: a login needs no token, and one source address
// gets LoginsPerMinute of them (tickets count too) before 429.
func TestPublicLoginLimited(t *testing.T) {
	e := startEnv(t, func(c *Config, _ *msg.Stager) { c.LoginsPerMinute = 3 })
	for i, c := range []struct {
		path, body string
		want       int
	}{
		{"/v1/login", `{"user":"carol","password":"carol-pw"}`, 200},
		{"/v1/login", `{"user":"carol","password":"wrong"}`, 403},
		{"/v1/sso/tickets", `{"service":"wiki","user":"carol","password":"wrong"}`, 403},
		{"/v1/login", `{"user":"carol","password":"carol-pw"}`, 429},
		{"/v1/sso/tickets", `{"service":"wiki","user":"carol","password":"carol-pw"}`, 429},
	} {
		code, body, h := e.doTok(t, "", "POST", c.path, js, c.body)
		if code != c.want {
			t.Fatalf("request %d %s without a token: %d %s, want %d", i, c.path, code, body, c.want)
		}
		if code == 429 && h.Get("Retry-After") == "" {
			t.Fatalf("429 without Retry-After")
		}
	}
}

// TestWrongTokensLockOut: after AuthFailuresPerMinute missing or wrong
// tokens from one address, even the right token waits.
func TestWrongTokensLockOut(t *testing.T) {
	e := startEnv(t, func(c *Config, _ *msg.Stager) { c.AuthFailuresPerMinute = 3 })
	if code, _, _ := e.do(t, "GET", "/v1/accounts", "", ""); code != 200 {
		t.Fatalf("right token before: %d", code)
	}
	for i := range 3 {
		if code, _, _ := e.doTok(t, "guess-"+string(rune('a'+i)), "GET", "/v1/accounts", "", ""); code != 401 {
			t.Fatalf("wrong token %d: %d, want 401", i, code)
		}
	}
	code, body, h := e.do(t, "GET", "/v1/accounts", "", "")
	if code != 429 || h.Get("Retry-After") == "" {
		t.Fatalf("right token after 3 wrong ones: %d %s", code, body)
	}
	// Public endpoints stay open to that address.
	if code, _, _ := e.doTok(t, "", "GET", "/healthz", "", ""); code != 200 {
		t.Fatalf("healthz after lockout: %d", code)
	}
}

// TestConnsPerSource: one address holds at most MaxConnsPerSource open
// connections; the next is answered with an error and closed.
func TestConnsPerSource(t *testing.T) {
	e := startEnv(t, func(c *Config, _ *msg.Stager) { c.MaxConnsPerSource = 2 })
	addr := strings.TrimPrefix(e.base, "http://")
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	get := func(c net.Conn) (int, error) {
		if _, err := c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			return 0, err
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	for i := range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
		if code, err := get(c); err != nil || code != 200 {
			t.Fatalf("connection %d: %d %v", i, code, err)
		}
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	held = append(held, c)
	if code, err := get(c); err != nil || code != 429 {
		t.Fatalf("third connection from one address: %d %v, want 429", code, err)
	}
	// A place freed is a place again.
	held[0].Close()
	testutil.WaitFor(t, "a new connection served once one closed", 5*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false
		}
		defer c.Close()
		code, err := get(c)
		return err == nil && code == 200
	})
}
