package store

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// finalLog keeps final records out of badger, in append-only segment files
// under <dir>/finals. In badger, every final record was rewritten once per
// level of its LSM tree as compactions carried it down, and those
// compactions took the CPU the acknowledgements needed; here a record is
// written once, and a whole segment is deleted when its last record's
// retention has ended (no delete markers, no rewrite).
//
// The applier appends each logged batch's final records to the open
// segment, unsynced, as it hands badger the rest; a checkpoint fdatasyncs
// the segment before the commit log behind it is freed, so the log covers
// whatever a crash loses from the segment's tail and replay appends it
// again (lookups take a record's newest copy, so that is harmless). A
// checkpoint also closes the open segment to appends once it holds
// maxBytes or is maxAge old, and a goroutine seals it: it appends the
// segment's index (record IDs sorted, with their offsets), syncs, then
// appends a trailer and syncs again, so a valid trailer always has its
// index behind it. Until then the segment's map answers for it. A
// segment found without a trailer behind a newer one (a crash during its
// seal) is sealed at Open.
//
// Layout (little-endian):
//
//	header:  magic[8] "SBFSEG01", created unix nanoseconds:u64
//	record:  len:u32 crc32c:u32 expiresAt:u64 id[20] value[len-20]
//	         (crc over expiresAt, id and value)
//	index:   n entries of id[20] offset:u32, sorted by id, one per id (its newest record)
//	keyed:   offset:u32 of each record carrying a duplicate-suppression
//	         key, in file order, then crc32c:u32 over them
//	trailer: indexOffset:u64 n:u64 maxExpiresAt:u64 sealedAt:i64 (unix ns)
//	         crc32c:u32 (over the 32 bytes before it) magic[4] "SBFY"
//
// Open reloads the keys of the duplicate indexes from the keyed records
// alone, so a day of records without keys costs it nothing. A segment
// sealed before the keyed list existed ends in magic "SBFX" right after
// its index, and is read whole instead.
//
// The open segment's index is a map in memory, rebuilt at Open by reading
// the segment while its records' checksums hold; the file is cut after the
// last good one.
type finalLog struct {
	dir      string
	maxBytes int64
	maxAge   time.Duration

	mu      sync.RWMutex
	sealed  []*segment // oldest first
	sealing []*openSeg // closed to appends, index being written (oldest first)
	cur     *openSeg   // the open segment
	sealErr error      // the last background seal's failure, for the next checkpoint

	sealMu    sync.Mutex     // one seal at a time, in order
	sealWG    sync.WaitGroup // background seals
	sealFault func() error   // knobs.sealFault

	// The applier's (and Open's) alone.
	buf   []byte
	ents  []segEntry
	keyed []uint32
}

// openSeg is a segment whose index is a map in memory: the open one, and
// those being sealed. Its file is closed only under finalLog.mu, so
// readers pread it under RLock.
type openSeg struct {
	s      *segment
	f      *os.File
	off    int64 // end of the last whole record
	synced int64 // off at the last fdatasync
	maxExp uint64
	m      map[[idLen]byte]uint32
	keyed  []uint32 // offsets of the records with a duplicate-suppression key
	// order is every record's entry in file order, for the seal: IDs grow
	// with time, so it is nearly sorted, and sorting it costs much less
	// than sorting the map's random order (BenchmarkSealIndex).
	order []segEntry
}

// segment is one file; created is the open segment's, the fields after it
// are set once it is sealed.
type segment struct {
	seq      uint64
	path     string
	created  time.Time
	sealedAt time.Time
	idxOff   int64
	n        int
	maxExp   uint64 // unix seconds; the segment goes once this has passed
	min, max [idLen]byte
	// The keyed list: keyed offsets at keyedOff; keyed < 0 when the
	// segment has none (sealed by an earlier version).
	keyedOff int64
	keyed    int
}

type segEntry struct {
	id  [idLen]byte
	off uint32
}

const (
	finalsDir     = "finals"
	segMagic      = "SBFSEG01"
	segTrailMagic = "SBFY"
	segTrailOld   = "SBFX" // no keyed list before the trailer
	segHead       = 16
	segRecHead    = 16
	segEntryLen   = idLen + 4
	segTrailer    = 40
	// segMaxBytes: a segment is closed to appends (and sealed) at the
	// first checkpoint after it holds this much (about 300,000 records);
	// its index map is the open segment's memory cost.
	segMaxBytes = 64 << 20
	// segMaxRecord bounds a record read back (maxRecordBytes and its head).
	segMaxRecord = maxRecordBytes + idLen
)

