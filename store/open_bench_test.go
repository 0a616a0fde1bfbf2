package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/bridge/msg"
)

// BenchmarkOpenWithFinals opens a store holding 200,000 finished messages
// within its duplicate and client-key windows, in sealed segments of 2 MiB
// but for the last: Open reloads the keys of those that carry one.
// keys=none is SMPP traffic (no message has a key), keys=all every message
// accepted with one.
func BenchmarkOpenWithFinals(b *testing.B) {
	const n = 200_000
	for _, keyed := range []bool{false, true} {
		name := "keys=none"
		if keyed {
			name = "keys=all"
		}
		b.Run(name, func(b *testing.B) {
			opts := Options{Dir: b.TempDir(), DedupWindow: 24 * time.Hour, ClientKeyWindow: 24 * time.Hour}
			fillFinished(b, opts, n, keyed)
			for b.Loop() {
				db, err := Open(opts)
				if err != nil {
					b.Fatal(err)
				}
				if err := db.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// fillFinished accepts and delivers n messages in a store at opts, with
// a duplicate-suppression key each if keyed, and closes it.
func fillFinished(b *testing.B, opts Options, n int, keyed bool) {
	b.Helper()
	o := opts
	o.CheckpointInterval = 10 * time.Millisecond
	db, err := open(o, knobs{segBytes: 2 << 20})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 128 {
		wg.Go(func() {
			for i := w; i < n; i += 128 {
				m := newMsg(i)
				var err error
				if keyed {
					_, err = acceptDedup(db, ctx, m, fmt.Appendf(nil, "k%d", i), 24*time.Hour)
				} else {
					err = accept(db, ctx, m)
				}
				if err == nil {
					err = db.Transition(ctx, m.ID, Event{State: msg.Delivered}, false)
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
}
