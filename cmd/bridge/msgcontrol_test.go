package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	fsmpp "github.com/fiorix/go-smpp/smpp"
	"github.com/linxGnu/gosmpp"
	"github.com/linxGnu/gosmpp/data"
	gpdu "github.com/linxGnu/gosmpp/pdu"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/smpp"
	"github.com/smsbridge/bridge/smppgw"
)

// Message control over HTTP and SMPP: validity, scheduled delivery,
// priority, cancel, query, replace, sender policy and batches, against the
// real bridge, the SMSC simulator and real clients.

type controlView struct {
	ID       string     `json:"id"`
	State    string     `json:"state"`
	Expires  time.Time  `json:"expires"`
	SendAt   *time.Time `json:"send_at"`
	Priority int        `json:"priority"`
	Events   []struct {
		State, Detail string
	} `json:"events"`
}

// httpDo sends a request with a JSON body (nil: none) and decodes the answer.
func httpDo(t *testing.T, method, url, token string, body any, out any) (int, string) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(res.Body)
	if out != nil {
		json.Unmarshal(buf.Bytes(), out)
	}
	return res.StatusCode, buf.String()
}

// submitsTo counts the submit_sm the SMSC got for dest.
func (s *smsc) submitsTo(dest string) int {
	n := 0
	for _, p := range s.received() {
		if p.ID == smpp.SubmitSM && p.DestAddr == dest {
			n++
		}
	}
	return n
}

func TestHTTPValidityAndSchedule(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--api-token", "tok", "--smsc", sc.url())
	api := "http://" + b.addrs.HTTP
	testutil.WaitFor(t, "the SMSC bind", 10*time.Second, func() bool { return len(sc.srv.Sessions("bridge")) > 0 })

	var res struct{ ID string }
	before := time.Now()
	if code, body := httpDo(t, "POST", api+"/v1/messages", "tok", map[string]any{"from": "+8613800000050", "to": "+8613700000051", "text": "two hours", "validity": "2h"}, &res); code != 202 {
		t.Fatalf("validity: %d %s", code, body)
	}
	var v controlView
	getJSON(t, api+"/v1/messages/"+res.ID, "tok", &v)
	if d := v.Expires.Sub(before); d < 2*time.Hour || d > 2*time.Hour+time.Minute {
		t.Fatalf("validity 2h: expires in %v", d)
	}
	exp := time.Now().Add(90 * time.Minute).UTC().Truncate(time.Second)
	if code, body := httpDo(t, "POST", api+"/v1/messages", "tok", map[string]any{"from": "+8613800000050", "to": "+8613700000052", "text": "until", "expires": exp.Format(time.RFC3339)}, &res); code != 202 {
		t.Fatalf("expires: %d %s", code, body)
	}
	getJSON(t, api+"/v1/messages/"+res.ID, "tok", &v)
	if !v.Expires.Equal(exp) {
		t.Fatalf("expires %v, want %v", v.Expires, exp)
	}
	for _, bad := range []map[string]any{
		{"expires": exp.Format(time.RFC3339), "send_at": time.Now().Add(3 * time.Hour).Format(time.RFC3339)},
		{"validity": "soon"},
		{"validity": "1h", "expires": exp.Format(time.RFC3339)},
		{"priority": 4},
	} {
		req := map[string]any{"from": "+8613800000050", "to": "+8613700000053", "text": "bad"}
		for k, v := range bad {
			req[k] = v
		}
		if code, body := httpDo(t, "POST", api+"/v1/messages", "tok", req, nil); code != 400 {
			t.Fatalf("%v: %d %s, want 400", bad, code, body)
		}
	}

	// Scheduled: answered at once, held until its time, then sent.
	at := time.Now().Add(2 * time.Second).UTC().Truncate(time.Second).Add(time.Second)
	start := time.Now()
	if code, body := httpDo(t, "POST", api+"/v1/messages", "tok", map[string]any{"from": "+8613800000050", "to": "+8613700000054", "text": "at its time", "send_at": at.Format(time.RFC3339), "priority": 2}, &res); code != 202 {
		t.Fatalf("send_at: %d %s", code, body)
	}
	if time.Since(start) > time.Second {
		t.Fatalf("a scheduled message waited %v for its answer", time.Since(start))
	}
	getJSON(t, api+"/v1/messages/"+res.ID, "tok", &v)
	if v.State != "accepted" || v.SendAt == nil || !v.SendAt.Equal(at) || v.Priority != 2 {
		t.Fatalf("scheduled message %+v", v)
	}
	testutil.WaitFor(t, "the scheduled SMS", 10*time.Second, func() bool { return sc.submitsTo("8613700000054") == 1 })
	if time.Now().Before(at) {
		t.Fatalf("sent before its send_at %v", at)
	}
}

