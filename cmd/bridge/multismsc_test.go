package main

// Several upstream SMSCs: the real bridge bound to two or three SMSC
// simulators, routing by prefix, account and weight, failing over, within
// each SMSC's throughput, and matching receipts whose SMSC ids collide.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/smpp"
	"github.com/smsbridge/bridge/smstext"
)

const multiToken = "tok"

// putJSON PUTs body and returns the status.
func putJSON(t *testing.T, url, token string, body any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("PUT", url, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// sendSMS posts one message over the HTTP API and returns its id once
// the bridge acknowledged it (202: stored).
func sendSMS(t *testing.T, api, token, to, text string, extra map[string]any) string {
	t.Helper()
	body := map[string]any{"from": "+8613800000900", "to": to, "text": text}
	for k, v := range extra {
		body[k] = v
	}
	var res struct{ ID string }
	if code := postJSON(t, api+"/v1/messages", token, body, &res); code != 202 {
		t.Fatalf("send to %s: %d", to, code)
	}
	return res.ID
}

// textsAt is every text an SMSC received, with how often.
func textsAt(t *testing.T, scs ...*smsc) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, sc := range scs {
		for _, p := range sc.received() {
			txt, err := smstext.Decode(p.DataCoding, p.ShortMessage)
			if err != nil {
				t.Fatal(err)
			}
			out[txt]++
		}
	}
	return out
}

func bound(sc *smsc) bool { return len(sc.srv.Sessions("bridge")) > 0 }

// startMulti runs a bridge bound to the named SMSCs with an HTTP API.
func startMulti(t *testing.T, scs map[string]*smsc, args ...string) (*running, string) {
	t.Helper()
	base := []string{"--http-listen", "127.0.0.1:0", "--api-token", multiToken}
	for _, name := range slices.Sorted(maps.Keys(scs)) { // configured in name order
		base = append(base, "--smsc", name+"="+scs[name].url())
	}
	b := startBridge(t, t.TempDir(), append(base, args...)...)
	testutil.WaitFor(t, "every SMSC bound", 20*time.Second, func() bool {
		for _, sc := range scs {
			if !bound(sc) {
				return false
			}
		}
		return true
	})
	return b, "http://" + b.addrs.HTTP
}

// Provisioned prefix routes send to the SMSCs they name; an API client's
// account takes its SMSC on route smsc; the rest goes by weight (a's
// outweighs the others' for the few messages sent).
func TestMultiSMSCPrefixAndAccountRoutes(t *testing.T) {
	a, bb, c := startSMSC(t), startSMSC(t), startSMSC(t)
	_, api := startMulti(t, map[string]*smsc{"a": a, "b": bb, "c": c},
		"--smsc-option", "a:weight=1000", "--smsc-option", "c:accounts=shop", "--api-client", "shop:send:0:ShopToken0123456789")
	if code := putJSON(t, api+"/v1/routes", multiToken, map[string]any{"routes": []map[string]string{
		{"name": "cn137", "target": "smsc:b", "prefix": "+86137"},
		{"name": "uk", "target": "smsc:c|b", "prefix": "+44"},
	}}); code != 200 {
		t.Fatalf("PUT routes: %d", code)
	}
	// A route naming an SMSC that is not configured is refused.
	if code := putJSON(t, api+"/v1/routes", multiToken, map[string]any{"routes": []map[string]string{
		{"name": "x", "target": "smsc:ghost", "prefix": "+1"}}}); code != 400 {
		t.Fatalf("route to smsc:ghost: %d, want 400", code)
	}
	for i := range 6 {
		sendSMS(t, api, multiToken, fmt.Sprintf("+861370000%04d", i), fmt.Sprintf("to b %d", i), nil)
		sendSMS(t, api, multiToken, fmt.Sprintf("+861390000%04d", i), fmt.Sprintf("to a %d", i), nil)
		sendSMS(t, api, "ShopToken0123456789", fmt.Sprintf("+861360000%04d", i), fmt.Sprintf("shop via c %d", i), nil)
	}
	sendSMS(t, api, multiToken, "+447700900001", "uk 1", nil)
	sendSMS(t, api, multiToken, "+447700900002", "uk 2", nil)
	testutil.WaitFor(t, "20 submits", 15*time.Second, func() bool {
		return len(a.received())+len(bb.received())+len(c.received()) == 20
	})
	for sc, want := range map[*smsc]string{a: "to a ", bb: "to b |uk ", c: "shop via c |uk "} {
		got := textsAt(t, sc)
		n := 0
		for txt := range got {
			ok := false
			for _, p := range strings.Split(want, "|") {
				ok = ok || strings.HasPrefix(txt, p)
			}
			if !ok {
				t.Errorf("%q reached the wrong SMSC (want only %q there)", txt, want)
			}
			n++
		}
		if n < 6 {
			t.Errorf("an SMSC got %d texts: %v", n, got)
		}
	}
}

// Weights 2 and 1 split 300 messages about 200 and 100.
func TestMultiSMSCWeightsSplitTraffic(t *testing.T) {
	a, bb := startSMSC(t), startSMSC(t)
	_, api := startMulti(t, map[string]*smsc{"a": a, "b": bb}, "--smsc-option", "a:weight=2")
	const n = 300
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				sendSMS(t, api, multiToken, fmt.Sprintf("+86137%08d", i), fmt.Sprintf("w %d", i), nil)
			}
		})
	}
	wg.Wait()
	testutil.WaitFor(t, "every message at an SMSC", 30*time.Second, func() bool { return len(a.received())+len(bb.received()) == n })
	na, nb := len(a.received()), len(bb.received())
	if na < 170 || na > 230 || nb < 70 || nb > 130 {
		t.Fatalf("weights 2:1 split %d messages %d:%d", n, na, nb)
	}
	if got := textsAt(t, a, bb); len(got) != n {
		t.Fatalf("%d distinct texts of %d", len(got), n)
	}
	t.Logf("weights 2:1 split %d:%d", na, nb)
	var v struct {
		SMSCs []struct {
			Name    string
			Bound   bool
			Weight  int
			Submits int
		} `json:"smscs"`
	}
	// An SMSC counts a submit_sm as it reads it, the bridge once it has the
	// answer: a moment later.
	var code int
	testutil.WaitForState(t, 5*time.Second, func() bool {
		code = getJSON(t, api+"/v1/admin/smsc", multiToken, &v)
		return code == 200 && len(v.SMSCs) == 2 && v.SMSCs[0].Submits+v.SMSCs[1].Submits == n
	}, func() string { return fmt.Sprintf("/v1/admin/smsc %d: %+v", code, v) })
	if v.SMSCs[0].Name != "a" || v.SMSCs[0].Weight != 2 || v.SMSCs[0].Submits != na || !v.SMSCs[0].Bound ||
		v.SMSCs[1].Name != "b" || v.SMSCs[1].Weight != 1 || v.SMSCs[1].Submits != nb {
		t.Fatalf("/v1/admin/smsc %d: %+v", code, v)
	}
	// A sender's hint may name SMSCs, only configured ones.
	var res struct{ Error string }
	if code := postJSON(t, api+"/v1/messages", multiToken, map[string]any{"from": "+8613800000900", "to": "+8613700000001",
		"text": "x", "route": "smsc:b|ghost"}, &res); code != 400 || !strings.Contains(res.Error, `no SMSC is named "ghost"`) {
		t.Fatalf("route smsc:b|ghost: %d %q", code, res.Error)
	}
	sendSMS(t, api, multiToken, "+8613700000001", "hinted to b", map[string]any{"route": "smsc:b"})
	testutil.WaitFor(t, "the hinted message at b", 10*time.Second, func() bool { return textsAt(t, bb)["hinted to b"] == 1 })
}

