package testutil

import (
	"context"
	"errors"
	"slices"
	"testing"
)

func TestMemKV(t *testing.T) {
	ctx := context.Background()
	k := NewMemKV()
	val := []byte("v1")
	for _, key := range []string{"a/2", "a/1", "b/1"} {
		if err := k.Put(ctx, []byte(key), val); err != nil {
			t.Fatal(err)
		}
	}
	val[0] = 'X' // the caller's slice is not what is kept
	if v, err := k.Get([]byte("a/1")); err != nil || string(v) != "v1" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if _, err := k.Get([]byte("c")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing key: %v", err)
	}
	var keys []string
	err := k.Iterate([]byte("a/"), func(key, v []byte) error {
		keys = append(keys, string(key))
		v[0] = 'X'
		return k.Delete(ctx, key) // fn may use the KV
	})
	if err != nil || !slices.Equal(keys, []string{"a/1", "a/2"}) {
		t.Fatalf("Iterate saw %q, %v", keys, err)
	}
	if k.Len() != 1 {
		t.Fatalf("Len = %d after deleting two of three", k.Len())
	}
	stop := errors.New("stop")
	if err := k.Iterate(nil, func(_, _ []byte) error { return stop }); err != stop {
		t.Fatalf("Iterate returned %v, want fn's error", err)
	}
}
