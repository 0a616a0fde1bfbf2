package cluster

import (
	"context"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/store"
)

// storeStager stages into a real on-disk store, as the router's first
// step does (the router is built elsewhere).
type storeStager struct{ db *store.DB }

func (s storeStager) Stage(ctx context.Context, m *msg.Message) (msg.Ack, error) {
	_, p, err := s.db.Stage(ctx, m, store.Dedup{})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// BenchmarkAccept: what an acknowledgement costs when it waits for this
// node's disk only (local) and also for an R3 JetStream write (replicated),
// three embedded nodes on this machine, 64 senders at once.
func BenchmarkAccept(b *testing.B) {
	ms := startCluster(b, "a", "b", "c")
	db, err := store.Open(store.Options{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	local := storeStager{db}
	rep := ms["a"].node.Replicate(local, func(string) (bool, bool) { return true, false })
	// Replicate is meant for before Start: open its bucket by hand here.
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	nc, err := nats.Connect(ms["a"].node.srv.ClientURL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	go rep.open(ctx, js, jetstream.FileStorage)
	<-rep.ready
	for _, c := range []struct {
		name string
		s    msg.Stager
	}{{"local", local}, {"replicated", rep}} {
		b.Run("ack="+c.name, func(b *testing.B) {
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					m := &msg.Message{From: "+8613900000009", To: "+8613800000001", Text: fmt.Sprint("bench ", i)}
					if err := msg.Accept(ctx, c.s, m); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
