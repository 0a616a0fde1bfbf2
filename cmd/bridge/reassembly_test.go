package main

import (
	"strings"
	"testing"
	"time"

	fsmpp "github.com/fiorix/go-smpp/smpp"
	"github.com/fiorix/go-smpp/smpp/pdu/pdufield"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutext"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/smstext"
)

// firstPart submits part 1 of 3 of the long message ref with a fiorix
// transceiver (8-bit reference UDH, GSM7 text).
func firstPart(t *testing.T, e *fiorixESME, src, dst string, ref byte, text string, receipt bool) {
	t.Helper()
	reg := pdufield.NoDeliveryReceipt
	if receipt {
		reg = pdufield.FinalDeliveryReceipt
	}
	udh := []byte{0x05, 0x00, 0x03, ref, 3, 1}
	_, err := e.tx.Submit(&fsmpp.ShortMessage{Src: src, Dst: dst, Text: pdutext.Raw(append(udh, text...)), ESMClass: 0x40,
		Register: reg, SourceAddrTON: 1, SourceAddrNPI: 1, DestAddrTON: 1, DestAddrNPI: 1})
	if err != nil {
		t.Fatalf("part 1 of ref %d: %v", ref, err)
	}
}

// TestReassemblyCapDeliversOldestPartial: past --reassembly-max-pending
// the oldest long message waiting for parts is delivered with what came,
// not dropped, under the default policy.
func TestReassemblyCapDeliversOldestPartial(t *testing.T) {
	b := startBridge(t, t.TempDir(), append(sipUserFlag("8613800000041", "pw"), "--reassembly-max-pending", "2")...)
	u := startUA(t, "8613800000041", "pw")
	if code := u.register(t, b, 3600); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	e := bindFiorix(t, b, "esme1", "secret1")
	for ref, text := range []string{"oldest first part", "second first part", "third first part"} {
		firstPart(t, e, "8613900000041", "8613800000041", byte(ref+1), text, false)
	}
	testutil.WaitFor(t, "the oldest, partial, at the UA", 10*time.Second, func() bool { return len(u.received()) == 1 })
	if got, want := u.received()[0], "oldest first part"+smstext.MissingMarker; got != want {
		t.Fatalf("UA got %q, want %q", got, want)
	}
}

// TestReassemblyCapDropTellsSender: under --reassembly-policy drop the
// message closed at the cap is not delivered, and its sender, who asked
// for receipts, gets an UNDELIV one.
func TestReassemblyCapDropTellsSender(t *testing.T) {
	b := startBridge(t, t.TempDir(), append(sipUserFlag("8613800000042", "pw"),
		"--reassembly-max-pending", "1", "--reassembly-policy", "drop")...)
	u := startUA(t, "8613800000042", "pw")
	if code := u.register(t, b, 3600); code != 200 {
		t.Fatalf("REGISTER: %d", code)
	}
	e := bindFiorix(t, b, "esme1", "secret1")
	firstPart(t, e, "8613900000042", "8613800000042", 7, "dropped first part", true)
	firstPart(t, e, "8613900000042", "8613800000042", 8, "waiting first part", true)
	testutil.WaitFor(t, "receipt at the ESME", 10*time.Second, func() bool { return len(e.delivered()) == 1 })
	p := e.delivered()[0]
	txt, err := smstext.Decode(p.Fields()[pdufield.DataCoding].Bytes()[0], p.Fields()[pdufield.ShortMessage].Bytes())
	if err != nil || !strings.Contains(txt, "stat:UNDELIV") || !strings.Contains(txt, "id:sar-0007") {
		t.Fatalf("receipt %q (%v), want UNDELIV for sar-0007", txt, err)
	}
	time.Sleep(200 * time.Millisecond)
	if got := u.received(); len(got) != 0 {
		t.Fatalf("dropped message delivered: %q", got)
	}
}
