package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	fsmpp "github.com/fiorix/go-smpp/smpp"
	fpdu "github.com/fiorix/go-smpp/smpp/pdu"
	"github.com/fiorix/go-smpp/smpp/pdu/pdufield"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutext"

	"github.com/smsbridge/bridge/bridge"
	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/smpp"
	"github.com/smsbridge/bridge/smstext"
)

const moAppSecret = "app-s3cret"

// moApp is an HTTP application of a service number: it checks every
// request's signature and records what it took (2xx). It answers 503 while
// down and to the first failFirst attempts of each message, then 200 with
// reply (of type replyType) if set.
type moApp struct {
	url string
	srv *http.Server

	mu        sync.Mutex
	down      bool
	failFirst int
	reply     string
	replyType string
	attempts  map[string]int // by message id
	took      []moSeen
	bad       []string // why a request was not a valid, signed one
}

type moSeen struct {
	ID, From, To, Text, Origin, Keyword string
	ReceivedAt                          time.Time `json:"received_at"`
	Key                                 string    `json:"-"` // Idempotency-Key
}

func startMOApp(t *testing.T) *moApp {
	t.Helper()
	return startMOAppAt(t, "127.0.0.1:0")
}

// startMOAppAt serves the application on addr: one a bridge already posts
// to, for an application that comes back.
func startMOAppAt(t *testing.T, addr string) *moApp {
	t.Helper()
	a := &moApp{attempts: map[string]int{}}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	a.srv = &http.Server{Handler: a}
	go a.srv.Serve(ln)
	t.Cleanup(func() { a.srv.Close() })
	a.url = "http://" + ln.Addr().String() + "/mo?svc=1"
	return a
}

func (a *moApp) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	a.mu.Lock()
	defer a.mu.Unlock()
	var m moSeen
	err := decodeSigned(req, body, moAppSecret, "svc", "1", &m)
	if err == nil && (m.ID == "" || req.Header.Get("Idempotency-Key") != m.ID) {
		err = fmt.Errorf("id %q, Idempotency-Key %q", m.ID, req.Header.Get("Idempotency-Key"))
	}
	if err != nil {
		a.bad = append(a.bad, err.Error())
		w.WriteHeader(400)
		return
	}
	m.Key = req.Header.Get("Idempotency-Key")
	a.attempts[m.ID]++
	if a.down || a.attempts[m.ID] <= a.failFirst {
		w.WriteHeader(503)
		return
	}
	a.took = append(a.took, m)
	if a.reply == "" {
		w.WriteHeader(204)
		return
	}
	w.Header().Set("Content-Type", a.replyType)
	io.WriteString(w, a.reply)
}

func (a *moApp) taken() []moSeen {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]moSeen(nil), a.took...)
}

func (a *moApp) tries(id string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.attempts[id]
}

func (a *moApp) invalid() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.bad...)
}

func (a *moApp) find(id string) (moSeen, int) {
	var first moSeen
	n := 0
	for _, m := range a.taken() {
		if m.ID == id {
			if n == 0 {
				first = m
			}
			n++
		}
	}
	return first, n
}

func (a *moApp) state() string {
	return fmt.Sprintf("taken %+v, invalid %q", a.taken(), a.invalid())
}

// moAppFlags routes the service numbers 10690… to app (http:// needs the
// lab flag).
func moAppFlags(app *moApp) []string {
	return []string{"--mo-app", "10690=" + moAppSecret + "@" + app.url, "--lab-allow-http-partners"}
}

// deliverMO makes the SMSC simulator deliver a mobile-originated SMS.
func (s *smsc) deliverMO(t *testing.T, from, to, text string) {
	t.Helper()
	dcs, body, err := smstext.Encode(text, smstext.Auto)
	if err != nil {
		t.Fatal(err)
	}
	p := &smpp.PDU{ID: smpp.DeliverSM, SourceAddrTON: 1, SourceAddrNPI: 1, SourceAddr: from,
		DestAddrTON: 0, DestAddrNPI: 1, DestAddr: to, DataCoding: dcs, ShortMessage: body}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := s.srv.Deliver(ctx, "bridge", p)
	if err != nil || resp.Status != smpp.ESME_ROK || resp.MessageID == "" {
		t.Fatalf("MO deliver_sm: %v %+v", err, resp)
	}
}

