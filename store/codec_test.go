package store

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/bridge/msg"
)

func sampleRecord() Record {
	m := newMsg(7)
	m.ID = "0123456789abcdefghij"
	m.Accepted = time.Unix(1700000000, 42)
	return Record{
		Msg:         *m,
		State:       msg.InFlight,
		Attempts:    3,
		NextAttempt: time.Unix(1700000100, 0),
		Events: []Event{
			{State: msg.Accepted, At: m.Accepted},
			{State: msg.Routed, At: m.Accepted.Add(time.Millisecond), Detail: "im sip:alice@example.com"},
			{State: msg.InFlight, At: m.Accepted.Add(2 * time.Millisecond), Detail: "480 Temporarily Unavailable"},
		},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	routed := sampleRecord()
	routed.Msg.Route = "esme:carrier1"
	dedup := routed
	dedup.dedup, dedup.dedupUntil = "0123456789abcdef", 1700000120
	grouped := dedup
	grouped.Msg.Group = "hikers"
	reported := grouped
	reported.Msg.ReportURL = "https://client.example/dlr?k=1"
	for _, r := range []Record{sampleRecord(), routed, dedup, grouped, reported, {State: msg.Accepted, Msg: msg.Message{ID: "x"}}} {
		b := appendRecord(nil, &r)
		got, err := decodeRecord(r.Msg.ID, b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(appendRecord(nil, &got), b) {
			t.Fatalf("round trip differs:\n%+v\n%+v", got, r)
		}
		sameMsg(t, got.Msg, r.Msg)
		if got.Msg.Route != r.Msg.Route || got.Msg.Group != r.Msg.Group || got.Msg.ReportURL != r.Msg.ReportURL || got.dedup != r.dedup || got.dedupUntil != r.dedupUntil {
			t.Fatalf("route %q, dedup %q until %d; want %q, %q, %d", got.Msg.Route, got.dedup, got.dedupUntil, r.Msg.Route, r.dedup, r.dedupUntil)
		}
		if got.State != r.State || got.Attempts != r.Attempts || !got.NextAttempt.Equal(r.NextAttempt) || len(got.Events) != len(r.Events) {
			t.Fatalf("got %+v want %+v", got, r)
		}
		if mayHaveDedupKey(b) != (r.dedup != "") {
			t.Fatalf("mayHaveDedupKey = %v for dedup key %q", !(r.dedup != ""), r.dedup)
		}
	}
	r := sampleRecord()
	t.Logf("sample record encodes to %d bytes", len(appendRecord(nil, &r)))
}

func TestDecodeRejectsCorrupt(t *testing.T) {
	r := sampleRecord()
	b := appendRecord(nil, &r)
	for i := 0; i < len(b); i++ {
		if _, err := decodeRecord("x", b[:i]); !errors.Is(err, errCorrupt) {
			t.Fatalf("truncated at %d: %v", i, err)
		}
	}
	if _, err := decodeRecord("x", append(b, 0)); !errors.Is(err, errCorrupt) {
		t.Fatal("trailing byte accepted")
	}
	bad := bytes.Clone(b)
	bad[1] = 99
	if _, err := decodeRecord("x", bad); !errors.Is(err, errCorrupt) {
		t.Fatal("bad state accepted")
	}
}

func TestHistoryCapped(t *testing.T) {
	r := sampleRecord()
	for i := 0; i < 3*maxEvents; i++ {
		r.addEvent(Event{State: msg.Routed, Detail: strings.Repeat("x", i%5)})
	}
	if len(r.Events) != maxEvents || r.Events[0].State != msg.Accepted {
		t.Fatalf("%d events, first %v", len(r.Events), r.Events[0].State)
	}
}

// FuzzDecodeRecord: whatever bytes are on disk, decoding never panics, and
// what it accepts re-encodes to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	r := sampleRecord()
	f.Add(appendRecord(nil, &r))
	r.dedup, r.dedupUntil = "client-key", 1700000000
	f.Add(appendRecord(nil, &r))
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := decodeRecord("0123456789abcdefghij", b)
		if err != nil {
			return
		}
		if rec.dedup != "" && !mayHaveDedupKey(b) {
			t.Fatalf("record with dedup key %q read as having none", rec.dedup)
		}
		if rec.dedup == "" && mayHaveDedupKey(b) {
			t.Fatal("record without a dedup key read as having one")
		}
		if again := appendRecord(nil, &rec); !bytes.Equal(again, b) {
			// varints have one canonical form each, so only non-canonical input may differ
			if _, err := decodeRecord("0123456789abcdefghij", again); err != nil {
				t.Fatalf("re-encoding of accepted input does not decode: %v", err)
			}
		}
	})
}

