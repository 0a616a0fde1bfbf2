package smpp

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
)

func sampleSubmit() *PDU {
	p := &PDU{
		ID: SubmitSM, Seq: 7, ServiceType: "CMT",
		SourceAddrTON: 1, SourceAddrNPI: 1, SourceAddr: "8613900000009",
		DestAddrTON: 1, DestAddrNPI: 1, DestAddr: "8613800000001",
		ESMClass: 0x40, RegisteredDelivery: 1, DataCoding: 8,
		ValidityPeriod: "000001000000000R",
		ShortMessage:   []byte{0x05, 0x00, 0x03, 0x01, 0x02, 0x01, 0x4f, 0x60, 0x59, 0x7d},
	}
	p.SetTLV(TagSARMsgRefNum, []byte{0, 1})
	return p
}

func roundTrip(t *testing.T, p *PDU) *PDU {
	t.Helper()
	b, err := p.AppendTo(nil)
	if err != nil {
		t.Fatalf("encode %v: %v", p.ID, err)
	}
	var q PDU
	if err := q.Decode(b); err != nil {
		t.Fatalf("decode %v: %v", p.ID, err)
	}
	return &q
}

func TestPDURoundTrip(t *testing.T) {
	cases := []*PDU{
		sampleSubmit(),
		{ID: BindTransceiver, Seq: 1, SystemID: "esme1", Password: "secret1", SystemType: "VMA", InterfaceVersion: 0x34, AddrTON: 1, AddrNPI: 1, AddressRange: "^86"},
		{ID: BindTransmitterResp, Seq: 1, SystemID: "bridge"},
		{ID: SubmitSMResp, Seq: 9, MessageID: "0A1B2C"},
		{ID: DeliverSM, Seq: 3, SourceAddr: "1", DestAddr: "2", ESMClass: 4, ShortMessage: []byte("id:1 stat:DELIVRD")},
		{ID: DataSM, Seq: 4, SourceAddr: "1", DestAddr: "2", DataCoding: 8, TLVs: []TLV{{Tag: TagMessagePayload, Value: []byte("payload")}}},
		{ID: DataSMResp, Seq: 4, MessageID: "x"},
		{ID: QuerySM, Seq: 5, MessageID: "abc", SourceAddr: "123"},
		{ID: QuerySMResp, Seq: 5, MessageID: "abc", FinalDate: "", MessageState: 2, ErrorCode: 0},
		{ID: QuerySMResp, Seq: 5, MessageID: "abc", FinalDate: "261207103000000+", MessageState: 4, ErrorCode: 1},
		{ID: CancelSM, Seq: 6, ServiceType: "CMT", MessageID: "a1b2", SourceAddrTON: 1, SourceAddrNPI: 1, SourceAddr: "8613800000001", DestAddrTON: 1, DestAddrNPI: 1, DestAddr: "8613700000002"},
		{ID: CancelSMResp, Seq: 6},
		{ID: ReplaceSM, Seq: 7, MessageID: "a1b2", SourceAddrTON: 1, SourceAddrNPI: 1, SourceAddr: "8613800000001", ScheduleDeliveryTime: "000000001000000R", ValidityPeriod: "261207103000000+", RegisteredDelivery: 1, ShortMessage: []byte("new text")},
		{ID: ReplaceSMResp, Seq: 7, Status: ESME_RREPLACEFAIL},
		{ID: EnquireLink, Seq: 8},
		{ID: Unbind, Seq: 10},
		{ID: GenericNack, Seq: 11, Status: ESME_RINVCMDID},
	}
	for _, p := range cases {
		q := roundTrip(t, p)
		q.buf = nil
		want := *p
		if len(want.ShortMessage) == 0 {
			want.ShortMessage = q.ShortMessage // empty slice vs nil
		}
		if len(want.TLVs) == 0 {
			want.TLVs = q.TLVs
		}
		if !reflect.DeepEqual(*q, want) {
			t.Errorf("%v round trip:\n got %+v\nwant %+v", p.ID, *q, want)
		}
	}
}

// A submit_sm as the SMPP 3.4 spec lays it out, octet by octet.
func TestSubmitSMWireForm(t *testing.T) {
	p := &PDU{ID: SubmitSM, Seq: 2, SourceAddrTON: 1, SourceAddrNPI: 1, SourceAddr: "123",
		DestAddrTON: 1, DestAddrNPI: 1, DestAddr: "456", ShortMessage: []byte("hi")}
	b, err := p.AppendTo(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := "00000029" + "00000004" + "00000000" + "00000002" +
		"00" + "0101" + "31323300" + "0101" + "34353600" + "000000" + "00" + "00" + "00000000" + "02" + "6869"
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("wire form\n got %s\nwant %s", got, want)
	}
}