var errSegCorrupt = errors.New("store: final-record segment corrupt")

// segMaxAge is how long a segment stays open at most: a small part of the
// retention period, so that a segment is deleted soon after its records
// expire, and at most an hour, so that few are kept.
func segMaxAge(retention time.Duration) time.Duration {
	return min(max(retention/16, time.Second), time.Hour)
}

// openFinalLog opens the segments under dir/finals (creating it): sealed
// ones are listed from their trailers, the last unsealed one is read into
// the open segment's map and cut after its last good record, and any
// unsealed one before it (a crash during a seal) is sealed now.
func openFinalLog(dir string, maxBytes int64, maxAge time.Duration) (*finalLog, error) {
	l := &finalLog{dir: filepath.Join(dir, finalsDir), maxBytes: maxBytes, maxAge: maxAge}
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return nil, fmt.Errorf("store: final records: %w", err)
	}
	names, err := os.ReadDir(l.dir)
	if err != nil {
		return nil, fmt.Errorf("store: final records: %w", err)
	}
	var seqs []uint64
	for _, e := range names {
		s, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(s, 16, 64); err == nil {
			seqs = append(seqs, n)
		}
	}
	slices.Sort(seqs)
	for i, seq := range seqs {
		s := &segment{seq: seq, path: l.segPath(seq)}
		ok, err := s.readTrailer()
		if err != nil {
			l.closeFiles()
			return nil, err
		}
		if ok {
			l.sealed = append(l.sealed, s)
			continue
		}
		o, err := resumeSegment(s)
		if err != nil {
			l.closeFiles()
			return nil, err
		}
		if i == len(seqs)-1 {
			l.cur = o
			break
		}
		// A crash during its seal: finish it now (or, with no record in
		// it, drop it).
		err = l.seal(o, time.Now())
		o.f.Close()
		if err == nil && len(o.m) == 0 {
			if rerr := os.Remove(o.s.path); rerr != nil {
				err = fmt.Errorf("store: final records: %w", rerr)
			}
		}
		if err != nil {
			l.closeFiles()
			return nil, err
		}
	}
	if l.cur == nil {
		next := uint64(1)
		if len(seqs) > 0 {
			next = seqs[len(seqs)-1] + 1
		}
		o, err := l.create(next, time.Now())
		if err != nil {
			l.closeFiles()
			return nil, err
		}
		l.cur = o
	}
	return l, nil
}

func (l *finalLog) segPath(seq uint64) string {
	return filepath.Join(l.dir, fmt.Sprintf("%016x.seg", seq))
}

// create makes segment seq, its header durable.
func (l *finalLog) create(seq uint64, now time.Time) (*openSeg, error) {
	path := l.segPath(seq)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("store: final records: %w", err)
	}
	if _, err = f.WriteAt(segHeader(now), 0); err == nil {
		if err = f.Sync(); err == nil {
			err = syncDir(l.dir)
		}
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("store: final records: new segment: %w", err)
	}
	return &openSeg{
		s: &segment{seq: seq, path: path, created: now},
		f: f, off: segHead, synced: segHead,
		m: make(map[[idLen]byte]uint32),
	}, nil
}

func segHeader(created time.Time) []byte {
	h := make([]byte, segHead)
	copy(h, segMagic)
	binary.LittleEndian.PutUint64(h[8:], uint64(created.UnixNano()))
	return h
}

