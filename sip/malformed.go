package sip

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/smsbridge/bridge/internal/preauth"
)

// Malformed requests are screened here, before sipgo's transaction layer,
// because sipgo drops a request it cannot parse (and its sender retransmits
// for 32 s, hearing nothing) and answers one without Via or CSeq with a bare
// "400 Bad Request". Every request read off UDP (udpserver.go) or TCP
// (screenConn) goes through checkRequest; a rejected one is answered here
// from its raw bytes, statelessly (RFC 3261 §8.2.6), and never reaches
// sipgo. What cannot be answered: a request without any Via header, since a
// response is routed and matched by its Via (§8.2.6.2, §18.2.2); it is
// dropped. Over TCP a request whose end cannot be found (no, a negative or
// an unreadable Content-Length, §18.3) is answered and its connection closed:
// nothing after it can be framed. A Content-Length beyond what has arrived is
// not an error over TCP (the rest may be in flight); over UDP it is (§18.3).

// rejection is the answer to a malformed request. code 0 means drop.
type rejection struct {
	code   int
	reason string
}

// Reason phrases name what is wrong (RFC 3261 §21: the phrase is free text).
var (
	rejNoVia          = &rejection{}
	rejCRLF           = &rejection{400, "Bad Request (lines must end in CRLF)"}
	rejRequestLine    = &rejection{400, "Bad Request (malformed Request-Line)"}
	rejRequestURI     = &rejection{400, "Bad Request (malformed Request-URI)"}
	rejScheme         = &rejection{416, "Unsupported URI Scheme"}
	rejVersion        = &rejection{505, "Version Not Supported"}
	rejHeaderLine     = &rejection{400, "Bad Request (header line without a colon)"}
	rejBodyShort      = &rejection{400, "Bad Request (Content-Length exceeds the body)"}
	rejNoLength       = &rejection{400, "Bad Request (missing Content-Length header)"}
	rejTooLarge       = &rejection{513, "Message Too Large"}
	rejCSeqMethod     = &rejection{400, "Bad Request (CSeq method does not match the request)"}
	rejTooManyHops    = &rejection{483, "Too Many Hops"}
	rejUnparseable    = &rejection{400, "Bad Request (unparseable message)"}
	rejMalformedByHdr = map[string]*rejection{}
	rejMissingByHdr   = map[string]*rejection{}
	rejDuplicateByHdr = map[string]*rejection{}
)

// canonicalHeader maps the lower-case names (and compact forms) of the
// headers sipgo parses, the only ones whose value can fail a parse, to
// their canonical spelling.
var canonicalHeader = map[string]string{
	"via": "Via", "v": "Via", "from": "From", "f": "From", "to": "To", "t": "To",
	"call-id": "Call-ID", "i": "Call-ID", "cseq": "CSeq", "contact": "Contact", "m": "Contact",
	"max-forwards": "Max-Forwards", "content-length": "Content-Length", "l": "Content-Length",
	"content-type": "Content-Type", "c": "Content-Type", "route": "Route", "record-route": "Record-Route",
	"refer-to": "Refer-To", "r": "Refer-To", "referred-by": "Referred-By", "b": "Referred-By",
}

func init() {
	for _, name := range canonicalHeader {
		rejMalformedByHdr[name] = &rejection{400, "Bad Request (malformed " + name + " header)"}
		rejMissingByHdr[name] = &rejection{400, "Bad Request (missing " + name + " header)"}
		rejDuplicateByHdr[name] = &rejection{400, "Bad Request (more than one " + name + " header)"}
	}
}

// headersParser is sipgo's, used one line at a time to find the header
// that failed its parse.
var headersParser = sip.HeadersParser(sip.DefaultHeadersParser())

// checkRequest parses the SIP message b, one whole datagram or one framed
// stream message, and returns nil when it is a response or a request
// sipgo will take and our handlers can answer; otherwise the rejection.
func checkRequest(b []byte) *rejection {
	if bytes.HasPrefix(b, []byte("SIP/")) {
		return nil // a response: sipgo matches it or drops it
	}
	m, err := sip.ParseMessage(b)
	if err != nil {
		return diagnose(b, err)
	}
	req, ok := m.(*sip.Request)
	if !ok {
		return nil
	}
	return validate(req)
}

