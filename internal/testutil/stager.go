package testutil

import (
	"context"
	"fmt"
	"sync"

	"github.com/smsbridge/bridge/msg"
)

// Stager is a msg.Stager that keeps what it is given, numbering messages
// m1, m2, … as it takes them, and settles at once. Refuse, RefuseTo and
// FailSettle make it fail the ways a real one can. It is safe for
// concurrent use; its zero value takes everything.
type Stager struct {
	mu         sync.Mutex
	msgs       []msg.Message
	refuse     error
	refuseTo   map[msg.Address]error
	failSettle bool
}

func (s *Stager) Stage(_ context.Context, m *msg.Message) (msg.Ack, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse != nil {
		return nil, s.refuse
	}
	if err := s.refuseTo[m.To]; err != nil {
		return nil, err
	}
	m.ID = fmt.Sprintf("m%d", len(s.msgs)+1)
	s.msgs = append(s.msgs, *m)
	if s.failSettle {
		return failingAck{}, nil
	}
	return msg.Settled{}, nil
}

// Refuse makes Stage return err for every message from now on; nil takes
// them again.
func (s *Stager) Refuse(err error) {
	s.mu.Lock()
	s.refuse = err
	s.mu.Unlock()
}

// RefuseTo makes Stage return err for messages to to; nil takes them
// again.
func (s *Stager) RefuseTo(to msg.Address, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.refuseTo, to)
		return
	}
	if s.refuseTo == nil {
		s.refuseTo = make(map[msg.Address]error)
	}
	s.refuseTo[to] = err
}

// FailSettle makes the messages staged from now on keep a commit that
// fails with msg.ErrNotStored (fail true), or settle at once (false).
func (s *Stager) FailSettle(fail bool) {
	s.mu.Lock()
	s.failSettle = fail
	s.mu.Unlock()
}

// All returns the messages taken so far, in order.
func (s *Stager) All() []msg.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]msg.Message(nil), s.msgs...)
}

// failingAck is a commit that fails. Its Done channel is not nil, so the
// caller waits for it as for one still under way, off its read loop.
type failingAck struct{}

var closed = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func (failingAck) Done() <-chan struct{}        { return closed }
func (failingAck) Settle(context.Context) error { return msg.ErrNotStored }