// A scheduled message is held across a restart, until its time.
func TestHTTPScheduleSurvivesRestart(t *testing.T) {
	sc := startSMSC(t)
	dir := t.TempDir()
	args := []string{"--http-listen", "127.0.0.1:0", "--api-token", "tok", "--smsc", sc.url()}
	b := startBridge(t, dir, args...)
	at := time.Now().Add(4 * time.Second).UTC().Truncate(time.Second).Add(time.Second)
	var res struct{ ID string }
	if code, body := httpDo(t, "POST", "http://"+b.addrs.HTTP+"/v1/messages", "tok", map[string]any{"from": "+8613800000050", "to": "+8613700000055", "text": "after the restart", "send_at": at.Format(time.RFC3339)}, &res); code != 202 {
		t.Fatalf("send_at: %d %s", code, body)
	}
	b.stop()
	b = startBridge(t, dir, args...)
	testutil.WaitFor(t, "the SMSC bind", 10*time.Second, func() bool { return len(sc.srv.Sessions("bridge")) > 0 })
	if time.Now().Add(time.Second).Before(at) {
		time.Sleep(time.Second)
		if n := sc.submitsTo("8613700000055"); n != 0 {
			t.Fatalf("sent %d times after the restart, before its time", n)
		}
	}
	testutil.WaitFor(t, "the scheduled SMS", 15*time.Second, func() bool { return sc.submitsTo("8613700000055") == 1 })
	if time.Now().Before(at) {
		t.Fatalf("sent before its send_at %v", at)
	}
	if v := messageState(t, "http://"+b.addrs.HTTP, res.ID); v.State != "delivered" {
		t.Fatalf("after its time: %+v", v)
	}
}

const (
	tokA = "client-a-token-0123456789"
	tokB = "client-b-token-0123456789"
)

