package store

import (
	"context"
	"errors"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/msg"
)

// openBadgerFinalsT opens a store that keeps final records in badger, as
// stores did before the segments (no commit log: badger synced per batch),
// whose records the sweepers still delete.
func openBadgerFinalsT(t *testing.T, opts Options) *DB {
	return openKnobsT(t, opts, knobs{badgerSync: true})
}

// Expired final records are deleted, not just hidden; live and unfinished
// ones stay, and a second pass finds nothing more.
func TestSweepExpiredRecords(t *testing.T) {
	db := openBadgerFinalsT(t, Options{Dir: t.TempDir(), Retention: 3 * time.Second})
	ctx := context.Background()
	finish := func(i int) string {
		m := newMsg(i)
		if err := accept(db, ctx, m); err != nil {
			t.Fatal(err)
		}
		if err := db.Transition(ctx, m.ID, Event{State: msg.Delivered, At: time.Now()}, true); err != nil {
			t.Fatal(err)
		}
		return m.ID
	}
	var old []string
	for i := range 50 {
		old = append(old, finish(i))
	}
	open := newMsg(100)
	if err := accept(db, ctx, open); err != nil {
		t.Fatal(err)
	}
	waitLaterDeadline(t, db, old[len(old)-1])
	fresh, fresh2 := finish(101), finish(102)
	// The sweep's clock: the 50 have expired (second resolution); the fresh
	// have at least a second to go.
	now := time.Unix(int64(expiresAt(t, db, old[len(old)-1])), 0)

	n, err := db.sweeper.pass(ctx, now, 7, true) // several read transactions
	if err != nil || n != len(old) {
		t.Fatalf("swept %d (%v), want %d", n, err, len(old))
	}
	for _, id := range old {
		if !deleteMarker(t, db, id) {
			t.Fatalf("%s: newest version is not a delete marker", id)
		}
	}
	for _, id := range []string{fresh, fresh2} {
		if r, err := db.Message(id); err != nil || r.State != msg.Delivered || deleteMarker(t, db, id) {
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
	if string(db.sweeper.front) != prefixMsg+fresh || string(db.sweeper.back) != prefixMsg+fresh {
		t.Fatalf("next passes start at %q / %q, want the first live record", db.sweeper.front, db.sweeper.back)
	}
	if n, err := db.sweeper.expired(ctx, now); err != nil || n != 0 {
		t.Fatalf("second pass swept %d (%v)", n, err)
	}
	db.sweeper.front, db.sweeper.back = nil, nil // as after a restart: the delete markers are not deleted again
	if n, err := db.sweeper.pass(ctx, now, sweepChunk, true); err != nil || n != 0 {
		t.Fatalf("a pass from the start swept %d (%v)", n, err)
	}
}

// A message that finished long after the ones accepted around it stays
// behind the live frontier: passes from the frontier leave it, a pass from
// the back deletes it once it has expired. Time is simulated through the
// pass's now; records finish in later seconds so their deadlines differ.
func TestSweepFrontierAndStraggler(t *testing.T) {
	db := openBadgerFinalsT(t, Options{Dir: t.TempDir(), Retention: time.Hour})
	ctx := context.Background()
	finish := func(m *msg.Message) string {
		if err := db.Transition(ctx, m.ID, Event{State: msg.Delivered, At: time.Now()}, true); err != nil {
			t.Fatal(err)
		}
		return m.ID
	}
	accept := func(i int) *msg.Message {
		m := newMsg(i)
		if err := accept(db, ctx, m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	straggler := accept(0)
	var early []string
	for i := range 20 {
		early = append(early, finish(accept(1+i)))
	}
	waitLaterDeadline(t, db, early[len(early)-1])
	late := finish(straggler)
	waitLaterDeadline(t, db, late)
	var fresh []string
	for i := range 3 {
		fresh = append(fresh, finish(accept(100+i)))
	}
	at := func(id string) time.Time { return time.Unix(int64(expiresAt(t, db, id)), 0) }

	if n, err := db.sweeper.pass(ctx, at(early[len(early)-1]), 5, true); err != nil || n != len(early) {
		t.Fatalf("swept %d (%v), want the %d early ones", n, err, len(early))
	}
	if string(db.sweeper.back) != prefixMsg+late || string(db.sweeper.front) != prefixMsg+fresh[0] {
		t.Fatalf("back %q front %q, want the straggler and the first fresh record", db.sweeper.back, db.sweeper.front)
	}
	if n, err := db.sweeper.pass(ctx, at(late), 5, false); err != nil || n != 0 || deleteMarker(t, db, late) {
		t.Fatalf("a pass from the frontier swept %d (%v): it must not walk back", n, err)
	}
	if n, err := db.sweeper.pass(ctx, at(late), 5, true); err != nil || n != 1 || !deleteMarker(t, db, late) {
		t.Fatalf("a pass from the back swept %d (%v), want the expired straggler", n, err)
	}
	for _, id := range fresh {
		if deleteMarker(t, db, id) {
			t.Fatalf("%s deleted before its time", id)
		}
	}
}

// waitLaterDeadline waits until a record finishing now gets a later deadline
// than id's. Deadlines are whole seconds of the real clock (the store takes
// no other), so this is the wait for the clock's next second, at most one.
func waitLaterDeadline(t *testing.T, db *DB, id string) {
	t.Helper()
	exp := expiresAt(t, db, id)
	testutil.WaitFor(t, "a later deadline second", 3*time.Second, func() bool {
		return uint64(time.Now().Add(db.opts.Retention).Unix()) > exp
	})
}

// expiresAt is id's final record's deadline (unix seconds).
func expiresAt(t *testing.T, db *DB, id string) uint64 {
	t.Helper()
	var exp uint64
	db.committer.waitApplied() // badger gets a batch after its acknowledgement
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
	db.committer.waitApplied()
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

// A final record of the older layout ("m/<id>") is still read after a
// restart and swept once expired, by the sweeper of its own prefix.
func TestOldLayoutFinalRecord(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, Retention: 2 * time.Second}
	db := openBadgerFinalsT(t, opts)
	ctx := context.Background()
	m := newMsg(1)
	if err := accept(db, ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := db.Transition(ctx, m.ID, Event{State: msg.Delivered, At: time.Now()}, true); err != nil {
		t.Fatal(err)
	}
	exp := expiresAt(t, db, m.ID)
	err := db.bdb.Update(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(prefixMsg + m.ID))
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		e := badger.NewEntry([]byte(prefixOldMsg+m.ID), v)
		e.ExpiresAt = exp
		if err := txn.SetEntry(e); err != nil {
			return err
		}
		return txn.Delete([]byte(prefixMsg + m.ID))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openT(t, opts)
	if r, err := db.Message(m.ID); err != nil || r.State != msg.Delivered {
		t.Fatalf("old-layout record after reopening: %+v, %v", r, err)
	}
	after := time.Unix(int64(exp)+1, 0)
	if n, err := db.sweeper.pass(ctx, after, sweepChunk, true); err != nil || n != 0 {
		t.Fatalf("the sweeper of %q deleted %d (%v)", prefixMsg, n, err)
	}
	if n, err := db.oldSweeper.pass(ctx, after, sweepChunk, true); err != nil || n != 1 {
		t.Fatalf("the sweeper of %q deleted %d (%v), want 1", prefixOldMsg, n, err)
	}
	if _, err := db.Message(m.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("swept old-layout record: %v, want ErrNotFound", err)
	}
}
