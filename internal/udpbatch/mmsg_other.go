//go:build !linux

package udpbatch

import (
	"errors"
	"net"
)

// Elsewhere one datagram a call, through the net package.
type readState struct{}

func (s *readState) init(r *Reader) { r.slots = 1 }

func (s *readState) fill(r *Reader) (int, error) {
	n, ap, err := r.uc.ReadFromUDPAddrPort(r.buf[:SlotSize])
	if err != nil {
		return 0, err
	}
	r.lens[0], r.from[0] = n, ap
	return 1, nil
}

type writeState struct{}

func (s *writeState) send(w *Writer, q *queue) {
	for i := range q.items {
		it := &q.items[i]
		if _, err := w.uc.WriteToUDPAddrPort(q.data[it.off:it.off+it.n], it.dst); err != nil {
			var oe *net.OpError
			if errors.As(err, &oe) {
				err = oe.Err // fail wraps it again
			}
			w.fail(it, err)
		}
	}
}
