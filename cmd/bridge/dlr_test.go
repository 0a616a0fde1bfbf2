package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/hmacsig"
	"github.com/smsbridge/bridge/internal/testutil"
)

const dlrSecret = "dlr-s3cret"

// dlrReceiver is an HTTP sender's report endpoint: it checks every
// report's signature and records the reports it took (2xx), answering 500
// to the first failFirst attempts of each state it is sent.
type dlrReceiver struct {
	url string

	mu        sync.Mutex
	failFirst int
	down      bool           // answer 503 to everything
	attempts  map[string]int // "id state" → attempts seen
	took      []dlrSeen
	bad       []string // why a request was not a valid report
}

type dlrSeen struct {
	ID, State, Detail, To, From string
	At                          time.Time
	Key                         string // Idempotency-Key
}

func startDLRReceiver(t *testing.T) *dlrReceiver {
	t.Helper()
	r := &dlrReceiver{attempts: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: r}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	r.url = "http://" + ln.Addr().String() + "/reports?client=7"
	return r
}

// decodeSigned checks that req is a signed JSON POST (secret) to a URL
// whose query has key=value and decodes body strictly into v.
func decodeSigned(req *http.Request, body []byte, secret, key, value string, v any) error {
	err := hmacsig.Verify([]byte(secret), req.Header.Get("X-Bridge-Timestamp"), req.Header.Get("X-Bridge-Signature"), body, time.Now(), 0)
	switch {
	case req.Method != "POST" || req.Header.Get("Content-Type") != "application/json" || req.URL.Query().Get(key) != value:
		return fmt.Errorf("%s %s %s", req.Method, req.URL, req.Header.Get("Content-Type"))
	case err != nil:
		return err
	}
	d := json.NewDecoder(strings.NewReader(string(body)))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

func (r *dlrReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	var rep dlrSeen
	err := decodeSigned(req, body, dlrSecret, "client", "7", &rep)
	if err != nil {
		r.bad = append(r.bad, err.Error())
		w.WriteHeader(400)
		return
	}
	rep.Key = req.Header.Get("Idempotency-Key")
	k := rep.ID + " " + rep.State
	r.attempts[k]++
	if r.down || r.attempts[k] <= r.failFirst {
		w.WriteHeader(500)
		return
	}
	r.took = append(r.took, rep)
	w.WriteHeader(204)
}

func (r *dlrReceiver) setDown(down bool) { r.mu.Lock(); r.down = down; r.mu.Unlock() }

func (r *dlrReceiver) reports() []dlrSeen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]dlrSeen(nil), r.took...)
}

func (r *dlrReceiver) tries(id, state string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts[id+" "+state]
}

func (r *dlrReceiver) invalid() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bad...)
}

// find finds the report of id in state, taken by the receiver.
func (r *dlrReceiver) find(id, state string) (dlrSeen, bool) {
	for _, s := range r.reports() {
		if s.ID == id && s.State == state {
			return s, true
		}
	}
	return dlrSeen{}, false
}

type messageView struct {
	State  string `json:"state"`
	Events []struct {
		State, Detail string
	} `json:"events"`
}

func messageState(t *testing.T, api, id string) messageView {
	t.Helper()
	var v messageView
	if code := getJSON(t, api+"/v1/messages/"+id, "tok", &v); code != 200 {
		t.Fatalf("GET message %s: %d", id, code)
	}
	return v
}

// smscIDFor is the SMSC's id of the submit_sm to dest.
func (s *smsc) smscIDFor(t *testing.T, dest string) string {
	t.Helper()
	for i, p := range s.received() {
		if p.DestAddr == dest {
			return s.submittedIDs()[i]
		}
	}
	t.Fatalf("no submit_sm to %s", dest)
	return ""
}