func TestErrorResponsesHaveNoBody(t *testing.T) {
	for _, id := range []CommandID{SubmitSMResp, BindTransceiverResp, DeliverSMResp} {
		b, err := (&PDU{ID: id, Seq: 1, Status: ESME_RTHROTTLED, MessageID: "x", SystemID: "y"}).AppendTo(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != HeaderLen {
			t.Errorf("%v with error status: %d octets, want header only", id, len(b))
		}
		var q PDU
		if err := q.Decode(b); err != nil || q.Status != ESME_RTHROTTLED {
			t.Errorf("%v: decode %v status %x", id, err, q.Status)
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	good, _ := sampleSubmit().AppendTo(nil)
	cases := map[string]struct {
		b      []byte
		status uint32
	}{
		"short header":   {good[:10], ESME_RINVCMDLEN},
		"length lies":    {append(append([]byte{}, good...), 0), ESME_RINVCMDLEN},
		"unknown cmd":    {[]byte{0, 0, 0, 16, 0, 0, 0x77, 0x77, 0, 0, 0, 0, 0, 0, 0, 1}, ESME_RINVCMDID},
		"no NUL":         {fixLen(append(hdr(SubmitSM), 'a', 'b', 'c')), ESME_RINVCMDLEN},
		"sm_length past": {fixLen(append(hdr(SubmitSM), 0, 1, 1, '1', 0, 1, 1, '2', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200, 'x')), ESME_RINVMSGLEN},
		"long sysid":     {fixLen(append(hdr(BindTransmitter), []byte("abcdefghijklmnopqrstu\x00p\x00\x00\x34\x00\x00\x00")...)), ESME_RINVPARLEN},
		"tlv truncated":  {fixLen(append(noTLV(), 0x02, 0x0C, 0x00, 0x09, 0x01)), ESME_RINVPARLEN},
		"tlv header cut": {fixLen(append(noTLV(), 0x02, 0x0C, 0x00)), ESME_RINVOPTPARSTREAM},
	}
	for name, c := range cases {
		var p PDU
		err := p.Decode(c.b)
		var de *DecodeError
		if !errors.As(err, &de) || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want a DecodeError", name, err)
			continue
		}
		if de.Status != c.status {
			t.Errorf("%s: status 0x%x, want 0x%x (%v)", name, de.Status, c.status, err)
		}
	}
}

func noTLV() []byte {
	p := sampleSubmit()
	p.TLVs = nil
	b, _ := p.AppendTo(nil)
	return b
}

func hdr(id CommandID) []byte {
	return []byte{0, 0, 0, 0, byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id), 0, 0, 0, 0, 0, 0, 0, 42}
}

func fixLen(b []byte) []byte {
	n := len(b)
	b[0], b[1], b[2], b[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
	return b
}

func TestReadPDUStream(t *testing.T) {
	var stream []byte
	stream, _ = sampleSubmit().AppendTo(stream)
	stream = append(stream, fixLen(append(hdr(SubmitSM), 'x'))...) // malformed but framed
	stream, _ = (&PDU{ID: EnquireLink, Seq: 99}).AppendTo(stream)
	r := bufio.NewReader(bytes.NewReader(stream))
	var p PDU
	if err := ReadPDU(r, &p, MaxPDU); err != nil || p.DestAddr != "8613800000001" {
		t.Fatalf("first: %v %+v", err, p)
	}
	if err := ReadPDU(r, &p, MaxPDU); !errors.Is(err, ErrMalformed) || p.Seq != 42 {
		t.Fatalf("second: %v seq %d, want malformed with seq 42", err, p.Seq)
	}
	if err := ReadPDU(r, &p, MaxPDU); err != nil || p.ID != EnquireLink || p.Seq != 99 {
		t.Fatalf("third: %v %+v: stream lost sync after a malformed pdu", err, p)
	}
	bad := bufio.NewReader(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1}))
	if err := ReadPDU(bad, &p, MaxPDU); !errors.Is(err, ErrFraming) {
		t.Fatalf("huge length: %v, want ErrFraming", err)
	}
}

func TestShortMessageTooLong(t *testing.T) {
	p := &PDU{ID: SubmitSM, ShortMessage: make([]byte, 255)}
	if _, err := p.AppendTo(nil); err == nil {
		t.Fatal("255-octet short_message encoded; want an error")
	}
}

func TestCheckPassword(t *testing.T) {
	if !CheckPassword("secret", "secret") || CheckPassword("secret", "secreT") || CheckPassword("secret", "") {
		t.Fatal("CheckPassword wrong")
	}
}

func FuzzDecode(f *testing.F) {
	for _, p := range []*PDU{sampleSubmit(), {ID: BindTransceiver, SystemID: "a", Password: "b"}, {ID: EnquireLink}} {
		b, _ := p.AppendTo(nil)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p PDU
		if err := p.Decode(b); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not ErrMalformed: %v", err)
			}
			return
		}
		// What decodes must re-encode and decode to the same thing.
		out, err := p.AppendTo(nil)
		if err != nil {
			return // e.g. response with status and body: we drop the body
		}
		var q PDU
		if err := q.Decode(out); err != nil {
			t.Fatalf("re-decode of %x: %v", out, err)
		}
		p.buf, q.buf = nil, nil
		if len(p.ShortMessage) == 0 {
			p.ShortMessage = nil
		}
		if len(q.ShortMessage) == 0 {
			q.ShortMessage = nil
		}
		if len(p.TLVs) == 0 {
			p.TLVs = nil
		}
		if len(q.TLVs) == 0 {
			q.TLVs = nil
		}
		if p.Status == ESME_ROK && !reflect.DeepEqual(p, q) {
			t.Fatalf("re-decode differs:\n%+v\n%+v", p, q)
		}
	})
}

func BenchmarkDecodeSubmitSM(b *testing.B) {
	wire, _ := sampleSubmit().AppendTo(nil)
	var p PDU
	b.ReportAllocs()
	b.SetBytes(int64(len(wire)))
	for b.Loop() {
		if err := p.Decode(wire); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeSubmitSM(b *testing.B) {
	p := sampleSubmit()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = p.AppendTo(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}
