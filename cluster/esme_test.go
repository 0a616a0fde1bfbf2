package cluster

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
)

// An ESME's PDUs go to the node holding its receiving bind, while it
// holds one: held before the node starts, released, held again.
func TestDeliverToESMEElsewhere(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]string{} // node → "account:pdu"
	ms := startClusterWith(t, func(n *Node) {
		name := n.Name()
		n.ServeESMEs(func(_ context.Context, account string, pdu []byte) (uint32, error) {
			mu.Lock()
			defer mu.Unlock()
			got[name] = append(got[name], account+":"+string(pdu))
			if string(pdu) == "refuse me" {
				return 0x45, nil // the ESME answered ESME_RSUBMITFAIL
			}
			return 0, nil
		})
		if name == "a" {
			n.HoldESME("esme.one", true) // bound before the node started
		}
	}, "a", "b")
	a, b := ms["a"].node, ms["b"].node
	ctx := context.Background()
	testutil.WaitFor(t, "b reaching esme.one at a", 10*time.Second, func() bool {
		st, err := b.DeliverESME(ctx, "esme.one", []byte("pdu 1"))
		return err == nil && st == 0
	})
	if st, err := b.DeliverESME(ctx, "esme.one", []byte("refuse me")); err != nil || st != 0x45 {
		t.Fatalf("a refusal: status %#x, %v", st, err)
	}
	if _, err := b.DeliverESME(ctx, "nobody", []byte("pdu")); !errors.Is(err, ErrNoESME) {
		t.Fatalf("an account bound nowhere: %v, want ErrNoESME", err)
	}
	a.HoldESME("esme.one", false)
	testutil.WaitFor(t, "esme.one released at a", 10*time.Second, func() bool {
		_, err := b.DeliverESME(ctx, "esme.one", []byte("pdu 2"))
		return errors.Is(err, ErrNoESME)
	})
	a.HoldESME("esme.one", true)
	testutil.WaitFor(t, "esme.one held again", 10*time.Second, func() bool {
		st, err := b.DeliverESME(ctx, "esme.one", []byte("pdu 3"))
		return err == nil && st == 0
	})
	mu.Lock()
	defer mu.Unlock()
	if len(got["b"]) != 0 || len(got["a"]) < 3 || got["a"][0] != "esme.one:pdu 1" || got["a"][len(got["a"])-1] != "esme.one:pdu 3" {
		t.Fatalf("deliveries: %v", got)
	}
}
