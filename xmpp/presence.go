package xmpp

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"hash/maphash"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/smsbridge/bridge/internal/xmppwire"
	"github.com/smsbridge/bridge/presence"
)

// presenceIn is a presence stanza waiting for its worker.
type presenceIn struct {
	in       xmppwire.Stanza
	from, to jid.JID
}

// queuePresence hands a presence stanza to the worker of its sender, so
// one user's updates keep their order while the store writes of different
// users overlap and the read loop does not wait for them.
func (g *Gateway) queuePresence(ctx context.Context, in xmppwire.Stanza) {
	from, err := jid.Parse(in.From)
	if err != nil || from.Localpart() == "" {
		return // servers and other components have no presence here
	}
	to, err := jid.Parse(in.To)
	if err != nil || to.Domainpart() != g.cfg.Domain {
		return
	}
	q := g.pq[g.shard(from.Bare().String())]
	select {
	case q <- presenceIn{in: in, from: from, to: to}:
	case <-ctx.Done():
	}
}

func (g *Gateway) shard(bare string) int {
	return int(maphash.String(g.seed, bare) % presenceShards)
}

func (g *Gateway) presenceWorker(ctx context.Context, q <-chan presenceIn) {
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-q:
			g.onPresence(ctx, p)
		}
	}
}

// onPresence keeps bindings and subscriptions (XEP-0100): available
// presence from a full JID binds it for TTL, unavailable unbinds it; a
// subscription to the gateway is approved, returned and remembered, and an
// unsubscription forgets the user.
func (g *Gateway) onPresence(ctx context.Context, p presenceIn) {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	aor := UserAddress(p.from)
	bare := p.from.Bare().String()
	toGateway := p.to.Localpart() == ""
	switch p.in.Type {
	case "":
		if p.from.Resourcepart() == "" {
			return
		}
		now := time.Now()
		b := presence.Binding{
			AOR: aor, Contact: p.from.String(), Via: Via,
			Expires: now.Add(g.cfg.TTL), Updated: now,
			Show: xmppwire.ShowOf(p.in.Show), Priority: p.in.Priority,
		}
		if err := g.cfg.Presence.Register(ctx, b); err != nil {
			g.log.Warn("xmpp: binding not stored", "aor", aor, "contact", b.Contact, "err", err)
		}
	case "unavailable", "error":
		// An error answering our probe or presence says that contact
		// cannot be reached either.
		contact := ""
		if p.from.Resourcepart() != "" {
			contact = p.from.String()
		}
		if err := g.cfg.Presence.Unregister(ctx, aor, contact); err != nil {
			g.log.Warn("xmpp: binding not removed", "aor", aor, "contact", contact, "err", err)
		}
	case "subscribe":
		g.sendPresence(ctx, "subscribed", p.to.String(), bare)
		if toGateway {
			g.sendPresence(ctx, "subscribe", g.cfg.Domain, bare)
			g.sendPresence(ctx, "", g.cfg.Domain, bare)
			g.remember(ctx, bare)
		}
	case "subscribed": // the user let us see their presence
		if toGateway {
			g.remember(ctx, bare)
		}
	case "unsubscribe", "unsubscribed":
		if toGateway {
			g.forget(ctx, bare)
			if err := g.cfg.Presence.Unregister(ctx, aor, ""); err != nil {
				g.log.Warn("xmpp: bindings not removed", "aor", aor, "err", err)
			}
		}
	case "probe":
		if toGateway {
			g.sendPresence(ctx, "", g.cfg.Domain, p.from.String())
		}
	}
}

func (g *Gateway) sendPresence(ctx context.Context, typ, from, to string) {
	t := xmppwire.Empty(nil, xmppwire.El(xml.Name{Local: "presence"}, "type", typ, "from", from, "to", to))
	if err := g.send(ctx, t); err != nil {
		g.log.Info("xmpp: presence not sent", "type", typ, "to", to, "err", err)
	}
}

// remember adds a subscribed user, durably when there is a KV.
func (g *Gateway) remember(ctx context.Context, bare string) {
	now := time.Now()
	g.mu.Lock()
	_, known := g.subs[bare]
	if !known {
		g.subs[bare] = now
	}
	g.mu.Unlock()
	if known {
		return
	}
	g.log.Info("xmpp: user subscribed", "jid", bare)
	if g.cfg.KV == nil {
		return
	}
	v, _ := json.Marshal(subRecord{Since: now})
	if err := g.cfg.KV.Put(ctx, []byte(subPrefix+bare), v); err != nil {
		g.log.Warn("xmpp: subscriber not stored", "jid", bare, "err", err)
	}
}

func (g *Gateway) forget(ctx context.Context, bare string) {
	g.mu.Lock()
	_, known := g.subs[bare]
	delete(g.subs, bare)
	g.mu.Unlock()
	if !known {
		return
	}
	g.log.Info("xmpp: user unsubscribed", "jid", bare)
	if g.cfg.KV == nil {
		return
	}
	if err := g.cfg.KV.Delete(ctx, []byte(subPrefix+bare)); err != nil {
		g.log.Warn("xmpp: subscriber not removed", "jid", bare, "err", err)
	}
}

// Subscribers lists the bare JIDs subscribed to the gateway.
func (g *Gateway) Subscribers() []string { return g.subscribers() }
