package store

import (
	"context"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
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

	n, err := db.sweep(ctx, time.Now(), 7) // several read transactions
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
	if n, err := db.sweepExpired(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("second pass swept %d (%v)", n, err)
	}
	if string(db.sweepFrom) != prefixMsg+fresh {
		t.Fatalf("next pass starts at %q, want the first live record", db.sweepFrom)
	}
	db.sweepFrom = nil // as after a restart: the delete markers are not deleted again
	if n, err := db.sweepExpired(ctx, time.Now()); err != nil || n != 0 {
		t.Fatalf("a pass from the start swept %d (%v)", n, err)
	}
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