// Killing one SMSC moves its share to the other and loses nothing
// acknowledged; /readyz stays 200 with one bind up, says which is down,
// and is 503 with none; messages accepted then wait and go out once an
// SMSC is back.
func TestMultiSMSCFailover(t *testing.T) {
	a, bb := startSMSC(t), startSMSC(t)
	_, api := startMulti(t, map[string]*smsc{"a": a, "b": bb})
	addrA := a.addr
	var sent atomic.Int64
	send := func(from, to int) {
		for i := from; i < to; i++ {
			sendSMS(t, api, multiToken, fmt.Sprintf("+86137%08d", i), fmt.Sprintf("f %d", i), nil)
			sent.Add(1)
		}
	}
	send(0, 100)
	testutil.WaitFor(t, "the first 100 out", 20*time.Second, func() bool { return len(a.received())+len(bb.received()) == 100 })
	if na := len(a.received()); na < 30 || na > 70 {
		t.Fatalf("equal weights split 100 as %d:%d", na, 100-na)
	}

	// Kill a while messages keep coming.
	done := make(chan struct{})
	go func() { defer close(done); send(100, 300) }()
	testutil.WaitFor(t, "some of the next sent", 10*time.Second, func() bool { return sent.Load() > 130 })
	a.srv.Close()
	testutil.WaitFor(t, "a's bind down in /readyz", 20*time.Second, func() bool {
		code, body := readyzSMSCs(t, api)
		return code == 200 && body.state("a") == "down" && body.state("b") == "up"
	})
	atA := len(a.received())
	<-done
	testutil.WaitFor(t, "all 300 out", 30*time.Second, func() bool { return len(textsAt(t, a, bb)) == 300 })
	if after := len(a.received()); after != atA {
		t.Fatalf("a took %d messages after its bind went down", after-atA)
	}
	if m := metricsText(t, api); !strings.Contains(m, "\nbridge_smsc_up{smsc=\"a\"} 0\n") || !strings.Contains(m, "\nbridge_smsc_up{smsc=\"b\"} 1\n") {
		t.Fatalf("metrics:\n%s", m)
	}

	// Kill b too: not ready; what is accepted now waits for an SMSC.
	bb.srv.Close()
	testutil.WaitForState(t, 20*time.Second, func() bool {
		code, body := readyzSMSCs(t, api)
		return code == 503 && body.state("a") == "down" && body.state("b") == "down" && len(body.Reasons) == 2
	}, func() string { code, body := readyzSMSCs(t, api); return fmt.Sprintf("/readyz %d %+v", code, body) })
	send(300, 320)
	time.Sleep(500 * time.Millisecond)
	back := startSMSCAt(t, addrA)
	testutil.WaitFor(t, "a back: /readyz 200", 40*time.Second, func() bool { code, _ := readyzSMSCs(t, api); return code == 200 })
	testutil.WaitForState(t, 40*time.Second, func() bool { return len(textsAt(t, a, bb, back)) == 320 }, func() string {
		return fmt.Sprintf("%d of 320 texts out", len(textsAt(t, a, bb, back)))
	})
}

