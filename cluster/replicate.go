package cluster

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// AcceptedBucket names the KV buckets of the messages the nodes accepted
// in the replicated acknowledgement mode and have not finished: one bucket
// per node ("accepted-<node>"), one key per message (its ID), led by
// another node than its own (ledElsewhere).
const AcceptedBucket = "accepted"

// leadCheck is how often a node checks, besides JetStream's leader
// advisories, that another server leads its bucket's stream.
const leadCheck = 10 * time.Second

var errNotReplicated = errors.New("cluster: the accepted-messages bucket is not open yet")

// Replicated is a msg.Stager whose acknowledgements also wait for a
// replicated JetStream write of the message: a node whose disk is lost
// loses nothing it acknowledged, for it takes the copy back from the
// bucket when it starts again (Recover). Forget drops the copy once the
// message is final.
type Replicated struct {
	n     *Node
	inner msg.Stager
	known func(id string) (found, final bool) // the local store's view of a message
	ready chan struct{}                       // closed once js and kv are set
	once  sync.Once
	js    jetstream.JetStream
	kv    jetstream.KeyValue
}

// Replicate wraps the router's Stager in the replicated acknowledgement
// mode; known looks a message up in the local store. Called before Start.
func (n *Node) Replicate(inner msg.Stager, known func(id string) (found, final bool)) *Replicated {
	r := &Replicated{n: n, inner: inner, known: known, ready: make(chan struct{})}
	n.rep = r
	return r
}

// bucket is this node's bucket: a plain name as it is, another (a host
// name with dots) as base64url after "_", which no plain one has there.
func (r *Replicated) bucket() string {
	if t := strings.TrimPrefix(deliverSubject(r.n.name), deliverPrefix); !strings.HasPrefix(t, "=") {
		return AcceptedBucket + "-" + t
	}
	return AcceptedBucket + "_" + base64.RawURLEncoding.EncodeToString([]byte(r.n.name))
}

func (r *Replicated) subject(id string) string {
	return "$KV." + r.bucket() + "." + id
}

// Stage stages m locally and publishes it to the bucket without waiting;
// its Ack settles once both writes are durable.
func (r *Replicated) Stage(ctx context.Context, m *msg.Message) (msg.Ack, error) {
	select {
	case <-r.ready:
	default:
		// Refused before it is stored here: a sender that tries again
		// later must not find it delivered twice.
		return nil, fmt.Errorf("%w: %w", msg.ErrNotStored, errNotReplicated)
	}
	a, err := r.inner.Stage(ctx, m)
	if err != nil {
		return nil, err
	}
	if _, dup := a.(msg.Settled); dup {
		return a, nil // a copy of one already accepted, and so replicated
	}
	ra := &replAck{inner: a, m: m, futDone: make(chan struct{}), done: make(chan struct{})}
	// The copy is a delivery request's binary record with no binding.
	data := appendRequest(make([]byte, 0, 192+len(m.Text)), m, &presence.Binding{}, 0)
	fut, err := r.js.PublishAsync(r.subject(m.ID), data)
	if err == nil {
		go ra.await(fut)
		return ra, nil
	}
	ra.fail(err)
	return ra, nil
}

// Forget drops a final message's copy from the bucket; a lost purge leaves
// a copy that Recover drops at the next start.
func (r *Replicated) Forget(id string) {
	select {
	case <-r.ready:
	default:
		return
	}
	pm := nats.NewMsg(r.subject(id))
	pm.Header.Set("KV-Operation", "PURGE")
	pm.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	if _, err := r.js.PublishMsgAsync(pm); err != nil {
		r.n.log.Debug("cluster: forget accepted copy", "id", id, "err", err)
	}
}