// Two messages sent over HTTP with a dlr_url: each is reported ENROUTE
// when the SMSC takes it, then as its receipt says, signed; the receipt
// becomes the message's state over the API (UNDELIV → failed). The first
// attempts of each outcome report are refused and retried.
func TestHTTPDeliveryReportsFollowReceipts(t *testing.T) {
	sc := startSMSC(t)
	rcv := startDLRReceiver(t)
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--api-token", "tok", "--smsc", sc.url(), "--dlr-secret", dlrSecret)
	api := "http://" + b.addrs.HTTP
	testutil.WaitFor(t, "the SMSC bind", 10*time.Second, func() bool { return len(sc.srv.Sessions("bridge")) > 0 })
	ids := map[string]string{}
	for _, to := range []string{"8613700000041", "8613700000042"} {
		var res struct{ ID string }
		if code := postJSON(t, api+"/v1/messages", "tok", map[string]any{"from": "+8613800000040", "to": "+" + to, "text": "report me", "dlr_url": rcv.url}, &res); code != 202 {
			t.Fatalf("send to %s: %d", to, code)
		}
		ids[to] = res.ID
	}
	undeliv, delivrd := ids["8613700000041"], ids["8613700000042"]
	testutil.WaitFor(t, "both ENROUTE reports", 10*time.Second, func() bool {
		_, a := rcv.find(undeliv, "ENROUTE")
		_, b := rcv.find(delivrd, "ENROUTE")
		return a && b
	})
	for _, p := range sc.received() {
		if p.RegisteredDelivery&1 == 0 {
			t.Fatalf("submit_sm to %s asks for no receipt", p.DestAddr)
		}
	}
	// Taken by the SMSC, no receipt yet: that is all "delivered" says.
	if v := messageState(t, api, undeliv); v.State != "delivered" {
		t.Fatalf("before the receipt: %+v", v)
	}
	rcv.mu.Lock()
	rcv.failFirst = 2 // from now: each outcome report is refused twice
	rcv.mu.Unlock()
	sc.deliverReceipt(t, sc.smscIDFor(t, "8613700000041"), "8613700000041", "UNDELIV")
	sc.deliverReceipt(t, sc.smscIDFor(t, "8613700000042"), "8613700000042", "DELIVRD")
	testutil.WaitForState(t, 30*time.Second, func() bool {
		_, a := rcv.find(undeliv, "UNDELIV")
		_, b := rcv.find(delivrd, "DELIVRD")
		return a && b
	}, func() string { return fmt.Sprintf("reports taken %+v, invalid %q", rcv.reports(), rcv.invalid()) })
	if n := rcv.tries(undeliv, "UNDELIV"); n != 3 {
		t.Errorf("UNDELIV report taken at attempt %d, want 3 (two refused)", n)
	}
	r, _ := rcv.find(undeliv, "UNDELIV")
	if r.To != "+8613700000041" || r.From != "+8613800000040" || r.Detail != "smsc receipt UNDELIV" || r.At.IsZero() || r.Key != undeliv+".UNDELIV" {
		t.Errorf("UNDELIV report %+v", r)
	}
	if bad := rcv.invalid(); len(bad) > 0 {
		t.Fatalf("reports that were not valid and signed: %q", bad)
	}
	v := messageState(t, api, undeliv)
	if last := v.Events[len(v.Events)-1]; v.State != "failed" || last.State != "failed" || last.Detail != "smsc receipt UNDELIV" {
		t.Fatalf("after UNDELIV the message is %+v", v)
	}
	v = messageState(t, api, delivrd)
	if last := v.Events[len(v.Events)-1]; v.State != "delivered" || last.Detail != "smsc receipt DELIVRD" {
		t.Fatalf("after DELIVRD the message is %+v", v)
	}
}

// A report whose receiver is down is retried, stays stored over a restart
// of the bridge and is delivered by the next run. The configured --dlr-url
// serves a message that asks for a receipt and names no URL.
func TestHTTPDeliveryReportSurvivesRestart(t *testing.T) {
	sc := startSMSC(t)
	rcv := startDLRReceiver(t)
	rcv.setDown(true)
	dir := t.TempDir()
	args := []string{"--http-listen", "127.0.0.1:0", "--api-token", "tok", "--smsc", sc.url(), "--dlr-secret", dlrSecret, "--dlr-url", rcv.url}
	b := startBridge(t, dir, args...)
	api := "http://" + b.addrs.HTTP
	testutil.WaitFor(t, "the SMSC bind", 10*time.Second, func() bool { return len(sc.srv.Sessions("bridge")) > 0 })
	var res struct{ ID string }
	if code := postJSON(t, api+"/v1/messages", "tok", map[string]any{"from": "+8613800000043", "to": "+8613700000043", "text": "x", "receipt": true}, &res); code != 202 {
		t.Fatalf("send: %d", code)
	}
	testutil.WaitFor(t, "submit_sm", 10*time.Second, func() bool { return len(sc.received()) == 1 })
	sc.deliverReceipt(t, sc.submittedIDs()[0], "8613700000043", "UNDELIV")
	testutil.WaitFor(t, "two refused attempts of the UNDELIV report", 20*time.Second, func() bool { return rcv.tries(res.ID, "UNDELIV") >= 2 })
	b.stop()
	if len(rcv.reports()) != 0 {
		t.Fatalf("a report taken while the receiver was down: %+v", rcv.reports())
	}

	rcv.setDown(false)
	b = startBridge(t, dir, args...)
	testutil.WaitForState(t, 20*time.Second, func() bool { _, ok := rcv.find(res.ID, "UNDELIV"); return ok },
		func() string {
			return fmt.Sprintf("taken %+v, attempts %d, invalid %q", rcv.reports(), rcv.tries(res.ID, "UNDELIV"), rcv.invalid())
		})
	if bad := rcv.invalid(); len(bad) > 0 {
		t.Fatalf("invalid reports: %q", bad)
	}
	// The ENROUTE report, never taken, was superseded by the outcome.
	if _, ok := rcv.find(res.ID, "ENROUTE"); ok {
		t.Fatal("ENROUTE taken after the outcome")
	}
	if v := messageState(t, "http://"+b.addrs.HTTP, res.ID); v.State != "failed" {
		t.Fatalf("after restart the message is %+v", v)
	}
	testutil.WaitFor(t, "no report left pending", 10*time.Second, func() bool {
		return strings.Contains(metricsText(t, "http://"+b.addrs.HTTP), "\nbridge_dlr_pending 0\n")
	})
}
