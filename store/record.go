package store

import (
	"fmt"
	"slices"
	"time"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/smstext"
)

// Event is one step of a message's history.
type Event struct {
	State  msg.State
	At     time.Time
	Detail string // e.g. "im sip:alice@example.com", "sms smsc", "480 Temporarily Unavailable"
}

// Record is a message with its state and history.
type Record struct {
	Msg         msg.Message
	State       msg.State
	Events      []Event // oldest first; capped at 64 (the first and the latest are kept)
	Attempts    int
	NextAttempt time.Time // zero = not scheduled

	// The duplicate-suppression key the message was accepted under
	// (Stage with a Dedup key) and until when (unix seconds) it suppresses copies.
	dedup      string
	dedupUntil int64
}

func (r *Record) addEvent(ev Event) {
	if len(r.Events) >= maxEvents {
		// New slice: the caller may restore the old header on failure.
		evs := make([]Event, 0, maxEvents)
		evs = append(evs, r.Events[0])
		evs = append(evs, r.Events[len(r.Events)-maxEvents+2:]...)
		r.Events = evs
	}
	r.Events = append(r.Events, ev)
}

func (r *Record) clone() Record {
	c := *r
	c.Events = slices.Clone(r.Events)
	return c
}

// recordOps encodes r into buf and returns the ops writing it. An unfinished
// record lives under "_/u/<id>", which is also the index start-up recovery
// walks; a final one moves to "!m/<id>" with the retention TTL, and its
// "_/u/" key is deleted. A message thus costs one key at acceptance and two
// at the end, and badger's writes are the store's main cost.
func (db *DB) recordOps(r *Record, buf *[]byte) ([2]op, int, error) {
	id := r.Msg.ID
	b := append(*buf, prefixUnfinished...)
	b = append(b, id...)
	u := len(b)
	if r.State.Final() {
		b = append(b, prefixMsg...)
		b = append(b, id...)
	}
	k := len(b)
	if r.State.Final() && !db.opts.KeepText {
		if t := smstext.ReceiptText(r.Msg.Text); len(t) < len(r.Msg.Text) {
			fin := *r
			fin.Msg.Text = t
			r = &fin
		}
	}
	b = appendRecord(b, r)
	v := len(b)
	*buf = b
	if v-k > maxRecordBytes {
		return [2]op{}, 0, fmt.Errorf("%w: message %s encodes to %d bytes (max %d)", ErrTooLarge, id, v-k, maxRecordBytes)
	}
	var ops [2]op
	if !r.State.Final() {
		ops[0] = op{key: b[:u:u], val: b[k:v:v], id: id}
		return ops, 1, nil
	}
	ops[0] = op{key: b[u:k:k], val: b[k:v:v], id: id, final: true,
		expiresAt: uint64(time.Now().Add(db.opts.Retention).Unix())}
	ops[1] = op{key: b[:u:u], del: true}
	return ops, 2, nil
}