// An ESME's submit_sm (fiorix/go-smpp) and a SIP user's MESSAGE to the
// service number reach its application, signed, with what the sender sent;
// each is delivered over the API once the application took it, and the
// SIP user gets an IMDN saying so.
func TestMOAppGetsSignedMessages(t *testing.T) {
	app := startMOApp(t)
	b := startBridge(t, t.TempDir(), append(append(moAppFlags(app), "--http-listen", "127.0.0.1:0", "--api-token", "tok"),
		sipUserFlag("8613800000052", "pw52")...)...)
	api := "http://" + b.addrs.HTTP
	const text = "天气 Beijing"
	id, err := fiorixSubmit(t, b, "esme1", "secret1", "8613900000051", "8610690123", pdutext.UCS2(text))
	if err != nil || id == "" {
		t.Fatalf("submit: %q %v", id, err)
	}
	u := startUA(t, "8613800000052", "pw52")
	if code := u.register(t, b, 3600); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	if code := u.message(t, b, "+8610690777", "news please"); code != 202 {
		t.Fatalf("MESSAGE: %d", code)
	}
	testutil.WaitForState(t, 15*time.Second, func() bool { return len(app.taken()) == 2 }, app.state)
	if bad := app.invalid(); len(bad) > 0 {
		t.Fatalf("requests that were not valid and signed: %q", bad)
	}
	got, n := app.find(id)
	if n != 1 || got.From != "+8613900000051" || got.To != "+8610690123" || got.Text != text || got.Origin != "esme" ||
		got.ReceivedAt.IsZero() || time.Since(got.ReceivedAt) > time.Minute {
		t.Fatalf("the application got %+v (%d times)", got, n)
	}
	var im moSeen
	for _, m := range app.taken() {
		if m.ID != id {
			im = m
		}
	}
	if im.From != "+8613800000052" || im.To != "+8610690777" || im.Text != "news please" || im.Origin != "sip" {
		t.Fatalf("the IM at the application: %+v", im)
	}
	for _, m := range app.taken() {
		testutil.WaitFor(t, "state delivered", 10*time.Second, func() bool { return messageState(t, api, m.ID).State == "delivered" })
		v := messageState(t, api, m.ID)
		if last := v.Events[len(v.Events)-1]; last.Detail != "app 10690" {
			t.Fatalf("history of %s: %+v", m.ID, v.Events)
		}
	}
	// The IM sender hears by IMDN that the application took it.
	testutil.WaitFor(t, "the IMDN", 10*time.Second, func() bool { return len(u.imdns()) == 1 })
	if n := u.imdns()[0]; len(u.received()) != 1 || !strings.Contains(n, "<message-id>"+im.ID+"</message-id>") || !strings.Contains(n, "<delivered/>") {
		t.Fatalf("the sender got %q", u.received())
	}
}

// An application answering 503 twice, then 200, takes the SMSC's MO once,
// at the third attempt; the message's state is accepted while it fails,
// delivered once taken, its history the failed attempts.
func TestMOAppRetriedUntilTaken(t *testing.T) {
	sc := startSMSC(t)
	app := startMOApp(t)
	app.failFirst = 2
	b := startBridge(t, t.TempDir(), append(moAppFlags(app), "--http-listen", "127.0.0.1:0", "--api-token", "tok", "--smsc", sc.url())...)
	api := "http://" + b.addrs.HTTP
	testutil.WaitFor(t, "the SMSC bind", 10*time.Second, func() bool { return len(sc.srv.Sessions("bridge")) > 0 })
	sc.deliverMO(t, "8613700000053", "10690555", "JOIN quiz")
	testutil.WaitForState(t, 30*time.Second, func() bool { return len(app.taken()) == 1 }, app.state)
	m := app.taken()[0]
	if m.From != "+8613700000053" || m.To != "+8610690555" || m.Text != "JOIN quiz" || m.Origin != "smsc" {
		t.Fatalf("the application got %+v", m)
	}
	if n := app.tries(m.ID); n != 3 {
		t.Fatalf("taken at attempt %d, want 3", n)
	}
	testutil.WaitFor(t, "state delivered", 10*time.Second, func() bool { return messageState(t, api, m.ID).State == "delivered" })
	v := messageState(t, api, m.ID)
	failed := 0
	for _, e := range v.Events {
		if strings.Contains(e.Detail, "503") {
			failed++
		}
	}
	if failed != 2 {
		t.Fatalf("history %+v: want the two refused attempts", v.Events)
	}
	time.Sleep(500 * time.Millisecond)
	if _, n := app.find(m.ID); n != 1 || len(sc.received()) != 0 {
		t.Fatalf("taken %d times; the SMSC got %d submit_sm", n, len(sc.received()))
	}
	if bad := app.invalid(); len(bad) > 0 {
		t.Fatalf("invalid requests: %q", bad)
	}
}

