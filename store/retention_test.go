package store

import (
	"context"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/smsbridge/bridge/msg"
)

// Expired final records are deleted, not just hidden; live and unfinished
// ones stay, and a second pass finds nothing more.
func TestSweepExpiredRecords(t *testing.T) {
	db := openT(t, Options{Dir: t.TempDir(), Retention: 3 * time.Second})
	ctx := context.Background()
	finish := func(i int) string {
		m := newMsg(i)
		if err := db.Accept(ctx, m); err != nil {
			t.Fatal(err)
		}
		if err := db.Transition(ctx, m.ID, Event{State: Delivered, At: time.Now()}, true); err != nil {
			t.Fatal(err)
		}
		return m.ID
	}
	var old []string
	for i := range 50 {
		old = append(old, finish(i))
	}
	open := newMsg(100)
	if err := db.Accept(ctx, open); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4100 * time.Millisecond) // the 50 have expired (second resolution); the fresh have ~3 s to go
	fresh, fresh2 := finish(101), finish(102)

	n, err := db.sweep(ctx, time.Now(), 7, true) // several read transactions
	if err != nil || n != len(old) {
		t.Fatalf("swept %d (%v), want %d", n, err, len(old))
	}
	for _, id := range old {
		if !deleteMarker(t, db, id) {
			t.Fatalf("%s: newest version is not a delete marker", id)
		}
	}
	for _, id := range []string{fresh, fresh2} {
		if r, err := db.Message(id); err != nil || r.State != Delivered || deleteMarker(t, db, id) {
			t.Fatalf("a live record was touched: %+v %v", r, err)
		}
	}
	unfinished := 0
	db.Unfinished(func(r Record) error {
		if r.Msg.ID == open.ID {
			unfinished++
		}
		return nil
	})
	if unfinished != 1 {
		t.Fatal("the unfinished message is gone")
	}
	if string(db.sweepFront) != prefixMsg+fresh || string(db.sweepBack) != prefixMsg+fresh {
		t.Fatalf("next passes start at %q / %q, want the first live record", db.sweepFront, db.sweepBack)
	}
	if n, err := db.sweepExpired(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("second pass swept %d (%v)", n, err)
	}
	db.sweepFront, db.sweepBack = nil, nil // as after a restart: the delete markers are not deleted again
	if n, err := db.sweep(ctx, time.Now(), sweepChunk, true); err != nil || n != 0 {
		t.Fatalf("a pass from the start swept %d (%v)", n, err)
	}
}

// A message that finished long after the ones accepted around it stays
// behind the live frontier: passes from the frontier leave it, a pass from
// the back deletes it once it has expired. Time is simulated through the
// pass's now; records finish a second apart so their deadlines differ.
func TestSweepFrontierAndStraggler(t *testing.T) {
	db := openT(t, Options{Dir: t.TempDir(), Retention: time.Hour})
	ctx := context.Background()
	finish := func(m *msg.Message) string {
		if err := db.Transition(ctx, m.ID, Event{State: Delivered, At: time.Now()}, true); err != nil {
			t.Fatal(err)
		}
		return m.ID
	}
	accept := func(i int) *msg.Message {
		m := newMsg(i)
		if err := db.Accept(ctx, m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	straggler := accept(0)
	var early []string
	for i := range 20 {
		early = append(early, finish(accept(1+i)))
	}
	time.Sleep(1100 * time.Millisecond)
	late := finish(straggler)
	time.Sleep(1100 * time.Millisecond)
	var fresh []string
	for i := range 3 {
		fresh = append(fresh, finish(accept(100+i)))
	}
	at := func(id string) time.Time { return time.Unix(int64(expiresAt(t, db, id)), 0) }

	if n, err := db.sweep(ctx, at(early[0]), 5, true); err != nil || n != len(early) {
		t.Fatalf("swept %d (%v), want the %d early ones", n, err, len(early))
	}
	if string(db.sweepBack) != prefixMsg+late || string(db.sweepFront) != prefixMsg+fresh[0] {
		t.Fatalf("back %q front %q, want the straggler and the first fresh record", db.sweepBack, db.sweepFront)
	}
	if n, err := db.sweep(ctx, at(late), 5, false); err != nil || n != 0 || deleteMarker(t, db, late) {
		t.Fatalf("a pass from the frontier swept %d (%v): it must not walk back", n, err)
	}
	if n, err := db.sweep(ctx, at(late), 5, true); err != nil || n != 1 || !deleteMarker(t, db, late) {
		t.Fatalf("a pass from the back swept %d (%v), want the expired straggler", n, err)
	}
	for _, id := range fresh {
		if deleteMarker(t, db, id) {
			t.Fatalf("%s deleted before its time", id)
		}
	}
}

// expiresAt is id's final record's deadline (unix seconds).
func expiresAt(t *testing.T, db *DB, id string) uint64 {
	t.Helper()
	var exp uint64
	db.bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(prefixMsg + id))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		exp = item.ExpiresAt()
		return nil
	})
	return exp
}

// deleteMarker reports whether id's newest version in badger is a delete.
func deleteMarker(t *testing.T, db *DB, id string) bool {
	t.Helper()
	var del bool
	err := db.bdb.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.AllVersions, io.PrefetchValues = true, false
		io.Prefix = []byte(prefixMsg + id)
		it := txn.NewIterator(io)
		defer it.Close()
		it.Rewind()
		if it.Valid() {
			del = it.Item().IsDeletedOrExpired() && it.Item().ExpiresAt() == 0
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return del
}
