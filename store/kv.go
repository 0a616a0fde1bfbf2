package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/dgraph-io/badger/v4"
)

// The key-value space other packages keep their own state in: any key
// outside the store's reserved prefixes.

func reserved(key []byte) bool {
	return len(key) == 0 || bytes.HasPrefix(key, []byte(prefixMsg)) || bytes.HasPrefix(key, []byte(prefixOldMsg)) ||
		bytes.HasPrefix(key, []byte(prefixInternal))
}

// Put durably stores val under key: when it returns nil the write is on disk.
// Keys under "!m/", "m/" and "_/" are reserved.
func (db *DB) Put(ctx context.Context, key, val []byte) error {
	if reserved(key) {
		return fmt.Errorf("put %q: %w", key, ErrReservedKey)
	}
	return db.put(ctx, key, val)
}

func (db *DB) put(ctx context.Context, key, val []byte) error {
	return db.writeKey(ctx, key, val, false)
}

// PutPairs durably stores each pair's value under its key, all in one
// group commit: one wait instead of one per key.
func (db *DB) PutPairs(ctx context.Context, pairs ...[2][]byte) error {
	for _, p := range pairs {
		if reserved(p[0]) {
			return fmt.Errorf("put %q: %w", p[0], ErrReservedKey)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &db.committer
	if err := c.waitRoom(); err != nil {
		return err
	}
	// Copied, as writeKey does: the batch may outlive the caller's bytes.
	buf := c.getBuf()
	n := 0
	for _, p := range pairs {
		n += len(p[0]) + len(p[1])
	}
	*buf = slices.Grow(*buf, n) // the ops below alias it: no reallocation after
	ops := make([]op, len(pairs))
	for i, p := range pairs {
		k := len(*buf)
		v := k + len(p[0])
		*buf = append(append(*buf, p[0]...), p[1]...)
		e := len(*buf)
		ops[i] = op{key: (*buf)[k:v:v], val: (*buf)[v:e:e]}
	}
	b, err := c.submit(ops, buf)
	if err != nil {
		return err
	}
	return c.wait(ctx, b)
}

// Delete durably removes key.
func (db *DB) Delete(ctx context.Context, key []byte) error {
	if reserved(key) {
		return fmt.Errorf("delete %q: %w", key, ErrReservedKey)
	}
	return db.writeKey(ctx, key, nil, true)
}

// writeKey queues one put (or delete) and waits for its commit.
func (db *DB) writeKey(ctx context.Context, key, val []byte, del bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := &db.committer
	if err := c.waitRoom(); err != nil {
		return err
	}
	// Copy: if ctx ends first the batch still holds the bytes after we return.
	buf := c.getBuf()
	*buf = append(append(*buf, key...), val...)
	ops := [1]op{{key: (*buf)[:len(key):len(key)], val: (*buf)[len(key):], del: del}}
	b, err := c.submit(ops[:], buf)
	if err != nil {
		return err
	}
	return c.wait(ctx, b)
}

// Get returns a copy of the value stored under key, or ErrNotFound.
func (db *DB) Get(key []byte) ([]byte, error) {
	if reserved(key) {
		return nil, fmt.Errorf("get %q: %w", key, ErrReservedKey)
	}
	db.committer.waitApplied()
	return db.get(key)
}

func (db *DB) get(key []byte) ([]byte, error) {
	if db.bdb.IsClosed() {
		return nil, ErrClosed
	}
	var val []byte
	err := db.bdb.View(func(txn *badger.Txn) error {
		it, err := txn.Get(key)
		if err != nil {
			return err
		}
		val, err = it.ValueCopy(nil)
		return err
	})
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		return nil, ErrNotFound
	case errors.Is(err, badger.ErrDBClosed):
		return nil, ErrClosed
	case err != nil:
		return nil, fmt.Errorf("store: get %q: %w", key, err)
	}
	return val, nil
}

// Iterate calls fn for every key with prefix, in key order, over a consistent
// snapshot. key and val are valid only during the call. Reserved keys are
// never visited. An error from fn stops the iteration and is returned.
func (db *DB) Iterate(prefix []byte, fn func(key, val []byte) error) error {
	db.committer.waitApplied()
	err := db.bdb.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.Prefix = prefix
		it := txn.NewIterator(io)
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			item := it.Item()
			k := item.Key()
			if reserved(k) {
				continue
			}
			if err := item.Value(func(v []byte) error { return fn(k, v) }); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, badger.ErrDBClosed) {
		return ErrClosed
	}
	return err
}
