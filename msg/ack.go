package msg

import "context"

// Ack is a message's acceptance on its way to disk: the message was staged
// (it has its ID and may already be on its way to delivery), and its sender
// may be acknowledged once Settle returns nil. Settle must be called exactly
// once, also when the sender has gone: it releases what staging held.
type Ack interface {
	// Done is closed when Settle will not block (nil: it never blocks).
	Done() <-chan struct{}
	// Settle waits for the commit and returns nil if the sender may be
	// acknowledged with the message's ID; otherwise the ID is cleared and
	// the error wraps ErrNotStored. An error from ctx says nothing about
	// the write: it may still become durable, so the sender is not told ok.
	Settle(ctx context.Context) error
}

// Stager takes messages into the bridge (the router): Stage validates m,
// assigns its ID and queues it durably, returning at once with its Ack, or
// refuses it with ErrOverloaded, ErrNoRoute, ErrTooLong or ErrNotStored.
type Stager interface {
	Stage(ctx context.Context, m *Message) (Ack, error)
}

// Accept stages m and waits for it to settle: the blocking form, for an
// adapter that answers each message on its own goroutine. A nil return is
// the only one that allows an acknowledgement.
func Accept(ctx context.Context, s Stager, m *Message) error {
	a, err := s.Stage(ctx, m)
	if err != nil {
		return err
	}
	return a.Settle(ctx)
}

// Settled is the Ack of a message that needs no commit: a copy of one
// already stored (its ID is the first copy's).
type Settled struct{}

// Done returns nil: Settle never blocks.
func (Settled) Done() <-chan struct{} { return nil }

// Settle returns nil.
func (Settled) Settle(context.Context) error { return nil }
