package cluster

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// Key is the bucket key of (aor, contact): base64url of the pair, which
// NATS accepts as a key whatever the URIs hold.
func Key(aor msg.Address, contact string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(string(aor) + "\x00" + contact))
}

// parseKey reverses Key.
func parseKey(k string) (pkey, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(k)
	if err != nil {
		return pkey{}, false
	}
	aor, contact, ok := strings.Cut(string(raw), "\x00")
	if !ok || aor == "" || contact == "" {
		return pkey{}, false
	}
	return pkey{msg.Address(aor), contact}, true
}

// newer orders two versions of one binding held by different nodes: the
// later registration, then (a tie) the greater node name, so every node
// settles a conflict the same way and no two nodes take a key in turns.
func newer(a, b presence.Binding) bool {
	if !a.Updated.Equal(b.Updated) {
		return a.Updated.After(b.Updated)
	}
	return a.Node > b.Node
}

// changed is the presence store's OnChange hook: it queues the key, which
// the publisher reads back from the store, so a burst of changes of one
// contact is one write of its latest state.
func (n *Node) changed(c presence.Change) {
	n.announce(c)
	n.enqueue(pkey{c.Binding.AOR, c.Binding.Contact})
}

func (n *Node) enqueue(k pkey) {
	n.mu.Lock()
	n.queue[Key(k.aor, k.contact)] = k
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// watch applies the bucket to the presence store: first what it holds,
// then every change, in revision order. Once the first part is applied
// the node is ready and starts publishing. A watcher that ends before ctx
// is replaced; what it replays again is skipped by revision.
func (n *Node) watch(ctx context.Context, kv jetstream.KeyValue) {
	joined := false
	for pause := 100 * time.Millisecond; ctx.Err() == nil; pause = min(2*pause, 2*time.Second) {
		w, err := kv.WatchAll(ctx)
		if err != nil {
			n.log.Warn("cluster: cannot watch the presence bucket", "err", err)
		} else {
			n.follow(ctx, kv, w, &joined)
			w.Stop()
			n.faultStall.Store(false)
		}
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

// defaultWatchCheck is how often a node checks that its watcher keeps up
// with the bucket.
const defaultWatchCheck = 5 * time.Second

// follow applies one watcher's entries until it ends or ctx does, or until
// it stalls: every watchCheck it compares the last revision it has seen
// with the bucket's, and a watcher still behind, having delivered nothing
// since the check before, is replaced. Presence would otherwise stay
// wrong for as long as the watcher stayed silent.
func (n *Node) follow(ctx context.Context, kv jetstream.KeyValue, w jetstream.KeyWatcher, joined *bool) {
	check := time.NewTicker(n.watchCheck)
	defer check.Stop()
	var seen, behindAt uint64 // revisions: the newest seen; seen at the last check, if behind then
	replayed, behind := false, false
	for {
		select {
		case <-ctx.Done():
			return
		case <-check.C:
			if !replayed {
				continue
			}
			last, err := bucketRevision(ctx, kv)
			if err != nil || last <= seen {
				behind = false
				continue
			}
			if behind && behindAt == seen {
				n.Stats.WatcherStalls.Add(1)
				n.log.Warn("cluster: presence watcher stalled; watching again", "seen", seen, "bucket", last)
				return
			}
			behind, behindAt = true, seen
		case e, ok := <-w.Updates():
			if e != nil && n.faultStall.Load() {
				continue
			}
			switch {
			case !ok:
				n.log.Warn("cluster: presence watcher ended; watching again")
				return
			case e != nil:
				seen = max(seen, e.Revision())
				n.apply(ctx, e)
				continue
			}
			// The replay is done: it held the latest entry of every key,
			// so all the bucket held then counts as seen.
			replayed = true
			if last, err := bucketRevision(ctx, kv); err == nil {
				seen = max(seen, last)
			}
			if !*joined {
				*joined = true
				// Whatever this node holds goes out too: bindings loaded
				// from its store at start, changes made before it joined.
				for _, b := range n.pres.Local() {
					n.enqueue(pkey{b.AOR, b.Contact})
				}
				n.wg.Add(1)
				go func() {
					defer n.wg.Done()
					n.publish(ctx, kv)
				}()
				close(n.ready)
				n.log.Info("cluster: presence joined", "node", n.name, "bucket", n.cfg.Bucket)
			}
		}
	}
}

// bucketRevision is the revision of the bucket's last write.
func bucketRevision(ctx context.Context, kv jetstream.KeyValue) (uint64, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return 0, err
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return 0, fmt.Errorf("cluster: bucket status of type %T", st)
	}
	return bs.StreamInfo().State.LastSeq, nil
}

// apply takes one bucket entry into the presence store: another node's
// binding as a remote one, a deletion by removing it. An entry no newer
// than one already applied is skipped, so an old value never replaces a
// newer one.
func (n *Node) apply(ctx context.Context, e jetstream.KeyValueEntry) {
	k, ok := parseKey(e.Key())
	if !ok {
		n.log.Warn("cluster: skipping a key that is not a binding's", "key", e.Key())
		return
	}
	if e.Revision() <= n.revs[e.Key()] {
		return
	}
	if e.Operation() != jetstream.KeyValuePut {
		// Only a binding's own node deletes its key, and that node has
		// already dropped it from its index.
		delete(n.revs, e.Key())
		n.pres.RemoveRemote(k.aor, k.contact)
		return
	}
	n.revs[e.Key()] = e.Revision()
	var b presence.Binding
	if err := json.Unmarshal(e.Value(), &b); err != nil || b.AOR != k.aor || b.Contact != k.contact || b.Node == "" {
		n.log.Warn("cluster: skipping an unreadable binding", "aor", k.aor, "revision", e.Revision(), "err", err)
		return
	}
	n.applyBinding(ctx, k, b)
}

// applyBinding takes another node's binding b of k into the presence
// store, from the bucket or from that node's announcement, unless the
// store holds a newer version of it already.
func (n *Node) applyBinding(ctx context.Context, k pkey, b presence.Binding) {
	for _, r := range n.pres.Remote(k.aor) {
		if r.Contact == k.contact && newer(r, b) {
			return // an announcement came before this older entry
		}
	}
	if b.Node == n.name { // what this node published: its index has it
		n.pres.RemoveRemote(k.aor, k.contact)
		return
	}
	for _, l := range n.pres.Bindings(k.aor) {
		if l.Contact != k.contact {
			continue
		}
		l.Node = n.name
		if !newer(b, l) {
			// This node's registration is the later one: it takes the key
			// back, and the older value stays out of the index.
			n.pres.RemoveRemote(k.aor, k.contact)
			n.enqueue(k)
			return
		}
		// The user registered at that node since: it holds the contact now.
		if err := n.pres.Yield(ctx, k.aor, k.contact); err != nil {
			n.log.Warn("cluster: cannot hand a binding over", "aor", k.aor, "to", b.Node, "err", err)
		}
	}
	if !b.Expires.After(time.Now()) {
		n.pres.RemoveRemote(k.aor, k.contact) // a dead node's leftover
		return
	}
	if err := n.pres.ApplyRemote(b); err != nil {
		n.log.Warn("cluster: skipping a binding", "aor", k.aor, "err", err)
	}
}

// publish writes the queued keys' local state to the bucket until ctx
// ends; a key that fails goes back in the queue for a later try.
func (n *Node) publish(ctx context.Context, kv jetstream.KeyValue) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.wake:
		}
		n.mu.Lock()
		batch := n.queue
		n.queue = make(map[string]pkey)
		n.mu.Unlock()
		failed := 0
		for key, k := range batch {
			if err := n.sync(ctx, kv, key, k); err != nil {
				if ctx.Err() != nil {
					return
				}
				failed++
				n.log.Warn("cluster: cannot publish a binding, will retry", "aor", k.aor, "err", err)
				n.enqueue(k)
			}
		}
		if failed > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
}