type readyBody struct {
	Status  string   `json:"status"`
	Reasons []string `json:"reasons"`
	SMSCs   []struct {
		Name, State, Error string
	} `json:"smscs"`
}

func (r readyBody) state(name string) string {
	for _, s := range r.SMSCs {
		if s.Name == name {
			return s.State
		}
	}
	return ""
}

func readyzSMSCs(t *testing.T, api string) (int, readyBody) {
	t.Helper()
	res, err := http.Get(api + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body readyBody
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, body
}

// An SMSC's tps limit holds: 150 messages at tps=50 take three seconds or
// more to reach it, however fast they come, none of them lost; the other
// SMSC, unlimited, is not held back.
func TestMultiSMSCThroughputLimit(t *testing.T) {
	a, bb := startSMSC(t), startSMSC(t)
	_, api := startMulti(t, map[string]*smsc{"a": a, "b": bb}, "--smsc-option", "a:tps=50")
	if code := putJSON(t, api+"/v1/routes", multiToken, map[string]any{"routes": []map[string]string{
		{"name": "slow", "target": "smsc:a", "prefix": "+86137"}, {"name": "fast", "target": "smsc:b", "prefix": "+86139"}}}); code != 200 {
		t.Fatalf("PUT routes: %d", code)
	}
	const n = 150
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				sendSMS(t, api, multiToken, fmt.Sprintf("+86137%08d", i), fmt.Sprintf("s %d", i), nil)
				sendSMS(t, api, multiToken, fmt.Sprintf("+86139%08d", i), fmt.Sprintf("q %d", i), nil)
			}
		})
	}
	wg.Wait()
	testutil.WaitFor(t, "every message out", 30*time.Second, func() bool { return len(a.received()) == n && len(bb.received()) == n })
	a.mu.Lock()
	span := a.at[n-1].Sub(a.at[0])
	// The busiest second: at most the rate and its burst (a twentieth).
	busiest := 0
	for i := range a.at {
		j := i
		for j < len(a.at) && a.at[j].Sub(a.at[i]) < time.Second {
			j++
		}
		busiest = max(busiest, j-i)
	}
	a.mu.Unlock()
	// Loose: arrivals jitter, and submits refused for want of room come back
	// with the router's backoff.
	if span < 2400*time.Millisecond || span > 15*time.Second || busiest > 70 {
		t.Fatalf("%d submits at tps=50 took %v, %d in the busiest second", n, span, busiest)
	}
	bb.mu.Lock()
	fast := bb.at[n-1].Sub(bb.at[0])
	bb.mu.Unlock()
	t.Logf("tps=50: %d submits in %v, busiest second %d; unlimited: %v", n, span, busiest, fast)
	if m := metricsText(t, api); !strings.Contains(m, "\nbridge_smsc_throttled_total{smsc=\"b\"} 0\n") || strings.Contains(m, "\nbridge_smsc_throttled_total{smsc=\"a\"} 0\n") ||
		!strings.Contains(m, fmt.Sprintf("\nbridge_smsc_submits_total{smsc=\"a\"} %d\n", n)) {
		t.Fatalf("metrics:\n%s", m)
	}
}

