package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/smsbridge/bridge/internal/testutil"
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

// Each node leads the stream of its own accepted-messages bucket, so a
// node's death never stalls the others' acknowledgements; leadership
// moved away is taken back (a stepdown asked of the leader).
func TestEachNodeLeadsItsBucket(t *testing.T) {
	db, err := store.Open(store.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	reps := map[*Node]*Replicated{}
	ms := startClusterWith(t, func(n *Node) {
		reps[n] = n.Replicate(storeStager{db}, func(string) (bool, bool) { return true, false })
	}, "a", "b", "c")
	nc, err := nats.Connect(ms["a"].node.srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	leader := func(name string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, "KV_"+reps[ms[name].node].bucket())
		if err != nil {
			return "(" + err.Error() + ")"
		}
		info, err := s.Info(ctx)
		if err != nil || info.Cluster == nil {
			return fmt.Sprintf("(%v)", err)
		}
		return info.Cluster.Leader
	}
	for _, name := range []string{"a", "b", "c"} {
		<-reps[ms[name].node].ready
		testutil.WaitForState(t, 2*leadCheck+5*time.Second, func() bool { return leader(name) == name }, func() string {
			return fmt.Sprintf("the stream of %s's bucket is led by %s", name, leader(name))
		})
	}
	// Move a's away; a takes it back at its next check.
	res, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN.KV_"+reps[ms["a"].node].bucket(), nil, 5*time.Second)
	if err != nil {
		t.Fatalf("stepdown: %v", err)
	}
	t.Logf("stepdown: %s", res.Data)
	testutil.WaitFor(t, "another leader of a's bucket", 10*time.Second, func() bool { l := leader("a"); return l == "b" || l == "c" })
	testutil.WaitForState(t, leadCheck+10*time.Second, func() bool { return leader("a") == "a" }, func() string {
		return "a did not take its bucket back from " + leader("a")
	})
}