// resumeSegment reads s, an unsealed segment, while its records'
// checksums hold, and cuts the file after the last good one.
func resumeSegment(s *segment) (*openSeg, error) {
	f, err := os.OpenFile(s.path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("store: final records: %w", err)
	}
	m := make(map[[idLen]byte]uint32)
	var keyed []uint32
	var order []segEntry
	created, end, maxExp, err := scanSegment(f, func(id [idLen]byte, off uint32, _ uint64, val []byte) error {
		m[id] = off
		order = append(order, segEntry{id, off})
		if mayHaveDedupKey(val) {
			keyed = append(keyed, off)
		}
		return nil
	})
	if err == nil && end == 0 { // not even a header: start it afresh
		created, end = time.Now(), segHead
		_, err = f.WriteAt(segHeader(created), 0)
	}
	if err == nil {
		if err = f.Truncate(end); err == nil {
			err = f.Sync()
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("store: final records: read %s: %w", s.path, err)
	}
	s.created = created
	return &openSeg{s: s, f: f, off: end, synced: end, maxExp: maxExp, m: m, keyed: keyed, order: order}, nil
}

// scanSegment reads a segment's header and its records from the start
// while their checksums hold, handing each to fn, and returns the
// segment's creation time, where its last good record ends (0 without a
// valid header), and the largest expiry it saw. Only an I/O error or fn's
// is an error: whatever does not parse ends the good part.
func scanSegment(f io.ReaderAt, fn func(id [idLen]byte, off uint32, exp uint64, val []byte) error) (created time.Time, end int64, maxExp uint64, err error) {
	r := bufio.NewReaderSize(io.NewSectionReader(f, 0, math.MaxInt64), 256<<10)
	h := make([]byte, segHead)
	if _, err := io.ReadFull(r, h); err != nil || string(h[:8]) != segMagic {
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return time.Time{}, 0, 0, err
		}
		return time.Time{}, 0, 0, nil
	}
	created = time.Unix(0, int64(binary.LittleEndian.Uint64(h[8:])))
	end = segHead
	rec := make([]byte, 0, 1024)
	for end < math.MaxUint32 {
		if _, err := io.ReadFull(r, h); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			return created, end, maxExp, err
		}
		n := binary.LittleEndian.Uint32(h)
		if n < idLen || n > segMaxRecord {
			break
		}
		rec = slices.Grow(rec[:0], int(n)+8)[:int(n)+8]
		copy(rec, h[8:16])
		if _, err := io.ReadFull(r, rec[8:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			return created, end, maxExp, err
		}
		if crc32cSum(rec) != binary.LittleEndian.Uint32(h[4:]) {
			break
		}
		exp := binary.LittleEndian.Uint64(rec)
		var id [idLen]byte
		copy(id[:], rec[8:8+idLen])
		if err := fn(id, uint32(end), exp, rec[8+idLen:]); err != nil {
			return created, end, maxExp, err
		}
		maxExp = max(maxExp, exp)
		end += segRecHead + int64(n)
	}
	return created, end, maxExp, nil
}

// readTrailer reports whether s's file ends in a valid trailer and, if
// so, fills in the sealed segment's fields from it and its index.
func (s *segment) readTrailer() (bool, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return false, fmt.Errorf("store: final records: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("store: final records: %w", err)
	}
	return s.parseTrailer(f, st.Size())
}

func (s *segment) parseTrailer(f io.ReaderAt, size int64) (bool, error) {
	if size < segHead+segTrailer {
		return false, nil
	}
	t := make([]byte, segTrailer)
	if _, err := f.ReadAt(t, size-segTrailer); err != nil {
		return false, fmt.Errorf("store: final records: %s: %w", s.path, err)
	}
	magic := string(t[36:])
	if (magic != segTrailMagic && magic != segTrailOld) || crc32cSum(t[:32]) != binary.LittleEndian.Uint32(t[32:]) {
		return false, nil
	}
	idxOff := int64(binary.LittleEndian.Uint64(t))
	n := binary.LittleEndian.Uint64(t[8:])
	if idxOff < segHead || idxOff > size || n == 0 || n > uint64(size)/segEntryLen {
		return false, nil
	}
	idxEnd := idxOff + int64(n)*segEntryLen
	keyedLen := size - segTrailer - idxEnd // the list and its checksum
	switch {
	case magic == segTrailOld && keyedLen == 0:
		s.keyedOff, s.keyed = 0, -1
	case magic == segTrailMagic && keyedLen >= 4 && keyedLen%4 == 0:
		s.keyedOff, s.keyed = idxEnd, int(keyedLen/4-1)
	default:
		return false, nil
	}
	h := make([]byte, segHead)
	if _, err := f.ReadAt(h, 0); err != nil || string(h[:8]) != segMagic {
		return false, nil
	}
	e := make([]byte, segEntryLen)
	if _, err := f.ReadAt(e, idxOff); err != nil {
		return false, fmt.Errorf("store: final records: %s: %w", s.path, err)
	}
	copy(s.min[:], e)
	if _, err := f.ReadAt(e, idxOff+int64(n-1)*segEntryLen); err != nil {
		return false, fmt.Errorf("store: final records: %s: %w", s.path, err)
	}
	copy(s.max[:], e)
	s.idxOff, s.n = idxOff, int(n)
	s.maxExp = binary.LittleEndian.Uint64(t[16:])
	s.sealedAt = time.Unix(0, int64(binary.LittleEndian.Uint64(t[24:])))
	return true, nil
}

