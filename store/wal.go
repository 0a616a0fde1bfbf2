package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The commit log is what makes a group commit durable. Each batch is
// appended to it as one record and fdatasynced; badger gets the same writes
// without a sync, and is synced only at a checkpoint (CheckpointInterval),
// after which the log starts over. badger's own sync is an msync of its
// whole memory-mapped write-ahead log, which also write-protects the pages
// it flushed, so badger's next writes fault on them again; a pwrite and an
// fdatasync of a file whose blocks are already allocated cost far less.
// With the log as the durable copy, an unfinished message's record can
// also wait in memory until the checkpoint: most messages are finished
// long before it, and then only their final record reaches badger
// (deferred.go). The committer's use of the log is in commitlog.go.
//
// Layout: two 512-byte header slots at offsets 0 and 512 (written
// alternately, so a torn header write leaves the other slot valid), records
// from offset 4096:
//
//	header: magic[8] gen:u64 start:u64 crc32c:u32  (little-endian)
//	record: len:u32 crc32c:u32 seq:u64 ops[len]    (crc over seq and ops)
//	op:     flags:u8 (bit0 delete) key:uvarint-len+bytes
//	        [val:uvarint-len+bytes expiresAt:uvarint, unless delete]
//
// Replay reads the header slot with the highest generation and the records
// from start while each has a good checksum and the next sequence number: a
// record from before the last checkpoint has a smaller one, and a torn
// record (never acknowledged: the next is written only after its fdatasync)
// fails its checksum. Replaying a run of batches that ends at the last one
// is idempotent (every key ends as its last write left it), so a crash
// during a checkpoint, before the header moved on, replays batches badger
// already has, harmlessly.
const (
	walFile    = "commit.log"
	walFileB   = "commit.log.b" // the other of the pair (commitlog.go)
	walMagic   = "SBCLOG01"
	walSlot    = 512
	walData    = 4096
	walRecHead = 16
	walMaxRec  = 1 << 30
)

// crc32cSum is the checksum of the commit log's and the segments' records.
func crc32cSum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

var (
	castagnoli   = crc32.MakeTable(crc32.Castagnoli)
	errWALHeader = errors.New("store: commit log header unreadable (both slots corrupt)")
)

type wal struct {
	path  string // the file's name once in place
	f     *os.File
	size  int64  // allocated length of the file
	off   int64  // where the next record goes
	gen   uint64 // generation of the header last written
	start uint64 // sequence number of the generation's first record
	next  uint64 // sequence number of the next record
	buf   []byte
}

// openWAL opens or creates the log in dir. A new file is allocated (not
// sparse: overwriting allocated blocks needs no metadata in the fdatasync)
// and given a header, both synced before use.
func openWAL(dir string, size int64) (*wal, error) { return openWALFile(dir, walFile, size) }

// openWALFile is openWAL of the log called name.
func openWALFile(dir, name string, size int64) (*wal, error) {
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return createWAL(dir, path, size)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open commit log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("store: commit log: %w", err)
	}
	w := &wal{path: path, f: f, size: st.Size()}
	if err := w.readHeader(); err != nil {
		f.Close()
		return nil, err
	}
	w.off, w.next = walData, w.start
	return w, nil
}

// createWAL makes the log under a temporary name and renames it into place
// once its header is on disk: a crash while creating it leaves no log
// without a header (which Open would refuse), only a temporary file that
// the next attempt starts over.
func createWAL(dir, path string, size int64) (*wal, error) {
	tmp := path + ".new"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: create commit log: %w", err)
	}
	w := &wal{path: path, f: f, off: walData, start: 1, next: 1}
	err = w.grow(max(size, 2*walData))
	if err == nil {
		err = w.writeHeader()
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("store: create commit log: %w", err)
	}
	return w, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("store: sync directory: %w", err)
	}
	return nil
}

// grow allocates the file up to n bytes.
func (w *wal) grow(n int64) error {
	if n <= w.size {
		return nil
	}
	err := unix.Fallocate(int(w.f.Fd()), 0, 0, n)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		err = w.f.Truncate(n) // sparse: correct, only slower to sync
	}
	if err == nil {
		err = w.f.Sync() // the new length is metadata
	}
	if err != nil {
		return fmt.Errorf("store: allocate commit log: %w", err)
	}
	w.size = n
	return nil
}

func (w *wal) readHeader() error {
	var slots [2 * walSlot]byte
	if _, err := w.f.ReadAt(slots[:], 0); err != nil {
		return fmt.Errorf("store: read commit log header: %w", err)
	}
	found := false
	for i := range 2 {
		gen, start, ok := parseHeader(slots[i*walSlot : (i+1)*walSlot])
		if ok && (!found || gen > w.gen) {
			w.gen, w.start, found = gen, start, true
		}
	}
	if !found {
		return errWALHeader
	}
	return nil
}

func parseHeader(b []byte) (gen, start uint64, ok bool) {
	if string(b[:8]) != walMagic {
		return 0, 0, false
	}
	if crc32cSum(b[:24]) != binary.LittleEndian.Uint32(b[24:]) {
		return 0, 0, false
	}
	return binary.LittleEndian.Uint64(b[8:]), binary.LittleEndian.Uint64(b[16:]), true
}

