package main

import (
	"bytes"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/smsbridge/bridge/internal/udpbatch"
)

// responderConn is the UA pool's UDP listener as sipgo sees it: incoming
// MESSAGE requests are answered 200 right here, from the raw datagram, and
// never reach sipgo; everything else (REGISTER and MESSAGE responses for the
// pool's own client transactions, OPTIONS, anything this reader does not
// understand) reads through to sipgo unchanged. The load generator shares the
// machine with the bridge, so every microsecond it spends per message is
// taken from the bridge, and a sipgo server transaction per MESSAGE costs
// far more than answering from the datagram. Datagrams are read and the
// answers sent many to a system call (udpbatch): a call per datagram was
// most of the generator's CPU.
type responderConn struct {
	*net.UDPConn
	r         *udpbatch.Reader
	w         *udpbatch.Writer
	onMessage func(user string, body []byte)

	mu   sync.Mutex
	seen [2]map[string]struct{} // branches answered, two generations
	rot  time.Time
	resp []byte // scratch, under mu
}

// retransmitWindow is how long a retransmitted MESSAGE may still arrive
// (RFC 3261 Timer J: 64×T1 for UDP); a retransmission gets the 200 again
// but is not counted twice, as sipgo's server transaction would do.
const retransmitWindow = 32 * time.Second

func newResponderConn(uc *net.UDPConn, onMessage func(user string, body []byte)) (*responderConn, error) {
	r, err := udpbatch.NewReader(uc, 64)
	if err != nil {
		return nil, err
	}
	w, err := udpbatch.NewWriter(uc, nil) // a lost 200 is retransmitted for, as over any UDP
	if err != nil {
		return nil, err
	}
	return &responderConn{UDPConn: uc, r: r, w: w, onMessage: onMessage,
		seen: [2]map[string]struct{}{{}, {}}, rot: time.Now()}, nil
}

func (rc *responderConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		if rc.r.Buffered() == 0 {
			rc.w.Flush() // the answers to what was read go before the next wait
		}
		d, ap, err := rc.r.Read()
		if err != nil {
			return 0, nil, err
		}
		m, ok := parseMessageRequest(d)
		if !ok {
			return copy(b, d), net.UDPAddrFromAddrPort(ap), nil
		}
		rc.mu.Lock()
		rc.resp = m.appendOK(rc.resp[:0])
		rc.w.Queue(rc.resp, ap, "")
		first := rc.firstLocked(string(m.branch))
		rc.mu.Unlock()
		if first {
			rc.onMessage(string(m.user), m.body)
		}
	}
}

func (rc *responderConn) firstLocked(branch string) bool {
	if now := time.Now(); now.Sub(rc.rot) >= retransmitWindow {
		rc.seen[1], rc.seen[0], rc.rot = rc.seen[0], map[string]struct{}{}, now
	}
	if _, ok := rc.seen[0][branch]; ok {
		return false
	}
	if _, ok := rc.seen[1][branch]; ok {
		return false
	}
	rc.seen[0][branch] = struct{}{}
	return true
}

// messageRequest is what answering a MESSAGE needs, as slices of the datagram.
type messageRequest struct {
	user   []byte   // Request-URI user part
	vias   [][]byte // whole Via header lines, in order
	from   []byte   // whole lines
	to     []byte
	callID []byte
	cseq   []byte
	branch []byte // top Via's branch
	body   []byte
}

// parseMessageRequest reads a MESSAGE with CRLF line ends and every header
// a response must copy; ok is false for anything else.
func parseMessageRequest(b []byte) (m messageRequest, ok bool) {
	const method = "MESSAGE "
	if !bytes.HasPrefix(b, []byte(method)) {
		return m, false
	}
	eol := bytes.Index(b, []byte("\r\n"))
	if eol < 0 {
		return m, false
	}
	ruri := b[len(method):eol]
	if sp := bytes.IndexByte(ruri, ' '); sp >= 0 {
		ruri = ruri[:sp]
	}
	if i := bytes.IndexByte(ruri, ':'); i >= 0 {
		ruri = ruri[i+1:]
	}
	if at := bytes.IndexByte(ruri, '@'); at >= 0 {
		m.user = ruri[:at]
	}
	rest := b[eol+2:]
	clen := -1
	for {
		eol = bytes.Index(rest, []byte("\r\n"))
		if eol < 0 {
			return m, false
		}
		if eol == 0 {
			rest = rest[2:]
			break
		}
		line := rest[:eol]
		rest = rest[eol+2:]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return m, false
		}
		name := bytes.TrimSpace(line[:colon])
		val := bytes.TrimSpace(line[colon+1:])
		is := func(long, short string) bool {
			return bytes.EqualFold(name, []byte(long)) || (short != "" && bytes.EqualFold(name, []byte(short)))
		}
		switch {
		case is("via", "v"):
			if len(m.vias) == 0 {
				m.branch = viaBranch(val)
			}
			m.vias = append(m.vias, line)
		case is("from", "f"):
			m.from = line
		case is("to", "t"):
			m.to = line
		case is("call-id", "i"):
			m.callID = line
		case is("cseq", ""):
			m.cseq = line
		case is("content-length", "l"):
			n, err := strconv.Atoi(string(val))
			if err != nil || n < 0 {
				return m, false
			}
			clen = n
		}
	}
	if len(m.vias) == 0 || len(m.branch) == 0 || m.from == nil || m.to == nil || m.callID == nil || m.cseq == nil {
		return m, false
	}
	if clen >= 0 {
		if clen > len(rest) {
			return m, false
		}
		rest = rest[:clen]
	}
	m.body = rest
	return m, true
}

func viaBranch(via []byte) []byte {
	if i := bytes.IndexByte(via, ','); i >= 0 {
		via = via[:i]
	}
	_, rest, _ := bytes.Cut(via, []byte(";"))
	for len(rest) > 0 {
		var p []byte
		p, rest, _ = bytes.Cut(rest, []byte(";"))
		if v, ok := bytes.CutPrefix(bytes.TrimSpace(p), []byte("branch=")); ok {
			return v
		}
	}
	return nil
}

// appendOK renders "200 OK" to m (RFC 3261 §8.2.6.2: Via, From, To with our
// tag, Call-ID and CSeq copied).
func (m *messageRequest) appendOK(dst []byte) []byte {
	dst = append(dst, "SIP/2.0 200 OK\r\n"...)
	for _, v := range m.vias {
		dst = append(append(dst, v...), "\r\n"...)
	}
	dst = append(append(dst, m.from...), "\r\n"...)
	dst = append(dst, m.to...)
	if !bytes.Contains(m.to, []byte(";tag=")) {
		dst = append(dst, ";tag=bench"...)
	}
	dst = append(dst, "\r\n"...)
	dst = append(append(dst, m.callID...), "\r\n"...)
	dst = append(append(dst, m.cseq...), "\r\n"...)
	return append(dst, "Content-Length: 0\r\n\r\n"...)
}