// open opens (or creates) the bucket and, once another server leads it,
// counts it open; then it takes back what this node accepted and its store
// no longer has, and keeps the bucket's leadership away from this node.
func (r *Replicated) open(ctx context.Context, js jetstream.JetStream, storage jetstream.StorageType) {
	kv, err := openBucket(ctx, r.n, js, jetstream.KeyValueConfig{
		Bucket: r.bucket(), Description: "messages node " + r.n.name + " accepted and has not finished",
		History: 1, Replicas: r.n.cfg.Replicas, Storage: storage,
	})
	if err != nil {
		return // ctx ended
	}
	r.js, r.kv = js, kv
	// Leader changes of the bucket's stream are moved away at once.
	elected := make(chan struct{}, 1)
	if r.n.srv != nil {
		sub, err := r.n.nc.Subscribe("$JS.EVENT.ADVISORY.STREAM.LEADER_ELECTED.KV_"+r.bucket(), func(*nats.Msg) {
			select {
			case elected <- struct{}{}:
			default:
			}
		})
		if err == nil {
			defer sub.Unsubscribe()
		}
	}
	for !r.ledElsewhere(ctx) {
		select {
		case <-ctx.Done():
			return
		case <-elected:
		case <-time.After(250 * time.Millisecond):
		}
	}
	r.once.Do(func() { close(r.ready) })
	r.n.log.Info("cluster: accepted-messages bucket open", "bucket", r.bucket())
	r.recover(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-elected:
		case <-time.After(leadCheck):
		}
		r.ledElsewhere(ctx)
	}
}

// ledElsewhere reports whether a server other than this node's leads its
// bucket's stream, asking the leader to step down (JetStream picks a
// caught-up replica) when it is this node's. A copy is acknowledged once a
// majority holds it, the leader among them: were the leader this node, a
// node that lost its disk would have lost one of the two copies, and the
// empty node, rejoining under its old name, can vote a replica without the
// other copy into leadership. Led elsewhere, the leader keeps it. With an
// external NATS (server names are not the nodes') or one replica it is
// left to JetStream.
func (r *Replicated) ledElsewhere(ctx context.Context) bool {
	if r.n.srv == nil || r.n.cfg.Replicas < 2 {
		return true
	}
	stream := "KV_" + r.bucket()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := r.js.Stream(ctx, stream)
	if err != nil {
		r.n.log.Debug("cluster: bucket stream info", "stream", stream, "err", err)
		return false
	}
	info, err := s.Info(ctx)
	if err != nil || info.Cluster == nil || info.Cluster.Leader == "" {
		return false
	}
	if info.Cluster.Leader != r.n.name {
		return true
	}
	res, err := r.n.nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, nil)
	if err == nil {
		var rep struct {
			Success bool `json:"success"`
			Error   *struct {
				Description string `json:"description"`
			} `json:"error"`
		}
		if err = json.Unmarshal(res.Data, &rep); err == nil && !rep.Success && rep.Error != nil {
			err = errors.New(rep.Error.Description)
		}
	}
	if err != nil {
		r.n.log.Debug("cluster: moving this node's bucket to another leader", "stream", stream, "err", err)
		return false
	}
	r.n.log.Info("cluster: this node's bucket moved to another leader", "stream", stream)
	return false // counted once the new leader is seen
}

// recover walks this node's keys: a message the store has finished is
// forgotten; one it does not know (its disk was lost) is staged again,
// under an idempotency key from its old ID, so it is taken back once.
func (r *Replicated) recover(ctx context.Context) {
	var keys jetstream.KeyLister
	// Right after a restart the bucket may still be electing a leader or
	// catching this node up: listing is retried until it answers.
	for pause, tries := 250*time.Millisecond, 1; ; tries++ {
		var err error
		keys, err = r.kv.ListKeys(ctx)
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return
		}
		if err == nil {
			break
		}
		if tries%10 == 0 {
			r.n.log.Warn("cluster: cannot list accepted copies yet", "tries", tries, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
	var restored, forgotten, seen int
	var lost []string // keys of messages this store does not know
	for id := range keys.Keys() {
		seen++
		found, final := r.known(id)
		switch {
		case found && final:
			r.Forget(id)
			forgotten++
		case !found:
			lost = append(lost, id)
		}
	}
	r.n.log.Debug("cluster: accepted copies listed", "keys", seen)
	// Taking one back writes to the bucket, which may not take writes yet
	// just after a restart: what fails is tried again for a while.
	for pause, tries := 250*time.Millisecond, 0; len(lost) > 0 && tries < 12; tries++ {
		if tries > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(pause):
			}
			pause = min(2*pause, 4*time.Second)
		}
		var again []string
		for _, id := range lost {
			if err := r.restore(ctx, id); err != nil {
				r.n.log.Debug("cluster: accepted message not taken back yet", "id", id, "err", err)
				again = append(again, id)
				continue
			}
			restored++
		}
		lost = again
	}
	for _, id := range lost {
		r.n.log.Warn("cluster: accepted message not taken back; it stays in the bucket for the next start", "bucket", r.bucket(), "id", id)
	}
	if restored+forgotten > 0 {
		r.n.log.Info("cluster: accepted copies taken back", "restored", restored, "forgotten", forgotten)
	}
}

