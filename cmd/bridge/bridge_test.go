package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	fsmpp "github.com/fiorix/go-smpp/smpp"
	"github.com/fiorix/go-smpp/smpp/pdu/pdufield"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutext"
	"github.com/linxGnu/gosmpp"
	"github.com/linxGnu/gosmpp/data"
	gpdu "github.com/linxGnu/gosmpp/pdu"

	fpdu "github.com/fiorix/go-smpp/smpp/pdu"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/smpp"
	"github.com/smsbridge/bridge/smstext"
)

type fsmppPDU = fpdu.Body

const fsmppDeliverSM = fpdu.DeliverSMID

// fiorixSubmit binds a fiorix/go-smpp transmitter to the bridge and submits
// one message, returning the message id the bridge answered.
func fiorixSubmit(t *testing.T, b *running, user, pass, src, dst string, text pdutext.Codec) (string, error) {
	t.Helper()
	tx := &fsmpp.Transmitter{Addr: b.addrs.SMPP, User: user, Passwd: pass, RespTimeout: 10 * time.Second}
	conn := tx.Bind()
	defer tx.Close()
	select {
	case st := <-conn:
		if st.Error() != nil {
			return "", st.Error()
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fiorix bind timed out")
	}
	sm, err := tx.Submit(&fsmpp.ShortMessage{Src: src, Dst: dst, Text: text, Register: pdufield.NoDeliveryReceipt,
		SourceAddrTON: 1, SourceAddrNPI: 1, DestAddrTON: 1, DestAddrNPI: 1})
	if err != nil {
		return "", err
	}
	return sm.RespID(), nil
}

func TestSMSToOnlineIMUserFiorix(t *testing.T) {
	b := startBridge(t, t.TempDir(), sipUserFlag("8613800000001", "pw1")...)
	u := startUA(t, "8613800000001", "pw1")
	if code := u.register(t, b, 3600); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	const text = "你好，世界! Chinese and emoji 😀 arrive intact"
	id, err := fiorixSubmit(t, b, "esme1", "secret1", "8613900000009", "8613800000001", pdutext.UCS2(text))
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	if id == "" {
		t.Fatal("no message id in submit_sm_resp")
	}
	testutil.WaitFor(t, "MESSAGE at the UA", 10*time.Second, func() bool { return len(u.received()) == 1 })
	if got := u.received()[0]; got != text {
		t.Fatalf("UA got %q, want %q", got, text)
	}
	from := u.msgs[0].From().Address.User
	if from != "+8613900000009" {
		t.Fatalf("MESSAGE From user %q, want +8613900000009", from)
	}
}

func TestSMSToOnlineIMUserGosmpp(t *testing.T) {
	b := startBridge(t, t.TempDir(), sipUserFlag("8613800000002", "pw2")...)
	u := startUA(t, "8613800000002", "pw2")
	if code := u.register(t, b, 3600); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	resps := make(chan gpdu.PDU, 4)
	sess, err := gosmpp.NewSession(
		gosmpp.TXConnector(gosmpp.NonTLSDialer, gosmpp.Auth{SMSC: b.addrs.SMPP, SystemID: "esme2", Password: "secret2"}),
		gosmpp.Settings{
			ReadTimeout: 10 * time.Second, EnquireLink: 5 * time.Second,
			OnPDU: func(p gpdu.PDU, _ bool) {
				if r, ok := p.(*gpdu.SubmitSMResp); ok {
					resps <- r
				}
			},
		}, 5*time.Second)
	if err != nil {
		t.Fatalf("gosmpp bind: %v", err)
	}
	defer sess.Close()
	sm := gpdu.NewSubmitSM().(*gpdu.SubmitSM)
	src := gpdu.NewAddress()
	src.SetTon(1)
	src.SetNpi(1)
	src.SetAddress("8613900000008")
	dst := gpdu.NewAddress()
	dst.SetTon(1)
	dst.SetNpi(1)
	dst.SetAddress("8613800000002")
	sm.SourceAddr, sm.DestAddr = src, dst
	const text = "gosmpp says hello [GSM7] {ext} €"
	if err := sm.Message.SetMessageWithEncoding(text, data.GSM7BIT); err != nil {
		t.Fatal(err)
	}
	if err := sess.Transceiver().Submit(sm); err != nil {
		t.Fatalf("submit: %v", err)
	}
	select {
	case r := <-resps:
		resp := r.(*gpdu.SubmitSMResp)
		if resp.CommandStatus != data.ESME_ROK || resp.MessageID == "" {
			t.Fatalf("submit_sm_resp status %v id %q", resp.CommandStatus, resp.MessageID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no submit_sm_resp")
	}
	testutil.WaitFor(t, "MESSAGE at the UA", 10*time.Second, func() bool { return len(u.received()) == 1 })
	if got := u.received()[0]; got != text {
		t.Fatalf("UA got %q, want %q", got, text)
	}
}

func TestWrongCredentialsGetBindStatus(t *testing.T) {
	b := startBridge(t, t.TempDir())
	_, err := fiorixSubmit(t, b, "esme1", "wrong", "8613900000009", "8613800000001", pdutext.Raw("x"))
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "password") {
		t.Fatalf("wrong password: got %v, want an invalid password bind status", err)
	}
	_, err = fiorixSubmit(t, b, "nobody", "secret1", "8613900000009", "8613800000001", pdutext.Raw("x"))
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "system id") {
		t.Fatalf("unknown system_id: got %v, want an invalid system id bind status", err)
	}
}

func TestOfflineRecipientGoesToSMSC(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), "--smsc", sc.url())
	const text = "offline recipient, back out as SMS 短信"
	if _, err := fiorixSubmit(t, b, "esme1", "secret1", "8613900000009", "8613800000077", pdutext.UCS2(text)); err != nil {
		t.Fatalf("submit: %v", err)
	}
	testutil.WaitFor(t, "submit_sm at the SMSC", 15*time.Second, func() bool { return len(sc.received()) > 0 })
	p := sc.received()[0]
	if p.DestAddr != "8613800000077" || p.SourceAddr != "8613900000009" || p.DestAddrTON != 1 || p.SourceAddrTON != 1 {
		t.Fatalf("addresses: src %q/%d dst %q/%d", p.SourceAddr, p.SourceAddrTON, p.DestAddr, p.DestAddrTON)
	}
	if p.RegisteredDelivery != 0 { // nobody asked: --sms-receipts requested
		t.Fatalf("registered_delivery %d for a message nobody wants a receipt for", p.RegisteredDelivery)
	}
	if got := sc.texts(t)["8613800000077"]; got != text {
		t.Fatalf("SMSC got %q, want %q", got, text)
	}
}