// validate applies the checks of RFC 3261 §8.2 that sipgo's parser does
// not: the version, the URI scheme, the mandatory headers (§8.1.1), each
// once (§7.3.1), and a CSeq method equal to the request's (§8.1.1.5).
// Max-Forwards 0 on a MESSAGE is refused with 483 (§16.3, §20.22): the bridge
// relays it onward. A REGISTER ends here (§10.3) and OPTIONS with
// Max-Forwards 0 is how a peer probes the next hop (§11), so both are served.
func validate(req *sip.Request) *rejection {
	if req.Via() == nil {
		return rejNoVia
	}
	if !strings.EqualFold(req.SipVersion, "SIP/2.0") {
		return rejVersion
	}
	if s := strings.ToLower(req.Recipient.Scheme); s != "sip" && s != "sips" {
		return rejScheme
	}
	if req.Recipient.Host == "" {
		return rejRequestURI
	}
	for _, name := range [...]string{"From", "To", "Call-ID", "CSeq", "Max-Forwards", "Content-Length", "Content-Type"} {
		switch n := len(req.GetHeaders(name)); {
		case n == 0 && name != "Max-Forwards" && name != "Content-Length" && name != "Content-Type":
			return rejMissingByHdr[name]
		case n > 1:
			return rejDuplicateByHdr[name]
		}
	}
	if req.CSeq().MethodName != req.Method {
		return rejCSeqMethod
	}
	if mf := req.MaxForwards(); mf != nil && *mf == 0 && req.Method == sip.MESSAGE {
		return rejTooManyHops
	}
	return nil
}

// diagnose names what made sipgo refuse b: a scan of the request in the
// order sipgo reads it, each header line through sipgo's own header parser.
func diagnose(b []byte, err error) *rejection {
	if i := bytes.IndexByte(b, '\n'); i >= 0 && (i == 0 || b[i-1] != '\r') {
		return rejCRLF
	}
	lines, body, ended := splitHead(b)
	if len(lines) == 0 {
		return rejRequestLine
	}
	parts := strings.Split(lines[0], " ")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return rejRequestLine
	}
	if v := parts[2]; len(v) < 4 || !strings.EqualFold(v[:4], "SIP/") {
		return rejRequestLine
	} else if !strings.EqualFold(v, "SIP/2.0") {
		return rejVersion
	}
	if scheme, _, ok := strings.Cut(parts[1], ":"); ok && !strings.EqualFold(scheme, "sip") && !strings.EqualFold(scheme, "sips") {
		return rejScheme
	}
	var u sip.Uri
	if sip.ParseUri(parts[1], &u) != nil {
		return rejRequestURI
	}
	length := -1
	for _, line := range lines[1:] {
		name, _, ok := strings.Cut(line, ":")
		if !ok {
			return rejHeaderLine
		}
		canon := canonicalHeader[strings.ToLower(strings.TrimSpace(name))]
		hs, perr := headersParser.ParseHeader(nil, []byte(line))
		if perr != nil {
			if r := rejMalformedByHdr[canon]; r != nil {
				return r
			}
			return rejHeaderLine
		}
		for _, h := range hs {
			if cl, ok := h.(*sip.ContentLengthHeader); ok {
				length = int(*cl)
			}
		}
	}
	if !ended {
		return rejCRLF // no empty line ends the headers
	}
	if errors.Is(err, sip.ErrMessageTooLarge) && length > len(body) {
		return rejBodyShort // a datagram shorter than its Content-Length (§18.3)
	}
	if errors.Is(err, sip.ErrMessageTooLarge) {
		return rejTooLarge
	}
	if length > len(body) {
		return rejBodyShort
	}
	return rejUnparseable
}

// splitHead splits the header section of b into lines, continuation lines
// folded onto the one before (§7.3.1), and returns what follows the empty
// line that ends it; ended is false when there is none.
func splitHead(b []byte) (lines []string, body []byte, ended bool) {
	for len(b) > 0 {
		i := bytes.Index(b, []byte("\r\n"))
		if i < 0 {
			return lines, nil, false
		}
		line := string(b[:i])
		b = b[i+2:]
		if line == "" {
			return lines, b, true
		}
		if (line[0] == ' ' || line[0] == '\t') && len(lines) > 1 {
			lines[len(lines)-1] += " " + strings.TrimSpace(line)
			continue
		}
		lines = append(lines, line)
	}
	return lines, nil, false
}

