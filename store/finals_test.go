package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/msg"
)

// finishN accepts and delivers n messages and returns their IDs.
func finishN(t *testing.T, db *DB, from, n int) []string {
	t.Helper()
	ctx := context.Background()
	var ids []string
	for i := from; i < from+n; i++ {
		m := newMsg(i)
		if err := accept(db, ctx, m); err != nil {
			t.Fatal(err)
		}
		if err := db.Transition(ctx, m.ID, Event{State: msg.Delivered, At: time.Now(), Detail: "im"}, true); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	return ids
}

// wantStates checks each message's state as read back (from the cache or
// the segments).
func wantStates(t *testing.T, db *DB, want map[string]msg.State) {
	t.Helper()
	for id, st := range want {
		r, err := db.Message(id)
		if err != nil || r.State != st {
			t.Fatalf("%s: %v %v, want %v", id, r.State, err, st)
		}
	}
}

// openSmallSegments opens a store whose segments are sealed every 2 KiB,
// checkpointed every 5 ms.
func openSmallSegments(t *testing.T) (*DB, Options, knobs) {
	opts := Options{Dir: t.TempDir(), CheckpointInterval: 5 * time.Millisecond}
	k := knobs{segBytes: 2048}
	return openKnobsT(t, opts, k), opts, k
}

// delivered is the states wantStates expects of finishN's messages.
func delivered(ids []string) map[string]msg.State {
	want := map[string]msg.State{}
	for _, id := range ids {
		want[id] = msg.Delivered
	}
	return want
}

func sealedN(fl *finalLog) int {
	fl.mu.RLock()
	defer fl.mu.RUnlock()
	return len(fl.sealed)
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, finalsDir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// Final records go into segments that are sealed as they fill; each is
// read back from the open segment, from a sealed one, and after a reopen.
// A record changed after its segment was sealed (a receipt) is read as
// its newest copy.
func TestFinalSegmentsSealAndReopen(t *testing.T) {
	db, opts, k := openSmallSegments(t)
	dir := opts.Dir
	ids := finishN(t, db, 0, 300)
	want := delivered(ids)
	fl := db.committer.finals
	testutil.WaitFor(t, "five sealed segments", 10*time.Second, func() bool { return sealedN(fl) >= 5 })
	wantStates(t, db, want)
	if err := db.RecordReceipt(context.Background(), ids[0], Event{State: msg.Failed, Detail: "smsc receipt UNDELIV"}); err != nil {
		t.Fatal(err)
	}
	want[ids[0]] = msg.Failed
	db.committer.waitApplied()
	wantStates(t, db, want)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openKnobsT(t, opts, k)
	if n := sealedN(db.committer.finals); n < 5 {
		t.Fatalf("%d sealed segments after reopening, want at least 5", n)
	}

	wantStates(t, db, want)
	for _, id := range ids[:3] {
		if _, err := db.get([]byte(prefixMsg + id)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: final record in badger too (%v)", id, err)
		}
	}
	db.Close() // no checkpoint starts a segment meanwhile
	if st := db.Stats(); st.FinalSegments != len(segFiles(t, dir)) {
		t.Fatalf("Stats counts %d segments, the directory holds %d", st.FinalSegments, len(segFiles(t, dir)))
	}
}

// A segment is deleted whole once its last record's retention has ended;
// before that, a record past its own is not returned (as badger's TTL).
func TestFinalSegmentsExpire(t *testing.T) {
	dir := t.TempDir()
	db := openT(t, Options{Dir: dir, Retention: 4 * time.Second, CheckpointInterval: 10 * time.Millisecond, SweepInterval: 50 * time.Millisecond})
	ids := finishN(t, db, 0, 20)
	fl := db.committer.finals
	// segMaxAge(4s) is 1s: the idle segment is sealed at a checkpoint after
	// it, which the sweep's timer kicks.
	testutil.WaitFor(t, "a sealed segment", 5*time.Second, func() bool { return sealedN(fl) == 1 })
	later := time.Now().Add(5 * time.Second)
	if _, err := fl.get(ids[0], later); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a record past its retention: %v, want ErrNotFound", err)
	}
	wantStates(t, db, map[string]msg.State{ids[0]: msg.Delivered})
	if n, err := fl.dropExpired(time.Now()); err != nil || n != 0 {
		t.Fatalf("dropped %d (%v) before the retention ended", n, err)
	}
	files := segFiles(t, dir)
	if n, err := fl.dropExpired(later); err != nil || n != 1 {
		t.Fatalf("dropped %d (%v), want 1", n, err)
	}
	if _, err := os.Stat(files[0]); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("expired segment %s still there: %v", files[0], err)
	}
	if _, err := db.Message(ids[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a record of a deleted segment: %v, want ErrNotFound", err)
	}
}

// What follows the open segment's last good record (a torn write) is cut
// at Open; the records before it stay and appends go on after them.
func TestFinalSegmentTornTail(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir}
	db := openT(t, opts)
	ids := finishN(t, db, 0, 10)
	db.Close()
	files := segFiles(t, dir)
	last := files[len(files)-1]
	st, err := os.Stat(last)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	torn := append([]byte{200, 0, 0, 0, 1, 2, 3, 4}, bytes.Repeat([]byte{0xab}, 60)...)
	if _, err := f.Write(torn); err != nil {
		t.Fatal(err)
	}
	f.Close()
	db = openT(t, opts)
	if st2, err := os.Stat(last); err != nil || st2.Size() != st.Size() {
		t.Fatalf("segment is %v bytes after Open (%v), want %d", st2.Size(), err, st.Size())
	}
	ids = append(ids, finishN(t, db, 10, 1)...)
	db.Close()
	db = openT(t, opts)
	wantStates(t, db, delivered(ids))
}