// append writes final-record ops (keys under prefixMsg) to the open
// segment, unsynced. Only the applier (and Open's replay) call it.
func (l *finalLog) append(ops []op) error {
	o := l.cur
	b, ents, keyed := l.buf[:0], l.ents[:0], l.keyed[:0]
	for i := range ops {
		op := &ops[i]
		id := op.key[len(prefixMsg):]
		if len(id) != idLen {
			return fmt.Errorf("store: final record key %q: not a message id", op.key)
		}
		at := o.off + int64(len(b))
		if at > math.MaxUint32-segRecHead-int64(len(id)+len(op.val)) {
			return fmt.Errorf("store: final records: segment %s full", o.s.path)
		}
		var e segEntry
		copy(e.id[:], id)
		e.off = uint32(at)
		ents = append(ents, e)
		if mayHaveDedupKey(op.val) {
			keyed = append(keyed, e.off)
		}
		start := len(b)
		b = binary.LittleEndian.AppendUint32(b, uint32(idLen+len(op.val)))
		b = append(b, 0, 0, 0, 0)
		b = binary.LittleEndian.AppendUint64(b, op.expiresAt)
		b = append(b, id...)
		b = append(b, op.val...)
		binary.LittleEndian.PutUint32(b[start+4:], crc32cSum(b[start+8:]))
		o.maxExp = max(o.maxExp, op.expiresAt)
	}
	l.buf, l.ents, l.keyed = b, ents, keyed
	if len(b) == 0 {
		return nil
	}
	if _, err := o.f.WriteAt(b, o.off); err != nil {
		return fmt.Errorf("store: final records: write: %w", err)
	}
	l.mu.Lock()
	for _, e := range ents {
		o.m[e.id] = e.off
	}
	o.order = append(o.order, ents...)
	o.keyed = append(o.keyed, keyed...)
	o.off += int64(len(b))
	l.mu.Unlock()
	return nil
}

// checkpoint makes the open segment durable and, once it is full or old
// enough, starts the next one and seals it in the background. The applier
// calls it before the commit log behind it is freed; the seal only adds
// the index, so the log need not wait for it.
func (l *finalLog) checkpoint(now time.Time) error {
	o := l.cur
	if o.off > o.synced {
		if err := unix.Fdatasync(int(o.f.Fd())); err != nil {
			return fmt.Errorf("store: final records: fsync: %w", err)
		}
		o.synced = o.off
	}
	l.mu.Lock()
	err, retry := l.sealErr, l.sealErr != nil
	l.sealErr = nil
	l.mu.Unlock()
	if retry {
		l.sealWG.Go(l.sealPending)
	}
	if l.sealDue(now) {
		next, cerr := l.create(o.s.seq+1, now)
		if cerr != nil {
			return errors.Join(err, cerr)
		}
		l.mu.Lock()
		l.cur = next
		l.sealing = append(l.sealing, o)
		l.mu.Unlock()
		// Even beside a retry: it may have found nothing left and returned.
		l.sealWG.Go(l.sealPending)
	}
	if err != nil {
		return fmt.Errorf("store: final records: seal (tried again): %w", err)
	}
	return nil
}

// sealDue reports whether the open segment is due to be sealed.
func (l *finalLog) sealDue(now time.Time) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	o := l.cur
	return o != nil && o.off > segHead && (o.off >= l.maxBytes || now.Sub(o.s.created) >= l.maxAge)
}

// sealPending seals the segments waiting for it, oldest first; a failure
// is left for the next checkpoint to report and try again.
func (l *finalLog) sealPending() {
	l.sealMu.Lock()
	defer l.sealMu.Unlock()
	for {
		l.mu.RLock()
		var o *openSeg
		if len(l.sealing) > 0 {
			o = l.sealing[0]
		}
		l.mu.RUnlock()
		if o == nil {
			return
		}
		if err := l.seal(o, time.Now()); err != nil {
			l.mu.Lock()
			l.sealErr = err
			l.mu.Unlock()
			return
		}
		l.mu.Lock()
		l.sealing = l.sealing[1:]
		o.f.Close()
		o.f = nil
		o.order = nil
		l.mu.Unlock()
	}
}