func TestIMToOfflineNumberGoesToSMSC(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), append(sipUserFlag("8613800000003", "pw3"), "--smsc", sc.url())...)
	u := startUA(t, "8613800000003", "pw3")
	if code := u.register(t, b, 3600); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	const text = "IM to a phone that is not in IM"
	if code := u.message(t, b, "+8613700000001", text); code != 202 {
		t.Fatalf("MESSAGE answered %d, want 202", code)
	}
	testutil.WaitFor(t, "submit_sm at the SMSC", 15*time.Second, func() bool { return len(sc.received()) > 0 })
	p := sc.received()[0]
	if p.SourceAddr != "8613800000003" || p.DestAddr != "8613700000001" {
		t.Fatalf("addresses: %q -> %q", p.SourceAddr, p.DestAddr)
	}
	if p.RegisteredDelivery&1 == 0 { // the IM sender gets an IMDN
		t.Fatalf("registered_delivery %d for an IM sender's message", p.RegisteredDelivery)
	}
	if got := sc.texts(t)["8613700000001"]; got != text {
		t.Fatalf("SMSC got %q", got)
	}
}

func TestIMToOnlineIMUser(t *testing.T) {
	b := startBridge(t, t.TempDir(), append(sipUserFlag("8613800000004", "pw4"), sipUserFlag("8613800000005", "pw5")...)...)
	a := startUA(t, "8613800000004", "pw4")
	c := startUA(t, "8613800000005", "pw5")
	for _, u := range []*ua{a, c} {
		if code := u.register(t, b, 3600); code != 200 {
			t.Fatalf("REGISTER %s: %d", u.user, code)
		}
	}
	if code := a.message(t, b, "8613800000005", "IM to IM"); code != 202 {
		t.Fatalf("MESSAGE: %d", code)
	}
	testutil.WaitFor(t, "MESSAGE at c", 10*time.Second, func() bool { return len(c.received()) == 1 })
	if c.received()[0] != "IM to IM" {
		t.Fatalf("got %q", c.received()[0])
	}
}

