package testutil

import (
	"bytes"
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
)

// ErrNotFound is what MemKV.Get returns for a key it does not hold.
var ErrNotFound = errors.New("not found")

// MemKV is an in-memory KV of the shape store.DB offers (Put, Get, Delete,
// Iterate), for tests of packages that keep records in one. It copies what
// goes in and what comes out, so a caller cannot change what it holds by
// reusing a slice. It is safe for concurrent use.
type MemKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

// NewMemKV returns an empty MemKV.
func NewMemKV() *MemKV { return &MemKV{m: make(map[string][]byte)} }

func (k *MemKV) Put(_ context.Context, key, val []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.m[string(key)] = bytes.Clone(val)
	return nil
}

func (k *MemKV) Get(key []byte) ([]byte, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.m[string(key)]
	if !ok {
		return nil, ErrNotFound
	}
	return bytes.Clone(v), nil
}

func (k *MemKV) Delete(_ context.Context, key []byte) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.m, string(key))
	return nil
}

// Iterate calls fn with the records whose key starts with prefix, in key
// order, without holding the lock: fn may use the MemKV.
func (k *MemKV) Iterate(prefix []byte, fn func(key, val []byte) error) error {
	k.mu.Lock()
	keys := make([]string, 0, len(k.m))
	for key := range k.m {
		if strings.HasPrefix(key, string(prefix)) {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	vals := make([][]byte, len(keys))
	for i, key := range keys {
		vals[i] = bytes.Clone(k.m[key])
	}
	k.mu.Unlock()
	for i, key := range keys {
		if err := fn([]byte(key), vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// Len is the number of records held.
func (k *MemKV) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}
