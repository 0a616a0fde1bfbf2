package sip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"

	"github.com/smsbridge/bridge/msg"
)

// submitTimeout bounds how long one MESSAGE waits for the store; the UA
// retransmits over UDP meanwhile, and the server transaction absorbs those
// (fastTx on the UDP fast path, sipgo's otherwise).
const submitTimeout = 10 * time.Second

// mediaType splits a Content-Type value into its lower-case type/subtype and
// its charset parameter (lower-case, unquoted; "" when absent).
func mediaType(v string) (typ, charset string, err error) {
	parts := strings.Split(v, ";")
	typ = strings.ToLower(strings.TrimSpace(parts[0]))
	main, sub, ok := strings.Cut(typ, "/")
	if !ok || main == "" || sub == "" || strings.ContainsAny(typ, " \t\"") {
		return "", "", fmt.Errorf("content type %q is not type/subtype", clip(v))
	}
	for _, p := range parts[1:] {
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			if strings.TrimSpace(p) == "" {
				continue
			}
			return "", "", fmt.Errorf("content type parameter %q has no value", clip(p))
		}
		if strings.EqualFold(strings.TrimSpace(k), "charset") {
			charset = strings.ToLower(strings.Trim(strings.TrimSpace(val), `"`))
		}
	}
	return typ, charset, nil
}

// decodeText turns a text/plain body into UTF-8. Latin-1 is mapped
// directly; every other charset is taken to be UTF-8 and must be valid.
func decodeText(body []byte, charset string) (string, error) {
	switch charset {
	case "iso-8859-1", "latin1", "iso_8859-1", "l1":
		r := make([]rune, len(body))
		for i, b := range body {
			r[i] = rune(b)
		}
		return string(r), nil
	}
	if !utf8.Valid(body) {
		return "", errors.New("body is not valid UTF-8")
	}
	return string(body), nil
}

func (s *Server) handleMessage(req *sip.Request, tx sip.ServerTransaction) {
	from, to := req.From(), req.To()
	if from == nil || to == nil || req.CallID() == nil || req.CSeq() == nil {
		s.reply(tx, req, 400, "Missing To, From, Call-ID or CSeq")
		return
	}
	if !s.ourDomain(req.Recipient.Host) {
		s.reply(tx, req, 404, "Not Found (domain not served here)")
		return
	}
	// The sender is one of our IM users: From must be in our domain.
	if !s.ourDomain(from.Address.Host) {
		s.reply(tx, req, 403, "Forbidden (sender not of this domain)")
		return
	}
	fromAOR, err := s.aorOf(from.Address.User)
	if err != nil {
		s.reply(tx, req, 400, "Bad From AOR")
		return
	}
	if !s.authenticate(req, tx, fromAOR) {
		return
	}
	user := req.Recipient.User
	if user == "" {
		user = to.Address.User
	}
	toAddr, err := s.aorOf(user)
	if err != nil {
		s.reply(tx, req, 404, "Not Found (bad recipient)")
		return
	}
	body := req.Body()
	if len(body) == 0 {
		s.reply(tx, req, 400, "Empty Message Body")
		return
	}
	var ctype string
	if h := req.ContentType(); h != nil {
		ctype = h.Value()
	}
	typ, charset, err := mediaType(ctype)
	if err != nil || typ != "text/plain" {
		s.reply(tx, req, 415, "Unsupported Media Type", sip.NewHeader("Accept", "text/plain"))
		return
	}
	text, err := decodeText(body, charset)
	if err != nil {
		s.reply(tx, req, 400, "Body Is Not UTF-8")
		return
	}
	m := &msg.Message{
		From: fromAOR, To: toAddr, Text: text,
		Origin: msg.Origin{Kind: msg.FromSIP, Account: string(fromAOR), Ref: callID(req)},
	}
	ctx, cancel := context.WithTimeout(s.ctx(), submitTimeout)
	err = msg.Accept(ctx, s.sub, m)
	cancel()
	switch {
	case err == nil:
		if s.log.Enabled(context.Background(), slog.LevelDebug) {
			s.log.Debug("sip message accepted", "id", m.ID, "from", fromAOR, "to", toAddr, "call_id", callID(req), "len", len(text))
		}
		s.replyTagged(tx, req, 202, "Accepted", m.ID, sip.NewHeader("Imdn-Message-ID", m.ID)) // the id is the To tag too
	case errors.Is(err, msg.ErrOverloaded):
		s.reply(tx, req, 503, "Service Unavailable", sip.NewHeader("Retry-After", "5"))
	case errors.Is(err, msg.ErrNoRoute):
		s.reply(tx, req, 404, "Not Found (no route)")
	case errors.Is(err, msg.ErrTooLong):
		s.reply(tx, req, 413, "Request Entity Too Large (text too long for SMS)")
	default:
		s.log.Warn("sip message not accepted", "from", fromAOR, "to", toAddr, "call_id", callID(req), "err", err)
		s.reply(tx, req, 500, "Server Internal Error")
	}
}