func TestRegistrationExpiryFlipsToSMS(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), append(sipUserFlag("8613800000006", "pw6"), "--smsc", sc.url(), "--sip-min-expires", "1s")...)
	u := startUA(t, "8613800000006", "pw6")
	if code := u.register(t, b, 2); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	if _, err := fiorixSubmit(t, b, "esme1", "secret1", "8613900000009", "8613800000006", pdutext.Raw("while online")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "IM while registered", 10*time.Second, func() bool { return len(u.received()) == 1 })
	time.Sleep(2500 * time.Millisecond) // let the 2 s registration run out: this is the behaviour under test
	if _, err := fiorixSubmit(t, b, "esme1", "secret1", "8613900000009", "8613800000006", pdutext.Raw("after expiry")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "SMS after expiry", 15*time.Second, func() bool { return len(sc.received()) == 1 })
	if got := sc.texts(t)["8613800000006"]; got != "after expiry" {
		t.Fatalf("SMSC got %q", got)
	}
	if n := len(u.received()); n != 1 {
		t.Fatalf("UA got %d messages after its registration expired", n)
	}
}

func TestRestartKeepsPresence(t *testing.T) {
	dir := t.TempDir()
	flags := sipUserFlag("8613800000007", "pw7")
	b := startBridge(t, dir, flags...)
	u := startUA(t, "8613800000007", "pw7")
	if code := u.register(t, b, 3600); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	b.stop()
	b2 := startBridge(t, dir, flags...)
	if _, err := fiorixSubmit(t, b2, "esme1", "secret1", "8613900000009", "8613800000007", pdutext.Raw("after restart")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "MESSAGE after restart", 10*time.Second, func() bool { return len(u.received()) == 1 })
	if u.received()[0] != "after restart" {
		t.Fatalf("got %q", u.received()[0])
	}
}

// An IM client that answers an error: the message falls back to SMS.
func TestIMFailureFallsBackToSMS(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), append(sipUserFlag("8613800000008", "pw8"), "--smsc", sc.url())...)
	u := startUA(t, "8613800000008", "pw8")
	if code := u.register(t, b, 3600); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	u.setCode(480)
	if _, err := fiorixSubmit(t, b, "esme1", "secret1", "8613900000009", "8613800000008", pdutext.Raw("fallback")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "SMS fallback", 15*time.Second, func() bool { return len(sc.received()) == 1 })
	if got := sc.texts(t)["8613800000008"]; got != "fallback" {
		t.Fatalf("SMSC got %q", got)
	}
}

// deliver_sm from the upstream SMSC to an online IM user becomes IM.
func TestSMSCDeliverToIMUser(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), append(sipUserFlag("8613800000010", "pw10"), "--smsc", sc.url())...)
	u := startUA(t, "8613800000010", "pw10")
	if code := u.register(t, b, 3600); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	testutil.WaitFor(t, "the bridge's bind at the SMSC", 10*time.Second, func() bool { return len(sc.srv.Sessions("bridge")) > 0 })
	dcs, parts, err := smstext.Split("from the SMSC 来自短信中心", smstext.Auto, 1, false)
	if err != nil || len(parts) != 1 {
		t.Fatal(err)
	}
	p := &smpp.PDU{ID: smpp.DeliverSM, SourceAddrTON: 1, SourceAddrNPI: 1, SourceAddr: "8613900000001",
		DestAddrTON: 1, DestAddrNPI: 1, DestAddr: "8613800000010", DataCoding: dcs, ShortMessage: parts[0].Body}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := sc.srv.Deliver(ctx, "bridge", p)
	if err != nil || resp.Status != 0 {
		t.Fatalf("deliver_sm: %v %+v", err, resp)
	}
	testutil.WaitFor(t, "MESSAGE at the UA", 10*time.Second, func() bool { return len(u.received()) == 1 })
	if got := u.received()[0]; got != "from the SMSC 来自短信中心" {
		t.Fatalf("UA got %q", got)
	}
}