func TestHTTPCancel(t *testing.T) {
	sc := startSMSC(t)
	rcv := startDLRReceiver(t)
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--api-token", "tok", "--smsc", sc.url(), "--dlr-secret", dlrSecret,
		"--api-client", "a:send+read:0:"+tokA, "--api-client", "b:send+read:0:"+tokB, "--api-client", "r:read:0:reader-token-0123456789")
	api := "http://" + b.addrs.HTTP
	testutil.WaitFor(t, "the SMSC bind", 10*time.Second, func() bool { return len(sc.srv.Sessions("bridge")) > 0 })
	var res struct{ ID string }
	at := time.Now().Add(time.Hour).Format(time.RFC3339)
	if code, body := httpDo(t, "POST", api+"/v1/messages", tokA, map[string]any{"from": "+8613800000060", "to": "+8613700000061", "text": "never mind", "send_at": at, "dlr_url": rcv.url}, &res); code != 202 {
		t.Fatalf("send: %d %s", code, body)
	}
	if code, body := httpDo(t, "DELETE", api+"/v1/messages/"+res.ID, tokB, nil, nil); code != 404 {
		t.Fatalf("another client's cancel: %d %s, want 404", code, body)
	}
	if code, body := httpDo(t, "DELETE", api+"/v1/messages/"+res.ID, "reader-token-0123456789", nil, nil); code != 403 {
		t.Fatalf("a read-only client's cancel: %d %s, want 403", code, body)
	}
	var v controlView
	if code, body := httpDo(t, "DELETE", api+"/v1/messages/"+res.ID, tokA, nil, &v); code != 200 || v.State != "cancelled" {
		t.Fatalf("cancel: %d %s", code, body)
	}
	var conflict struct{ Error, State string }
	if code, body := httpDo(t, "DELETE", api+"/v1/messages/"+res.ID, tokA, nil, &conflict); code != 409 || conflict.State != "cancelled" {
		t.Fatalf("cancel again: %d %s, want 409 with the state", code, body)
	}
	testutil.WaitFor(t, "the report of the cancelled message", 10*time.Second, func() bool { _, ok := rcv.find(res.ID, "REJECTD"); return ok })
	if v := messageState(t, api, res.ID); v.State != "cancelled" {
		t.Fatalf("after cancel: %+v", v)
	}
	if n := sc.submitsTo("8613700000061"); n != 0 {
		t.Fatalf("a cancelled message went out %d times", n)
	}

	// Delivered without a receipt to wait for: final, 409.
	if code, body := httpDo(t, "POST", api+"/v1/messages", tokA, map[string]any{"from": "+8613800000060", "to": "+8613700000062", "text": "gone"}, &res); code != 202 {
		t.Fatalf("send: %d %s", code, body)
	}
	testutil.WaitFor(t, "the SMS", 10*time.Second, func() bool { return sc.submitsTo("8613700000062") == 1 })
	testutil.WaitFor(t, "delivered", 10*time.Second, func() bool { return messageState(t, api, res.ID).State == "delivered" })
	if code, body := httpDo(t, "DELETE", api+"/v1/messages/"+res.ID, "tok", nil, &conflict); code != 409 || conflict.State != "delivered" {
		t.Fatalf("cancel delivered: %d %s, want 409 delivered", code, body)
	}
	if n := countCmd(sc, smpp.CancelSM); n != 0 {
		t.Fatalf("cancel_sm for a message without an SMSC receipt to wait for: %d", n)
	}

	// Handed to the SMSC with a receipt awaited: cancel_sm upstream.
	if code, body := httpDo(t, "POST", api+"/v1/messages", tokA, map[string]any{"from": "+8613800000060", "to": "+8613700000063", "text": "withdraw me", "receipt": true}, &res); code != 202 {
		t.Fatalf("send: %d %s", code, body)
	}
	testutil.WaitFor(t, "delivered", 10*time.Second, func() bool { return messageState(t, api, res.ID).State == "delivered" })
	smscID := sc.smscIDFor(t, "8613700000063")
	if code, body := httpDo(t, "DELETE", api+"/v1/messages/"+res.ID, tokA, nil, &v); code != 200 || v.State != "cancelled" {
		t.Fatalf("cancel at the SMSC: %d %s", code, body)
	}
	var cancel smpp.PDU
	for _, p := range sc.received() {
		if p.ID == smpp.CancelSM {
			cancel = p
		}
	}
	if cancel.MessageID != smscID || cancel.DestAddr != "8613700000063" || cancel.SourceAddr != "8613800000060" {
		t.Fatalf("cancel_sm %+v, want the SMSC's id %s", cancel, smscID)
	}
	if last := v.Events[len(v.Events)-1]; !strings.Contains(last.Detail, "SMSC") {
		t.Fatalf("last event %+v", last)
	}
	// The SMSC refuses: 409 saying so.
	sc.refuse(smpp.CancelSM, smpp.ESME_RCANCELFAIL)
	if code, body := httpDo(t, "POST", api+"/v1/messages", tokA, map[string]any{"from": "+8613800000060", "to": "+8613700000064", "text": "too late", "receipt": true}, &res); code != 202 {
		t.Fatalf("send: %d %s", code, body)
	}
	testutil.WaitFor(t, "delivered", 10*time.Second, func() bool { return messageState(t, api, res.ID).State == "delivered" })
	if code, body := httpDo(t, "DELETE", api+"/v1/messages/"+res.ID, tokA, nil, &conflict); code != 409 || conflict.State != "delivered" || !strings.Contains(conflict.Error, "ESME_RCANCELFAIL") {
		t.Fatalf("cancel refused by the SMSC: %d %s", code, body)
	}
}

