package sip

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
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
// (RFC 3261 §17.1.2) without sipgo's client transaction layer, whose
// per-request transaction (request object, FSM goroutine, timers, header
// re-rendering) is the largest single cost on the SMS→IM path in a CPU
// profile of the bridge. Here the request is rendered once into bytes,
// written from the listening socket, and the caller's goroutine runs the
// retransmission timers itself. Responses are taken off the listener by interceptConn before sipgo
// sees them; only those parseResponseHead does not accept go through sipgo's
// parser, match none of its transactions and reach onResponse. Either way a
// response goes to its transaction by Via branch.
type udpClient struct {
	pc     *net.UDPConn
	port   int    // our listening port, for Via
	local  string // our listening IP when bound to one; "" for a wildcard listener
	prefix string // random per process: branches, tags and Call-IDs stay unique across restarts
	seq    atomic.Uint64

	mu  sync.Mutex
	txs map[string]chan udpResponse // by Via branch

	srcMu sync.Mutex
	src   map[netip.Addr]string // wildcard listener: our source IP toward a destination

	bufs sync.Pool // *[]byte, rendered requests
}

// RFC 3261 timer values for UDP.
const (
	timerT1 = 500 * time.Millisecond
	timerT2 = 4 * time.Second
)

func newUDPClient(pc *net.UDPConn) (*udpClient, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("sip: udp client id: %w", err)
	}
	c := &udpClient{pc: pc, prefix: hex.EncodeToString(b[:]), txs: map[string]chan udpResponse{}, src: map[netip.Addr]string{}}
	c.bufs.New = func() any { b := make([]byte, 0, 1500); return &b }
	// The listening address: its port goes in Via, and so does its IP unless
	// it is a wildcard (then sourceFor asks the routing table per destination).
	if ap, err := netip.ParseAddrPort(pc.LocalAddr().String()); err == nil {
		c.port = int(ap.Port())
		if local := ap.Addr().Unmap(); !local.IsUnspecified() {
			c.local = local.String()
		}
	}
	return c, nil
}

// udpResponse is what a client transaction needs of a response.
type udpResponse struct {
	code   int
	reason string // read for 3xx-6xx only (StatusError); interceptConn leaves it "" below 300
}

// onResponse takes a response sipgo parsed but could not match to one of
// its own transactions: ours that parseResponseHead refused, and strays.
func (c *udpClient) onResponse(res *sip.Response) {
	via := res.Via()
	if via == nil {
		return
	}
	branch, _ := via.Params.Get("branch")
	c.deliver(branch, udpResponse{code: res.StatusCode, reason: res.Reason})
}

// deliver hands a response to its transaction. Retransmitted finals of
// finished transactions find none and are dropped.
func (c *udpClient) deliver(branch string, r udpResponse) {
	c.mu.Lock()
	ch := c.txs[branch]
	c.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case ch <- r:
	default: // the caller is behind on provisionals; a final will follow
	}
}

// ours reports whether branch is one of this process's fast-path branches.
func (c *udpClient) ours(branch []byte) bool {
	id, ok := bytes.CutPrefix(branch, []byte(sip.RFC3261BranchMagicCookie))
	return ok && len(id) > len(c.prefix) && string(id[:len(c.prefix)]) == c.prefix
}

