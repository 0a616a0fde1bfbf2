package udpbatch

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
)

// SlotSize is a Reader's buffer per datagram: the largest UDP payload, so
// that no datagram is cut short.
const SlotSize = 65536

// maxBatch bounds the datagrams of one system call.
const maxBatch = 64

// Reader reads datagrams from one UDP socket. It is for one goroutine.
type Reader struct {
	uc    *net.UDPConn
	rc    syscall.RawConn
	slots int
	buf   []byte           // slots × SlotSize
	lens  []int            // of the datagrams read by the last call
	from  []netip.AddrPort // their sources
	count int              // datagrams the last call read
	next  int              // the next one Read hands out
	sys   readState
}

// NewReader reads uc up to slots datagrams a call (at most 64).
func NewReader(uc *net.UDPConn, slots int) (*Reader, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("udpbatch: reader: %w", err)
	}
	slots = max(1, min(slots, maxBatch))
	r := &Reader{uc: uc, rc: rc, slots: slots, buf: make([]byte, slots*SlotSize),
		lens: make([]int, slots), from: make([]netip.AddrPort, slots)}
	r.sys.init(r)
	return r, nil
}

// Read returns the next datagram and where it came from. The bytes are the
// Reader's own, valid until the next Read.
func (r *Reader) Read() ([]byte, netip.AddrPort, error) {
	for r.next >= r.count {
		n, err := r.sys.fill(r)
		if err != nil {
			return nil, netip.AddrPort{}, &net.OpError{Op: "read", Net: "udp", Source: r.uc.LocalAddr(), Err: err}
		}
		r.count, r.next = n, 0
	}
	i := r.next
	r.next++
	return r.buf[i*SlotSize : i*SlotSize+r.lens[i]], r.from[i], nil
}

// Buffered is how many datagrams Read hands out before its next system
// call: 0 means the next Read may wait.
func (r *Reader) Buffered() int { return r.count - r.next }

// Writer sends queued datagrams on one UDP socket, many to a system call.
// Any goroutine may queue and flush; one sends at a time.
type Writer struct {
	uc     *net.UDPConn
	rc     syscall.RawConn
	v6     bool // the socket's family: IPv4 destinations go out v4-mapped
	onFail func(tag string, dst netip.AddrPort, err error)

	mu      sync.Mutex
	drained sync.Cond // a full queue waits for the sender
	busy    bool      // a goroutine is sending the queue
	q       queue     // what waits for the sender
	spare   queue     // the sender's last queue, emptied, for reuse

	sys writeState // the sender's only
}

// queue holds datagrams copied in, back to back.
type queue struct {
	data  []byte
	items []item
}

type item struct {
	off, n int
	dst    netip.AddrPort
	tag    string
}

// maxQueued bounds a queue's bytes: past it, Queue waits for the sender
// (a socket whose send buffer stays full must not grow the queue forever).
const maxQueued = 4 << 20

// NewWriter sends on uc; onFail (nil: nobody is told) hears of every
// datagram the kernel refused, with the tag it was queued under.
func NewWriter(uc *net.UDPConn, onFail func(tag string, dst netip.AddrPort, err error)) (*Writer, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("udpbatch: writer: %w", err)
	}
	// A wildcard listener is AF_INET6 and dual-stack, an IPv4 one AF_INET:
	// the kernel says which, and so how to write a destination.
	fam, err := socketFamily(rc)
	if err != nil {
		return nil, fmt.Errorf("udpbatch: writer: %w", err)
	}
	v6 := fam == syscall.AF_INET6
	w := &Writer{uc: uc, rc: rc, v6: v6, onFail: onFail}
	w.drained.L = &w.mu
	return w, nil
}

// Queue copies b in to be sent by the next Flush, whichever goroutine
// makes it: a goroutine that answers a batch of datagrams queues the
// answers and flushes once; b may be reused as soon as Queue returns.
func (w *Writer) Queue(b []byte, dst netip.AddrPort, tag string) {
	w.mu.Lock()
	w.queueLocked(b, dst, tag)
	w.mu.Unlock()
}

// Flush sends what is queued, unless another goroutine is sending (it
// sends everything queued before it stops).
func (w *Writer) Flush() {
	w.mu.Lock()
	w.sendLocked()
}

func (w *Writer) queueLocked(b []byte, dst netip.AddrPort, tag string) {
	for w.busy && len(w.q.data)+len(b) > maxQueued && len(w.q.items) > 0 {
		w.drained.Wait()
	}
	w.q.items = append(w.q.items, item{off: len(w.q.data), n: len(b), dst: dst, tag: tag})
	w.q.data = append(w.q.data, b...)
}

// sendLocked sends until the queue is empty, unless another goroutine is
// sending; it unlocks w.mu.
func (w *Writer) sendLocked() {
	if w.busy {
		w.mu.Unlock()
		return
	}
	w.busy = true
	for len(w.q.items) > 0 {
		cur := w.q
		w.q = w.spare
		w.mu.Unlock()
		w.sys.send(w, &cur)
		cur.data, cur.items = cur.data[:0], cur.items[:0]
		w.mu.Lock()
		w.spare = cur
		w.drained.Broadcast()
	}
	w.busy = false
	w.mu.Unlock()
}

func (w *Writer) fail(it *item, err error) {
	if w.onFail != nil {
		w.onFail(it.tag, it.dst, &net.OpError{Op: "write", Net: "udp", Source: w.uc.LocalAddr(),
			Addr: net.UDPAddrFromAddrPort(it.dst), Err: err})
	}
}

// socketFamily asks the kernel for the socket's address family.
func socketFamily(rc syscall.RawConn) (int, error) {
	var fam int
	var serr error
	err := rc.Control(func(fd uintptr) {
		var sa syscall.Sockaddr
		sa, serr = syscall.Getsockname(int(fd))
		switch sa.(type) {
		case *syscall.SockaddrInet4:
			fam = syscall.AF_INET
		case *syscall.SockaddrInet6:
			fam = syscall.AF_INET6
		}
	})
	if err != nil {
		return 0, err
	}
	return fam, serr
}