// presencePrefix is where each node announces its bindings' changes over
// core NATS as it writes them to the bucket: the others apply them at once,
// without waiting for a JetStream leader or for a bucket watcher that a
// dead node's departure is re-creating. The bucket stays the state of
// record: what a node joining later reads, and what orders conflicts.
const presencePrefix = "bridge.presence."

// announcement is one change of a node's binding (Binding nil: withdrawn).
type announcement struct {
	Node    string            `json:"node"`
	AOR     msg.Address       `json:"aor"`
	Contact string            `json:"contact"`
	Binding *presence.Binding `json:"binding,omitempty"`
}

// localBinding is this node's binding of k, if it holds one.
func (n *Node) localBinding(k pkey) *presence.Binding {
	for _, b := range n.pres.Bindings(k.aor) {
		if b.Contact == k.contact {
			b.Node = n.name
			return &b
		}
	}
	return nil
}

// announce tells the other nodes of a change of this node's presence as it
// happens, before the node has even joined the bucket (its watcher may be
// waiting for a server that died); a lost announcement is made good by the
// bucket's entry.
func (n *Node) announce(c presence.Change) {
	nc := n.conn.Load()
	if nc == nil {
		return
	}
	a := announcement{Node: n.name, AOR: c.Binding.AOR, Contact: c.Binding.Contact}
	if !c.Gone {
		b := c.Binding
		b.Node = n.name
		a.Binding = &b
	}
	data, err := json.Marshal(a)
	if err == nil {
		err = nc.Publish(presencePrefix+strings.TrimPrefix(deliverSubject(n.name), deliverPrefix), data)
	}
	if err != nil {
		n.log.Debug("cluster: announce a binding", "aor", c.Binding.AOR, "err", err)
		return
	}
	n.Stats.Announced.Add(1)
}