// parseResponseHead reads the status code, reason and the top Via's branch
// of a SIP response; ok is false for anything else (requests, garbage), which
// then goes to sipgo's full parser.
func parseResponseHead(b []byte) (code int, reason, branch []byte, ok bool) {
	const proto = "SIP/2.0 "
	if len(b) < len(proto)+4 || string(b[:len(proto)]) != proto {
		return 0, nil, nil, false
	}
	b = b[len(proto):]
	for i := 0; i < 3; i++ {
		if b[i] < '0' || b[i] > '9' {
			return 0, nil, nil, false
		}
		code = code*10 + int(b[i]-'0')
	}
	if code < 100 || b[3] != ' ' {
		return 0, nil, nil, false
	}
	eol := bytes.Index(b, []byte("\r\n"))
	if eol < 0 {
		return 0, nil, nil, false
	}
	reason, b = b[4:eol], b[eol+2:]
	if bytes.IndexAny(reason, "\r\n") >= 0 {
		return 0, nil, nil, false
	}
	for len(b) > 0 {
		eol = bytes.Index(b, []byte("\r\n"))
		if eol <= 0 { // end of headers (or no CRLF): no Via
			return 0, nil, nil, false
		}
		line := b[:eol]
		b = b[eol+2:]
		if line[0] == ' ' || line[0] == '\t' { // a folded line (RFC 3261 §7.3.1): sipgo's job
			return 0, nil, nil, false
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return 0, nil, nil, false
		}
		name := trimSpace(line[:colon])
		if !isVia(name) {
			continue
		}
		if len(b) > 0 && (b[0] == ' ' || b[0] == '\t') { // the Via is folded: sipgo's job
			return 0, nil, nil, false
		}
		via := trimSpace(line[colon+1:])
		if !bracketsOK(via) {
			return 0, nil, nil, false
		}
		if i := bytes.IndexByte(via, ','); i >= 0 {
			if next := trimSpace(via[i+1:]); !bytes.HasPrefix(next, []byte("SIP/2.0/")) {
				return 0, nil, nil, false
			}
			via = via[:i] // only the top Via
		}
		if !sentByOK(via) {
			return 0, nil, nil, false
		}
		// sent-by, then ;params. Exactly one branch, whose whole value is a
		// token: anything odder is left to sipgo.
		var found []byte
		for {
			i := bytes.IndexByte(via, ';')
			if i < 0 {
				break
			}
			via = via[i+1:]
			param := via
			if j := bytes.IndexByte(param, ';'); j >= 0 {
				param = param[:j]
			}
			param = trimSpace(param)
			if value, isBranch := bytes.CutPrefix(param, []byte("branch=")); isBranch {
				if found != nil {
					return 0, nil, nil, false
				}
				found = value
				if len(found) == 0 || !isToken(found) {
					return 0, nil, nil, false
				}
			}
		}
		return code, reason, found, found != nil
	}
	return 0, nil, nil, false
}

// bracketsOK: an IPv6 reference's brackets hold none of the separators the
// Via is split at (sipgo takes a host from '[' to ']' whatever is inside).
func bracketsOK(via []byte) bool {
	i := bytes.IndexByte(via, '[')
	if i < 0 {
		return true
	}
	j := bytes.IndexByte(via[i:], ']')
	return j > 0 && bytes.IndexAny(via[i:i+j], ";, \t") < 0
}

// sentByOK: the top Via starts "SIP/2.0/TRANSPORT host" before its params.
func sentByOK(via []byte) bool {
	rest, ok := bytes.CutPrefix(via, []byte("SIP/2.0/"))
	if !ok {
		return false
	}
	sp := bytes.IndexAny(rest, " \t")
	if sp <= 0 || !isToken(rest[:sp]) {
		return false
	}
	host := rest[sp:]
	if i := bytes.IndexByte(host, ';'); i >= 0 {
		host = host[:i]
	}
	host = trimSpace(host)
	return len(host) > 0 && bytes.IndexAny(host, " \t,") < 0
}

// isToken: RFC 3261 token characters only; anything else is left to sipgo.
func isToken(b []byte) bool { return tokenLen(b) == len(b) }

// tokenLen is the length of the run of RFC 3261 token characters b starts with.
func tokenLen(b []byte) int {
	for i, c := range b {
		if !tokenChars[c] {
			return i
		}
	}
	return len(b)
}

// tokenChars: a table, as every byte of each Via scanned passes through it.
var tokenChars = func() (t [256]bool) {
	for c := range t {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("-.!%*_+`'~", byte(c)) >= 0
	}
	return t
}()

