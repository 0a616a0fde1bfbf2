package smppgw

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsbridge/bridge/presence"
	"github.com/smsbridge/bridge/router"
	"github.com/smsbridge/bridge/smpp"
	"github.com/smsbridge/bridge/store"
)

// rig: the gateway behind a real SMPP server, over the real router and
// store; an ESME is our SMPP client.
type rig struct {
	db  *store.DB
	gw  *Gateway
	cli *smpp.Client
}

func newRig(t *testing.T) *rig { return newRigStore(t, store.Options{}, store.Faults{}) }

func newRigStore(t *testing.T, opts store.Options, faults store.Faults) *rig {
	t.Helper()
	db, err := store.OpenWithFaults(opts, faults)
	if err != nil {
		t.Fatal(err)
	}
	pres, _ := presence.Open(presence.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	rt := router.New(router.Config{}, db, pres)
	go rt.Run(ctx)
	g := New(Config{CountryCode: "86", KV: db, Auth: func(string, string, smpp.CommandID, net.Addr) uint32 { return 0 }}, rt)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(ctx, ln)
	cli := smpp.NewClient(smpp.ClientConfig{Addr: ln.Addr().String(), SystemID: "esme1"})
	go cli.Run(ctx)
	return &rig{db: db, gw: g, cli: cli}
}

func (r *rig) submit(t *testing.T, p *smpp.PDU) (*smpp.PDU, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.ID = smpp.SubmitSM
	return r.cli.Send(ctx, p)
}

func status(err error) uint32 {
	var se *smpp.StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	if err != nil {
		return 0xFFFFFFFF
	}
	return 0
}

// A submit_sm is staged on the session's read goroutine and answered when
// its commit ends: a failed commit must answer ESME_RSYSERR with no id.
func TestStagedSubmitRefusedWhenCommitFails(t *testing.T) {
	var failing atomic.Bool
	r := newRigStore(t, store.Options{}, store.Faults{Sync: func() error {
		if failing.Load() {
			return errors.New("injected: disk full")
		}
		return nil
	}})
	p := smpp.PDU{SourceAddrTON: 1, SourceAddrNPI: 1, SourceAddr: "8613900000001", DestAddrTON: 1, DestAddrNPI: 1, DestAddr: "8613800000001", ShortMessage: []byte("ok")}
	resp, err := r.submit(t, &p)
	if err != nil || resp.MessageID == "" {
		t.Fatalf("submit with a good disk: %v", err)
	}
	failing.Store(true)
	p.ShortMessage = []byte("refused")
	resp, err = r.submit(t, &p)
	if st := status(err); st != smpp.ESME_RSYSERR || resp == nil || resp.MessageID != "" {
		t.Fatalf("submit with a failing disk: status %#x, resp %+v; want ESME_RSYSERR and no id", st, resp)
	}
}

func TestSubmitStatuses(t *testing.T) {
	r := newRig(t)
	resp, err := r.submit(t, &smpp.PDU{SourceAddrTON: 1, SourceAddrNPI: 1, SourceAddr: "8613900000001", DestAddrTON: 1, DestAddrNPI: 1, DestAddr: "8613800000001", ShortMessage: []byte("ok")})
	if err != nil || resp.MessageID == "" {
		t.Fatalf("good submit: %v", err)
	}
	if rec, err := r.db.Message(resp.MessageID); err != nil || rec.Msg.Text != "ok" || rec.Msg.To != "+8613800000001" {
		t.Fatalf("stored record: %+v %v", rec.Msg, err)
	}
	for name, c := range map[string]struct {
		p    smpp.PDU
		want uint32
	}{
		"alphanumeric destination": {smpp.PDU{SourceAddr: "8613900000001", DestAddrTON: 5, DestAddr: "BANK", ShortMessage: []byte("x")}, smpp.ESME_RINVDSTADR},
		"empty destination":        {smpp.PDU{SourceAddr: "8613900000001", ShortMessage: []byte("x")}, smpp.ESME_RINVDSTADR},
		"odd UCS-2":                {smpp.PDU{SourceAddr: "8613900000001", DestAddr: "8613800000001", DataCoding: 8, ShortMessage: []byte{0x4f}}, smpp.ESME_RINVDCS},
		"bad UDH":                  {smpp.PDU{SourceAddr: "8613900000001", DestAddr: "8613800000001", ESMClass: 0x40, ShortMessage: []byte{0x09, 0x00}}, smpp.ESME_RINVESMCLASS},
	} {
		_, err := r.submit(t, &c.p)
		if got := status(err); got != c.want {
			t.Errorf("%s: status 0x%x (%v), want 0x%x", name, got, err, c.want)
		}
	}
}

// When the store cannot take the message, the ESME gets an error status,
// never ESME_ROK.
func TestStoreFailureIsNotAcknowledged(t *testing.T) {
	r := newRig(t)
	if _, err := r.submit(t, &smpp.PDU{SourceAddr: "8613900000001", DestAddr: "8613800000001", ShortMessage: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	r.db.Close() // the disk is gone
	_, err := r.submit(t, &smpp.PDU{SourceAddr: "8613900000001", DestAddr: "8613800000001", ShortMessage: []byte("after")})
	if got := status(err); got != smpp.ESME_RSYSERR {
		t.Fatalf("submit with the store down: status 0x%x (%v), want ESME_RSYSERR", got, err)
	}
}

func TestIDCandidates(t *testing.T) {
	for id, want := range map[string]string{"A001": "40961", "0000a001": "40961", "40961": "a001"} {
		if c := idCandidates(id); !slices.Contains(c, want) {
			t.Errorf("idCandidates(%q) = %v, want it to contain %q", id, c, want)
		}
	}
}

func TestParseSMPPTime(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"000001020304000R": now.AddDate(0, 0, 1).Add(2*time.Hour + 3*time.Minute + 4*time.Second),
		"261124120000000+": time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC),
		"261124120000032+": time.Date(2026, 11, 24, 4, 0, 0, 0, time.UTC), // UTC+8 (32 quarters)
		"261124120000504-": time.Date(2026, 11, 24, 13, 0, 0, 500_000_000, time.UTC),
	} {
		got, err := ParseSMPPTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseSMPPTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "2611241200000000", "261324120000000+", "abcdefghijklmno+"} {
		if _, err := ParseSMPPTime(bad, now); err == nil {
			t.Errorf("ParseSMPPTime(%q) accepted", bad)
		}
	}
}

func TestParseRoute(t *testing.T) {
	if r, err := ParseRoute("esme:rx1"); err != nil || r.ESME != "rx1" {
		t.Fatal(r, err)
	}
	if r, err := ParseRoute("smsc"); err != nil || !r.Upstream {
		t.Fatal(r, err)
	}
	if _, err := ParseRoute("carrier-pigeon"); err == nil {
		t.Fatal("bad route accepted")
	}
}

func FuzzParseSMPPTime(f *testing.F) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseSMPPTime(s, now)
		if err == nil && len(s) != 16 {
			t.Fatalf("accepted %q of length %d", s, len(s))
		}
		_ = got
	})
}