// rejectionResponse renders the answer to a rejected request from its raw
// bytes (RFC 3261 §8.2.6.2): every Via in order, From, To with a tag added
// when it has none, Call-ID and CSeq, each copied as it came. ok is false
// when there is no Via to send it by: such a request is dropped.
func rejectionResponse(b []byte, r *rejection, userAgent string) (wire []byte, ok bool) {
	if r.code == 0 {
		return nil, false
	}
	var vias []string
	var from, to, cid, cseq string
	for _, line := range lenientLines(b) {
		name, value, found := strings.Cut(line, ":")
		if !found {
			continue
		}
		value = strings.TrimSpace(value)
		switch canonicalHeader[strings.ToLower(strings.TrimSpace(name))] {
		case "Via":
			vias = append(vias, value)
		case "From":
			from = firstOf(from, value)
		case "To":
			to = firstOf(to, value)
		case "Call-ID":
			cid = firstOf(cid, value)
		case "CSeq":
			cseq = firstOf(cseq, value)
		}
	}
	if len(vias) == 0 {
		return nil, false
	}
	var w bytes.Buffer
	w.WriteString("SIP/2.0 " + strconv.Itoa(r.code) + " " + r.reason + "\r\n")
	for _, v := range vias {
		w.WriteString("Via: " + v + "\r\n")
	}
	if from != "" {
		w.WriteString("From: " + from + "\r\n")
	}
	if to != "" {
		w.WriteString("To: " + to)
		if !strings.Contains(strings.ToLower(to), ";tag=") {
			w.WriteString(";tag=" + strconv.FormatUint(rand.Uint64(), 16))
		}
		w.WriteString("\r\n")
	}
	if cid != "" {
		w.WriteString("Call-ID: " + cid + "\r\n")
	}
	if cseq != "" {
		w.WriteString("CSeq: " + cseq + "\r\n")
	}
	w.WriteString("Server: " + userAgent + "\r\nContent-Length: 0\r\n\r\n")
	return w.Bytes(), true
}

func firstOf(have, v string) string {
	if have != "" {
		return have
	}
	return v
}

// lenientLines returns the header lines of b, ended by CRLF or a bare LF
// and unfolded, with any other control byte replaced by a space so nothing
// copied into a response can end its line early.
func lenientLines(b []byte) []string {
	var lines []string
	head, _, _ := bytes.Cut(b, []byte("\n\r\n"))
	if h2, _, ok := bytes.Cut(b, []byte("\n\n")); ok && len(h2) < len(head) {
		head = h2
	}
	for i, raw := range bytes.Split(head, []byte("\n")) {
		line := []byte(strings.TrimSuffix(string(raw), "\r"))
		for j, c := range line { // bytes, not runes: a copied value stays byte for byte
			if c < ' ' && c != '\t' || c == 0x7f {
				line[j] = ' '
			}
		}
		switch {
		case i == 0 || len(line) == 0:
		case (line[0] == ' ' || line[0] == '\t') && len(lines) > 0:
			lines[len(lines)-1] += " " + strings.TrimSpace(string(line))
		default:
			lines = append(lines, string(line))
		}
	}
	return lines
}

// reject answers (or drops) a malformed request from src through send.
func (s *Server) reject(b []byte, src string, r *rejection, send func([]byte) error) {
	wire, ok := rejectionResponse(b, r, s.cfg.UserAgent)
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("sip malformed request", "source", src, "status", r.code, "reason", r.reason, "answered", ok)
	}
	if !ok {
		return
	}
	if err := send(wire); err != nil {
		s.log.Warn("sip respond to malformed request failed", "source", src, "status", r.code, "err", err)
	}
}

// screenListener hands sipgo connections whose requests are screened, each
// only once its first byte has come: sipgo gives every connection it serves
// a 32 KiB read buffer, which one that never sends must not cost.
type screenListener struct {
	net.Listener
	s     *Server
	once  sync.Once
	ready chan net.Conn
	done  chan struct{} // closed when the listener fails; err says why
	err   error
}

func newScreenListener(ln net.Listener, s *Server) *screenListener {
	return &screenListener{Listener: ln, s: s, ready: make(chan net.Conn), done: make(chan struct{})}
}

func (l *screenListener) Accept() (net.Conn, error) {
	l.once.Do(func() { go l.acceptLoop() })
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

func (l *screenListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			l.err = err
			close(l.done)
			return
		}
		sc := &screenConn{Conn: c, s: l.s}
		// Until its first well-formed request the connection holds one of the
		// places of l.s.preauth and must send that request in time.
		sc.ticket.Store(l.s.preauth.Admit(c.RemoteAddr(), func() { c.Close() }))
		if err := c.SetReadDeadline(time.Now().Add(l.s.cfg.PreauthTimeout)); err != nil {
			sc.Close()
			continue
		}
		go l.awaitFirstByte(sc)
	}
}

// awaitFirstByte hands sc to sipgo once a byte of it has come (kept for the
// screening), or closes it when none comes in time or it is evicted.
func (l *screenListener) awaitFirstByte(sc *screenConn) {
	var b [1]byte
	if n, _ := sc.Conn.Read(b[:]); n == 0 {
		sc.Close()
		return
	}
	sc.in = append(sc.in, b[0])
	select {
	case l.ready <- sc:
	case <-l.done:
		sc.Close()
	}
}