func countCmd(s *smsc, id smpp.CommandID) int {
	n := 0
	for _, p := range s.received() {
		if p.ID == id {
			n++
		}
	}
	return n
}

func TestHTTPBatch(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--api-token", "tok", "--smsc", sc.url())
	api := "http://" + b.addrs.HTTP
	var to []string
	for i := range 50 {
		to = append(to, fmt.Sprintf("+86137000071%02d", i))
	}
	var res struct {
		IDs []string `json:"ids"`
	}
	req := map[string]any{"from": "+8613800000070", "to": to, "text": "to all of you"}
	if code, body := httpDo(t, "POST", api+"/v1/messages", "tok", req, &res); code != 202 || len(res.IDs) != len(to) {
		t.Fatalf("batch: %d %s", code, body)
	}
	// Each is its own message, stored before the answer, for its recipient.
	seen := map[string]bool{}
	for i, id := range res.IDs {
		var v struct{ To, State string }
		if code := getJSON(t, api+"/v1/messages/"+id, "tok", &v); code != 200 || v.To != to[i] || seen[id] {
			t.Fatalf("batch id %d %s: %d %+v", i, id, code, v)
		}
		seen[id] = true
	}
	testutil.WaitFor(t, "every SMS", 15*time.Second, func() bool {
		for _, n := range to {
			if sc.submitsTo(strings.TrimPrefix(n, "+")) != 1 {
				return false
			}
		}
		return true
	})
	// One bad recipient refuses the batch, naming it; none is sent.
	bad := []string{"+8613700000190", "not a number", "+8613700000191"}
	if code, body := httpDo(t, "POST", api+"/v1/messages", "tok", map[string]any{"from": "+8613800000070", "to": bad, "text": "x"}, nil); code != 400 || !strings.Contains(body, "to[1]") {
		t.Fatalf("batch with a bad recipient: %d %s", code, body)
	}
	many := make([]string, 1001)
	for i := range many {
		many[i] = fmt.Sprintf("+861370001%04d", i)
	}
	if code, body := httpDo(t, "POST", api+"/v1/messages", "tok", map[string]any{"from": "+8613800000070", "to": many, "text": "x"}, nil); code != 400 {
		t.Fatalf("a batch of 1001: %d %s", code, body)
	}
	// Under one Idempotency-Key, a repeated batch gets the same ids.
	hreq := func() []string {
		b, _ := json.Marshal(map[string]any{"from": "+8613800000070", "to": to[:3], "text": "once"})
		r, _ := http.NewRequest("POST", api+"/v1/messages", bytes.NewReader(b))
		r.Header.Set("Authorization", "Bearer tok")
		r.Header.Set("Idempotency-Key", "batch-1")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			IDs []string `json:"ids"`
		}
		json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != 202 || len(out.IDs) != 3 {
			t.Fatalf("keyed batch: %d %v", resp.StatusCode, out)
		}
		return out.IDs
	}
	first, again := hreq(), hreq()
	if strings.Join(first, ",") != strings.Join(again, ",") || first[0] == first[1] {
		t.Fatalf("keyed batch ids %v then %v", first, again)
	}
}

// esme is a gosmpp transmitter that sends one request at a time and takes
// its response.
type esme struct {
	sess  *gosmpp.Session
	resps chan gpdu.PDU
}