// The application is down (nothing listens) when ESMEs' MO are acknowledged;
// the bridge process is SIGKILLed and started again, the application comes
// back: every acknowledged message reaches it and is delivered.
func TestMOAppSurvivesKill(t *testing.T) {
	appAddr, httpAddr := freeTCPPort(t), freeTCPPort(t)
	dir := t.TempDir()
	url := "http://" + appAddr + "/mo?svc=1"
	args := []string{"--data-dir", dir, "--http-listen", httpAddr, "--api-token", "tok",
		"--mo-app", "10690=" + moAppSecret + "@" + url, "--lab-allow-http-partners"}
	smppAddr := freeTCPPort(t)
	p := startProc(t, smppAddr, args...)
	esme := &running{addrs: bridge.Addrs{SMPP: smppAddr}}
	var ids []string
	for i := range 3 {
		id, err := fiorixSubmit(t, esme, "esme1", "secret1", fmt.Sprintf("861390000006%d", i), "8610690600", pdutext.Raw(fmt.Sprintf("mo %d", i)))
		if err != nil || id == "" {
			p.kill()
			t.Fatalf("submit %d: %q %v", i, id, err)
		}
		ids = append(ids, id)
	}
	api := "http://" + httpAddr
	testutil.WaitFor(t, "a failed attempt at each", 10*time.Second, func() bool {
		var n int
		for _, l := range strings.Split(metricsText(t, api), "\n") {
			fmt.Sscanf(l, "bridge_app_failed_total %d", &n)
		}
		return n >= len(ids)
	})
	p.kill()

	p = startProc(t, smppAddr, args...)
	defer p.stop()
	app := startMOAppAt(t, appAddr)
	testutil.WaitForState(t, 30*time.Second, func() bool {
		for _, id := range ids {
			if _, n := app.find(id); n == 0 {
				return false
			}
		}
		return true
	}, app.state)
	for i, id := range ids {
		m, _ := app.find(id)
		if m.Text != fmt.Sprintf("mo %d", i) || m.To != "+8610690600" {
			t.Errorf("message %s at the application: %+v", id, m)
		}
		testutil.WaitFor(t, "state delivered", 10*time.Second, func() bool { return messageState(t, api, id).State == "delivered" })
	}
	if bad := app.invalid(); len(bad) > 0 {
		t.Fatalf("invalid requests: %q", bad)
	}
}

// The application's reply goes back the way the message came: to an MO
// from the SMSC as a submit_sm upstream, to an ESME's submit_sm as a
// deliver_sm to that ESME; both from the service number.
func TestMOAppReplyReachesSender(t *testing.T) {
	sc := startSMSC(t)
	app := startMOApp(t)
	app.reply, app.replyType = `{"reply":"Sunny, 25°C"}`, "application/json"
	b := startBridge(t, t.TempDir(), append(moAppFlags(app), "--smsc", sc.url())...)
	testutil.WaitFor(t, "the SMSC bind", 10*time.Second, func() bool { return len(sc.srv.Sessions("bridge")) > 0 })
	sc.deliverMO(t, "8613700000071", "10690123", "weather")
	testutil.WaitForState(t, 15*time.Second, func() bool { return len(sc.received()) == 1 }, app.state)
	r := sc.received()[0]
	if r.ID != smpp.SubmitSM || r.DestAddr != "8613700000071" || r.SourceAddr != "8610690123" {
		t.Fatalf("reply PDU %v %q → %q", r.ID, r.SourceAddr, r.DestAddr)
	}
	if got := sc.texts(t)["8613700000071"]; got != "Sunny, 25°C" {
		t.Fatalf("the sender got %q", got)
	}

	app.mu.Lock()
	app.reply, app.replyType = "Thanks, you are in.\n", "text/plain; charset=utf-8"
	app.mu.Unlock()
	e := bindFiorix(t, b, "esme1", "secret1")
	if _, err := e.tx.Submit(&fsmpp.ShortMessage{Src: "8613900000072", Dst: "8610690124", Text: pdutext.Raw("JOIN"),
		Register: pdufield.NoDeliveryReceipt, SourceAddrTON: 1, SourceAddrNPI: 1, DestAddrTON: 1, DestAddrNPI: 1}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitForState(t, 15*time.Second, func() bool { return len(e.delivered()) == 1 }, app.state)
	f := e.delivered()[0].Fields()
	txt, _ := smstext.Decode(f[pdufield.DataCoding].Bytes()[0], f[pdufield.ShortMessage].Bytes())
	if src, dst := f[pdufield.SourceAddr].String(), f[pdufield.DestinationAddr].String(); src != "8610690124" || dst != "8613900000072" || txt != "Thanks, you are in." {
		t.Fatalf("the ESME got %q → %q: %q", src, dst, txt)
	}
	if len(sc.received()) != 1 || len(app.taken()) != 2 {
		t.Fatalf("SMSC got %d, the application took %d", len(sc.received()), len(app.taken()))
	}
	if e.delivered()[0].Header().ID != fpdu.DeliverSMID {
		t.Fatal("not a deliver_sm")
	}
}
