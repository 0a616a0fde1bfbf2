package store

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
)

// BenchmarkCachedRecordHeap reports the heap one cached unfinished record
// costs: the same 20,000 messages accepted into a store that caches them
// all and into one that caches almost none, heap compared after both have
// settled. (The bridge sizes the cache to --queue-depth + --workers.)
func BenchmarkCachedRecordHeap(b *testing.B) {
	const n = 20_000
	heapWith := func(cacheRecords int) uint64 {
		db, err := Open(Options{Dir: b.TempDir(), CacheRecords: cacheRecords})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		ctx := context.Background()
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Go(func() {
				for i := w; i < n; i += 16 {
					if err := accept(db, ctx, newMsg(i)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		if got := db.Stats().Cached; cacheRecords >= n && got < n {
			b.Fatalf("%d records cached, want all %d", got, n)
		}
		time.Sleep(100 * time.Millisecond) // the applier's last batch
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	var perRecord float64
	for b.Loop() {
		few := heapWith(64)
		all := heapWith(2 * n)
		perRecord = (float64(all) - float64(few)) / n
	}
	b.ReportMetric(perRecord, "heap-B/cached-record")
}