// writeHeader records (gen, start) in the slot the previous header is not in.
func (w *wal) writeHeader() error {
	var b [walSlot]byte
	copy(b[:], walMagic)
	binary.LittleEndian.PutUint64(b[8:], w.gen)
	binary.LittleEndian.PutUint64(b[16:], w.start)
	binary.LittleEndian.PutUint32(b[24:], crc32cSum(b[:24]))
	if _, err := w.f.WriteAt(b[:], int64(w.gen%2)*walSlot); err != nil {
		return fmt.Errorf("store: write commit log header: %w", err)
	}
	if err := unix.Fdatasync(int(w.f.Fd())); err != nil {
		return fmt.Errorf("store: sync commit log header: %w", err)
	}
	return nil
}

// replay calls fn with the ops of every record of the current generation,
// in order, and leaves next after the last one.
func (w *wal) replay(fn func([]op) error) (records int, err error) {
	var head [walRecHead]byte
	var buf []byte
	var ops []op
	for w.off+walRecHead <= w.size {
		if _, err := w.f.ReadAt(head[:], w.off); err != nil {
			return records, fmt.Errorf("store: read commit log: %w", err)
		}
		n := int64(binary.LittleEndian.Uint32(head[:]))
		if binary.LittleEndian.Uint64(head[8:]) != w.next || n > walMaxRec || w.off+walRecHead+n > w.size {
			break
		}
		buf = append(buf[:0], head[8:]...)
		buf = append(buf, make([]byte, n)...)
		if _, err := w.f.ReadAt(buf[8:], w.off+walRecHead); err != nil && !errors.Is(err, io.EOF) {
			return records, fmt.Errorf("store: read commit log: %w", err)
		}
		if crc32cSum(buf) != binary.LittleEndian.Uint32(head[4:]) {
			break
		}
		ops, err = decodeOps(ops[:0], buf[8:])
		if err != nil { // a good checksum over bad ops: not ours to guess at
			return records, fmt.Errorf("store: commit log record %d: %w", w.next, err)
		}
		if err := fn(ops); err != nil {
			return records, err
		}
		records++
		w.off += walRecHead + n
		w.next++
	}
	return records, nil
}

// restartAt begins generation gen at the data start, its first record
// numbered next: what the file held before must be durable elsewhere
// (badger synced) or no longer needed.
func (w *wal) restartAt(gen, next uint64) error {
	w.gen, w.start, w.next = gen, next, next
	if err := w.writeHeader(); err != nil {
		return err
	}
	w.off = walData
	return nil
}

// rewind puts the read position back at the generation's first record.
func (w *wal) rewind() { w.off, w.next = walData, w.start }

// append writes ops as the next record and fdatasyncs it. It returns the
// record's length; the record counts only after advance(n), so a batch
// refused after append (failed sync, injected fault) is overwritten by the
// next one.
func (w *wal) append(ops []op) (int64, error) {
	b := append(w.buf[:0], make([]byte, walRecHead)...)
	for i := range ops {
		if !ops[i].dead {
			b = appendOp(b, &ops[i])
		}
	}
	w.buf = b
	n := int64(len(b) - walRecHead)
	if n > walMaxRec {
		return 0, fmt.Errorf("store: batch of %d bytes is too large to log", n)
	}
	if need := w.off + int64(len(b)); need > w.size {
		if err := w.grow(max(2*w.size, need)); err != nil {
			return 0, err
		}
	}
	putRecordHead(b, w.next)
	if _, err := w.f.WriteAt(b, w.off); err != nil {
		return 0, fmt.Errorf("store: write commit log: %w", err)
	}
	if err := unix.Fdatasync(int(w.f.Fd())); err != nil {
		return 0, fmt.Errorf("store: fsync: %w", err)
	}
	return int64(len(b)), nil
}

// putRecordHead fills in the head of record b (head and ops).
func putRecordHead(b []byte, seq uint64) {
	binary.LittleEndian.PutUint32(b[0:], uint32(len(b)-walRecHead))
	binary.LittleEndian.PutUint64(b[8:], seq)
	binary.LittleEndian.PutUint32(b[4:], crc32cSum(b[8:]))
}

func (w *wal) advance(n int64) {
	w.off += n
	w.next++
}

// used is how much of the file the current generation fills.
func (w *wal) used() int64 { return w.off }

func (w *wal) close() error { return w.f.Close() }

func appendOp(dst []byte, o *op) []byte {
	if o.del {
		dst = append(dst, 1)
		return appendBytes(dst, o.key)
	}
	dst = append(dst, 0)
	dst = appendBytes(dst, o.key)
	dst = appendBytes(dst, o.val)
	return binary.AppendUvarint(dst, o.expiresAt)
}

func appendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// decodeOps parses a record's ops; key and val alias b.
func decodeOps(dst []op, b []byte) ([]op, error) {
	r := reader{b: b}
	for r.err == nil && len(r.b) > 0 {
		var o op
		flags := r.byte()
		if flags > 1 {
			r.fail("op flags")
			break
		}
		o.key = r.bytes()
		if len(o.key) == 0 {
			r.fail("empty key")
			break
		}
		if flags == 1 {
			o.del = true
		} else {
			o.val = r.bytes()
			o.expiresAt = r.uvarint()
		}
		dst = append(dst, o)
	}
	if r.err != nil {
		return dst, r.err
	}
	return dst, nil
}