func (r *Replicated) restore(ctx context.Context, id string) error {
	e, err := r.kv.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("read copy: %w", err)
	}
	m, err := decodeCopy(e.Value())
	if err != nil {
		return fmt.Errorf("decode copy: %w", err)
	}
	m.ID = ""
	if m.IdempotencyKey == "" {
		m.IdempotencyKey = "replica " + id
	}
	if err := msg.Accept(ctx, r, &m); err != nil {
		return err
	}
	r.n.log.Info("cluster: accepted message taken back from the bucket", "old_id", id, "id", m.ID)
	r.Forget(id)
	return nil
}

// decodeCopy reads a message's copy: a binary record, or the JSON of the
// message that earlier versions wrote.
func decodeCopy(data []byte) (msg.Message, error) {
	var m msg.Message
	if len(data) > 0 && data[0] == '{' {
		return m, json.Unmarshal(data, &m)
	}
	var dr deliverRequest
	err := decodeRequest(data, &dr)
	return dr.Message, err
}

// replAck settles once the local commit and the replicated write have.
type replAck struct {
	inner   msg.Ack
	m       *msg.Message
	err     error         // of the replicated write, set before futDone closes
	futDone chan struct{} // the replicated write ended
	done    chan struct{} // and the local commit too
}

func (a *replAck) await(fut jetstream.PubAckFuture) {
	select {
	case <-fut.Ok():
	case err := <-fut.Err():
		a.err = err
	}
	close(a.futDone)
	if d := a.inner.Done(); d != nil {
		<-d
	}
	close(a.done)
}

func (a *replAck) fail(err error) {
	a.err = err
	close(a.futDone)
	close(a.done)
}

func (a *replAck) Done() <-chan struct{} { return a.done }

// Settle: a message stored here but not replicated is delivered all the
// same; its sender is told it was not stored, and may send it again.
func (a *replAck) Settle(ctx context.Context) error {
	if err := a.inner.Settle(ctx); err != nil {
		return err
	}
	select {
	case <-a.futDone:
	case <-ctx.Done():
		a.m.ID = ""
		return fmt.Errorf("%w: replicated write: %w", msg.ErrNotStored, ctx.Err())
	}
	if a.err != nil {
		a.m.ID = ""
		return fmt.Errorf("%w: replicated write: %w", msg.ErrNotStored, a.err)
	}
	return nil
}

// openBucket opens a KV bucket, creating it with cfg if no node has, and
// retries while the cluster forms until ctx ends.
func openBucket(ctx context.Context, n *Node, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	for pause, tries := 100*time.Millisecond, 1; ; tries++ {
		kv, err := js.KeyValue(ctx, cfg.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			if kv, err = js.CreateKeyValue(ctx, cfg); err == nil {
				n.log.Info("cluster: bucket created", "bucket", cfg.Bucket, "replicas", cfg.Replicas)
			}
		}
		if err == nil {
			return kv, nil
		}
		if tries%20 == 0 {
			n.log.Warn("cluster: bucket not available yet", "bucket", cfg.Bucket, "tries", tries, "err", err)
		} else {
			n.log.Debug("cluster: bucket not available yet", "bucket", cfg.Bucket, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
}
