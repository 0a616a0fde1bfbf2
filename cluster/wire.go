package cluster

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// A delivery request crosses nodes as a compact binary record rather than
// JSON: decoding a request's JSON was a fifth of the CPU of a crossing.
// The first byte is the format; JSON ('{') is still read, from nodes that
// send it.

const wireV1 = 1

// maxWireString bounds one string of a request: a text of 255 parts of
// UCS-2 is far below it, a corrupt length is refused before allocating.
const maxWireString = 1 << 20

var errWire = errors.New("cluster: malformed delivery request")

// appendRequest encodes the deliverRequest of m, b and timeoutMS without
// copying them into one; every field of msg.Message and presence.Binding
// is written (TestWireCoversEveryField fails when one is added and not).
func appendRequest(dst []byte, m *msg.Message, b *presence.Binding, timeoutMS int64) []byte {
	dst = append(dst, wireV1)
	dst = binary.AppendVarint(dst, timeoutMS)
	for _, s := range []string{m.ID, string(m.From), string(m.To), m.Text} {
		dst = appendWireString(dst, s)
	}
	dst = binary.AppendUvarint(dst, uint64(m.Origin.Kind))
	dst = appendWireString(dst, m.Origin.Account)
	dst = appendWireString(dst, m.Origin.Ref)
	dst = appendBool(dst, m.Receipt)
	dst = appendTime(dst, m.Accepted)
	dst = appendTime(dst, m.Expires)
	dst = appendTime(dst, m.NotBefore)
	dst = append(dst, m.Priority)
	for _, s := range []string{m.Route, m.Group, m.ReportURL, m.IdempotencyKey} {
		dst = appendWireString(dst, s)
	}
	for _, s := range []string{string(b.AOR), b.Contact, b.Via} {
		dst = appendWireString(dst, s)
	}
	dst = appendTime(dst, b.Expires)
	dst = appendTime(dst, b.Updated)
	dst = append(dst, byte(b.Show))
	dst = binary.AppendVarint(dst, int64(b.Priority))
	return appendWireString(dst, b.Node)
}

// decodeRequest reads a request in either format.
func decodeRequest(data []byte, r *deliverRequest) error {
	if len(data) > 0 && data[0] == '{' {
		return json.Unmarshal(data, r)
	}
	d := wireReader{b: data}
	if d.byte() != wireV1 {
		return fmt.Errorf("%w: unknown format", errWire)
	}
	m, b := &r.Message, &r.Binding
	r.TimeoutMS = d.varint()
	m.ID = d.string()
	m.From = msg.Address(d.string())
	m.To = msg.Address(d.string())
	m.Text = d.string()
	kind := d.uvarint()
	if kind > math.MaxUint8 {
		d.fail()
	}
	m.Origin.Kind = msg.Kind(kind)
	m.Origin.Account = d.string()
	m.Origin.Ref = d.string()
	m.Receipt = d.byte() != 0
	m.Accepted = d.time()
	m.Expires = d.time()
	m.NotBefore = d.time()
	m.Priority = d.byte()
	m.Route = d.string()
	m.Group = d.string()
	m.ReportURL = d.string()
	m.IdempotencyKey = d.string()
	b.AOR = msg.Address(d.string())
	b.Contact = d.string()
	b.Via = d.string()
	b.Expires = d.time()
	b.Updated = d.time()
	b.Show = presence.Show(d.byte())
	p := d.varint()
	if p < math.MinInt32 || p > math.MaxInt32 {
		d.fail()
	}
	b.Priority = int(p)
	b.Node = d.string()
	if d.bad || len(d.b) != 0 {
		return fmt.Errorf("%w: %d bytes", errWire, len(data))
	}
	return nil
}

func appendWireString(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

func appendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// appendTime writes 0 for the zero time, else 1 and the Unix nanoseconds
// (which cover 1678–2262).
func appendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, 0)
	}
	return binary.AppendVarint(append(dst, 1), t.UnixNano())
}

// wireReader reads a request; the first fault sets bad, and every read
// after it returns zero values.
type wireReader struct {
	b   []byte
	bad bool
}

func (d *wireReader) fail() { d.bad, d.b = true, nil }

func (d *wireReader) byte() byte {
	if len(d.b) == 0 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *wireReader) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *wireReader) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *wireReader) string() string {
	n := d.uvarint()
	if n > maxWireString || n > uint64(len(d.b)) {
		d.fail()
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

func (d *wireReader) time() time.Time {
	switch d.byte() {
	case 0:
		return time.Time{}
	case 1:
		return time.Unix(0, d.varint())
	}
	d.fail()
	return time.Time{}
}