// With --sms-route esme:ID, SMS leaves as deliver_sm to that bound receiver.
func TestESMERouteGetsDeliverSM(t *testing.T) {
	b := startBridge(t, t.TempDir(), "--sms-route", "esme:esme2")
	got := make(chan fsmppPDU, 4)
	rx := &fsmpp.Receiver{Addr: b.addrs.SMPP, User: "esme2", Passwd: "secret2", Handler: func(p fsmppPDU) {
		if p.Header().ID == fsmppDeliverSM {
			got <- p
		}
	}}
	conn := rx.Bind()
	defer rx.Close()
	if st := <-conn; st.Error() != nil {
		t.Fatalf("receiver bind: %v", st.Error())
	}
	if _, err := fiorixSubmit(t, b, "esme1", "secret1", "8613900000009", "8613800000099", pdutext.Raw("to the receiver")); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		f := p.Fields()
		if f[pdufield.DestinationAddr].String() != "8613800000099" || f[pdufield.SourceAddr].String() != "8613900000009" {
			t.Fatalf("deliver_sm addresses: %v -> %v", f[pdufield.SourceAddr], f[pdufield.DestinationAddr])
		}
		if txt := string(f[pdufield.ShortMessage].Bytes()); txt != "to the receiver" {
			t.Fatalf("deliver_sm text %q", txt)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no deliver_sm at the receiver")
	}
}

// An IM client that never answers: after --im-timeout the message falls
// back to SMS.
func TestSilentUAFallsBackToSMS(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), append(sipUserFlag("8613800000012", "pw12"), "--smsc", sc.url(), "--im-timeout", "1s")...)
	u := startUA(t, "8613800000012", "pw12")
	if code := u.register(t, b, 3600); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	u.setCode(0)
	if _, err := fiorixSubmit(t, b, "esme1", "secret1", "8613900000012", "8613800000012", pdutext.Raw("are you there")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "fallback SMS at the SMSC", 15*time.Second, func() bool { return sc.texts(t)["8613800000012"] == "are you there" })
	if len(u.received()) == 0 {
		t.Fatal("the UA was never tried")
	}
}

// --retention reaches the store: a delivered message is queryable, and
// gone once its retention has passed.
func TestRetentionFlag(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--api-token", "tok",
		"--smsc", sc.url(), "--retention", "2s", "--dedup-window", "1s")
	api := "http://" + b.addrs.HTTP
	var sent struct{ ID string }
	if code := postJSON(t, api+"/v1/messages", "tok", map[string]string{"from": "+8613900000071", "to": "+8613700000071", "text": "kept 2 s"}, &sent); code != 202 || sent.ID == "" {
		t.Fatalf("POST /v1/messages: %d %+v", code, sent)
	}
	state := func() (int, string) {
		req, _ := http.NewRequest("GET", api+"/v1/messages/"+sent.ID, nil)
		req.Header.Set("Authorization", "Bearer tok")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var v struct{ State string }
		json.NewDecoder(res.Body).Decode(&v)
		return res.StatusCode, v.State
	}
	testutil.WaitFor(t, "delivered", 10*time.Second, func() bool { code, st := state(); return code == 200 && st == "delivered" })
	testutil.WaitFor(t, "the record to expire", 10*time.Second, func() bool { code, _ := state(); return code == 404 })
}
