package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/smsbridge/bridge/msg"
)

// Record encoding (version 1), compact and allocation-light, not JSON:
//
//	0x01 state attempts:uvarint next:varint-unixnano
//	from to text account ref: uvarint length + bytes
//	kind flags(bit0 receipt, bit1 route) accepted:varint-unixnano expires:varint-unixnano
//	[route: uvarint length + bytes, only with flags bit1]
//	[dedup key: uvarint length + bytes, until: varint unix seconds, only with flags bit2]
//	[group: uvarint length + bytes, only with flags bit3]
//	[report URL: uvarint length + bytes, only with flags bit4]
//	[not before: varint-unixnano, only with flags bit5]
//	[priority: one byte, only with flags bit6]
//	nevents:uvarint { state at:varint-unixnano detail:uvarint length + bytes }
//
// The message ID is the key and is not repeated. A zero time is encoded as 0.
const (
	codecVersion   = 1
	maxRecordBytes = 256 << 10 // refuse absurd records rather than feed badger
	maxEvents      = 64        // history cap: the first event and the latest ones are kept
)

var errCorrupt = errors.New("store: corrupt record")

func appendRecord(dst []byte, r *Record) []byte {
	dst = append(dst, codecVersion, byte(r.State))
	dst = binary.AppendUvarint(dst, uint64(max(r.Attempts, 0)))
	dst = binary.AppendVarint(dst, nanos(r.NextAttempt))
	m := &r.Msg
	dst = appendString(dst, string(m.From))
	dst = appendString(dst, string(m.To))
	dst = appendString(dst, m.Text)
	dst = appendString(dst, m.Origin.Account)
	dst = appendString(dst, m.Origin.Ref)
	var flags byte
	if m.Receipt {
		flags |= 1
	}
	if m.Route != "" {
		flags |= 2
	}
	if r.dedup != "" {
		flags |= 4
	}
	if m.Group != "" {
		flags |= 8
	}
	if m.ReportURL != "" {
		flags |= 16
	}
	if !m.NotBefore.IsZero() {
		flags |= 32
	}
	if m.Priority != 0 {
		flags |= 64
	}
	dst = append(dst, byte(m.Origin.Kind), flags)
	dst = binary.AppendVarint(dst, nanos(m.Accepted))
	dst = binary.AppendVarint(dst, nanos(m.Expires))
	if m.Route != "" {
		dst = appendString(dst, m.Route)
	}
	if r.dedup != "" {
		dst = appendString(dst, r.dedup)
		dst = binary.AppendVarint(dst, r.dedupUntil)
	}
	if m.Group != "" {
		dst = appendString(dst, m.Group)
	}
	if m.ReportURL != "" {
		dst = appendString(dst, m.ReportURL)
	}
	if !m.NotBefore.IsZero() {
		dst = binary.AppendVarint(dst, m.NotBefore.UnixNano())
	}
	if m.Priority != 0 {
		dst = append(dst, m.Priority)
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.Events)))
	for i := range r.Events {
		e := &r.Events[i]
		dst = append(dst, byte(e.State))
		dst = binary.AppendVarint(dst, nanos(e.At))
		dst = appendString(dst, e.Detail)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.fail("truncated")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) string() string { return string(r.bytes()) }

// bytes reads a length-prefixed field; the result aliases the input.
func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("string length past end")
		return nil
	}
	b := r.b[:n:n]
	r.b = r.b[n:]
	return b
}

func (r *reader) fail(why string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", errCorrupt, why)
	}
}

// mayHaveDedupKey reports whether the encoded record b carries a
// duplicate-suppression key, reading only up to its flags: Open reloads
// just those records' keys. Whatever does not parse says yes, so that the
// full decode, not this, decides about a damaged record.
func mayHaveDedupKey(b []byte) bool {
	r := reader{b: b}
	if r.byte() != codecVersion {
		return true
	}
	r.byte() // state
	r.uvarint()
	r.varint()
	for range 5 { // from, to, text, account, ref
		r.bytes()
	}
	r.byte() // origin kind
	flags := r.byte()
	return r.err != nil || flags&4 != 0
}

func decodeRecord(id string, b []byte) (Record, error) {
	r := reader{b: b}
	var rec Record
	if v := r.byte(); r.err == nil && v != codecVersion {
		return Record{}, fmt.Errorf("%w: version %d", errCorrupt, v)
	}
	rec.State = msg.State(r.byte())
	att := r.uvarint()
	if att > 1<<31 {
		r.fail("attempts out of range")
	}
	rec.Attempts = int(att)
	rec.NextAttempt = fromNanos(r.varint())
	m := &rec.Msg
	m.ID = id
	m.From = msg.Address(r.string())
	m.To = msg.Address(r.string())
	m.Text = r.string()
	m.Origin.Account = r.string()
	m.Origin.Ref = r.string()
	m.Origin.Kind = msg.Kind(r.byte())
	flags := r.byte()
	m.Receipt = flags&1 != 0
	m.Accepted = fromNanos(r.varint())
	m.Expires = fromNanos(r.varint())
	if flags&2 != 0 {
		if m.Route = r.string(); r.err == nil && m.Route == "" {
			r.fail("empty route")
		}
	}
	if flags&4 != 0 {
		if rec.dedup = r.string(); r.err == nil && rec.dedup == "" {
			r.fail("empty dedup key")
		}
		rec.dedupUntil = r.varint()
	}
	if flags&8 != 0 {
		if m.Group = r.string(); r.err == nil && m.Group == "" {
			r.fail("empty group")
		}
	}
	if flags&16 != 0 {
		if m.ReportURL = r.string(); r.err == nil && m.ReportURL == "" {
			r.fail("empty report URL")
		}
	}
	if flags&32 != 0 {
		if m.NotBefore = fromNanos(r.varint()); r.err == nil && m.NotBefore.IsZero() {
			r.fail("zero schedule")
		}
	}
	if flags&64 != 0 {
		if m.Priority = r.byte(); r.err == nil && m.Priority == 0 {
			r.fail("zero priority")
		}
	}
	if flags&^127 != 0 {
		r.fail("unknown flags")
	}
	n := r.uvarint()
	if n > uint64(len(r.b)) { // every event takes at least 3 bytes: bounds the allocation
		r.fail("event count past end")
	}
	if r.err == nil && n > 0 {
		rec.Events = make([]Event, n)
		for i := range rec.Events {
			e := &rec.Events[i]
			e.State = msg.State(r.byte())
			e.At = fromNanos(r.varint())
			e.Detail = r.string()
			if r.err == nil && !e.State.Valid() {
				r.fail("bad event state")
			}
		}
	}
	if r.err == nil && !rec.State.Valid() {
		r.fail("bad state")
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("trailing bytes")
	}
	if r.err != nil {
		return Record{}, fmt.Errorf("record %s: %w", id, r.err)
	}
	return rec, nil
}