// sortedIndex sorts a segment's entries, given in file order, by ID, in
// place, and keeps the last written of each ID, as the open segment's map
// does (a record's offset grows with its write).
func sortedIndex(ents []segEntry) []segEntry {
	slices.SortFunc(ents, func(a, b segEntry) int {
		if c := compareID(&a.id, &b.id); c != 0 {
			return c
		}
		return cmp.Compare(a.off, b.off)
	})
	out := ents[:0]
	for i, e := range ents {
		if i+1 < len(ents) && ents[i+1].id == e.id {
			continue
		}
		out = append(out, e)
	}
	return out
}

// compareID orders IDs as bytes.Compare does, a word at a time: the
// seal's sort makes millions of comparisons.
func compareID(a, b *[idLen]byte) int {
	var _ [idLen - 20]struct{} // the words below cover exactly 20 bytes
	var _ [20 - idLen]struct{}
	if c := cmp.Compare(binary.BigEndian.Uint64(a[0:8]), binary.BigEndian.Uint64(b[0:8])); c != 0 {
		return c
	}
	if c := cmp.Compare(binary.BigEndian.Uint64(a[8:16]), binary.BigEndian.Uint64(b[8:16])); c != 0 {
		return c
	}
	return cmp.Compare(binary.BigEndian.Uint32(a[16:20]), binary.BigEndian.Uint32(b[16:20]))
}

// seal appends o's index and trailer, each synced, and lists it as
// sealed. Readers go on meanwhile from its map (no one writes it now).
func (l *finalLog) seal(o *openSeg, now time.Time) error {
	ents := sortedIndex(o.order)
	o.order = ents // a retry sorts what is left, already in order
	if len(ents) == 0 {
		return nil
	}
	b := make([]byte, 0, len(ents)*segEntryLen+4*len(o.keyed)+4)
	for _, e := range ents {
		b = append(b, e.id[:]...)
		b = binary.LittleEndian.AppendUint32(b, e.off)
	}
	keyedOff := len(b)
	for _, off := range o.keyed {
		b = binary.LittleEndian.AppendUint32(b, off)
	}
	b = binary.LittleEndian.AppendUint32(b, crc32cSum(b[keyedOff:]))
	idxOff := o.off
	t := binary.LittleEndian.AppendUint64(nil, uint64(idxOff))
	t = binary.LittleEndian.AppendUint64(t, uint64(len(ents)))
	t = binary.LittleEndian.AppendUint64(t, o.maxExp)
	t = binary.LittleEndian.AppendUint64(t, uint64(now.UnixNano()))
	t = binary.LittleEndian.AppendUint32(t, crc32cSum(t))
	t = append(t, segTrailMagic...)
	fd := int(o.f.Fd())
	_, err := o.f.WriteAt(b, idxOff)
	if err == nil {
		err = unix.Fdatasync(fd)
	}
	if f := l.sealFault; err == nil && f != nil {
		err = f()
	}
	if err == nil {
		_, err = o.f.WriteAt(t, idxOff+int64(len(b)))
	}
	if err == nil {
		err = unix.Fdatasync(fd)
	}
	if err != nil {
		// A trailer must not outlive a failed seal over a partial index.
		if terr := o.f.Truncate(idxOff); terr != nil {
			err = errors.Join(err, terr)
		}
		return fmt.Errorf("store: final records: seal %s: %w", o.s.path, err)
	}
	s := o.s
	s.sealedAt, s.idxOff, s.n, s.maxExp = now, idxOff, len(ents), o.maxExp
	s.min, s.max = ents[0].id, ents[len(ents)-1].id
	s.keyedOff, s.keyed = idxOff+int64(keyedOff), len(o.keyed)
	l.mu.Lock()
	l.sealed = append(l.sealed, s)
	l.mu.Unlock()
	return nil
}

