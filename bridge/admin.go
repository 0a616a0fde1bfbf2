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
	u, ok := a.b.gw.Upstream()
	if !ok {
		return api.SMSCView{}
	}
	v := api.SMSCView{Configured: true, Addr: u.Addr, SystemID: u.SystemID, Bind: bindName(u.Bind), Bound: u.Bound, Since: u.Since}
	if u.LastErr != nil {
		v.LastError = u.LastErr.Error()
	}
	if u.Bound {
		v.WindowUsed, v.Window = u.Session.WindowUsed, u.Session.Window
	}
	return v
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
