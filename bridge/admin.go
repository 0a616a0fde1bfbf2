package bridge

import (
	"strings"

	"github.com/smsbridge/bridge/api"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/smpp"
)

// admin gives the API what operators read of the running parts, in the
// API's terms.
type admin struct{ b *Bridge }

// bindName is "transceiver" for bind_transceiver.
func bindName(c smpp.CommandID) string { return strings.TrimPrefix(c.String(), "bind_") }

func (a admin) Binds() []api.BindView {
	ss := a.b.gw.Sessions()
	out := make([]api.BindView, 0, len(ss))
	for _, s := range ss {
		out = append(out, api.BindView{SystemID: s.SystemID, Bind: bindName(s.Bind), Remote: s.Remote, Since: s.Since,
			WindowUsed: s.WindowUsed, Window: s.Window, InboundUsed: s.InboundUsed, Inbound: s.Inbound})
	}
	return out
}

func (a admin) SMSC() api.SMSCView {
	ups := a.b.gw.Upstreams()
	if len(ups) == 0 {
		return api.SMSCView{}
	}
	views := make([]api.SMSCView, len(ups))
	for i, u := range ups {
		v := api.SMSCView{Configured: true, Name: u.Name, Addr: u.Addr, SystemID: u.SystemID, Bind: bindName(u.Bind), Bound: u.Bound, Since: u.Since,
			Weight: u.Weight, TPS: u.TPS, Submits: u.Submits, Errors: u.Errors, Throttled: u.Throttled}
		if u.LastErr != nil {
			v.LastError = u.LastErr.Error()
		}
		if u.Bound {
			v.WindowUsed, v.Window = u.Session.WindowUsed, u.Session.Window
		}
		views[i] = v
	}
	v := views[0]
	if len(views) > 1 {
		v.SMSCs = views
	}
	return v
}

// smscStates is each upstream SMSC's bind, for /readyz.
func (b *Bridge) smscStates() []api.SMSCState {
	ups := b.gw.Upstreams()
	if len(ups) == 0 {
		return nil
	}
	out := make([]api.SMSCState, len(ups))
	for i, u := range ups {
		out[i] = api.SMSCState{Name: u.Name, State: "down", Since: u.Since}
		switch {
		case u.Bound:
			out[i].State = "up"
		case u.LastErr != nil:
			out[i].Error = u.LastErr.Error()
		}
	}
	return out
}

func (a admin) Queues() api.QueueView {
	w := a.b.rt.Waiting()
	rows := []api.QueueCount{{State: "ready", Count: int64(w.Ready)}, {State: "delivering"}}
	rest := w.Pending - int64(w.Ready) - int64(w.Draining)
	for _, st := range []struct {
		name string
		n    map[msg.Network]int
	}{{"retry", w.Retry}, {"held", w.Held}} {
		for _, net := range []msg.Network{msg.ViaIM, msg.ViaSMS} {
			rows = append(rows, api.QueueCount{State: st.name, Route: string(net), Count: int64(st.n[net])})
			rest -= int64(st.n[net])
		}
	}
	rows = append(rows, api.QueueCount{State: "draining", Count: int64(w.Draining)})
	// What is neither queued nor scheduled is with a worker; the counts are
	// read at slightly different moments, so the difference may dip below 0.
	rows[1].Count = max(rest, 0)
	return api.QueueView{Pending: w.Pending, Limit: a.b.cfg.QueueDepth, Waiting: rows,
		Reassembling: a.b.gw.PartsWaiting(), Reports: a.b.dlr.Pending(), StoreWrites: a.b.db.Stats().Pending}
}
