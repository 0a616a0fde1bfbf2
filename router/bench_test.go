package router

import (
	"context"
	"testing"
	"time"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
	"github.com/smsbridge/bridge/store"
)

// BenchmarkStageDeliver is the router's hot path: staging an SMS, a worker
// taking it from the ready queue, handing it off and recording the final
// state, over the in-memory store.
func BenchmarkStageDeliver(b *testing.B) {
	db, err := store.Open(store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	pres, err := presence.Open(presence.Options{KV: db})
	if err != nil {
		b.Fatal(err)
	}
	r := New(Config{Workers: 64}, db, pres)
	r.SetSMS(SMSSenderFunc(func(context.Context, *msg.Message) error { return nil }))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; db.Close() }()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m := &msg.Message{From: "+8613900000009", To: "+8613800000001", Text: "bench", Origin: msg.Origin{Kind: msg.FromESME, Account: "esme1"}}
			if err := msg.Accept(context.Background(), r, m); err != nil {
				b.Error(err)
				return
			}
		}
	})
	for r.Pending() > 0 {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
}
