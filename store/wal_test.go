package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/msg"
)

// copyLog copies src's commit log into a new directory, the state a power
// loss leaves when badger kept none of its unsynced writes since the last
// checkpoint: only what the log holds.
func copyLog(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	for _, name := range []string{walFile, walFileB} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// acceptDeliverSome accepts n messages and finishes the first delivered of
// them as Delivered, durably.
func acceptDeliverSome(t *testing.T, db *DB, n, delivered int) []*msg.Message {
	t.Helper()
	ms := acceptConcurrently(t, db, 4, n)
	for _, m := range ms[:delivered] {
		if err := db.Transition(context.Background(), m.ID, Event{State: msg.Delivered, Detail: "ok"}, true); err != nil {
			t.Fatal(err)
		}
	}
	return ms
}

// Everything acknowledged since the last checkpoint is rebuilt from the
// commit log alone: finished and unfinished messages, their states, plain
// keys and deletions.
func TestLogReplayRebuildsStateAfterCheckpoint(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, Options{Dir: dir, CheckpointInterval: time.Hour})
	ctx := context.Background()
	ms := acceptDeliverSome(t, db, 40, 30)
	if err := db.Transition(ctx, ms[30].ID, Event{State: msg.Routed}, true); err != nil {
		t.Fatal(err)
	}
	if err := db.Put(ctx, []byte("k/kept"), []byte("v1")); err != nil {
		t.Fatal(err)
	}
	if err := db.Put(ctx, []byte("k/dropped"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete(ctx, []byte("k/dropped")); err != nil {
		t.Fatal(err)
	}

	db2 := openT(t, Options{Dir: copyLog(t, dir)})
	for i, m := range ms {
		r, err := db2.Message(m.ID)
		if err != nil {
			t.Fatalf("message %d after replay: %v", i, err)
		}
		want := msg.Accepted
		switch {
		case i < 30:
			want = msg.Delivered
		case i == 30:
			want = msg.Routed
		}
		if r.State != want {
			t.Fatalf("message %d: state %v, want %v", i, r.State, want)
		}
		sameMsg(t, r.Msg, *m)
	}
	var unfinished []string
	if err := db2.Unfinished(func(r Record) error { unfinished = append(unfinished, r.Msg.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range ms[30:] {
		want = append(want, m.ID)
	}
	slices.Sort(unfinished)
	slices.Sort(want)
	if !slices.Equal(unfinished, want) {
		t.Fatalf("unfinished after replay %v, want %v", unfinished, want)
	}
	if v, err := db2.Get([]byte("k/kept")); err != nil || string(v) != "v1" {
		t.Fatalf("k/kept = %q, %v", v, err)
	}
	if _, err := db2.Get([]byte("k/dropped")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("k/dropped after replay: %v", err)
	}
}

// A torn last record (never acknowledged: its fdatasync had not returned)
// is ignored; what came before it is replayed.
func TestLogReplayStopsAtTornRecord(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, Options{Dir: dir, CheckpointInterval: time.Hour})
	ctx := context.Background()
	a, b := newMsg(1), newMsg(2)
	if err := accept(db, ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := accept(db, ctx, b); err != nil {
		t.Fatal(err)
	}
	end := db.committer.wal.used() // the committer wrote it before b's commit ended
	active := filepath.Base(db.committer.wal.path)
	cp := copyLog(t, dir)
	f, err := os.OpenFile(filepath.Join(cp, active), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], end-1); err != nil {
		t.Fatal(err)
	}
	last[0] ^= 0xff
	if _, err := f.WriteAt(last[:], end-1); err != nil {
		t.Fatal(err)
	}
	f.Close()

	db2 := openT(t, Options{Dir: cp})
	if _, err := db2.Message(a.ID); err != nil {
		t.Fatalf("record before the torn one: %v", err)
	}
	if _, err := db2.Message(b.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("torn record's message: %v, want not found", err)
	}
	// The log goes on after the replayed prefix: a new acceptance survives
	// the next replay too.
	c := newMsg(3)
	if err := accept(db2, ctx, c); err != nil {
		t.Fatal(err)
	}
	db3 := openT(t, Options{Dir: copyLog(t, cp)})
	if _, err := db3.Message(c.ID); err != nil {
		t.Fatalf("acceptance after a torn tail, replayed: %v", err)
	}
}

// A checkpoint syncs badger and starts the log over: the old records are
// not replayed (badger has them), and the store reopens with everything.
func TestCheckpointStartsLogOver(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, Options{Dir: dir, CheckpointInterval: time.Hour})
	ms := acceptDeliverSome(t, db, 10, 5)
	if err := db.Close(); err != nil { // Close checkpoints
		t.Fatal(err)
	}
	if n := pairRecords(t, dir); n != 0 {
		t.Fatalf("after a checkpoint the log pair replays %d records, want 0", n)
	}
	db = openT(t, Options{Dir: dir})
	var open int
	if err := db.Unfinished(func(Record) error { open++; return nil }); err != nil {
		t.Fatal(err)
	}
	if open != 5 {
		t.Fatalf("%d unfinished after reopening, want 5", open)
	}
	for _, m := range ms[:5] {
		if r, err := db.Message(m.ID); err != nil || r.State != msg.Delivered {
			t.Fatalf("finished message: %v %v", r.State, err)
		}
	}
}

// The header is written to alternate slots: a torn write of the newest
// leaves the previous one, and only both corrupt refuses to open (an
// operator must look, rather than the store guess what to replay).
func TestLogHeaderSlots(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, Options{Dir: dir})
	m := newMsg(1)
	if err := accept(db, context.Background(), m); err != nil {
		t.Fatal(err)
	}
	gen := db.committer.wal.gen
	active := db.committer.wal.path // Close's checkpoint restarts it
	db.Close()
	corrupt := func(slot uint64) {
		f, err := os.OpenFile(active, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteAt(bytes.Repeat([]byte{0xee}, 32), int64(slot%2)*walSlot); err != nil {
			t.Fatal(err)
		}
	}
	corrupt(gen + 1) // Close's checkpoint wrote gen+1
	db = openT(t, Options{Dir: dir})
	if _, err := db.Message(m.ID); err != nil {
		t.Fatalf("after losing the newest header slot: %v", err)
	}
	db.Close()
	corrupt(0)
	corrupt(1)
	if db, err := Open(Options{Dir: dir}); !errors.Is(err, errWALHeader) {
		if db != nil {
			db.Close()
		}
		t.Fatalf("both header slots corrupt: Open error %v, want %v", err, errWALHeader)
	}
}

// A message finished before the checkpoint costs badger nothing: its
// unfinished record and that record's delete stay in the log, and its
// final record goes to the segments.
func TestFinishedBeforeCheckpointSkipsBadger(t *testing.T) {
	db := openT(t, Options{Dir: t.TempDir(), CheckpointInterval: time.Hour})
	ctx := context.Background()
	m := newMsg(1)
	if err := accept(db, ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, ok := db.committer.deferredRecord(m.ID); !ok {
		t.Fatal("unfinished record not deferred")
	}
	if err := db.Transition(ctx, m.ID, Event{State: msg.Delivered}, true); err != nil {
		t.Fatal(err)
	}
	if _, ok := db.committer.deferredRecord(m.ID); ok {
		t.Fatal("finished record still deferred")
	}
	// Badger has seen one write under the message's keys, the final one:
	// no version of "_/u/<id>", not even a tombstone.
	db.committer.waitApplied()
	var versions []string
	err := db.bdb.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.AllVersions = true
		it := txn.NewIterator(io)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if k := string(it.Item().Key()); bytes.HasSuffix([]byte(k), []byte(m.ID)) {
				versions = append(versions, k)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != 0 {
		t.Fatalf("badger versions %v, want none", versions)
	}
	if r, err := db.Message(m.ID); err != nil || r.State != msg.Delivered {
		t.Fatalf("final record: %v %v", r.State, err)
	}
}

// A record that reached badger at a checkpoint and was updated after it is
// deleted from badger when it finishes: it must not come back as unfinished.
func TestCheckpointedRecordFinishes(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, Options{Dir: dir, CheckpointInterval: time.Hour})
	ctx := context.Background()
	m := newMsg(1)
	if err := accept(db, ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := db.committer.flushDeferred(); err != nil {
		t.Fatal(err)
	}
	for _, st := range []msg.State{msg.Routed, msg.Delivered} {
		if err := db.Transition(ctx, m.ID, Event{State: st}, true); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	db = openT(t, Options{Dir: dir})
	if err := db.Unfinished(func(r Record) error {
		return fmt.Errorf("finished message %s back as %v", r.Msg.ID, r.State)
	}); err != nil {
		t.Fatal(err)
	}
}

// A batch that is logged but that badger refuses is not lost: the log is no
// longer started over, and the next Open replays it.
func TestUnappliedBatchKeptForReplay(t *testing.T) {
	dir := t.TempDir()
	var fail atomic.Bool
	db := openKnobsT(t, Options{Dir: dir, CheckpointInterval: time.Millisecond}, knobs{applyFault: func() error {
		if fail.Load() {
			return errors.New("injected: badger refuses the write")
		}
		return nil
	}})
	ctx := context.Background()
	m := newMsg(1)
	if err := accept(db, ctx, m); err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	// Durable in the log, so it may be acknowledged before badger refuses
	// it; the store then says it is unhealthy.
	_ = db.Transition(ctx, m.ID, Event{State: msg.Delivered}, true)
	testutil.WaitForState(t, 5*time.Second, func() bool { return db.Healthy() != nil },
		func() string { return "store healthy after badger refused a logged batch" })
	fail.Store(false)
	// Later batches, and checkpoints after them. Only a checkpoint moves an
	// accepted record from the deferred set into badger, and the committer
	// checkpoints after a batch once CheckpointInterval has passed since the
	// last one: until it has, another write gives it the next chance.
	for i := range 3 {
		later := newMsg(2 + i)
		if err := accept(db, ctx, later); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, "a checkpoint after a later batch", 10*time.Second, func() bool {
			if _, deferred := db.committer.deferredRecord(later.ID); !deferred {
				return true
			}
			if err := db.Put(ctx, []byte("k/nudge"), []byte("v")); err != nil {
				t.Fatal(err)
			}
			return false
		})
	}
	db.Close()
	db = openT(t, Options{Dir: dir})
	if r, err := db.Message(m.ID); err != nil || r.State != msg.Delivered {
		t.Fatalf("after replay: %v %v, want delivered", r.State, err)
	}
}

// FuzzLogReplay: whatever follows a valid header, replay never panics and
// hands over only well-formed ops.
func FuzzLogReplay(f *testing.F) {
	good := func(ops []op) []byte {
		var b []byte
		for i := range ops {
			b = appendOp(b, &ops[i])
		}
		return sealRecord(1, b)
	}
	f.Add(good([]op{{key: []byte("_/u/a"), val: []byte("rec"), expiresAt: 7}, {key: []byte("_/u/a"), del: true}}))
	f.Add([]byte{})
	f.Add([]byte{3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 'k'})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		w, err := createWAL(dir, filepath.Join(dir, walFile), 0)
		if err != nil {
			t.Fatal(err)
		}
		defer w.close()
		if _, err := w.f.WriteAt(data, walData); err != nil {
			t.Fatal(err)
		}
		if len(data) > 4 { // also a correctly framed record around the data
			rec := sealRecord(1, data[4:])
			if _, err := w.f.WriteAt(rec, walData); err != nil {
				t.Fatal(err)
			}
		}
		st, _ := w.f.Stat()
		w.size = st.Size()
		_, _ = w.replay(func(ops []op) error {
			for _, o := range ops {
				if len(o.key) == 0 || (o.del && o.val != nil) {
					t.Fatalf("malformed op %+v", o)
				}
			}
			return nil
		})
	})
}

// sealRecord frames payload as record seq.
func sealRecord(seq uint64, payload []byte) []byte {
	b := make([]byte, walRecHead, walRecHead+len(payload))
	b = append(b, payload...)
	putRecordHead(b, seq)
	return b
}

// pairRecords opens dir's commit log pair as Open does and counts the
// records a replay would apply.
func pairRecords(t *testing.T, dir string) int {
	t.Helper()
	c := &committer{}
	if err := c.openPair(dir, 0); err != nil {
		t.Fatal(err)
	}
	defer c.closeLog()
	n, err := c.replayPair(func([]op) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A checkpoint's badger sync does not hold up commits: while it is stuck,
// batches are acknowledged (into the other file of the pair). A crash then
// (power loss: badger keeps nothing unsynced) loses none of them, nor any
// batch from before the checkpoint: replay reads both files.
func TestCommitsGoOnDuringCheckpointSync(t *testing.T) {
	dir := t.TempDir()
	release := make(chan struct{})
	var stuck atomic.Bool
	db := openKnobsT(t, Options{Dir: dir, CheckpointInterval: time.Millisecond}, knobs{ckptSync: func() {
		if stuck.CompareAndSwap(false, true) {
			<-release
		}
	}})
	defer close(release)
	ctx := context.Background()
	before := acceptDeliverSome(t, db, 20, 10)
	testutil.WaitFor(t, "a checkpoint's sync under way", 10*time.Second, func() bool {
		if err := db.Put(ctx, []byte("k/nudge"), []byte("v")); err != nil {
			t.Fatal(err)
		}
		return stuck.Load()
	})
	first := db.committer.spare.path // appended to until the switch
	during := acceptDeliverSome(t, db, 20, 10)
	if db.committer.wal.path == first {
		t.Fatalf("commits during the sync went to %s, the file before the switch", first)
	}
	db2 := openT(t, Options{Dir: copyLog(t, dir)})
	for _, m := range append(before, during...) {
		if _, err := db2.Message(m.ID); err != nil {
			t.Fatalf("message %s after replaying the pair: %v", m.ID, err)
		}
	}
	var open int
	if err := db2.Unfinished(func(Record) error { open++; return nil }); err != nil {
		t.Fatal(err)
	}
	if open != 20 {
		t.Fatalf("%d unfinished after the replay, want 20", open)
	}
}

// Acknowledgements do not wait for badger: while it is stuck on a write
// (as when a full memtable makes it zero the next arena), writes are
// acknowledged from the commit log, a read of one waits until badger has
// it, and a crash then (power loss: only the log) loses none of them.
func TestAcksDoNotWaitForBadger(t *testing.T) {
	dir := t.TempDir()
	release := make(chan struct{})
	var stuck atomic.Bool
	db := openKnobsT(t, Options{Dir: dir, CheckpointInterval: time.Hour}, knobs{applyFault: func() error {
		if stuck.Load() {
			<-release
		}
		return nil
	}})
	ctx := context.Background()
	key := func(i int) []byte { return []byte(fmt.Sprintf("k/%d", i)) }
	stuck.Store(true)
	for i := range 10 {
		if err := db.Put(ctx, key(i), []byte("v")); err != nil {
			t.Fatalf("put %d while badger is stuck: %v", i, err)
		}
	}
	got := make(chan error, 1)
	go func() {
		_, err := db.Get(key(9))
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("read of an acknowledged key returned (%v) before badger had it", err)
	case <-time.After(200 * time.Millisecond):
	}
	cp := copyLog(t, dir)
	stuck.Store(false)
	close(release)
	if err := <-got; err != nil {
		t.Fatalf("read once badger has it: %v", err)
	}
	db2 := openT(t, Options{Dir: cp})
	for i := range 10 {
		if _, err := db2.Get(key(i)); err != nil {
			t.Fatalf("key %d after replaying the log: %v", i, err)
		}
	}
}