// renderResponse renders a final response to req for a fast-path
// transaction (udpserver.go): the headers RFC 3261 §8.2.6.2 copies, in the
// order and form sipgo's NewResponseFromRequest gives them, then
// Content-Length, hdrs and Server as respond adds them. It writes them
// straight from the parsed request: sipgo clones each header and draws a
// UUID for the To tag, and rendering walks them once more
// (BenchmarkAccepted202, sipgo vs direct). A request without a To tag gets
// tag (a 202's is the message id: unique, though not the 32 random bits
// §19.3 wants for dialogs, which a MESSAGE does not create), or 64 random
// bits when tag is "".
func (s *Server) renderResponse(req *sip.Request, code int, reason, tag string, hdrs ...sip.Header) []byte {
	var b bytes.Buffer
	b.Grow(512)
	b.WriteString(req.SipVersion)
	b.WriteByte(' ')
	b.Write(strconv.AppendInt(b.AvailableBuffer(), int64(code), 10))
	b.WriteByte(' ')
	b.WriteString(reason)
	b.WriteString("\r\n")
	if code >= 200 && code < 300 && req.Method != sip.REGISTER { // §12.1.1: a 2xx copies them
		for _, h := range req.GetHeaders("Record-Route") {
			writeHeader(&b, h)
		}
	}
	for i, h := range req.GetHeaders("Via") {
		// RFC 3581 §4: an empty rport gets the source port, and received its address.
		if v, ok := h.(*sip.ViaHeader); ok && i == 0 {
			if val, ok := v.Params.Get("rport"); ok && val == "" {
				if host, port, err := net.SplitHostPort(req.Source()); err == nil {
					v = v.Clone()
					v.Params.Add("rport", port)
					v.Params.Add("received", host)
					h = v
				}
			}
		}
		writeHeader(&b, h)
	}
	if h := req.From(); h != nil {
		writeHeader(&b, h)
	}
	if h := req.To(); h != nil {
		h.StringWrite(&b)
		if !h.Params.Has("tag") {
			b.WriteString(";tag=")
			if tag == "" {
				b.Write(strconv.AppendUint(b.AvailableBuffer(), rand.Uint64(), 16))
			} else {
				b.WriteString(tag)
			}
		}
		b.WriteString("\r\n")
	}
	if h := req.CallID(); h != nil {
		writeHeader(&b, h)
	}
	if h := req.CSeq(); h != nil {
		writeHeader(&b, h)
	}
	b.WriteString("Content-Length: 0\r\n")
	for _, h := range hdrs {
		writeHeader(&b, h)
	}
	b.WriteString("Server: ")
	b.WriteString(s.cfg.UserAgent)
	b.WriteString("\r\n\r\n")
	return b.Bytes()
}

func writeHeader(b *bytes.Buffer, h sip.Header) {
	h.StringWrite(b)
	b.WriteString("\r\n")
}
