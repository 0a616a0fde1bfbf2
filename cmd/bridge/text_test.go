package main

// Text handling through the whole bridge: receipts both ways, long messages in
// and out, alphabets, parts surviving a restart.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	fsmpp "github.com/fiorix/go-smpp/smpp"
	fpdu "github.com/fiorix/go-smpp/smpp/pdu"
	"github.com/fiorix/go-smpp/smpp/pdu/pdufield"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutext"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutlv"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/smpp"
	"github.com/smsbridge/bridge/smstext"
)

// fiorixESME is a bound fiorix transceiver that records deliver_sm.
type fiorixESME struct {
	tx  *fsmpp.Transceiver
	mu  sync.Mutex
	dlv []fpdu.Body
}

// submitForReceipt submits text from src to dst asking for a final
// receipt, international numbers both, and returns what fiorix answered.
func (e *fiorixESME) submitForReceipt(t *testing.T, src, dst string, text pdutext.Codec) *fsmpp.ShortMessage {
	t.Helper()
	sm, err := e.tx.Submit(&fsmpp.ShortMessage{Src: src, Dst: dst, Text: text,
		Register: pdufield.FinalDeliveryReceipt, SourceAddrTON: 1, SourceAddrNPI: 1, DestAddrTON: 1, DestAddrNPI: 1})
	if err != nil {
		t.Fatal(err)
	}
	return sm
}

func bindFiorix(t *testing.T, b *running, user, pass string) *fiorixESME {
	t.Helper()
	e := &fiorixESME{}
	e.tx = &fsmpp.Transceiver{Addr: b.addrs.SMPP, User: user, Passwd: pass, RespTimeout: 10 * time.Second,
		Handler: func(p fpdu.Body) {
			if p.Header().ID == fpdu.DeliverSMID {
				e.mu.Lock()
				e.dlv = append(e.dlv, p)
				e.mu.Unlock()
			}
		}}
	conn := e.tx.Bind()
	select {
	case st := <-conn:
		if st.Error() != nil {
			t.Fatalf("fiorix bind: %v", st.Error())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fiorix bind timed out")
	}
	t.Cleanup(func() { e.tx.Close() })
	return e
}

func (e *fiorixESME) delivered() []fpdu.Body {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]fpdu.Body(nil), e.dlv...)
}

func checkReceipt(t *testing.T, p fpdu.Body, id, stat string) {
	t.Helper()
	f := p.Fields()
	if esm := f[pdufield.ESMClass].Bytes(); len(esm) != 1 || esm[0] != 0x04 {
		t.Fatalf("receipt esm_class %v, want 0x04", esm)
	}
	// Decoded by the coding it declares, as an ESME reads it.
	dcs := f[pdufield.DataCoding].Bytes()
	if len(dcs) != 1 {
		t.Fatalf("receipt data_coding %v", dcs)
	}
	txt, err := smstext.Decode(dcs[0], f[pdufield.ShortMessage].Bytes())
	if err != nil {
		t.Fatalf("receipt undecodable under data_coding %d: %v", dcs[0], err)
	}
	r, err := smstext.ParseReceipt(txt)
	if err != nil || r.ID != id || r.Stat != stat {
		t.Fatalf("receipt text %q: id %q stat %q (%v), want id %q stat %s", txt, r.ID, r.Stat, err, id, stat)
	}
	tl := p.TLVFields()
	rid := tl[pdutlv.TagReceiptedMessageID]
	if rid == nil || strings.TrimRight(string(rid.Bytes()), "\x00") != id {
		t.Fatalf("receipted_message_id %v, want %q", rid, id)
	}
	ms := tl[pdutlv.TagMessageStateOption]
	if ms == nil || len(ms.Bytes()) != 1 || ms.Bytes()[0] != smstext.MessageStateOf(stat) {
		t.Fatalf("message_state %v, want %d", ms, smstext.MessageStateOf(stat))
	}
}

