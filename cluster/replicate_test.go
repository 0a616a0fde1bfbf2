package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
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

// No node leads the stream of its own accepted-messages bucket (a node
// that loses its disk must not have held one of a copy's two places as its
// leader), and leadership handed to it is moved away again at once.
func TestNoNodeLeadsItsOwnBucket(t *testing.T) {
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
		select {
		case <-reps[ms[name].node].ready:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s's bucket not open", name)
		}
		if l := leader(name); l == name || strings.HasPrefix(l, "(") {
			t.Fatalf("%s's bucket open and led by %s", name, l)
		}
	}
	// Hand a's bucket to a; it moves it away again.
	var mu sync.Mutex
	var elected []string
	asub, err := nc.Subscribe("$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.KV_"+reps[ms["a"].node].bucket(), func(m *nats.Msg) {
		var adv struct{ Leader string }
		json.Unmarshal(m.Data, &adv)
		mu.Lock()
		elected = append(elected, adv.Leader)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer asub.Unsubscribe()
	req, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": "a"}})
	res, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN.KV_"+reps[ms["a"].node].bucket(), req, 5*time.Second)
	if err != nil {
		t.Fatalf("stepdown: %v", err)
	}
	t.Logf("stepdown: %s", res.Data)
	start := time.Now()
	testutil.WaitForState(t, 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(elected) >= 2 && elected[0] == "a" && elected[len(elected)-1] != "a"
	}, func() string {
		mu.Lock()
		defer mu.Unlock()
		return fmt.Sprintf("leaders elected after the stepdown to a: %v; now %s", elected, leader("a"))
	})
	if l := leader("a"); l == "a" {
		t.Fatalf("a leads its own bucket again")
	}
	t.Logf("moved away %v after the stepdown to a", time.Since(start))
}
