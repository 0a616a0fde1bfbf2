package bridge

import "github.com/smsbridge/bridge/api"

// metrics lists what /metrics exposes: the router's outcome counters, the
// SMPP edge's, the store's and presence's, and delivery latency by route.
// monitoring/ builds its dashboard and alerts on these names.
func (b *Bridge) metrics() []api.Metric {
	rt, db, pres, gw := b.rt, b.db, b.pres, b.gw
	c := rt.Stats()
	counter := func(name, help string, v func() uint64) api.Metric {
		return api.Metric{Name: name, Help: help, Type: "counter", Value: func() float64 { return float64(v()) }}
	}
	ms := []api.Metric{
		counter("bridge_accepted_total", "Messages stored and acknowledged.", c.Accepted.Load),
		counter("bridge_throttled_total", "Messages refused because the bridge was saturated.", c.Throttled.Load),
		counter("bridge_not_stored_total", "Messages refused because the store could not take them.", c.NotStored.Load),
		counter("bridge_im_delivered_total", "Messages delivered into IM.", c.IMDelivered.Load),
		counter("bridge_im_failed_total", "IM delivery attempts that failed.", c.IMFailed.Load),
		counter("bridge_sms_delivered_total", "Messages handed to the SMS network.", c.SMSDelivered.Load),
		counter("bridge_sms_failed_total", "SMS attempts that failed.", c.SMSFailed.Load),
		counter("bridge_app_delivered_total", "Messages taken (2xx) by the applications of service numbers.", c.AppDelivered.Load),
		counter("bridge_app_failed_total", "Attempts at an application that failed (retried).", c.AppFailed.Load),
		counter("bridge_fallbacks_total", "IM failures that fell back to SMS.", c.Fallbacks.Load),
		counter("bridge_retries_total", "Delivery attempts scheduled again.", c.Retries.Load),
		counter("bridge_duplicates_total", "Resubmissions suppressed as duplicates.", c.Duplicates.Load),
		counter("bridge_expired_total", "Messages that expired undelivered.", c.Expired.Load),
		counter("bridge_parked_total", "Messages parked for an offline IM-only user.", c.Parked.Load),
		counter("bridge_smpp_received_total", "submit_sm/deliver_sm received.", gw.Received.Load),
		counter("bridge_smpp_rejected_total", "submit_sm/deliver_sm refused for bad content.", gw.Rejected.Load),
		counter("bridge_smpp_parts_total", "Parts of long SMS received.", gw.Parts.Load),
		counter("bridge_smsc_receipts_total", "Delivery receipts received from the SMSC.", gw.Receipts.Load),
		counter("bridge_smsc_receipts_unmatched_total", "SMSC receipts that matched no message.", gw.UnmatchedReceipts.Load),
		counter("bridge_smsc_receipts_matched_elsewhere_total", "SMSC receipts for a message another cluster node sent, settled there.", gw.ReceiptsMatchedElsewhere.Load),
		counter("bridge_esme_receipts_sent_total", "Delivery receipts delivered to ESMEs.", gw.ReceiptsSent.Load),
		counter("bridge_esme_receipts_forwarded_total", "Of those, delivered through another cluster node that held the ESME's bind.", gw.ReceiptsForwarded.Load),
		counter("bridge_esme_receipts_dropped_total", "Delivery receipts given up.", gw.ReceiptsDropped.Load),
		counter("bridge_dlr_sent_total", "Delivery reports taken (2xx) by HTTP senders' URLs.", b.dlr.Sent.Load),
		counter("bridge_dlr_failed_attempts_total", "Delivery report attempts not answered 2xx (retried).", b.dlr.Failed.Load),
		counter("bridge_dlr_expired_total", "Delivery reports given up after their expiry.", b.dlr.Expired.Load),
		{Name: "bridge_dlr_pending", Help: "Delivery reports stored, not yet taken.", Type: "gauge", Value: func() float64 { return float64(b.dlr.Pending()) }},
		{Name: "bridge_queue_depth", Help: "Accepted messages not yet final.", Type: "gauge", Value: func() float64 { return float64(rt.Pending()) }},
		{Name: "bridge_router_workers", Help: "Delivery goroutines running (--workers, more while all are busy, up to --workers-max).", Type: "gauge", Value: func() float64 { n, _ := rt.Workers(); return float64(n) }},
		{Name: "bridge_router_workers_busy", Help: "Delivery goroutines delivering.", Type: "gauge", Value: func() float64 { _, n := rt.Workers(); return float64(n) }},
		{Name: "bridge_queue_limit", Help: "Accepted messages not yet final past which new ones are throttled (--queue-depth).", Type: "gauge", Value: func() float64 { return float64(b.cfg.QueueDepth) }},
		{Name: "bridge_smpp_binds", Help: "SMPP sessions bound to us.", Type: "gauge", Value: func() float64 { return float64(gw.Binds()) }},
		{Name: "bridge_store_up", Help: "1 while the store takes writes; 0 after a failed commit, until one succeeds.", Type: "gauge", Value: func() float64 { return up(db.Healthy() == nil) }},
		{Name: "bridge_store_batches_total", Help: "Group commits (one fsync each).", Type: "counter", Value: func() float64 { return float64(db.Stats().Batches) }},
		{Name: "bridge_dedup_keys", Help: "Keys held by the duplicate indexes (content and Idempotency-Key).", Type: "gauge", Value: func() float64 { return float64(db.Stats().DedupKeys) }},
		{Name: "bridge_dedup_window_shortened_total", Help: "Early rotations of a duplicate index at --dedup-max-keys: its window was shorter than asked.", Type: "counter", Value: func() float64 { return float64(db.Stats().DedupShortened) }},
		{Name: "bridge_store_failed_batches_total", Help: "Group commits whose write or fsync failed.", Type: "counter", Value: func() float64 { return float64(db.Stats().Failed) }},
		{Name: "bridge_store_writes_total", Help: "Key writes in group commits, failed ones included (a record's write superseded within its batch is not written, nor counted).", Type: "counter", Value: func() float64 { return float64(db.Stats().Commits) }},
		{Name: "bridge_store_final_segments", Help: "Segment files holding finished messages' records; each is deleted whole once its last record's retention has ended.", Type: "gauge", Value: func() float64 { return float64(db.Stats().FinalSegments) }},
		{Name: "bridge_presence_users", Help: "Users with a presence binding.", Type: "gauge", Value: func() float64 { return float64(pres.Len()) }},
	}
	// Only with upstream SMSCs, one series each: a bridge without one has
	// no bind to be down, and an alert on the gauge must not fire for it.
	for _, u := range gw.Counters() {
		l := map[string]string{"smsc": u.Name}
		ms = append(ms,
			api.Metric{Name: "bridge_smsc_up", Help: "1 while the bind to the upstream SMSC is up.", Type: "gauge", Labels: l,
				Value: func() float64 { return up(u.Bound()) }},
			api.Metric{Name: "bridge_smsc_submits_total", Help: "submit_sm the SMSC answered OK.", Type: "counter", Labels: l,
				Value: func() float64 { return float64(u.Submits.Load()) }},
			api.Metric{Name: "bridge_smsc_submit_errors_total", Help: "submit_sm the SMSC refused or left unanswered (retried unless the message is bad).", Type: "counter", Labels: l,
				Value: func() float64 { return float64(u.Errors.Load()) }},
			api.Metric{Name: "bridge_smsc_throttled_total", Help: "submit_sm held back to keep within the SMSC's throughput limit (--smsc-option tps).", Type: "counter", Labels: l,
				Value: func() float64 { return float64(u.Throttled.Load()) }})
	}
	ms = append(ms,
		api.Metric{Name: "bridge_store_commit_seconds", Help: "Wall time of a group commit: the commit log's write and fdatasync, which acknowledgements wait for, and the hand-off to badger's applier.", Type: "histogram", Histogram: b.commitTime},
		api.Metric{Name: "bridge_store_checkpoint_seconds", Help: "Wall time of a checkpoint on badger's applier (deferred records into badger, badger and the open segment of finished messages synced); reads of later writes wait for it, acknowledgements do not.", Type: "histogram", Histogram: b.ckptTime})
	if app := b.app; app != nil {
		ms = append(ms,
			counter("bridge_app_replies_total", "Applications' replies stored to go back to the sender.", app.Replies.Load),
			counter("bridge_app_replies_dropped_total", "Applications' replies not sent: unreadable, or refused as undeliverable.", app.RepliesDropped.Load))
	}
	if x := b.xmpp; x != nil {
		st := &x.Stats
		ms = append(ms,
			api.Metric{Name: "bridge_xmpp_up", Help: "1 while the component stream to the XMPP server is up.", Type: "gauge", Value: func() float64 { return up(x.Connected()) }},
			counter("bridge_xmpp_streams_total", "Component streams opened to the XMPP server: the first and each reconnection.", st.Streams.Load),
			counter("bridge_xmpp_sent_total", "Messages written to XMPP clients.", st.Sent.Load),
			counter("bridge_xmpp_confirmed_total", "Of those, answered by the client: its receipt, or its result to a ping written after the message.", st.Confirmed.Load),
			counter("bridge_xmpp_unconfirmed_total", "Of those, not: an error stanza, no answer within --im-timeout, or the stream lost (the router tries again).", st.Unconfirmed.Load),
			counter("bridge_xmpp_pings_total", "Pings written to XMPP clients (one confirms the messages written before it).", st.Pings.Load),
			api.Metric{Name: "bridge_xmpp_awaiting", Help: "Messages written to XMPP clients and not yet answered.", Type: "gauge", Value: func() float64 { return float64(x.Pending()) }},
			api.Metric{Name: "bridge_xmpp_ping_seconds", Help: "Round trip of an answered ping, through the XMPP server to the client and back; it grows first when the server is short of CPU.", Type: "histogram", Histogram: b.xmppPing})
	}
	if n := b.node; n != nil {
		st := &n.Stats
		ms = append(ms,
			counter("bridge_cluster_sent_total", "Deliveries this node asked of the node holding the recipient's binding, done.", st.Sent.Load),
			counter("bridge_cluster_sent_failed_total", "Deliveries asked of another node that failed (next binding, SMS or retry).", st.SentFailed.Load),
			counter("bridge_cluster_served_total", "Deliveries other nodes asked of this node, done.", st.Served.Load),
			counter("bridge_cluster_served_failed_total", "Deliveries other nodes asked of this node, refused or failed.", st.ServedFailed.Load),
			counter("bridge_cluster_announced_total", "Changes of this node's bindings announced to the others.", st.Announced.Load),
			counter("bridge_cluster_heard_total", "Other nodes' binding announcements applied here.", st.Heard.Load),
			counter("bridge_cluster_watcher_stalls_total", "Presence bucket watchers replaced for falling silent behind the bucket.", st.WatcherStalls.Load))
	}
	for _, route := range []string{"im", "sms", "app", "failed"} {
		ms = append(ms, api.Metric{Name: "bridge_delivery_seconds", Help: "Time from acceptance to the final state, by route.",
			Type: "histogram", Histogram: b.latency[route], Labels: map[string]string{"route": route}})
	}
	return ms
}

func up(ok bool) float64 {
	if ok {
		return 1
	}
	return 0
}