func TestESMEGetsDeliveredReceipt(t *testing.T) {
	b := startBridge(t, t.TempDir(), sipUserFlag("8613800000021", "pw")...)
	u := startUA(t, "8613800000021", "pw")
	if code := u.register(t, b, 3600); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	e := bindFiorix(t, b, "esme1", "secret1")
	sm := e.submitForReceipt(t, "8613900000021", "8613800000021", pdutext.UCS2("收到请回执 receipt please"))
	testutil.WaitFor(t, "receipt at the ESME", 10*time.Second, func() bool { return len(e.delivered()) == 1 })
	checkReceipt(t, e.delivered()[0], sm.RespID(), "DELIVRD")
	if got := u.received(); len(got) != 1 || got[0] != "收到请回执 receipt please" {
		t.Fatalf("UA got %q", got)
	}
}

func TestESMEGetsExpiredReceipt(t *testing.T) {
	// No SMS route and nobody online: the message waits until its validity
	// (2 s, from the submit_sm) ends.
	b := startBridge(t, t.TempDir())
	e := bindFiorix(t, b, "esme1", "secret1")
	sm, err := e.tx.Submit(&fsmpp.ShortMessage{Src: "8613900000022", Dst: "8613800000022", Text: pdutext.Raw("expire me"),
		Register: pdufield.FinalDeliveryReceipt, Validity: 2 * time.Second, SourceAddrTON: 1, SourceAddrNPI: 1, DestAddrTON: 1, DestAddrNPI: 1})
	if err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "EXPIRED receipt", 15*time.Second, func() bool { return len(e.delivered()) == 1 })
	checkReceipt(t, e.delivered()[0], sm.RespID(), "EXPIRED")
}

// deliverReceipt makes the SMSC simulator send a receipt for smscID.
func (s *smsc) deliverReceipt(t *testing.T, smscID, dst, stat string) {
	t.Helper()
	p := &smpp.PDU{ID: smpp.DeliverSM, ESMClass: 0x04, SourceAddrTON: 1, SourceAddrNPI: 1, SourceAddr: dst,
		ShortMessage: []byte(fmt.Sprintf("id:%s sub:001 dlvrd:001 submit date:2611231200 done date:2611231201 stat:%s err:000 text:", smscID, stat))}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.srv.Deliver(ctx, "bridge", p); err != nil {
		t.Fatalf("receipt deliver_sm: %v", err)
	}
}

func (s *smsc) submittedIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, s.next)
	for i := range out {
		out[i] = fmt.Sprintf("%X", 0xA000+i+1)
	}
	return out
}

// imdns returns the IMDN bodies a UA received.
func (u *ua) imdns() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for _, r := range u.msgs {
		if ct := r.ContentType(); ct != nil && strings.HasPrefix(ct.Value(), "message/imdn+xml") {
			out = append(out, string(r.Body()))
		}
	}
	return out
}

// A 1,000-character Chinese IM message leaves as SMS parts; the SMSC
// acknowledges each part with a receipt whose id is in another base and
// case than in submit_sm_resp; the IM sender gets one IMDN "delivered".
func TestLongIMToSMSReceiptsGiveOneIMDN(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), append(sipUserFlag("8613800000023", "pw"), "--smsc", sc.url())...)
	u := startUA(t, "8613800000023", "pw")
	if code := u.register(t, b, 3600); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	var sb strings.Builder
	for sb.Len() < 3000 {
		sb.WriteString("短信网关把即时消息送到手机")
	}
	text := string([]rune(sb.String())[:1000])
	if code := u.message(t, b, "+8613700000023", text); code != 202 {
		t.Fatalf("MESSAGE: %d", code)
	}
	testutil.WaitFor(t, "15 parts at the SMSC", 15*time.Second, func() bool { return len(sc.received()) == 15 })
	if got := sc.texts(t)["8613700000023"]; got != text {
		t.Fatalf("SMSC parts do not join to the text (%d runes vs %d)", len([]rune(got)), 1000)
	}
	for i, p := range sc.received() {
		if p.DataCoding != 8 || p.ESMClass&0x40 == 0 || p.RegisteredDelivery&1 == 0 {
			t.Fatalf("part %d: dcs %d esm %x registered_delivery %d", i, p.DataCoding, p.ESMClass, p.RegisteredDelivery)
		}
	}
	ids := sc.submittedIDs()
	for i, id := range ids {
		if i == len(ids)-1 {
			time.Sleep(100 * time.Millisecond) // nothing to wait on: the IMDN must NOT come yet
			if n := len(u.imdns()); n != 0 {
				t.Fatalf("IMDN sent before the last part's receipt (%d)", n)
			}
		}
		v, _ := strconv.ParseUint(id, 16, 64)
		form := strconv.FormatUint(v, 10) // decimal in the receipt
		if i%2 == 1 {
			form = "0" + strings.ToLower(id) // lower-case hex with a leading zero
		}
		sc.deliverReceipt(t, form, "8613700000023", "DELIVRD")
	}
	testutil.WaitFor(t, "IMDN at the IM sender", 10*time.Second, func() bool { return len(u.imdns()) == 1 })
	if x := u.imdns()[0]; !strings.Contains(x, "<delivered") {
		t.Fatalf("IMDN body: %s", x)
	}
}