func bindESME(t *testing.T, b *running, user, pass string) *esme {
	t.Helper()
	e := &esme{resps: make(chan gpdu.PDU, 8)}
	var err error
	e.sess, err = gosmpp.NewSession(
		gosmpp.TXConnector(gosmpp.NonTLSDialer, gosmpp.Auth{SMSC: b.addrs.SMPP, SystemID: user, Password: pass}),
		gosmpp.Settings{
			ReadTimeout: 10 * time.Second, EnquireLink: 5 * time.Second,
			OnPDU: func(p gpdu.PDU, _ bool) {
				if _, keepalive := p.(*gpdu.EnquireLinkResp); !keepalive && !p.CanResponse() {
					e.resps <- p
				}
			},
		}, 5*time.Second)
	if err != nil {
		t.Fatalf("gosmpp bind %s: %v", user, err)
	}
	t.Cleanup(func() { e.sess.Close() })
	return e
}

func (e *esme) do(t *testing.T, p gpdu.PDU) gpdu.PDU {
	t.Helper()
	if err := e.sess.Transceiver().Submit(p); err != nil {
		t.Fatalf("send %T: %v", p, err)
	}
	select {
	case r := <-e.resps:
		return r
	case <-time.After(15 * time.Second):
		t.Fatalf("no response to %T", p)
	}
	return nil
}

func gaddr(a string, ton byte) gpdu.Address {
	x := gpdu.NewAddress()
	x.SetTon(ton)
	x.SetNpi(1)
	if ton == 5 {
		x.SetNpi(0)
	}
	x.SetAddress(a)
	return x
}

// submit sends a submit_sm from src to dst with the given schedule,
// validity and priority, and returns the response's status and id.
func (e *esme) submit(t *testing.T, src, dst, text, sched, validity string, prio byte) (data.CommandStatusType, string) {
	t.Helper()
	return e.submitFrom(t, gaddr(src, 1), dst, text, sched, validity, prio)
}

func (e *esme) submitFrom(t *testing.T, src gpdu.Address, dst, text, sched, validity string, prio byte) (data.CommandStatusType, string) {
	t.Helper()
	sm := gpdu.NewSubmitSM().(*gpdu.SubmitSM)
	sm.SourceAddr, sm.DestAddr = src, gaddr(dst, 1)
	sm.ScheduleDeliveryTime, sm.ValidityPeriod, sm.PriorityFlag = sched, validity, prio
	if err := sm.Message.SetMessageWithEncoding(text, data.GSM7BIT); err != nil {
		t.Fatal(err)
	}
	r, ok := e.do(t, sm).(*gpdu.SubmitSMResp)
	if !ok {
		t.Fatal("not a submit_sm_resp")
	}
	return r.CommandStatus, r.MessageID
}

func (e *esme) query(t *testing.T, id, src string) *gpdu.QuerySMResp {
	t.Helper()
	q := gpdu.NewQuerySM().(*gpdu.QuerySM)
	q.MessageID, q.SourceAddr = id, gaddr(src, 1)
	p := e.do(t, q)
	r, ok := p.(*gpdu.QuerySMResp)
	if !ok {
		t.Fatalf("not a query_sm_resp: %#v", p)
	}
	return r
}

func (e *esme) cancel(t *testing.T, id, src, dst string) data.CommandStatusType {
	t.Helper()
	c := gpdu.NewCancelSM().(*gpdu.CancelSM)
	c.MessageID, c.SourceAddr, c.DestAddr = id, gaddr(src, 1), gaddr(dst, 1)
	return e.do(t, c).GetHeader().CommandStatus
}