// heard applies another node's announcement. A withdrawal removes only
// that node's binding; a binding goes the way of a bucket entry.
func (n *Node) heard(ctx context.Context, data []byte) {
	var a announcement
	if err := json.Unmarshal(data, &a); err != nil || a.Node == "" || a.AOR == "" || a.Contact == "" {
		n.log.Debug("cluster: unreadable announcement", "err", err)
		return
	}
	if a.Node == n.name || n.faultStall.Load() {
		return
	}
	k := pkey{a.AOR, a.Contact}
	if a.Binding == nil {
		for _, r := range n.pres.Remote(a.AOR) {
			if r.Contact == a.Contact && r.Node == a.Node {
				n.pres.RemoveRemote(a.AOR, a.Contact)
			}
		}
		return
	}
	if a.Binding.AOR != a.AOR || a.Binding.Contact != a.Contact || a.Binding.Node != a.Node {
		return
	}
	n.Stats.Heard.Add(1)
	n.applyBinding(ctx, k, *a.Binding)
}

// maxConflicts bounds how often one publish re-reads a key that other
// nodes keep writing before it gives up for a while.
const maxConflicts = 6

// sync makes the bucket's entry of k say what this node holds: its binding
// (Create or Update at the revision just read, so a write that landed in
// between is seen, never overwritten blindly), or, when it holds none, no
// entry of this node's. When another node's entry is the newer
// registration, this node yields the contact instead.
func (n *Node) sync(ctx context.Context, kv jetstream.KeyValue, key string, k pkey) error {
	local := n.localBinding(k)
	for try := range maxConflicts {
		if try > 0 {
			// A read may be served by a replica a write behind: give it
			// time to catch up before reading again.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(10<<try) * time.Millisecond):
			}
		}
		cur, err := kv.Get(ctx, key)
		if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("read %s: %w", k.aor, err)
		}
		var held presence.Binding // the entry's binding; Node "" if none or unreadable
		if cur != nil {
			_ = json.Unmarshal(cur.Value(), &held)
		}
		if local == nil {
			if held.Node != n.name {
				return nil // not this node's (any more): nothing to withdraw
			}
			err = kv.Delete(ctx, key, jetstream.LastRevision(cur.Revision()))
		} else {
			if held.Node != "" && held.Node != n.name && newer(held, *local) {
				return n.pres.Yield(ctx, k.aor, k.contact)
			}
			val, merr := json.Marshal(local)
			if merr != nil {
				return fmt.Errorf("encode %s: %w", k.aor, merr)
			}
			switch {
			case cur == nil:
				_, err = kv.Create(ctx, key, val)
			case bytes.Equal(cur.Value(), val):
				return nil // already there, e.g. re-published at start
			default:
				_, err = kv.Update(ctx, key, val, cur.Revision())
			}
		}
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // another write came first: read it and decide again
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", k.aor, err)
		}
		return nil
	}
	return fmt.Errorf("write %s: %d conflicting writes in a row", k.aor, maxConflicts)
}