func TestSMSCUndeliveredGivesFailedIMDN(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), append(sipUserFlag("8613800000024", "pw"), "--smsc", sc.url())...)
	u := startUA(t, "8613800000024", "pw")
	if code := u.register(t, b, 3600); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	if code := u.message(t, b, "+8613700000024", "will fail"); code != 202 {
		t.Fatalf("MESSAGE: %d", code)
	}
	testutil.WaitFor(t, "submit_sm", 10*time.Second, func() bool { return len(sc.received()) == 1 })
	sc.deliverReceipt(t, sc.submittedIDs()[0], "8613700000024", "UNDELIV")
	testutil.WaitFor(t, "IMDN", 10*time.Second, func() bool { return len(u.imdns()) == 1 })
	if x := u.imdns()[0]; !strings.Contains(x, "<failed") {
		t.Fatalf("IMDN body: %s", x)
	}
}

// The IM text becomes 5 SMS parts at the SMSC; the SMSC sends those same 5
// parts back, shuffled, to an IM user: the bridge reassembles the original.
func TestFivePartsRoundTripOutOfOrder(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), append(append(sipUserFlag("8613800000025", "pw"), sipUserFlag("8613800000026", "pw")...), "--smsc", sc.url())...)
	sender := startUA(t, "8613800000025", "pw")
	rcpt := startUA(t, "8613800000026", "pw")
	if code := sender.register(t, b, 3600); code != 200 {
		t.Fatal(code)
	}
	// 5 GSM7 parts of 153 septets, with extension characters that cost two.
	text := string([]rune(strings.Repeat("Long GSM text {with} [ext] ~chars~ | 5€ ^ \\ end. ", 15))[:600])
	if code := sender.message(t, b, "+8613700000025", text); code != 202 {
		t.Fatal(code)
	}
	testutil.WaitFor(t, "5 parts", 10*time.Second, func() bool { return len(sc.received()) == 5 })
	parts := sc.received()
	if parts[0].DataCoding != 0 {
		t.Fatalf("GSM text left with dcs %d, want 0 (GSM7)", parts[0].DataCoding)
	}
	if got := sc.texts(t)["8613700000025"]; got != text {
		t.Fatalf("GSM extension characters did not survive: %q", got)
	}
	if code := rcpt.register(t, b, 3600); code != 200 {
		t.Fatal(code)
	}
	testutil.WaitFor(t, "bind", 10*time.Second, func() bool { return len(sc.srv.Sessions("bridge")) > 0 })
	for _, i := range rand.Perm(5) {
		p := parts[i]
		p.ID, p.DestAddr, p.SourceAddr = smpp.DeliverSM, "8613800000026", "8613800000025"
		p.RegisteredDelivery = 0
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := sc.srv.Deliver(ctx, "bridge", &p)
		cancel()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
	}
	testutil.WaitFor(t, "reassembled MESSAGE", 10*time.Second, func() bool { return len(rcpt.received()) == 1 })
	if got := rcpt.received()[0]; got != text {
		t.Fatalf("reassembled %q\nwant %q", got, text)
	}
}

