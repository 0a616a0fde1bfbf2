package store

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Message IDs are 20 characters of lower-case base32hex (sort order = numeric
// order), three fixed-width fields:
//
//	epoch   7 chars, 35 bits: max(previous epoch+1, unix seconds at Open), persisted
//	        durably at Open, so IDs never repeat after a restart even if the clock
//	        went back, and IDs of a later run sort after those of an earlier one
//	random  5 chars, 25 bits: per-Open random, so bridges sharing nothing that
//	        start in the same second still differ
//	counter 8 chars, 40 bits: per-Open monotonic counter (acceptance order)
const (
	idLen        = 20
	epochChars   = 7
	randChars    = 5
	counterChars = 8
	maxCounter   = 1<<40 - 1
	b32          = "0123456789abcdefghijklmnopqrstuv"
)

var errIDSpace = errors.New("store: message id counter exhausted; reopen the store")

type idGen struct {
	prefix  [epochChars + randChars]byte
	counter atomic.Uint64
}

func (g *idGen) init(bdb *badger.DB) error {
	var last uint64
	err := bdb.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(keyEpoch))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("epoch record has %d bytes, want 8", len(v))
			}
			last = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("store: read id epoch: %w", err)
	}
	epoch := max(last+1, uint64(time.Now().Unix()))
	if epoch >= 1<<35 {
		return fmt.Errorf("store: id epoch %d overflows 35 bits", epoch)
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], epoch)
	if err := bdb.Update(func(txn *badger.Txn) error { return txn.Set([]byte(keyEpoch), v[:]) }); err != nil {
		return fmt.Errorf("store: write id epoch: %w", err)
	}
	if err := bdb.Sync(); err != nil {
		return fmt.Errorf("store: sync id epoch: %w", err)
	}
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return fmt.Errorf("store: random id prefix: %w", err)
	}
	putB32(g.prefix[:epochChars], epoch)
	putB32(g.prefix[epochChars:], uint64(binary.BigEndian.Uint32(r[:])&(1<<25-1)))
	return nil
}

// next returns a fresh ID; IDs from one idGen sort in call order.
func (g *idGen) next() (string, error) {
	n := g.counter.Add(1)
	if n > maxCounter {
		return "", errIDSpace
	}
	var b [idLen]byte
	copy(b[:], g.prefix[:])
	putB32(b[len(g.prefix):], n)
	return string(b[:]), nil
}

// putB32 writes v into dst as fixed-width base32hex, most significant first.
func putB32(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = b32[v&31]
		v >>= 5
	}
}

// getB32 reads fixed-width base32hex, putB32's inverse; ok is false for a
// character outside the alphabet.
func getB32(src string) (v uint64, ok bool) {
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case '0' <= c && c <= '9':
			v = v<<5 | uint64(c-'0')
		case 'a' <= c && c <= 'v':
			v = v<<5 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'v') {
			return false
		}
	}
	return true
}