func TestIDEncoding(t *testing.T) {
	var b [8]byte
	prev := ""
	for _, v := range []uint64{0, 1, 31, 32, 1 << 20, 1<<40 - 1} {
		putB32(b[:], v)
		if s := string(b[:]); s <= prev {
			t.Fatalf("%d -> %s not after %s", v, s, prev)
		} else {
			prev = s
		}
	}
	if prev != "vvvvvvvv" {
		t.Fatalf("max counter = %s", prev)
	}
	var g idGen
	g.counter.Store(maxCounter)
	if _, err := g.next(); !errors.Is(err, errIDSpace) {
		t.Fatalf("counter overflow: %v", err)
	}
}

// A record written before schedules and priorities existed, by that
// encoder: it must still decode, as what it was.
const olderRecord = "01030380a087eaafc5ce972f0e2b38363133383030303030303037157369703a616c69636540" +
	"6578616d706c652e636f6d1268656c6c6f203720e2809420e4bda0e5a5bd0565736d65310137" +
	"0112d480d0e2c6bfce972f8482f093defb93de3404736d73631568747470733a2f2f632e6578" +
	"616d706c652f646c720301d480d0e2c6bfce972f0002d489cae3c6bfce972f18696d20736970" +
	"3a616c696365406578616d706c652e636f6d03d492c4e4c6bfce972f1b3438302054656d706f" +
	"726172696c7920556e617661696c61626c65"

func TestOlderRecordDecodes(t *testing.T) {
	b, err := hex.DecodeString(olderRecord)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRecord("0123456789abcdefghij", b)
	if err != nil {
		t.Fatal(err)
	}
	want := sampleRecord()
	want.Msg.Route, want.Msg.ReportURL = "smsc", "https://c.example/dlr"
	sameMsg(t, got.Msg, want.Msg)
	if !got.Msg.NotBefore.IsZero() || got.Msg.Priority != 0 || got.Msg.Route != "smsc" || got.Msg.ReportURL != want.Msg.ReportURL || len(got.Events) != 3 {
		t.Fatalf("older record decodes to %+v", got)
	}
}

func TestScheduleAndPriorityRoundTrip(t *testing.T) {
	r := sampleRecord()
	r.Msg.NotBefore = time.Unix(1700003600, 5)
	r.Msg.Priority = 3
	r.Msg.ReportURL = "https://c.example/dlr"
	got, err := decodeRecord(r.Msg.ID, appendRecord(nil, &r))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Msg.NotBefore.Equal(r.Msg.NotBefore) || got.Msg.Priority != 3 || got.Msg.ReportURL != r.Msg.ReportURL {
		t.Fatalf("got not-before %v priority %d url %q", got.Msg.NotBefore, got.Msg.Priority, got.Msg.ReportURL)
	}
	st := sampleRecord()
	st.State = msg.Cancelled
	if got, err := decodeRecord(st.Msg.ID, appendRecord(nil, &st)); err != nil || got.State != msg.Cancelled {
		t.Fatalf("cancelled record: %v %v", got.State, err)
	}
}
