package router

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/store"
)

// A sender's control over a message it sent: its state, cancelling it and
// replacing it. The adapters (HTTP DELETE, SMPP query_sm, cancel_sm,
// replace_sm) check that the message is the asker's; the router decides
// what can still be done to it.

// Message is a message's record: its state and history.
func (r *Router) Message(id string) (store.Record, error) { return r.q.Message(id) }

// Cancel ends message id, not yet final, as msg.Cancelled: at once when it
// waits in the router (scheduled, for a retry, for its recipient), else
// once the worker that has it is done with its attempt, which may deliver
// it first. A message handed to the SMS network whose receipt is awaited
// is withdrawn there (SMSCanceller). Otherwise a final message is refused
// with msg.ErrFinal and its record. The record returned is the new one.
func (r *Router) Cancel(ctx context.Context, id string) (store.Record, error) {
	rec, err := r.q.Message(id)
	if err != nil {
		return store.Record{}, fmt.Errorf("router: cancel %s: %w", id, err)
	}
	if rec.State.Final() {
		return r.cancelHandedOff(ctx, rec)
	}
	r.mu.Lock()
	j := r.takeWaiting(id)
	var done chan struct{}
	if j == nil {
		done = r.cancels[id]
		if done == nil {
			done = make(chan struct{})
			r.cancels[id] = done
			r.ncancel.Add(1)
		}
	}
	r.mu.Unlock()
	if j != nil {
		r.cancelNow(ctx, j)
	} else {
		// It may have ended just before the mark was set, when nobody
		// would look at the mark again.
		if rec, err = r.q.Message(id); err == nil && rec.State.Final() {
			r.unmark(id)
		}
		select {
		case <-done:
		case <-ctx.Done():
			r.unmark(id)
			return store.Record{}, fmt.Errorf("router: cancel %s: %w", id, ctx.Err())
		}
	}
	if rec, err = r.q.Message(id); err != nil {
		return store.Record{}, fmt.Errorf("router: cancel %s: %w", id, err)
	}
	if rec.State != msg.Cancelled {
		return r.cancelHandedOff(ctx, rec)
	}
	return rec, nil
}

// cancelHandedOff withdraws a message the SMS network took and has not
// sent its receipt for yet; any other final message is msg.ErrFinal.
func (r *Router) cancelHandedOff(ctx context.Context, rec store.Record) (store.Record, error) {
	id := rec.Msg.ID
	c, ok := r.sms.(SMSCanceller)
	if !ok || rec.State != msg.Delivered || len(rec.Events) == 0 || rec.Events[len(rec.Events)-1].Detail != "sms" {
		return rec, fmt.Errorf("router: cancel %s: %w (%s)", id, msg.ErrFinal, rec.State)
	}
	if err := c.CancelSMS(ctx, &rec.Msg); err != nil {
		return rec, fmt.Errorf("router: cancel %s: %w (%s): %w", id, msg.ErrFinal, rec.State, err)
	}
	o := msg.Outcome{State: msg.Cancelled, Detail: "cancelled at the SMSC", At: r.cfg.Now(), Via: msg.ViaSMS}
	err := r.q.RecordReceipt(ctx, id, store.Event{State: o.State, At: o.At, Detail: o.Detail})
	if err != nil {
		// The SMSC dropped it: the originator hears so even if the record lags.
		r.log.Warn("recording a cancellation at the SMSC failed", "id", id, "err", err)
	}
	r.count.Cancelled.Add(1)
	r.report(ctx, &rec.Msg, o)
	if rec, err = r.q.Message(id); err != nil {
		return store.Record{}, fmt.Errorf("router: cancel %s: %w", id, err)
	}
	return rec, nil
}

// Replace changes a message that waits in the router (scheduled, for a
// retry, for its recipient): change edits a copy (text, NotBefore,
// Expires, Priority), which is stored before it takes effect. A message
// being delivered is msg.ErrBusy, a final one msg.ErrFinal; a schedule
// after the expiry msg.ErrBadSchedule. The record returned is the new one.
func (r *Router) Replace(ctx context.Context, id string, change func(*msg.Message) error) (store.Record, error) {
	rec, err := r.q.Message(id)
	if err != nil {
		return store.Record{}, fmt.Errorf("router: replace %s: %w", id, err)
	}
	if rec.State.Final() {
		return rec, fmt.Errorf("router: replace %s: %w (%s)", id, msg.ErrFinal, rec.State)
	}
	r.mu.Lock()
	j := r.takeWaiting(id)
	r.mu.Unlock()
	if j == nil {
		return rec, fmt.Errorf("router: replace %s: %w", id, msg.ErrBusy)
	}
	c := j.m
	err = change(&c)
	if err == nil && c.NotBefore.After(c.Expires) {
		err = fmt.Errorf("%w: sent at %s, expires at %s", msg.ErrBadSchedule, c.NotBefore.Format(time.RFC3339), c.Expires.Format(time.RFC3339))
	}
	if err == nil {
		if err = r.q.Amend(ctx, &c, "replaced by its sender"); errors.Is(err, store.ErrFinal) {
			err = fmt.Errorf("%w: %w", msg.ErrFinal, err)
		}
	}
	if err == nil {
		j.m = c
		r.count.Replaced.Add(1)
	}
	r.putBack(ctx, j)
	if err != nil {
		return rec, fmt.Errorf("router: replace %s: %w", id, err)
	}
	if rec, err = r.q.Message(id); err != nil {
		return store.Record{}, fmt.Errorf("router: replace %s: %w", id, err)
	}
	return rec, nil
}

// putBack schedules again a job takeWaiting took: a scheduled one for its
// (maybe new) time, a retry or a parked one as it was.
func (r *Router) putBack(ctx context.Context, j *job) {
	due := j.due
	if j.key == "" {
		due = j.m.NotBefore
	}
	if !r.schedule(j, due, j.forUser) {
		r.cancelNow(ctx, j)
	}
}

// takeWaiting removes message id's job from where it waits in the router
// (the heap of scheduled ones, or a drain's queue) and returns it, or nil
// when a worker has it (or it is on its way to one). r.mu is held.
func (r *Router) takeWaiting(id string) *job {
	for _, j := range r.later {
		if j.m.ID != id {
			continue
		}
		heap.Remove(&r.later, j.index)
		if set := r.offline[j.key]; j.key != "" && set != nil {
			delete(set, j)
			if len(set) == 0 {
				delete(r.offline, j.key)
			}
		}
		j.parked = false
		return j
	}
	for k, q := range r.draining {
		if i := slices.IndexFunc(q, func(j *job) bool { return j.m.ID == id }); i >= 0 {
			j := q[i]
			r.draining[k] = slices.Delete(q, i, i+1)
			return j
		}
	}
	return nil
}

// cancelNow ends j as cancelled by its sender.
func (r *Router) cancelNow(ctx context.Context, j *job) {
	r.count.Cancelled.Add(1)
	r.finish(ctx, j, msg.Outcome{State: msg.Cancelled, Detail: "cancelled by its sender", Via: r.intended(&j.m)}, "")
}

// marked tells whether the sender cancelled message id while a worker had it.
func (r *Router) marked(id string) bool {
	r.mu.Lock()
	_, ok := r.cancels[id]
	r.mu.Unlock()
	return ok
}

// unmark ends a cancellation's wait: the message is final, one way or the other.
func (r *Router) unmark(id string) {
	r.mu.Lock()
	if ch, ok := r.cancels[id]; ok {
		delete(r.cancels, id)
		r.ncancel.Add(-1)
		close(ch)
	}
	r.mu.Unlock()
}