// get returns the newest copy of id's final record, or ErrNotFound (also
// once its retention has ended, as badger's TTL did).
func (l *finalLog) get(id string, now time.Time) ([]byte, error) {
	var k [idLen]byte
	if len(id) != idLen {
		return nil, ErrNotFound
	}
	copy(k[:], id)
	at := uint64(now.Unix())
	l.mu.RLock()
	if l.cur == nil || l.cur.f == nil {
		l.mu.RUnlock()
		return nil, ErrClosed
	}
	for i := len(l.sealing); i >= 0; i-- {
		o := l.cur
		if i < len(l.sealing) {
			o = l.sealing[i]
		}
		if off, ok := o.m[k]; ok {
			v, err := readSegRecord(o.f, int64(off), k, at)
			l.mu.RUnlock()
			return v, err
		}
	}
	var cands []*segment
	for i := len(l.sealed) - 1; i >= 0; i-- {
		if s := l.sealed[i]; bytes.Compare(s.min[:], k[:]) <= 0 && bytes.Compare(k[:], s.max[:]) <= 0 {
			cands = append(cands, s)
		}
	}
	l.mu.RUnlock()
	for _, s := range cands {
		v, err := s.lookup(k, at)
		if !errors.Is(err, ErrNotFound) {
			return v, err
		}
	}
	return nil, ErrNotFound
}

// lookup finds id in a sealed segment's index and reads its record.
func (s *segment) lookup(k [idLen]byte, at uint64) ([]byte, error) {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotFound // deleted as expired meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("store: final records: %w", err)
	}
	defer f.Close()
	return s.lookupIn(f, k, at)
}

