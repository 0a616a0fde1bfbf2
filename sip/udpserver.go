package sip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/panjf2000/ants/v2"
)

// udpServer takes MESSAGE requests over UDP off the listener before sipgo's
// transaction layer and runs them through the same handler (handleMessage,
// bounded by MaxInFlight) with a minimal server transaction of our own.
// sipgo keeps every completed UDP server transaction with its request,
// response, FSM and timer for Timer J (64·T1 = 32 s): 32 s of traffic in
// memory and a large share of the CPU. Here a completed
// transaction is just its response bytes in a map rotated every Timer J,
// enough to answer a retransmitted request again without handling it twice
// (RFC 3261 §17.2.2). sipgo's parser still parses each new request; a
// retransmission is answered on a scan of its top Via (topViaBranch). A malformed
// request of any method is answered here (malformed.go). What reads through
// to sipgo unchanged: every other well-formed request, a MESSAGE whose top
// Via has no RFC 3261 branch, and responses that are not to our fast-path
// transactions (interceptConn).
type udpServer struct {
	s       *Server
	pc      *net.UDPConn
	workers *ants.PoolWithFuncGeneric[inbound] // handler goroutines, reused (see dispatch)

	mu      sync.Mutex
	txs     [2]map[txKey]*fastTx // current and previous generation
	rotated time.Time
}

// txKey identifies a server transaction: the top Via's branch and the
// address the request came from.
type txKey struct {
	branch string
	src    netip.AddrPort
}

// timerJ is how long a completed non-INVITE server transaction answers
// retransmissions over UDP.
const timerJ = 64 * timerT1

func newUDPServer(ctx context.Context, s *Server, pc *net.UDPConn) (*udpServer, error) {
	// Unbounded here: MaxInFlight bounds the handlers (onMessage answers 503
	// beyond it), and the read loop must never wait on a worker. Idle
	// workers expire after ants' default second.
	workers, err := ants.NewPoolWithFuncGeneric(-1, func(in inbound) { s.onMessage(in.req, in.tx) },
		ants.WithPanicHandler(func(p any) { s.log.Error("sip handler panic", "panic", p) }))
	if err != nil {
		return nil, fmt.Errorf("sip: handler pool: %w", err)
	}
	context.AfterFunc(ctx, workers.Release)
	return &udpServer{s: s, pc: pc, workers: workers, txs: [2]map[txKey]*fastTx{{}, {}}, rotated: time.Now()}, nil
}

// inbound is one MESSAGE for the handler pool: one function for the pool,
// so no closure per request.
type inbound struct {
	req *sip.Request
	tx  *fastTx
}

// dispatch runs the MESSAGE handler on a pooled goroutine: a goroutine per
// request would grow a fresh stack through the store's call depth every
// time (runtime.copystack).
// Once the server's context ends the pool is released while the listener
// may still deliver a last datagram; that one gets its own goroutine.
func (u *udpServer) dispatch(req *sip.Request, tx *fastTx) {
	if err := u.workers.Invoke(inbound{req, tx}); err != nil {
		go u.s.onMessage(req, tx)
	}
}