// trimSpace trims SIP's linear white space (space, tab) from both ends:
// bytes.Trim(b, " \t") builds its character set on every call.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// interceptConn is the UDP listener as sipgo sees it: responses to our
// fast-path transactions are taken out of the stream here (a short scan
// instead of sipgo's full parse and per-packet bookkeeping), and
// so are MESSAGE requests (udpserver.go); everything else reads through
// unchanged. sipgo's read filter hook (sip.WithTransportLayerReadFilter) is
// not used for this: sipgo builds a net.UDPAddr and calls its String() for
// every datagram before the filter runs, the per-packet cost this avoids
// (ReadFromUDPAddrPort allocates no address).
type interceptConn struct {
	*net.UDPConn
	c   *udpClient
	srv *udpServer // MESSAGE requests (udpserver.go)
}

func (ic *interceptConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, ap, err := ic.UDPConn.ReadFromUDPAddrPort(b)
		if err != nil {
			return n, nil, err
		}
		if code, reason, branch, ok := parseResponseHead(b[:n]); ok && ic.c.ours(branch) {
			r := udpResponse{code: code}
			if code >= 300 { // only a failure's reason is used (StatusError)
				r.reason = string(reason)
			}
			ic.c.deliver(string(branch), r)
			continue
		}
		if ic.srv.take(b[:n], ap) {
			continue
		}
		return n, net.UDPAddrFromAddrPort(ap), nil
	}
}

// udpTargetOf returns u's UDP destination (an IP literal and port), or
// false when u needs sipgo (a host name to resolve, TCP/TLS, sips).
func udpTargetOf(u *sip.Uri) (netip.AddrPort, bool) {
	if u == nil || !strings.EqualFold(u.Scheme, "sip") {
		return netip.AddrPort{}, false
	}
	if t, ok := u.UriParams.Get("transport"); ok && !strings.EqualFold(t, "udp") {
		return netip.AddrPort{}, false
	}
	if _, ok := u.UriParams.Get("maddr"); ok {
		return netip.AddrPort{}, false
	}
	ip, err := netip.ParseAddr(strings.Trim(u.Host, "[]"))
	if err != nil {
		return netip.AddrPort{}, false
	}
	port := u.Port
	if port <= 0 {
		port = 5060
	}
	if port > 65535 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(port)), true
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

// errTimerF: no final response within the transaction timeout.
var errTimerF = errors.New("sip: no final response (timer F)")

// do sends r to t and waits for the final response, at most timeout (Timer
// F, a plain timer: no derived context per message) or until ctx ends. It
// returns the final response's status and reason, and the Call-ID used.
func (c *udpClient) do(ctx context.Context, timeout time.Duration, t netip.AddrPort, r *udpRequest) (code int, reason, callID string, err error) {
	src, err := c.sourceFor(t.Addr())
	if err != nil {
		return 0, "", "", err
	}
	id := c.next()
	branch := sip.RFC3261BranchMagicCookie + id
	callID = id + "@" + src
	bp := c.bufs.Get().(*[]byte)
	defer c.bufs.Put(bp)
	*bp = c.render((*bp)[:0], r, src, branch, id, callID)
	wire := *bp

	ch := make(chan udpResponse, 4)
	c.mu.Lock()
	c.txs[branch] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.txs, branch)
		c.mu.Unlock()
	}()

	if _, err := c.pc.WriteToUDPAddrPort(wire, t); err != nil {
		return 0, "", callID, fmt.Errorf("send to %s: %w", t, err)
	}
	// One timer serves both Timer E (retransmit) and Timer F (give up): it
	// fires at the next retransmission or at the give-up time, whichever
	// comes first.
	interval := timerT1
	giveUp := time.Now().Add(timeout)
	timer := time.NewTimer(min(interval, timeout))
	defer timer.Stop()
	for {
		select {
		case res := <-ch:
			if res.code < 200 {
				// Proceeding: retransmit every T2 until the final answer.
				interval = timerT2
				continue
			}
			return res.code, res.reason, callID, nil
		case now := <-timer.C:
			if !now.Before(giveUp) {
				return 0, "", callID, errTimerF
			}
			if _, err := c.pc.WriteToUDPAddrPort(wire, t); err != nil {
				return 0, "", callID, fmt.Errorf("retransmit to %s: %w", t, err)
			}
			interval = min(2*interval, timerT2)
			timer.Reset(min(interval, giveUp.Sub(now)))
		case <-ctx.Done():
			return 0, "", callID, ctx.Err()
		}
	}
}