// sendParts submits parts of a UDH-concatenated message as an ESME (our own
// client, so the parts can be sent one by one across a restart).
func sendParts(t *testing.T, addr string, parts []smstext.Part, dcs byte, seqs ...int) {
	t.Helper()
	c := smpp.NewClient(smpp.ClientConfig{Addr: addr, SystemID: "esme1", Password: "secret1", Bind: smpp.BindTransmitter})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for _, i := range seqs {
		p := parts[i]
		sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := c.Send(sctx, &smpp.PDU{ID: smpp.SubmitSM, SourceAddrTON: 1, SourceAddrNPI: 1, SourceAddr: "8613900000027",
			DestAddrTON: 1, DestAddrNPI: 1, DestAddr: "8613800000027", ESMClass: 0x40, DataCoding: dcs,
			ShortMessage: append(append([]byte{}, p.UDH...), p.Body...)})
		scancel()
		if err != nil || resp.MessageID == "" {
			t.Fatalf("part %d: %v", i, err)
		}
	}
}

func TestPartsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	flags := sipUserFlag("8613800000027", "pw")
	text := strings.Repeat("重启后长短信的各部分仍然在。", 12)
	dcs, parts, err := smstext.Split(text, smstext.Auto, 0x4242, true)
	if err != nil || len(parts) != 3 {
		t.Fatalf("split: %d parts, %v", len(parts), err)
	}
	b := startBridge(t, dir, flags...)
	sendParts(t, b.addrs.SMPP, parts, dcs, 2, 0)
	b.stop()

	b = startBridge(t, dir, flags...)
	u := startUA(t, "8613800000027", "pw")
	if code := u.register(t, b, 3600); code != 200 {
		t.Fatal(code)
	}
	sendParts(t, b.addrs.SMPP, parts, dcs, 1)
	testutil.WaitFor(t, "MESSAGE", 10*time.Second, func() bool { return len(u.received()) == 1 })
	if got := u.received()[0]; got != text {
		t.Fatalf("got %q", got)
	}
}

// A receipt for a Chinese message reaches the ESME in the coding it
// declares, within 254 octets: UCS-2, its quote shortened, decoded by the
// ESME as fiorix hands it over.
func TestChineseReceiptFitsItsCoding(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), "--smsc", sc.url())
	e := bindFiorix(t, b, "esme1", "secret1")
	const text = "我们明天上午十点在公司门口见面，请准时到达，谢谢大家" // 25 characters
	sm := e.submitForReceipt(t, "8613900000031", "8613700000031", pdutext.UCS2(text))
	testutil.WaitFor(t, "submit_sm at the SMSC", 10*time.Second, func() bool { return len(sc.received()) == 1 })
	sc.deliverReceipt(t, sc.submittedIDs()[0], "8613700000031", "DELIVRD")
	testutil.WaitFor(t, "receipt at the ESME", 10*time.Second, func() bool { return len(e.delivered()) == 1 })
	p := e.delivered()[0]
	f := p.Fields()
	dcs, raw := f[pdufield.DataCoding].Bytes(), f[pdufield.ShortMessage].Bytes()
	if len(dcs) != 1 || dcs[0] != 0x08 || len(raw) > 254 {
		t.Fatalf("receipt data_coding %v, %d octets; want UCS-2 (8) within 254", dcs, len(raw))
	}
	// Decoded the way the ESME would: by the coding the PDU declares.
	decoded := string(pdutext.UCS2(raw).Decode())
	r, err := smstext.ParseReceipt(decoded)
	if err != nil || r.ID != sm.RespID() || r.Stat != "DELIVRD" {
		t.Fatalf("receipt %q: %+v %v", decoded, r, err)
	}
	if r.Text == "" || !strings.HasPrefix(text, r.Text) {
		t.Fatalf("quoted %q, want the start of %q", r.Text, text)
	}
}