// take handles datagram b from src when it is a MESSAGE request or a
// malformed request (malformed.go) and returns true; false hands it to sipgo.
func (u *udpServer) take(b []byte, src netip.AddrPort) bool {
	if !bytes.HasPrefix(b, []byte("MESSAGE ")) {
		// Parsed twice when well-formed (here and by sipgo): REGISTER and
		// the rest are rare next to MESSAGE, and sipgo would drop what fails.
		if r := checkRequest(b); r != nil {
			u.s.reject(b, src.String(), r, func(wire []byte) error {
				_, err := u.pc.WriteToUDPAddrPort(wire, src)
				return err
			})
			return true
		}
		return false
	}
	// A retransmission needs only its key, and a full parse would be most
	// of what answering it costs (BenchmarkTakeRetransmission). A miss is
	// parsed below.
	scanned, scanOK := topViaBranch(b)
	scanOK = scanOK && bytes.HasPrefix(scanned, []byte(sip.RFC3261BranchMagicCookie))
	if scanOK {
		u.mu.Lock()
		tx := u.lookup(txKey{string(scanned), src})
		u.mu.Unlock()
		if tx != nil {
			tx.retransmitted()
			return true
		}
	}
	// No copy of b (the reader's buffer, reused): sipgo v1.7.2's parser
	// copies the start line, header values and body out of its input and
	// writes nothing into it, so b also reaches sipgo intact on false.
	m, err := sip.ParseMessage(b)
	r := (*rejection)(nil)
	if err != nil {
		r = diagnose(b, err)
	} else if req, ok := m.(*sip.Request); ok {
		r = validate(req)
	}
	if r != nil {
		u.s.reject(b, src.String(), r, func(wire []byte) error {
			_, err := u.pc.WriteToUDPAddrPort(wire, src)
			return err
		})
		return true
	}
	req, ok := m.(*sip.Request)
	if !ok || req.Method != sip.MESSAGE {
		return false
	}
	via := req.Via()
	branch, _ := via.Params.Get("branch")
	if !strings.HasPrefix(branch, sip.RFC3261BranchMagicCookie) { // RFC 2543 peers: sipgo matches those
		return false
	}
	key := txKey{branch, src}
	u.mu.Lock()
	// Only this read loop adds transactions, so a key the scan already
	// missed cannot be there now.
	if !scanOK || string(scanned) != branch {
		if tx := u.lookup(key); tx != nil {
			u.mu.Unlock()
			tx.retransmitted()
			return true
		}
	}
	tx := &fastTx{pc: u.pc, dst: src}
	u.txs[0][key] = tx
	u.mu.Unlock()

	req.SetTransport("UDP")
	req.SetSource(src.String())
	u.dispatch(req, tx)
	return true
}

// lookup finds key's transaction in either generation, first retiring the
// older one when it is Timer J old. u.mu must be held.
func (u *udpServer) lookup(key txKey) *fastTx {
	if now := time.Now(); now.Sub(u.rotated) >= timerJ {
		u.txs[1], u.txs[0], u.rotated = u.txs[0], map[txKey]*fastTx{}, now
	}
	if tx := u.txs[0][key]; tx != nil {
		return tx
	}
	return u.txs[1][key]
}

// topViaBranch returns the branch parameter of the top Via of SIP message
// b without parsing it. The transaction map is keyed by what sipgo's parser
// (v1.7.2) makes of that branch, so the scan reads only what it reads
// exactly as sipgo does, and refuses the rest (ok false): header lines end
// at CRLF and fold onto the one before, names are trimmed and compared
// case-insensitively (Via or v), the value is trimmed; of its first value it
// accepts only the strict form "token/token/token SP host[:port]" or
// "[IPv6][:port]" then ";name[=value]" tokens up to a comma or the end, the
// last branch winning (sipgo's HeaderParams.Add overwrites). sipgo matches
// the name "branch" case-sensitively and keeps whitespace around params in
// names and values, so a param with any whitespace, quotes or other
// non-token bytes is refused, as is a folded Via. A refusal costs a parse,
// never a wrong answer; FuzzTopViaBranch checks the agreement.
func topViaBranch(b []byte) (branch []byte, ok bool) {
	_, rest, ok := cutLine(b) // start line
	for ok {
		var line []byte
		if line, rest, ok = cutLine(rest); !ok || len(line) == 0 {
			return nil, false // no Via before the end of the headers
		}
		folded := false
		for ok && len(rest) > 0 && (rest[0] == ' ' || rest[0] == '\t') {
			_, rest, ok = cutLine(rest)
			folded = true
		}
		name, value, hasColon := bytes.Cut(line, []byte(":"))
		if !ok || !hasColon {
			return nil, false
		}
		if name = bytes.TrimSpace(name); isVia(name) {
			if folded {
				return nil, false
			}
			return viaBranch(bytes.TrimSpace(value))
		}
	}
	return nil, false
}

// cutLine splits b after its first line, which ends at the first CR and
// must be followed by LF (sipgo's nextLine).
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\r')
	if i < 0 || i+1 >= len(b) || b[i+1] != '\n' {
		return nil, nil, false
	}
	return b[:i], b[i+2:], true
}