// A crash while a segment's index was written leaves it without its
// trailer behind a newer segment: Open reads and seals it, and drops one
// that holds no record.
func TestFinalSegmentSealInterrupted(t *testing.T) {
	db, opts, k := openSmallSegments(t)
	dir := opts.Dir
	ids := finishN(t, db, 0, 100)
	fl := db.committer.finals
	testutil.WaitFor(t, "two sealed segments", 10*time.Second, func() bool { return sealedN(fl) >= 2 })
	db.Close()
	first := segFiles(t, dir)[0]
	s := &segment{path: first}
	if ok, err := s.readTrailer(); !ok || err != nil {
		t.Fatalf("first segment not sealed: %v", err)
	}
	if err := os.Truncate(first, s.idxOff+segEntryLen/2); err != nil { // part of its index written
		t.Fatal(err)
	}
	// And a segment with no record before it: dropped.
	empty := filepath.Join(dir, finalsDir, fmt.Sprintf("%016x.seg", 0))
	if err := os.WriteFile(empty, segHeader(time.Now()), 0o644); err != nil {
		t.Fatal(err)
	}
	db = openKnobsT(t, opts, k)
	if _, err := os.Stat(empty); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the segment with no record is still there: %v", err)
	}
	if ok, err := (&segment{path: first}).readTrailer(); !ok || err != nil {
		t.Fatalf("first segment not sealed again at Open: %v", err)
	}
	wantStates(t, db, delivered(ids))
}

// A seal that fails is undone, reported by the next checkpoint (Healthy
// and Stats show it) and tried again there; meanwhile and after, every
// record is read back, and a reopen finds the segments sealed.
func TestFinalSegmentSealFails(t *testing.T) {
	var fails atomic.Int32
	fails.Store(1)
	opts := Options{Dir: t.TempDir(), CheckpointInterval: 5 * time.Millisecond}
	k := knobs{segBytes: 2048, sealFault: func() error {
		if fails.Add(-1) >= 0 {
			return errors.New("injected fsync failure")
		}
		return nil
	}}
	db := openKnobsT(t, opts, k)
	var ids []string
	for i := 0; i < 5000 && (sealedN(db.committer.finals) < 3 || db.Stats().Failed == 0); i++ {
		ids = append(ids, finishN(t, db, i, 1)...)
	}
	if fails.Load() >= 0 || db.Stats().Failed == 0 {
		t.Fatalf("the seal failure was not reported (fault calls left %d, failed %d)", fails.Load(), db.Stats().Failed)
	}
	if n := sealedN(db.committer.finals); n < 3 {
		t.Fatalf("%d sealed segments, want the failed one sealed again and more", n)
	}
	finishN(t, db, len(ids), 1) // its write, applied, clears the failure
	testutil.WaitFor(t, "healthy again", 5*time.Second, func() bool { return db.Healthy() == nil })
	wantStates(t, db, delivered(ids))
	db.Close()
	for _, f := range segFiles(t, opts.Dir)[:3] {
		if ok, err := (&segment{path: f}).readTrailer(); !ok || err != nil {
			t.Fatalf("%s not sealed: %v", f, err)
		}
	}
	db = openT(t, opts)
	wantStates(t, db, delivered(ids))
}