// Both SMSCs answer with the same message ids; each one's receipt settles
// the message it took, not the other's.
func TestMultiSMSCReceiptsWithCollidingIDs(t *testing.T) {
	a, bb := startSMSC(t), startSMSC(t)
	_, api := startMulti(t, map[string]*smsc{"a": a, "b": bb})
	if code := putJSON(t, api+"/v1/routes", multiToken, map[string]any{"routes": []map[string]string{
		{"name": "ra", "target": "smsc:a", "prefix": "+86137"}, {"name": "rb", "target": "smsc:b", "prefix": "+86139"}}}); code != 200 {
		t.Fatalf("PUT routes: %d", code)
	}
	ida := sendSMS(t, api, multiToken, "+8613700000051", "via a", map[string]any{"receipt": true})
	testutil.WaitFor(t, "a's submit", 10*time.Second, func() bool { return len(a.received()) == 1 })
	idb := sendSMS(t, api, multiToken, "+8613900000052", "via b", map[string]any{"receipt": true})
	testutil.WaitFor(t, "b's submit", 10*time.Second, func() bool { return len(bb.received()) == 1 })
	if sa, sb := a.submittedIDs()[0], bb.submittedIDs()[0]; sa != sb {
		t.Fatalf("the SMSCs' ids differ (%s, %s): the test needs them equal", sa, sb)
	}
	// b's receipt first: with one key per id it would settle a's message.
	bb.deliverReceipt(t, bb.submittedIDs()[0], "8613900000052", "UNDELIV")
	a.deliverReceipt(t, a.submittedIDs()[0], "8613700000051", "DELIVRD")
	testutil.WaitForState(t, 15*time.Second, func() bool {
		va, vb := messageState(t, api, ida), messageState(t, api, idb)
		return lastDetail(va) == "smsc receipt DELIVRD" && vb.State == "failed" && lastDetail(vb) == "smsc receipt UNDELIV"
	}, func() string {
		return fmt.Sprintf("a's message %+v, b's %+v", messageState(t, api, ida), messageState(t, api, idb))
	})
	if m := metricsText(t, api); !strings.Contains(m, "\nbridge_smsc_receipts_unmatched_total 0\n") {
		t.Fatalf("unmatched receipts:\n%s", m)
	}
}

func lastDetail(v messageView) string {
	if len(v.Events) == 0 {
		return ""
	}
	return v.Events[len(v.Events)-1].Detail
}

// An IM user's reply to an SMS that came through SMSC b goes back through
// b, though by weight (equal, a first) it would take a.
func TestMultiSMSCReplyToMOTakesItsSMSC(t *testing.T) {
	a, bb := startSMSC(t), startSMSC(t)
	b, _ := startMulti(t, map[string]*smsc{"a": a, "b": bb}, sipUserFlag("8613800000061", "pw")...)
	u := startUA(t, "8613800000061", "pw")
	if code := u.register(t, b, 3600); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	dcs, parts, err := smstext.Split("hello from a phone", smstext.Auto, 1, false)
	if err != nil {
		t.Fatal(err)
	}
	p := &smpp.PDU{ID: smpp.DeliverSM, SourceAddrTON: 1, SourceAddrNPI: 1, SourceAddr: "8613900000062",
		DestAddrTON: 1, DestAddrNPI: 1, DestAddr: "8613800000061", DataCoding: dcs, ShortMessage: parts[0].Body}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if resp, err := bb.srv.Deliver(ctx, "bridge", p); err != nil || resp.Status != 0 {
		t.Fatalf("MO deliver_sm from b: %v %+v", err, resp)
	}
	testutil.WaitFor(t, "the MO at the IM user", 10*time.Second, func() bool { return len(u.received()) == 1 })
	if code := u.message(t, b, "+8613900000062", "the reply"); code != 202 {
		t.Fatalf("MESSAGE: %d", code)
	}
	// Another number, no MO from it: weights decide (a first).
	if code := u.message(t, b, "+8613900000063", "not a reply"); code != 202 {
		t.Fatalf("MESSAGE: %d", code)
	}
	testutil.WaitFor(t, "both out", 10*time.Second, func() bool { return len(a.received())+len(bb.received()) == 2 })
	if got := textsAt(t, bb); got["the reply"] != 1 {
		t.Fatalf("the reply did not go back through b: a %v, b %v", textsAt(t, a), got)
	}
	if got := textsAt(t, a); got["not a reply"] != 1 {
		t.Fatalf("weights: a %v, b %v", got, textsAt(t, bb))
	}
}