// isVia: the header name is Via in any ASCII case, or its compact form v.
func isVia(name []byte) bool {
	switch len(name) {
	case 1:
		return name[0]|0x20 == 'v'
	case 3:
		return name[0]|0x20 == 'v' && name[1]|0x20 == 'i' && name[2]|0x20 == 'a'
	}
	return false
}

// viaBranch returns the branch of the first value of a trimmed Via header
// value in the strict form topViaBranch describes.
func viaBranch(v []byte) (branch []byte, ok bool) {
	i := 0
	for _, seps := range [...]string{"/", "/", " \t"} { // sent-protocol, then one SP or HT
		j := i + tokenLen(v[i:])
		if j == i || j >= len(v) || strings.IndexByte(seps, v[j]) < 0 {
			return nil, false
		}
		i = j + 1
	}
	if i < len(v) && v[i] == '[' {
		j := i + 1
		for j < len(v) && (v[j] == ':' || v[j] == '.' || isHex(v[j])) {
			j++
		}
		if j == i+1 || j >= len(v) || v[j] != ']' {
			return nil, false
		}
		i = j + 1
	} else if n := tokenLen(v[i:]); n > 0 {
		i += n
	} else {
		return nil, false
	}
	if i < len(v) && v[i] == ':' {
		n := 0
		for i+1+n < len(v) && '0' <= v[i+1+n] && v[i+1+n] <= '9' {
			n++
		}
		if n == 0 || n > 5 {
			return nil, false
		}
		i += 1 + n
	}
	for i < len(v) && v[i] == ';' {
		n := tokenLen(v[i+1:])
		if n == 0 {
			return nil, false
		}
		name := v[i+1 : i+1+n]
		i += 1 + n
		var val []byte
		if i < len(v) && v[i] == '=' {
			if n = tokenLen(v[i+1:]); n == 0 {
				return nil, false
			}
			val = v[i+1 : i+1+n]
			i += 1 + n
		}
		if string(name) == "branch" {
			branch = val
		}
	}
	if (i < len(v) && v[i] != ',') || len(branch) == 0 {
		return nil, false
	}
	return branch, true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// fastTx is a non-INVITE server transaction over UDP: its final response is
// kept to answer retransmissions; nothing else is. Responses go to the
// request's source address and port, as with rport (RFC 3581) even when
// the Via does not ask for it; sipgo, like RFC 3261 §18.2.2, would use the
// Via's sent-by port then.
type fastTx struct {
	pc  *net.UDPConn
	dst netip.AddrPort

	mu   sync.Mutex
	resp []byte // final response, once sent
}

var errTxDone = errors.New("sip: transaction already answered")

func (t *fastTx) Respond(res *sip.Response) error {
	var b bytes.Buffer
	res.StringWrite(&b)
	return t.send(b.Bytes(), res.StatusCode >= 200)
}

// respondFinal sends a final response rendered by the caller.
func (t *fastTx) respondFinal(wire []byte) error { return t.send(wire, true) }

func (t *fastTx) send(wire []byte, final bool) error {
	t.mu.Lock()
	if t.resp != nil {
		t.mu.Unlock()
		return errTxDone
	}
	if final {
		t.resp = wire
	}
	t.mu.Unlock()
	_, err := t.pc.WriteToUDPAddrPort(wire, t.dst)
	return err
}

// retransmitted answers a retransmitted request with the final response,
// or not at all while the request is still being handled.
func (t *fastTx) retransmitted() {
	t.mu.Lock()
	resp := t.resp
	t.mu.Unlock()
	if resp != nil {
		_, _ = t.pc.WriteToUDPAddrPort(resp, t.dst)
	}
}

func (t *fastTx) Acks() <-chan *sip.Request          { return nil }
func (t *fastTx) OnCancel(sip.FnTxCancel) bool       { return false }
func (t *fastTx) Terminate()                         {}
func (t *fastTx) OnTerminate(sip.FnTxTerminate) bool { return false }
func (t *fastTx) Done() <-chan struct{}              { return nil } // handlers do not wait on it
func (t *fastTx) Err() error                         { return nil }

var _ sip.ServerTransaction = (*fastTx)(nil)
