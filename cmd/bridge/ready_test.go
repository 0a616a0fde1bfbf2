package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
)

// readyz returns /readyz's status and decoded body.
func readyz(t *testing.T, api string) (int, struct {
	Status  string   `json:"status"`
	Reasons []string `json:"reasons"`
}) {
	t.Helper()
	var body struct {
		Status  string   `json:"status"`
		Reasons []string `json:"reasons"`
	}
	res, err := http.Get(api + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("/readyz Content-Type %q", ct)
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("/readyz body: %v", err)
	}
	return res.StatusCode, body
}

func metricsText(t *testing.T, api string) string {
	t.Helper()
	res, err := http.Get(api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return string(b)
}

// A bridge whose SMSC nobody answers is not ready, and says which SMSC and
// why; once the SMSC listens there and the bridge binds, it is.
func TestReadyzWaitsForTheSMSCBind(t *testing.T) {
	addr := freeTCPPort(t) // nobody listens here yet
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--smsc", "smpp://bridge:bridgepw@"+addr)
	api := "http://" + b.addrs.HTTP
	// The first bind attempt fails at once (connection refused): then the
	// reason carries the dial error.
	var code int
	var why []string
	testutil.WaitFor(t, "a failed bind in /readyz", 10*time.Second, func() bool {
		c, body := readyz(t, api)
		code, why = c, body.Reasons
		return c == 503 && body.Status == "not ready" && len(why) == 1 && strings.Contains(why[0], "refused")
	})
	if !strings.Contains(why[0], "smsc "+addr+" not bound") {
		t.Fatalf("/readyz %d reasons %q: want the SMSC %s named", code, why, addr)
	}
	if m := metricsText(t, api); !strings.Contains(m, "\nbridge_smsc_up{smsc=\"default\"} 0\n") {
		t.Fatalf("metrics while unbound lack bridge_smsc_up 0:\n%s", m)
	}

	sc := startSMSCAt(t, addr)
	testutil.WaitFor(t, "the bind and /readyz 200", 30*time.Second, func() bool {
		c, body := readyz(t, api)
		return c == 200 && body.Status == "ready" && len(body.Reasons) == 0
	})
	if len(sc.srv.Sessions("bridge")) == 0 {
		t.Fatal("ready without a session at the SMSC")
	}
	if m := metricsText(t, api); !strings.Contains(m, "\nbridge_smsc_up{smsc=\"default\"} 1\n") {
		t.Fatalf("metrics once bound lack bridge_smsc_up 1:\n%s", m)
	}
}

// Without an upstream SMSC nothing waits for a bind: ready at once.
func TestReadyzWithoutSMSC(t *testing.T) {
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0")
	if code, body := readyz(t, "http://"+b.addrs.HTTP); code != 200 || body.Status != "ready" {
		t.Fatalf("/readyz %d %+v", code, body)
	}
}
