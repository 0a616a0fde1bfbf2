package sip

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// udpClient sends our MESSAGEs over UDP as non-INVITE client transactions
// (RFC 3261 §17.1.2) without sipgo's client transaction layer. Profiling the
// SMS→IM path showed sipgo's per-request transaction (request object, FSM
// goroutine, timers, header re-rendering) as the largest single cost of the
// bridge; here the request is rendered once into bytes, written from the
// listening socket, and the caller's goroutine runs the retransmission timers
// itself. Responses still arrive through sipgo's UDP read loop: they match no
// sipgo transaction and reach onResponse, which hands them over by branch.
type udpClient struct {
	pc     *net.UDPConn
	port   int    // our listening port, for Via
	local  string // our listening IP when bound to one; "" for a wildcard listener
	prefix string // random per process: branches, tags and Call-IDs stay unique across restarts
	seq    atomic.Uint64

	mu  sync.Mutex
	txs map[string]chan *sip.Response // by Via branch

	srcMu sync.Mutex
	src   map[netip.Addr]string // wildcard listener: our source IP toward a destination

	bufs sync.Pool // *[]byte, rendered requests
}

// RFC 3261 timer values for UDP.
const (
	timerT1 = 500 * time.Millisecond
	timerT2 = 4 * time.Second
)

func newUDPClient(pc *net.UDPConn, local netip.Addr) (*udpClient, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("sip: udp client id: %w", err)
	}
	c := &udpClient{pc: pc, prefix: hex.EncodeToString(b[:]), txs: map[string]chan *sip.Response{}, src: map[netip.Addr]string{}}
	c.bufs.New = func() any { b := make([]byte, 0, 1500); return &b }
	if ap, err := netip.ParseAddrPort(pc.LocalAddr().String()); err == nil {
		c.port = int(ap.Port())
	}
	if local.IsValid() && !local.IsUnspecified() {
		c.local = local.String()
	}
	return c, nil
}

// onResponse takes a response sipgo could not match to one of its own
// transactions. Retransmitted finals of finished transactions are dropped.
func (c *udpClient) onResponse(res *sip.Response) {
	via := res.Via()
	if via == nil {
		return
	}
	branch, _ := via.Params.Get("branch")
	c.mu.Lock()
	ch := c.txs[branch]
	c.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- res:
	default: // the caller is behind on provisionals; a final will follow
	}
}

// udpTarget is where a request goes: an IP literal and port over UDP.
type udpTarget struct {
	addr netip.AddrPort
}

// target returns u's UDP destination, or false when u needs sipgo (a host
// name to resolve, TCP/TLS, sips).
func udpTargetOf(u *sip.Uri) (udpTarget, bool) {
	if u == nil || !strings.EqualFold(u.Scheme, "sip") {
		return udpTarget{}, false
	}
	if t, ok := u.UriParams.Get("transport"); ok && !strings.EqualFold(t, "udp") {
		return udpTarget{}, false
	}
	if _, ok := u.UriParams.Get("maddr"); ok {
		return udpTarget{}, false
	}
	ip, err := netip.ParseAddr(strings.Trim(u.Host, "[]"))
	if err != nil {
		return udpTarget{}, false
	}
	port := u.Port
	if port <= 0 {
		port = 5060
	}
	if port > 65535 {
		return udpTarget{}, false
	}
	return udpTarget{addr: netip.AddrPortFrom(ip.Unmap(), uint16(port))}, true
}

// sourceFor is the address we put in Via toward dst.
func (c *udpClient) sourceFor(dst netip.Addr) (string, error) {
	if c.local != "" {
		return c.local, nil
	}
	c.srcMu.Lock()
	s, ok := c.src[dst]
	c.srcMu.Unlock()
	if ok {
		return s, nil
	}
	// A connected UDP socket asks the kernel's routing table without sending.
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
	if err != nil {
		return "", fmt.Errorf("no route to %s: %w", dst, err)
	}
	la := conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
	conn.Close()
	s = la.String()
	c.srcMu.Lock()
	if len(c.src) >= 4096 {
		clear(c.src)
	}
	c.src[dst] = s
	c.srcMu.Unlock()
	return s, nil
}

