package store

import (
	"context"
	"encoding/binary"
	"runtime"
	"time"

	"testing"

	"github.com/smsbridge/bridge/msg"
)

// BenchmarkAccept measures durable acknowledgements per second from many
// concurrent writers: group commit (one fsync of the commit log per batch,
// or one badger Sync per batch) against badger's SyncWrites (one fsync per
// write), in one run:
//
//	go test -run '^$' -bench Accept -benchtime 3s ./store/
func BenchmarkAccept(b *testing.B) {
	for _, mode := range []struct {
		name       string
		each       bool
		badgerSync bool
	}{{"group-commit", false, false}, {"group-commit-badger-sync", false, true}, {"fsync-each", true, false}} {
		b.Run(mode.name, func(b *testing.B) {
			db := openKnobsT(b, Options{Dir: b.TempDir()}, knobs{syncEach: mode.each, badgerSync: mode.badgerSync})
			b.SetParallelism(128) // many ESME windows' worth of writers
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if err := accept(db, context.Background(), newMsg(i)); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
			b.StopTimer()
			st := db.Stats()
			b.ReportMetric(st.AvgBatch, "writes/fsync")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "acks/s")
		})
	}
}

// BenchmarkLifecycle is a message's life in the store on the hot path:
// accepted (durable before the acknowledgement), then delivered (queued,
// durable with a later commit), from 128 writers. The commit log against a
// badger Sync per group commit, in one run:
//
//	go test -run '^$' -bench Lifecycle -count 6 ./store/ | benchstat -col /commit -
func BenchmarkLifecycle(b *testing.B) {
	for _, mode := range []struct {
		name       string
		badgerSync bool
	}{{"log", false}, {"badger-sync", true}} {
		b.Run("commit="+mode.name, func(b *testing.B) {
			db := openKnobsT(b, Options{Dir: b.TempDir()}, knobs{badgerSync: mode.badgerSync})
			b.SetParallelism(128)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				i := 0
				for pb.Next() {
					m := newMsg(i)
					i++
					if err := accept(db, ctx, m); err != nil {
						b.Error(err)
						return
					}
					if err := db.Transition(ctx, m.ID, Event{State: msg.Delivered}, false); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkDedupMiss looks up keys the duplicate index does not hold (the
// common case: most messages are new) with a million keys in it.
func BenchmarkDedupMiss(b *testing.B) {
	var x dedupIndex
	x.init(DefaultDedupMaxKeys)
	now := time.Now()
	var key [16]byte
	for i := range 1 << 20 {
		binary.LittleEndian.PutUint64(key[:], uint64(i)*0x9e3779b97f4a7c15)
		x.put(key[:], "0123456789abcdefghij", now.Add(time.Hour).Unix(), now, time.Hour)
	}
	b.ResetTimer()
	i := uint64(1 << 40)
	for b.Loop() {
		i++
		binary.LittleEndian.PutUint64(key[:], i*0x9e3779b97f4a7c15)
		binary.LittleEndian.PutUint64(key[8:], i)
		if _, ok := x.get(key[:], now); ok {
			b.Fatal("hit on an absent key")
		}
	}
}

// BenchmarkDedupPut: the index's insert into a generation that grows to
// millions of keys (the window at tens of thousands of messages a second).
func BenchmarkDedupPut(b *testing.B) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	var x dedupIndex
	x.init(DefaultDedupMaxKeys)
	now := time.Now()
	until := now.Add(time.Hour).Unix()
	var key [16]byte
	i := uint64(0)
	for b.Loop() {
		i++
		binary.LittleEndian.PutUint64(key[:], i*0x9e3779b97f4a7c15)
		binary.LittleEndian.PutUint64(key[8:], i)
		x.put(key[:], "0123456789abcdefghij", until, now, time.Hour)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc-before)/float64(len(x.cur)), "heap-B/key")
}
