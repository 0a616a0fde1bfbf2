package udpbatch

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr: a msghdr and the length the kernel moved.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32 // Go pads the struct to msghdr's alignment, as C does
}

// sockaddr holds a struct sockaddr_in or sockaddr_in6.
type sockaddr [unix.SizeofSockaddrInet6]byte

type readState struct {
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []sockaddr
}

func (s *readState) init(r *Reader) {
	s.hdrs = make([]mmsghdr, r.slots)
	s.iovs = make([]unix.Iovec, r.slots)
	s.names = make([]sockaddr, r.slots)
	for i := range s.hdrs {
		s.iovs[i].Base = &r.buf[i*SlotSize]
		s.iovs[i].SetLen(SlotSize)
		s.hdrs[i].hdr.Iov = &s.iovs[i]
		s.hdrs[i].hdr.SetIovlen(1)
		s.hdrs[i].hdr.Name = &s.names[i][0]
	}
}

// fill reads what is queued on the socket, waiting for one datagram at least.
func (s *readState) fill(r *Reader) (int, error) {
	var n int
	var errno syscall.Errno
	err := r.rc.Read(func(fd uintptr) bool {
		for i := range s.hdrs {
			s.hdrs[i].hdr.Namelen = unix.SizeofSockaddrInet6
			s.hdrs[i].hdr.Flags = 0
		}
		var ok bool
		n, errno, ok = mmsg(unix.SYS_RECVMMSG, fd, s.hdrs)
		return ok
	})
	runtime.KeepAlive(r.buf)
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", errno)
	}
	for i := 0; i < n; i++ {
		r.lens[i] = int(s.hdrs[i].n)
		r.from[i] = decodeSockaddr(&s.names[i], s.hdrs[i].hdr.Namelen)
	}
	return n, nil
}

// mmsg makes one recvmmsg or sendmmsg (trap) of hdrs on fd, again when a
// signal interrupts it; ok is false when the socket would block, for the
// poller to wait.
func mmsg(trap, fd uintptr, hdrs []mmsghdr) (n int, errno syscall.Errno, ok bool) {
	for {
		r0, _, e := unix.Syscall6(trap, fd, uintptr(unsafe.Pointer(&hdrs[0])), uintptr(len(hdrs)), 0, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, 0, false
		}
		return int(r0), e, true
	}
}

func decodeSockaddr(sa *sockaddr, n uint32) netip.AddrPort {
	port := binary.BigEndian.Uint16(sa[2:4])
	switch binary.NativeEndian.Uint16(sa[0:2]) {
	case unix.AF_INET:
		if n >= unix.SizeofSockaddrInet4 {
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte(sa[4:8])), port)
		}
	case unix.AF_INET6:
		if n >= unix.SizeofSockaddrInet6 {
			a := netip.AddrFrom16([16]byte(sa[8:24]))
			if scope := binary.NativeEndian.Uint32(sa[24:28]); scope != 0 {
				a = a.WithZone(zoneName(scope))
			}
			return netip.AddrPortFrom(a, port)
		}
	}
	return netip.AddrPort{}
}

func zoneName(index uint32) string {
	if ifi, err := net.InterfaceByIndex(int(index)); err == nil {
		return ifi.Name
	}
	return strconv.FormatUint(uint64(index), 10)
}

var errFamily = errors.New("address family does not match the socket")

// encodeSockaddr writes dst as the socket's family wants it.
func encodeSockaddr(sa *sockaddr, dst netip.AddrPort, v6 bool) (uint32, error) {
	a := dst.Addr()
	if !dst.IsValid() {
		return 0, errFamily
	}
	clear(sa[:])
	binary.BigEndian.PutUint16(sa[2:4], dst.Port())
	if !v6 {
		a = a.Unmap()
		if !a.Is4() {
			return 0, errFamily
		}
		binary.NativeEndian.PutUint16(sa[0:2], unix.AF_INET)
		b := a.As4()
		copy(sa[4:8], b[:])
		return unix.SizeofSockaddrInet4, nil
	}
	binary.NativeEndian.PutUint16(sa[0:2], unix.AF_INET6)
	b := a.As16() // an IPv4 address comes out v4-mapped
	copy(sa[8:24], b[:])
	if z := a.Zone(); z != "" {
		idx, err := strconv.ParseUint(z, 10, 32)
		if err != nil {
			ifi, ierr := net.InterfaceByName(z)
			if ierr != nil {
				return 0, ierr
			}
			idx = uint64(ifi.Index)
		}
		binary.NativeEndian.PutUint32(sa[24:28], uint32(idx))
	}
	return unix.SizeofSockaddrInet6, nil
}

type writeState struct {
	hdrs  [maxBatch]mmsghdr
	iovs  [maxBatch]unix.Iovec
	names [maxBatch]sockaddr
	refs  [maxBatch]*item
}

// send sends q's datagrams, maxBatch a call; each one refused goes to
// w.fail and the rest go on.
func (s *writeState) send(w *Writer, q *queue) {
	items := q.items
	for len(items) > 0 {
		k := 0
		for k < maxBatch && k < len(items) {
			it := &items[0]
			items = items[1:]
			nl, err := encodeSockaddr(&s.names[k], it.dst, w.v6)
			if err != nil {
				w.fail(it, err)
				continue
			}
			if it.n > 0 {
				s.iovs[k].Base = &q.data[it.off]
			} else {
				s.iovs[k].Base = nil
			}
			s.iovs[k].SetLen(it.n)
			s.hdrs[k] = mmsghdr{hdr: unix.Msghdr{Name: &s.names[k][0], Namelen: nl, Iov: &s.iovs[k]}}
			s.hdrs[k].hdr.SetIovlen(1)
			s.refs[k] = it
			k++
		}
		for done := 0; done < k; {
			var sent int
			var errno syscall.Errno
			err := w.rc.Write(func(fd uintptr) bool {
				var ok bool
				sent, errno, ok = mmsg(unix.SYS_SENDMMSG, fd, s.hdrs[done:k])
				return ok
			})
			switch {
			case err != nil: // the socket is closed: nothing more goes
				for ; done < k; done++ {
					w.fail(s.refs[done], err)
				}
				for i := range items {
					w.fail(&items[i], err)
				}
				items = nil
			case errno != 0: // the first one was refused; the kernel stops there
				w.fail(s.refs[done], os.NewSyscallError("sendmmsg", errno))
				done++
			default:
				done += sent
			}
		}
		clear(s.refs[:k])
	}
	runtime.KeepAlive(q.data)
}