// passed gives up the connection's place once a request got through the
// screening, and lifts the first-request deadline.
func (c *screenConn) passed() {
	if t := c.ticket.Swap(nil); t != nil {
		t.Done()
		c.Conn.SetReadDeadline(time.Time{})
	}
}

func (c *screenConn) Close() error {
	if t := c.ticket.Swap(nil); t != nil {
		t.Done()
	}
	return c.Conn.Close()
}

// screenConn frames the SIP stream a peer sends the way sipgo's stream
// parser does (headers to the empty line, then Content-Length bytes) and
// passes sipgo only messages checkRequest accepts; it answers the others
// itself. Each request is parsed twice when well-formed (here and by
// sipgo): sipgo's stream parser cannot skip a bad message, it closes the
// connection without an answer.
type screenConn struct {
	net.Conn
	s    *Server
	in   []byte // read, not yet framed
	out  []byte // framed and accepted, not yet read by sipgo
	rbuf []byte
	err  error // returned once out is drained
	// ticket is the connection's preauth place until its first request
	// passes (the reader) or the connection closes (any goroutine).
	ticket atomic.Pointer[preauth.Ticket]
}

// maxMessage is sipgo's limit (sip.ParseMaxMessageLength).
const maxMessage = 65535

func (c *screenConn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		if c.rbuf == nil {
			c.rbuf = make([]byte, 4096)
		}
		n, err := c.Conn.Read(c.rbuf)
		c.in = append(c.in, c.rbuf[:n]...)
		if ferr := c.frame(); ferr != nil {
			c.err = ferr
		} else if err != nil {
			c.err = err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	if len(c.out) == 0 {
		c.out = nil
	}
	return n, nil
}

// frame moves each complete message in c.in to c.out, or answers it; it
// returns io.EOF once the stream cannot be framed any more.
func (c *screenConn) frame() error {
	for {
		lead := 0
		for lead+1 < len(c.in) && c.in[lead] == '\r' && c.in[lead+1] == '\n' {
			lead += 2 // keep-alives between messages (RFC 5626 §3.5.1): sipgo answers them
		}
		c.out = append(c.out, c.in[:lead]...)
		c.in = c.in[lead:]
		if len(c.in) == 0 {
			c.in = nil
			return nil
		}
		end := bytes.Index(c.in, []byte("\r\n\r\n"))
		if end < 0 {
			if len(c.in) > maxMessage {
				return c.lost(rejTooLarge)
			}
			return nil
		}
		end += 4
		if bytes.HasPrefix(c.in, []byte("SIP/")) && contentLength(c.in[:end]) < 0 {
			// A response we cannot frame: sipgo reads the rest as it can.
			c.out = append(c.out, c.in...)
			c.in = nil
			return nil
		}
		n := contentLength(c.in[:end])
		switch {
		case n == -1:
			return c.lost(rejNoLength)
		case n < 0:
			return c.lost(rejMalformedByHdr["Content-Length"])
		case end+n > maxMessage:
			return c.lost(rejTooLarge)
		case len(c.in) < end+n:
			return nil // the body is still coming
		}
		m := c.in[:end+n]
		if r := checkRequest(m); r != nil {
			c.s.reject(m, c.RemoteAddr().String(), r, c.write)
		} else {
			c.out = append(c.out, m...)
			if !bytes.HasPrefix(m, []byte("SIP/")) {
				c.passed()
			}
		}
		c.in = c.in[end+n:]
	}
}

// lost answers the message at the head of c.in with r; nothing after it
// can be framed, so the connection ends.
func (c *screenConn) lost(r *rejection) error {
	if !bytes.HasPrefix(c.in, []byte("SIP/")) {
		c.s.reject(c.in, c.RemoteAddr().String(), r, c.write)
	}
	c.in = nil
	return io.EOF
}

func (c *screenConn) write(b []byte) error {
	_, err := c.Conn.Write(b)
	return err
}

// contentLength returns the Content-Length of a header section: -1 when
// there is none, -2 when one is not a decimal number or two disagree.
func contentLength(head []byte) int {
	n := -1
	for _, line := range lenientLines(head) {
		name, value, ok := strings.Cut(line, ":")
		if !ok || canonicalHeader[strings.ToLower(strings.TrimSpace(name))] != "Content-Length" {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(value), 10, 32)
		if err != nil || (n >= 0 && int(v) != n) {
			return -2
		}
		n = int(v)
	}
	return n
}