// The duplicate-suppression keys of finished messages come back from the
// segments at Open.
func TestFinalSegmentsReloadDedup(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, DedupWindow: time.Hour}
	db := openT(t, opts)
	ctx := context.Background()
	m := newMsg(1)
	if dup, err := acceptDedup(db, ctx, m, []byte("key-1"), time.Hour); err != nil || dup != "" {
		t.Fatal(dup, err)
	}
	if err := db.Transition(ctx, m.ID, Event{State: msg.Delivered}, true); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = openT(t, opts)
	if dup, err := acceptDedup(db, ctx, newMsg(2), []byte("key-1"), time.Hour); err != nil || dup != m.ID {
		t.Fatalf("resubmission after reopening: dup %q (%v), want %s", dup, err, m.ID)
	}
}

// Open reads back only the records that carry a duplicate-suppression
// key (each sealed segment lists them), and the keys work after it; a
// segment sealed without the list (magic SBFX), or whose list is damaged,
// is read whole instead, to the same records.
func TestFinalSegmentsReloadKeyedOnly(t *testing.T) {
	opts := Options{Dir: t.TempDir(), CheckpointInterval: 5 * time.Millisecond, ClientKeyWindow: time.Hour}
	k := knobs{segBytes: 2048}
	db := openKnobsT(t, opts, k)
	ctx := context.Background()
	keyed := map[string]string{} // id → key
	for i := range 8 {
		finishN(t, db, 100*i, 40)
		m := newMsg(100*i + 50)
		key := fmt.Sprintf("key-%d", i)
		if dup, err := acceptDedup(db, ctx, m, []byte(key), time.Hour); err != nil || dup != "" {
			t.Fatal(dup, err)
		}
		if err := db.Transition(ctx, m.ID, Event{State: msg.Delivered}, true); err != nil {
			t.Fatal(err)
		}
		keyed[m.ID] = key
	}
	testutil.WaitFor(t, "three sealed segments", 10*time.Second, func() bool { return sealedN(db.committer.finals) >= 3 })
	db.Close()

	recent := func() (ids []string) {
		t.Helper()
		fl, err := openFinalLog(opts.Dir, k.segBytes, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		defer fl.closeFiles()
		if err := fl.recent(time.Time{}, func(id string, _ []byte) error {
			ids = append(ids, id)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	// Each segment lists its keyed records: the sealed ones in their
	// files, the open one as it was read back.
	fl, err := openFinalLog(opts.Dir, k.segBytes, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	listed := len(fl.cur.keyed)
	for _, s := range fl.sealed {
		if s.keyed < 0 {
			t.Fatalf("%s sealed without a keyed list", s.path)
		}
		listed += s.keyed
	}
	fl.closeFiles()
	if listed != len(keyed) {
		t.Fatalf("segments list %d keyed records, want %d", listed, len(keyed))
	}
	got := recent()
	slices.Sort(got)
	want := slices.Sorted(maps.Keys(keyed))
	if !slices.Equal(got, want) {
		t.Fatalf("Open read %d records, want the %d keyed ones %v", len(got), len(want), want)
	}

	// The oldest segment as an earlier version sealed it, the next with
	// its list damaged: both are read whole.
	segs := segFiles(t, opts.Dir)
	rewriteTrailer(t, segs[0], func(b []byte, keyedOff int64) []byte {
		t := slices.Clone(b[len(b)-segTrailer:])
		copy(t[36:], segTrailOld)
		return append(b[:keyedOff], t...)
	})
	rewriteTrailer(t, segs[1], func(b []byte, keyedOff int64) []byte {
		b[keyedOff] ^= 0xff
		return b
	})
	got = recent()
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("with two segments read whole, Open read %d records, want the %d keyed ones %v", len(got), len(want), want)
	}

	db = openT(t, opts)
	for id, key := range keyed {
		if dup, err := acceptDedup(db, ctx, newMsg(999), []byte(key), time.Hour); err != nil || dup != id {
			t.Fatalf("%s again after reopening: dup %q (%v), want %s", key, dup, err, id)
		}
	}
}

// rewriteTrailer rewrites the sealed segment at path with edit, which gets
// the file's bytes and where its keyed list starts.
func rewriteTrailer(t *testing.T, path string, edit func(b []byte, keyedOff int64) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := &segment{path: path}
	if ok, err := s.parseTrailer(bytes.NewReader(b), int64(len(b))); !ok || err != nil || s.keyed < 0 {
		t.Fatalf("%s: not sealed with a keyed list (%v)", path, err)
	}
	if err := os.WriteFile(path, edit(b, s.keyedOff), 0o644); err != nil {
		t.Fatal(err)
	}
}

// FuzzFinalSegment reads arbitrary bytes as a segment file: the scan and
// the sealed-segment lookups end cleanly whatever they hold. The corpus
// (testdata/fuzz/FuzzFinalSegment) holds a sealed segment and an open one
// as a store wrote them.
func FuzzFinalSegment(f *testing.F) {
	f.Add([]byte{})
	f.Add(segHeader(time.Unix(1, 0)))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		var ids [][idLen]byte
		_, end, _, err := scanSegment(r, func(id [idLen]byte, off uint32, _ uint64, val []byte) error {
			if int64(off)+segRecHead+idLen+int64(len(val)) > int64(len(data)) {
				t.Fatalf("record at %d runs past the data", off)
			}
			ids = append(ids, id)
			return nil
		})
		if err != nil || end > int64(len(data)) {
			t.Fatalf("scan: end %d of %d, %v", end, len(data), err)
		}
		s := &segment{path: "fuzz"}
		ok, err := s.parseTrailer(r, int64(len(data)))
		if err != nil || !ok {
			return
		}
		for _, id := range append(ids, s.min, s.max, [idLen]byte{}) {
			v, err := s.lookupIn(r, id, 0)
			if err == nil && len(v) > len(data) {
				t.Fatalf("lookup of %q returned %d bytes of %d", id, len(v), len(data))
			}
		}
		s.eachKeyed(r, func(id string, v []byte) error {
			if len(v) > len(data) {
				t.Fatalf("keyed record %q of %d bytes in %d", id, len(v), len(data))
			}
			return nil
		})
	})
}

// The corpus's sealed segments are ones this code reads: each record the
// scan finds is found again through the index; the one sealed before the
// keyed list existed has none, the other lists exactly its records with a
// duplicate-suppression key.
func TestFinalSegmentCorpusReadable(t *testing.T) {
	for _, c := range []struct {
		name  string
		keyed bool
	}{{"sealed", false}, {"sealed-keyed", true}} {
		b, err := os.ReadFile("testdata/fuzz/FuzzFinalSegment/" + c.name)
		if err != nil {
			t.Fatal(err)
		}
		q := strings.TrimSuffix(strings.SplitN(string(b), "\n", 2)[1], "\n")
		raw, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(q, "[]byte("), ")"))
		if err != nil {
			t.Fatal(err)
		}
		r := strings.NewReader(raw)
		s := &segment{path: "corpus"}
		if ok, err := s.parseTrailer(r, int64(len(raw))); !ok || err != nil {
			t.Fatalf("%s: corpus segment not sealed: %v", c.name, err)
		}
		n := 0
		var withKey []string
		_, _, _, err = scanSegment(io.NewSectionReader(r, 0, s.idxOff), func(id [idLen]byte, _ uint32, _ uint64, val []byte) error {
			n++
			got, err := s.lookupIn(r, id, 0)
			if err != nil || !bytes.Equal(got, val) {
				t.Fatalf("%s: %s: %v", c.name, id, err)
			}
			if rec, err := decodeRecord(string(id[:]), val); err == nil && rec.dedup != "" {
				withKey = append(withKey, string(id[:]))
			}
			return nil
		})
		if err != nil || n == 0 || n != s.n {
			t.Fatalf("%s: %d records scanned, index has %d (%v)", c.name, n, s.n, err)
		}
		var listed []string
		ok, err := s.eachKeyed(r, func(id string, _ []byte) error {
			listed = append(listed, id)
			return nil
		})
		if err != nil || ok != c.keyed || (c.keyed && (len(withKey) == 0 || !slices.Equal(listed, withKey))) {
			t.Fatalf("%s: keyed list %v (%v, %v), records with a key %v", c.name, listed, ok, err, withKey)
		}
	}
}