// request is what the fast path renders; every field is already a valid
// URI or header value.
type udpRequest struct {
	ruri, from, to string
	route          string // outbound proxy URI or ""
	userAgent      string
	headers        []sip.Header
	contentType    string
	body           []byte
}

func (c *udpClient) next() string { return c.prefix + strconv.FormatUint(c.seq.Add(1), 36) }

// render writes the MESSAGE with the given branch, From tag and Call-ID.
func (c *udpClient) render(dst []byte, r *udpRequest, src, branch, tag, callID string) []byte {
	dst = append(dst, "MESSAGE "...)
	dst = append(dst, r.ruri...)
	dst = append(dst, " SIP/2.0\r\nVia: SIP/2.0/UDP "...)
	if strings.IndexByte(src, ':') >= 0 {
		dst = append(append(append(dst, '['), src...), ']')
	} else {
		dst = append(dst, src...)
	}
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, int64(c.port), 10)
	dst = append(dst, ";rport;branch="...)
	dst = append(dst, branch...)
	if r.route != "" {
		dst = append(dst, "\r\nRoute: <"...)
		dst = append(dst, r.route...)
		dst = append(dst, '>')
	}
	dst = append(dst, "\r\nFrom: <"...)
	dst = append(dst, r.from...)
	dst = append(dst, ">;tag="...)
	dst = append(dst, tag...)
	dst = append(dst, "\r\nTo: <"...)
	dst = append(dst, r.to...)
	dst = append(dst, ">\r\nCall-ID: "...)
	dst = append(dst, callID...)
	dst = append(dst, "\r\nCSeq: 1 MESSAGE\r\nMax-Forwards: 70\r\nUser-Agent: "...)
	dst = append(dst, r.userAgent...)
	for _, h := range r.headers {
		dst = append(dst, "\r\n"...)
		dst = append(dst, h.Name()...)
		dst = append(dst, ": "...)
		dst = append(dst, h.Value()...)
	}
	dst = append(dst, "\r\nContent-Type: "...)
	dst = append(dst, r.contentType...)
	dst = append(dst, "\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(r.body)), 10)
	dst = append(dst, "\r\n\r\n"...)
	return append(dst, r.body...)
}

// unsafeInHeader reports bytes that would break a rendered header line.
func unsafeInHeader(s string) bool {
	return strings.ContainsAny(s, "\r\n<>")
}

// do sends r to t and waits for the final response; ctx bounds the wait
// (Timer F is the caller's MessageTimeout). It returns the final response's
// status and reason, and the Call-ID used.
func (c *udpClient) do(ctx context.Context, t udpTarget, r *udpRequest) (code int, reason, callID string, err error) {
	src, err := c.sourceFor(t.addr.Addr())
	if err != nil {
		return 0, "", "", err
	}
	id := c.next()
	branch := "z9hG4bK" + id
	callID = id + "@" + src
	bp := c.bufs.Get().(*[]byte)
	defer func() { *bp = (*bp)[:0]; c.bufs.Put(bp) }()
	*bp = c.render((*bp)[:0], r, src, branch, id, callID)
	wire := *bp

	ch := make(chan *sip.Response, 4)
	c.mu.Lock()
	c.txs[branch] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.txs, branch)
		c.mu.Unlock()
	}()

	if _, err := c.pc.WriteToUDPAddrPort(wire, t.addr); err != nil {
		return 0, "", callID, fmt.Errorf("send to %s: %w", t.addr, err)
	}
	interval := timerT1
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		select {
		case res := <-ch:
			if res.StatusCode < 200 {
				// Proceeding: retransmit every T2 until the final answer.
				interval = timerT2
				continue
			}
			return res.StatusCode, res.Reason, callID, nil
		case <-timer.C:
			if _, err := c.pc.WriteToUDPAddrPort(wire, t.addr); err != nil {
				return 0, "", callID, fmt.Errorf("retransmit to %s: %w", t.addr, err)
			}
			interval = min(2*interval, timerT2)
			timer.Reset(interval)
		case <-ctx.Done():
			return 0, "", callID, ctx.Err()
		}
	}
}