func (e *esme) replace(t *testing.T, id, src, text, sched, validity string) data.CommandStatusType {
	t.Helper()
	r := gpdu.NewReplaceSM().(*gpdu.ReplaceSM)
	r.MessageID, r.SourceAddr, r.ScheduleDeliveryTime, r.ValidityPeriod = id, gaddr(src, 1), sched, validity
	if err := r.Message.SetMessageWithEncoding(text, data.GSM7BIT); err != nil {
		t.Fatal(err)
	}
	return e.do(t, r).GetHeader().CommandStatus
}

func smppRelative(d time.Duration) string {
	h := int(d / time.Hour)
	m := int(d % time.Hour / time.Minute)
	s := int(d % time.Minute / time.Second)
	return fmt.Sprintf("000000%02d%02d%02d000R", h, m, s)
}

func TestSMPPScheduleValidityPriorityQuery(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--api-token", "tok", "--smsc", sc.url())
	api := "http://" + b.addrs.HTTP
	testutil.WaitFor(t, "the SMSC bind", 10*time.Second, func() bool { return len(sc.srv.Sessions("bridge")) > 0 })
	e := bindESME(t, b, "esme1", "secret1")

	// Absolute validity, relative schedule, a priority.
	exp := time.Now().Add(90 * time.Minute).UTC().Truncate(time.Second)
	before := time.Now()
	st, id := e.submit(t, "8613800000080", "8613700000081", "in three seconds", smppRelative(3*time.Second), smppgw.FormatSMPPTime(exp), 2)
	if st != data.ESME_ROK || id == "" {
		t.Fatalf("submit_sm: %v %q", st, id)
	}
	var v controlView
	getJSON(t, api+"/v1/messages/"+id, "tok", &v)
	if !v.Expires.Equal(exp) || v.SendAt == nil || v.SendAt.Sub(before) < 2*time.Second || v.SendAt.Sub(before) > 5*time.Second || v.Priority != 2 {
		t.Fatalf("record %+v, want expiry %v, send_at in 3s, priority 2", v, exp)
	}
	if q := e.query(t, id, "8613800000080"); q.CommandStatus != data.ESME_ROK || q.MessageState != 1 || q.FinalDate != "" || q.MessageID != id {
		t.Fatalf("query_sm while scheduled: %+v", q)
	}
	testutil.WaitFor(t, "the scheduled SMS", 10*time.Second, func() bool { return sc.submitsTo("8613700000081") == 1 })
	if time.Since(before) < 3*time.Second {
		t.Fatalf("sent %v after submission, scheduled in 3s", time.Since(before))
	}
	testutil.WaitFor(t, "DELIVERED", 10*time.Second, func() bool { return e.query(t, id, "8613800000080").MessageState == 2 })
	if q := e.query(t, id, "8613800000080"); len(q.FinalDate) != 16 {
		t.Fatalf("final_date %q", q.FinalDate)
	}
	// Relative validity, absolute schedule.
	before = time.Now()
	st, id = e.submit(t, "8613800000080", "8613700000082", "later", smppgw.FormatSMPPTime(time.Now().Add(time.Hour)), smppRelative(2*time.Hour), 0)
	if st != data.ESME_ROK {
		t.Fatalf("submit_sm: %v", st)
	}
	getJSON(t, api+"/v1/messages/"+id, "tok", &v)
	if d := v.Expires.Sub(before); d < 2*time.Hour-time.Second || d > 2*time.Hour+5*time.Second || v.SendAt == nil {
		t.Fatalf("record %+v, want expiry in 2h", v)
	}
	// A schedule after the expiry, a validity that is no time, a priority above 3.
	if st, _ := e.submit(t, "8613800000080", "8613700000083", "x", smppRelative(3*time.Hour), smppRelative(time.Hour), 0); st != data.ESME_RINVSCHED {
		t.Fatalf("schedule after expiry: %v, want ESME_RINVSCHED", st)
	}
	if st, _ := e.submit(t, "8613800000080", "8613700000083", "x", "", "tomorrow", 0); st != data.ESME_RINVEXPIRY {
		t.Fatalf("bad validity: %v, want ESME_RINVEXPIRY", st)
	}
	if st, _ := e.submit(t, "8613800000080", "8613700000083", "x", "", "", 7); st != data.ESME_RINVPRTFLG {
		t.Fatalf("priority 7: %v, want ESME_RINVPRTFLG", st)
	}
	// Another account's message, and none at all, are unknown.
	e2 := bindESME(t, b, "esme2", "secret2")
	if q := e2.query(t, id, "8613800000080"); q.CommandStatus != data.ESME_RQUERYFAIL {
		t.Fatalf("another account's query_sm: %v", q.CommandStatus)
	}
	if q := e.query(t, "00000000000000000000", "8613800000080"); q.CommandStatus != data.ESME_RQUERYFAIL {
		t.Fatalf("unknown id: %v", q.CommandStatus)
	}
	// fiorix/go-smpp's query_sm reads the same.
	tx := &fsmpp.Transmitter{Addr: b.addrs.SMPP, User: "esme1", Passwd: "secret1", RespTimeout: 10 * time.Second}
	conn := tx.Bind()
	defer tx.Close()
	if st := <-conn; st.Error() != nil {
		t.Fatal(st.Error())
	}
	qr, err := tx.QuerySM("8613800000080", id, 1, 1)
	if err != nil || qr.MsgState != "ENROUTE" {
		t.Fatalf("fiorix query_sm: %+v %v", qr, err)
	}
}