// lookupIn is lookup in the segment's file f.
func (s *segment) lookupIn(f io.ReaderAt, k [idLen]byte, at uint64) ([]byte, error) {
	e := make([]byte, segEntryLen)
	lo, hi := 0, s.n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if _, err := f.ReadAt(e, s.idxOff+int64(mid)*segEntryLen); err != nil {
			return nil, fmt.Errorf("store: final records: %s: %w", s.path, err)
		}
		switch c := bytes.Compare(e[:idLen], k[:]); {
		case c == 0:
			return readSegRecord(f, int64(binary.LittleEndian.Uint32(e[idLen:])), k, at)
		case c < 0:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return nil, ErrNotFound
}

// readSegRecord reads the record at off, which must be id's.
func readSegRecord(f io.ReaderAt, off int64, k [idLen]byte, at uint64) ([]byte, error) {
	id, exp, val, err := readSegRecordAt(f, off)
	if err != nil {
		return nil, err
	}
	if id != k {
		return nil, fmt.Errorf("%w: record at %d", errSegCorrupt, off)
	}
	if exp != 0 && exp <= at {
		return nil, ErrNotFound
	}
	return val, nil
}

// readSegRecordAt reads whichever record is at off, checksum checked.
func readSegRecordAt(f io.ReaderAt, off int64) (id [idLen]byte, exp uint64, val []byte, err error) {
	h := make([]byte, segRecHead)
	if _, err := f.ReadAt(h, off); err != nil {
		return id, 0, nil, fmt.Errorf("store: final records: read: %w", err)
	}
	n := binary.LittleEndian.Uint32(h)
	if n < idLen || n > segMaxRecord {
		return id, 0, nil, fmt.Errorf("%w: record at %d", errSegCorrupt, off)
	}
	rec := make([]byte, 8+n)
	copy(rec, h[8:])
	if _, err := f.ReadAt(rec[8:], off+segRecHead); err != nil {
		return id, 0, nil, fmt.Errorf("store: final records: read: %w", err)
	}
	if crc32cSum(rec) != binary.LittleEndian.Uint32(h[4:]) {
		return id, 0, nil, fmt.Errorf("%w: record at %d", errSegCorrupt, off)
	}
	copy(id[:], rec[8:])
	return id, binary.LittleEndian.Uint64(rec), rec[8+idLen:], nil
}

// eachKeyed hands fn each record of a sealed segment's keyed list, read
// from f. It reports false, having called fn for none, when the segment
// has no list or the list's checksum fails: the caller reads the records
// whole then.
func (s *segment) eachKeyed(f io.ReaderAt, fn func(id string, val []byte) error) (bool, error) {
	if s.keyed < 0 || s.keyed > math.MaxInt32/4 {
		return false, nil
	}
	b := make([]byte, 4*s.keyed+4)
	if _, err := f.ReadAt(b, s.keyedOff); err != nil {
		return false, fmt.Errorf("store: final records: %s: %w", s.path, err)
	}
	list := b[:4*s.keyed]
	if crc32cSum(list) != binary.LittleEndian.Uint32(b[len(list):]) {
		return false, nil
	}
	for i := 0; i < len(list); i += 4 {
		if err := keyedRecord(f, int64(binary.LittleEndian.Uint32(list[i:])), fn); err != nil {
			return true, fmt.Errorf("%s: %w", s.path, err)
		}
	}
	return true, nil
}

// keyedRecord hands fn the record at off. A damaged record is passed
// over, as a scan stops at one: Open must not fail on it.
func keyedRecord(f io.ReaderAt, off int64, fn func(id string, val []byte) error) error {
	id, _, val, err := readSegRecordAt(f, off)
	if errors.Is(err, errSegCorrupt) {
		return nil
	}
	if err != nil {
		return err
	}
	return fn(string(id[:]), val)
}

// recent hands fn every record that may carry a duplicate-suppression
// key, of the open segment and of the sealed segments sealed at or after
// since, newest segment first (the dedup index's load at Open).
func (l *finalLog) recent(since time.Time, fn func(id string, val []byte) error) error {
	each := func(f io.ReaderAt) error {
		_, _, _, err := scanSegment(f, func(id [idLen]byte, _ uint32, _ uint64, val []byte) error {
			if !mayHaveDedupKey(val) {
				return nil
			}
			return fn(string(id[:]), val)
		})
		return err
	}
	// Under the lock: Open's checkpoint may have started sealing the
	// segment it resumed, and the seal closes its file.
	l.mu.RLock()
	for _, o := range append([]*openSeg{l.cur}, l.sealing...) {
		if err := o.eachKeyed(each, fn); err != nil {
			l.mu.RUnlock()
			return err
		}
	}
	sealed := slices.Clone(l.sealed)
	l.mu.RUnlock()
	for i := len(sealed) - 1; i >= 0 && !sealed[i].sealedAt.Before(since); i-- {
		s := sealed[i]
		sf, err := os.Open(s.path)
		if err != nil {
			return fmt.Errorf("store: final records: %w", err)
		}
		ok := false
		if fewKeyed(s.keyed, s.n) {
			ok, err = s.eachKeyed(sf, fn)
		}
		if !ok && err == nil {
			err = each(io.NewSectionReader(sf, 0, s.idxOff))
		}
		sf.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// fewKeyed reports whether reading a segment's keyed records one by one
// beats one pass over all n of its records.
func fewKeyed(keyed, n int) bool { return keyed*8 <= n }

// eachKeyed hands fn the open segment's keyed records, or has each read
// all of them when most are keyed. Under finalLog.mu.
func (o *openSeg) eachKeyed(each func(io.ReaderAt) error, fn func(id string, val []byte) error) error {
	if !fewKeyed(len(o.keyed), len(o.m)) {
		return each(io.NewSectionReader(o.f, 0, o.off))
	}
	for _, off := range o.keyed {
		if err := keyedRecord(o.f, int64(off), fn); err != nil {
			return fmt.Errorf("%s: %w", o.s.path, err)
		}
	}
	return nil
}

// dropExpired deletes the sealed segments whose every record's retention
// has ended and reports how many.
func (l *finalLog) dropExpired(now time.Time) (int, error) {
	at := uint64(now.Unix())
	l.mu.Lock()
	i := 0
	for i < len(l.sealed) && l.sealed[i].maxExp != 0 && l.sealed[i].maxExp <= at {
		i++
	}
	gone := slices.Clone(l.sealed[:i])
	l.sealed = slices.Delete(l.sealed, 0, i)
	l.mu.Unlock()
	var errs []error
	for _, s := range gone {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return len(gone), fmt.Errorf("store: final records: delete expired segments: %w", err)
	}
	return len(gone), nil
}

// segments reports how many segments there are (the open one included).
func (l *finalLog) segments() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.sealed) + len(l.sealing) + 1
}

// closeFiles waits for the background seals and closes the open files.
func (l *finalLog) closeFiles() {
	if l == nil {
		return
	}
	l.sealWG.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, o := range append([]*openSeg{l.cur}, l.sealing...) {
		if o != nil && o.f != nil {
			o.f.Close()
			o.f = nil
		}
	}
}
