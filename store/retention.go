package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Final records carry a badger TTL of Options.Retention, but a TTL alone
// frees no disk here. badger drops an expired key only when a compaction
// rewrites its table, and a table that reached the last level before its
// keys expired is never rewritten: message IDs only grow, so no newer
// table overlaps it, and badger picks last-level tables for a rewrite by
// the stale data counted when they were built. The value-log GC then never
// sees the records' space as discardable. The sweeper deletes the expired
// keys explicitly: the delete markers overlap the old tables, so
// compaction merges them away and counts the values discardable.

// sweepLiveRun: a pass stops after this many live records in a row; IDs
// grow with acceptance, so past them records finished too recently to
// have expired.
const sweepLiveRun = 4096

// sweepChunk: keys visited per read transaction and write batch. A
// transaction held open keeps badger from discarding what changed since it
// began, and a batch holds its deletes in memory. After a chunk that
// deleted anything the sweep rests as long as the chunk took, so its own
// goroutine never uses more than half a core: the first pass after a long
// stop may have days to delete, and deliveries must not stall meanwhile.
const sweepChunk = 1 << 14

// sweepBackEvery: one pass in this many starts from the oldest live
// record instead of the live frontier. A message that finished long after
// its neighbours (retried for hours) stays behind the frontier; walking
// back to it means stepping over every delete marker since, which
// compaction takes a while to drop, so it is done every few minutes, not
// every pass.
const sweepBackEvery = 30

// sweeper deletes final records whose retention has ended. A pass walks
// its prefix from where the last one met its final run of live records (front,
// the frontier: records finished too recently to expire), or, every
// sweepBackEvery passes, from the oldest live record it knows of (back).
type sweeper struct {
	bdb    *badger.DB
	prefix []byte     // of the final records it walks
	mu     sync.Mutex // one pass at a time
	front  []byte
	back   []byte
	passes int
}

// expired runs a pass (every Options.SweepInterval, so each pass has
// seconds of expired records) and reports how many it deleted.
func (s *sweeper) expired(ctx context.Context, now time.Time) (int, error) {
	return s.pass(ctx, now, sweepChunk, false)
}

// pass is one pass as of now, visiting at most chunk keys per read
// transaction; back makes it start from the oldest live record whatever
// pass it is.
func (s *sweeper) pass(ctx context.Context, now time.Time, chunk int, back bool) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := uint64(now.Unix())
	back = back || s.front == nil || s.passes%sweepBackEvery == 0
	s.passes++
	start := s.front
	if back {
		start = s.back
	}
	deleted, live := 0, 0
	var first, runStart, last []byte // first live record; where the current run of live ones began
	done := false
	for !done && ctx.Err() == nil {
		began, before := time.Now(), deleted
		wb := s.bdb.NewWriteBatch()
		from := last
		if from == nil {
			from = start
		}
		err := s.bdb.View(func(txn *badger.Txn) error {
			io := badger.DefaultIteratorOptions
			io.Prefix = s.prefix
			io.PrefetchValues = false
			io.AllVersions = true // an ordinary iterator hides expired keys
			it := txn.NewIterator(io)
			defer it.Close()
			if from == nil {
				it.Rewind()
			} else {
				it.Seek(from)
			}
			visited := 0
			for ; it.Valid(); it.Next() {
				item := it.Item()
				if last != nil && string(item.Key()) == string(last) {
					continue // an older version (or, after a chunk, the key it ended on)
				}
				if live >= sweepLiveRun {
					done = true
					return nil
				}
				if visited == chunk {
					return nil // the next chunk starts after last
				}
				visited++
				last = item.KeyCopy(last[:0])
				exp := item.ExpiresAt()
				switch {
				case exp == 0 && item.IsDeletedOrExpired():
					continue // a delete marker (deletes carry no TTL)
				case exp == 0 || exp > at: // live (exp 0, no TTL: not the sweep's to delete)
					if first == nil {
						first = item.KeyCopy(nil)
					}
					if live == 0 {
						runStart = item.KeyCopy(runStart[:0])
					}
					live++
					continue
				}
				live = 0
				if err := wb.Delete(item.KeyCopy(nil)); err != nil {
					return err
				}
				deleted++
			}
			done = true
			return nil
		})
		if err == nil {
			err = wb.Flush()
		} else {
			wb.Cancel()
		}
		if err == nil && !done && deleted > before {
			select { // rest as long as the chunk took (see sweepChunk)
			case <-ctx.Done():
			case <-time.After(time.Since(began)):
			}
		}
		if err != nil {
			if errors.Is(err, badger.ErrDBClosed) {
				err = ErrClosed
			}
			return deleted, fmt.Errorf("store: delete expired records: %w", err)
		}
	}
	if ctx.Err() != nil {
		return deleted, nil // cursors unchanged: the next pass walks this part again
	}
	switch {
	case live > 0:
		s.front = append([]byte(nil), runStart...)
	case last != nil:
		s.front = append([]byte(nil), last...) // expired up to the end
	}
	if back || s.back == nil {
		switch {
		case first != nil:
			s.back = first
		case s.front != nil:
			s.back = s.front
		}
	}
	return deleted, nil
}