func TestSMPPCancelAndReplace(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), "--smsc", sc.url())
	testutil.WaitFor(t, "the SMSC bind", 10*time.Second, func() bool { return len(sc.srv.Sessions("bridge")) > 0 })
	e := bindESME(t, b, "esme1", "secret1")
	e2 := bindESME(t, b, "esme2", "secret2")
	hour := smppgw.FormatSMPPTime(time.Now().Add(time.Hour))

	st, id := e.submit(t, "8613800000090", "8613700000091", "never sent", hour, "", 0)
	if st != data.ESME_ROK {
		t.Fatalf("submit_sm: %v", st)
	}
	if st := e2.cancel(t, id, "8613800000090", "8613700000091"); st != data.ESME_RCANCELFAIL {
		t.Fatalf("another account's cancel_sm: %v", st)
	}
	if st := e.cancel(t, id, "8613800000090", "8613700000091"); st != data.ESME_ROK {
		t.Fatalf("cancel_sm: %v", st)
	}
	if q := e.query(t, id, "8613800000090"); q.MessageState != 4 || len(q.FinalDate) != 16 {
		t.Fatalf("query_sm after cancel_sm: state %d final %q, want DELETED", q.MessageState, q.FinalDate)
	}
	if st := e.cancel(t, id, "8613800000090", "8613700000091"); st != data.ESME_RCANCELFAIL {
		t.Fatalf("cancel_sm again: %v", st)
	}
	if st := e.replace(t, id, "8613800000090", "too late", "", ""); st != data.ESME_RREPLACEFAIL {
		t.Fatalf("replace_sm of a cancelled message: %v", st)
	}

	// Replaced while scheduled: the new text goes, at the new time.
	st, id = e.submit(t, "8613800000090", "8613700000092", "the old text", hour, "", 0)
	if st != data.ESME_ROK {
		t.Fatalf("submit_sm: %v", st)
	}
	if st := e2.replace(t, id, "8613800000090", "not yours", "", ""); st != data.ESME_RREPLACEFAIL {
		t.Fatalf("another account's replace_sm: %v", st)
	}
	if st := e.replace(t, id, "8613800000090", "the new text", smppRelative(4*time.Hour), smppRelative(2*time.Hour)); st != data.ESME_RINVSCHED {
		t.Fatalf("replace_sm scheduling after the expiry: %v", st)
	}
	if st := e.replace(t, id, "8613800000090", "the new text", smppRelative(time.Second), ""); st != data.ESME_ROK {
		t.Fatalf("replace_sm: %v", st)
	}
	testutil.WaitFor(t, "the replaced SMS", 10*time.Second, func() bool { return sc.submitsTo("8613700000092") == 1 })
	if got := sc.texts(t)["8613700000092"]; got != "the new text" {
		t.Fatalf("the SMSC got %q", got)
	}
	testutil.WaitFor(t, "DELIVERED", 10*time.Second, func() bool { return e.query(t, id, "8613800000090").MessageState == 2 })
	if st := e.replace(t, id, "8613800000090", "after delivery", "", ""); st != data.ESME_RREPLACEFAIL {
		t.Fatalf("replace_sm of a delivered message: %v", st)
	}
}

func TestAlphaSenderPolicy(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--api-token", "tok", "--smsc", sc.url(),
		"--alpha-senders", "esme1=MyBank", "--alpha-senders", "a=Shop",
		"--api-client", "a:send+read:0:"+tokA, "--api-client", "b:send+read:0:"+tokB)
	api := "http://" + b.addrs.HTTP
	testutil.WaitFor(t, "the SMSC bind", 10*time.Second, func() bool { return len(sc.srv.Sessions("bridge")) > 0 })

	e1 := bindESME(t, b, "esme1", "secret1")
	if st, _ := e1.submitFrom(t, gaddr("MyBank", 5), "8613700000101", "from the bank", "", "", 0); st != data.ESME_ROK {
		t.Fatalf("an allowed alphanumeric sender: %v", st)
	}
	if st, _ := e1.submitFrom(t, gaddr("Other", 5), "8613700000102", "x", "", "", 0); st != data.ESME_RINVSRCADR {
		t.Fatalf("a sender the account may not use: %v, want ESME_RINVSRCADR", st)
	}
	e2 := bindESME(t, b, "esme2", "secret2")
	if st, _ := e2.submitFrom(t, gaddr("MyBank", 5), "8613700000103", "x", "", "", 0); st != data.ESME_RINVSRCADR {
		t.Fatalf("an account without alphanumeric senders: %v, want ESME_RINVSRCADR", st)
	}
	testutil.WaitFor(t, "the bank's SMS", 10*time.Second, func() bool { return sc.submitsTo("8613700000101") == 1 })
	for _, p := range sc.received() {
		if p.DestAddr == "8613700000101" && (p.SourceAddr != "MyBank" || p.SourceAddrTON != 5) {
			t.Fatalf("left as %q TON %d", p.SourceAddr, p.SourceAddrTON)
		}
	}

	// HTTP clients: "alpha:NAME".
	if code, body := httpDo(t, "POST", api+"/v1/messages", tokA, map[string]any{"from": "alpha:Shop", "to": "+8613700000104", "text": "sale"}, nil); code != 202 {
		t.Fatalf("client a from Shop: %d %s", code, body)
	}
	for _, c := range []struct{ tok, from string }{{tokA, "alpha:MyBank"}, {tokB, "alpha:Shop"}} {
		code, body := httpDo(t, "POST", api+"/v1/messages", c.tok, map[string]any{"from": c.from, "to": "+8613700000105", "text": "x"}, nil)
		if code != 400 || !strings.Contains(body, "not allowed") {
			t.Fatalf("%s: %d %s, want 400 naming why", c.from, code, body)
		}
	}

	// A provisioned account's own list.
	if code, body := httpDo(t, "POST", api+"/v1/accounts", "tok", map[string]any{"system_id": "brands", "password": "pw", "alpha_senders": []string{"*"}}, nil); code != 201 {
		t.Fatalf("provision: %d %s", code, body)
	}
	e3 := bindESME(t, b, "brands", "pw")
	if st, _ := e3.submitFrom(t, gaddr("Anything", 5), "8613700000106", "any name", "", "", 0); st != data.ESME_ROK {
		t.Fatalf("a provisioned account allowed any: %v", st)
	}
}
