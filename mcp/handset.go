package mcp

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smsbridge/bridge/codec"
)

// Incoming is an M the handset received.
type Incoming struct {
	From string // the F header as sent
	Text string // body text (html fragments reduced to text)
	ID   string // the XI header: the bridge's message id
}

// Notification is a BN the handset received: an event the bridge pushed.
type Notification struct {
	Event string // the N header, e.g. "contact"
	Body  []byte
}

// Handset simulates a SIP-C handset on the MCP link for tests: it has its
// own codec state per connection exactly like a real client, matches
// responses by I and Q, and answers incoming M by itself.
type Handset struct {
	nc       net.Conn
	stateful bool
	enc      *codec.Encoder
	dec      *codec.Decoder
	wmu      sync.Mutex

	seq     atomic.Uint64 // call ids
	pmu     sync.Mutex
	pending map[string]chan *Message

	mu        sync.Mutex
	user      string
	domain    string
	regCallID string
	regCSeq   uint64
	answer    func(Incoming) int

	in     chan Incoming
	notes  chan Notification
	done   chan struct{}
	closed atomic.Bool
	err    atomic.Value // error that ended the read loop
}

// handsetTimeout bounds a request when the caller's ctx has no deadline.
const handsetTimeout = 30 * time.Second

// Dial connects a handset to the link at addr.
func Dial(ctx context.Context, addr string, stateful bool) (*Handset, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mcp handset: dial %s: %w", addr, err)
	}
	h := &Handset{
		nc: nc, stateful: stateful,
		enc:     codec.NewEncoder(stateful),
		dec:     codec.NewDecoder(stateful),
		pending: make(map[string]chan *Message),
		in:      make(chan Incoming, 1024),
		notes:   make(chan Notification, 16),
		done:    make(chan struct{}),
	}
	go h.read()
	return h, nil
}

// Messages delivers the M requests the handset received (already answered).
func (h *Handset) Messages() <-chan Incoming { return h.in }

// Notifications yields the BN requests the handset received (the 16 latest
// unread).
func (h *Handset) Notifications() <-chan Notification { return h.notes }

// Done is closed when the connection is gone; Err then says why.
func (h *Handset) Done() <-chan struct{} { return h.done }

// Err is why the connection ended (nil while it is up).
func (h *Handset) Err() error {
	e, _ := h.err.Load().(error)
	return e
}

// SetAnswer chooses the status the handset answers to each incoming M
// (default 200). Codes outside 200..299 are not delivered to Messages.
func (h *Handset) SetAnswer(f func(Incoming) int) {
	h.mu.Lock()
	h.answer = f
	h.mu.Unlock()
}

// Close drops the connection.
func (h *Handset) Close() {
	h.closed.Store(true)
	h.nc.Close()
	<-h.done
}

func (h *Handset) read() {
	defer close(h.done)
	br := bufio.NewReader(h.nc)
	var raw []byte
	for {
		frame, err := codec.ReadFrame(br, 1<<20)
		if err != nil {
			h.err.Store(fmt.Errorf("mcp handset: read: %w", err))
			break
		}
		raw, err = h.dec.Decode(raw[:0], frame)
		if err != nil {
			h.err.Store(fmt.Errorf("mcp handset: decode: %w", err))
			break
		}
		m, err := Parse(raw)
		if err != nil {
			h.err.Store(fmt.Errorf("mcp handset: parse: %w", err))
			break
		}
		if m.IsResponse() {
			if m.Code < 200 {
				continue
			}
			key := m.Get("I") + "\x00" + m.Get("Q")
			h.pmu.Lock()
			ch := h.pending[key]
			delete(h.pending, key)
			h.pmu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		h.incoming(m)
	}
	h.nc.Close()
	h.pmu.Lock()
	for k, ch := range h.pending {
		delete(h.pending, k)
		close(ch)
	}
	h.pmu.Unlock()
}

// incoming answers a request from the bridge.
func (h *Handset) incoming(m *Message) {
	code, reason := 200, "OK"
	if canonMethod(m.Method) == "BN" {
		select {
		case h.notes <- Notification{Event: m.Get("N"), Body: append([]byte(nil), m.Body...)}:
		default: // a test that does not read them must not stall the link
		}
	}
	var in Incoming
	if canonMethod(m.Method) == "M" {
		text, _, err := bodyText(m.Get("C"), m.Body)
		in = Incoming{From: m.Get("F"), Text: text, ID: m.Get("XI")}
		h.mu.Lock()
		answer := h.answer
		h.mu.Unlock()
		switch {
		case err != nil:
			code, reason = 415, "Unsupported Media Type"
		case answer != nil:
			code = answer(in)
			reason = "Chosen By Test"
		}
	}
	resp := &Message{Code: code, Reason: reason, Version: Version}
	resp.Add("F", m.Get("F"))
	resp.Add("I", m.Get("I"))
	resp.Add("Q", m.Get("Q"))
	if code >= 200 && code <= 299 && canonMethod(m.Method) == "M" {
		h.in <- in // before the 200, so a delivered message is always visible
	}
	_ = h.send(resp.AppendTo(nil))
}

// send writes one message as one frame.
func (h *Handset) send(raw []byte) error {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	frame, err := h.enc.Encode(nil, raw)
	if err != nil {
		return fmt.Errorf("mcp handset: encode: %w", err)
	}
	if _, err := h.nc.Write(codec.AppendFrame(nil, frame)); err != nil {
		return fmt.Errorf("mcp handset: write: %w", err)
	}
	return nil
}

// WriteFrame writes frame bytes as they are (behind the length prefix),
// bypassing the encoder: for feeding the bridge garbage.
func (h *Handset) WriteFrame(frame []byte) error {
	h.wmu.Lock()
	defer h.wmu.Unlock()
	if _, err := h.nc.Write(codec.AppendFrame(nil, frame)); err != nil {
		return fmt.Errorf("mcp handset: write: %w", err)
	}
	return nil
}

// Exchange sends raw SIP-C text (well-formed or not) as one frame and waits
// for the response carrying the same I and Q (found leniently in raw).
func (h *Handset) Exchange(ctx context.Context, raw []byte) (*Message, error) {
	i, q := sniff(raw)
	return h.exchange(ctx, i, q, raw)
}

// Request sends m (which must carry I and Q) and waits for its response.
func (h *Handset) Request(ctx context.Context, m *Message) (*Message, error) {
	return h.exchange(ctx, m.Get("I"), m.Get("Q"), m.AppendTo(nil))
}

func (h *Handset) exchange(ctx context.Context, i, q string, raw []byte) (*Message, error) {
	key := i + "\x00" + q
	ch := make(chan *Message, 1)
	h.pmu.Lock()
	h.pending[key] = ch
	h.pmu.Unlock()
	defer func() {
		h.pmu.Lock()
		if h.pending[key] == ch {
			delete(h.pending, key)
		}
		h.pmu.Unlock()
	}()
	if err := h.send(raw); err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, handsetTimeout)
		defer cancel()
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("mcp handset: connection closed awaiting I=%s Q=%s: %w", i, q, h.Err())
		}
		return m, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("mcp handset: awaiting I=%s Q=%s: %w", i, q, ctx.Err())
	}
}

func (h *Handset) nextCallID() string { return strconv.FormatUint(h.seq.Add(1), 10) }

// Register registers user with the digest of doc.go (answering the 401
// challenge), asking for expires seconds (negative: no X header; 0:
// unregister). A final status other than 200 is a *StatusError.
func (h *Handset) Register(ctx context.Context, user, password, domain string, expires int) error {
	callID := h.nextCallID()
	req := func(cseq int, auth string) *Message {
		m := &Message{Method: "R", Target: domain, Version: Version}
		m.Add("F", user)
		m.Add("I", callID)
		m.Add("Q", strconv.Itoa(cseq)+" R")
		if expires >= 0 {
			m.Add("X", strconv.Itoa(expires))
		}
		if auth != "" {
			m.Add("A", auth)
		}
		m.SetBody([]byte(`<args><device type="PC" version="55" client-version="3.2.0540" /><caps value="simple-im" /><presence><basic value="400" desc="" /></presence></args>`))
		return m
	}
	resp, err := h.Request(ctx, req(1, ""))
	if err != nil {
		return err
	}
	cseq := 1
	if resp.Code == 401 {
		p, err := digestParams(resp.Get("W"))
		if err != nil || p["nonce"] == "" {
			return fmt.Errorf("mcp handset: bad challenge %q", resp.Get("W"))
		}
		var cn [16]byte
		_, _ = rand.Read(cn[:])
		cnonce := strings.ToUpper(hex.EncodeToString(cn[:]))
		answer := DigestResponse(HA1(user, domain, password), p["nonce"], cnonce)
		cseq = 2
		resp, err = h.Request(ctx, req(2, `Digest response="`+strings.ToUpper(answer)+`",cnonce="`+cnonce+`"`))
		if err != nil {
			return err
		}
	}
	if resp.Code != 200 {
		return &StatusError{resp.Code, resp.Reason}
	}
	h.mu.Lock()
	h.user, h.domain, h.regCallID, h.regCSeq = user, domain, callID, uint64(cseq)
	h.mu.Unlock()
	return nil
}

// Keepalive refreshes the registration: an R with its call id and no body.
func (h *Handset) Keepalive(ctx context.Context) error {
	h.mu.Lock()
	if h.regCallID == "" {
		h.mu.Unlock()
		return errors.New("mcp handset: keepalive before Register")
	}
	h.regCSeq++
	m := &Message{Method: "R", Target: h.domain, Version: Version}
	m.Add("F", h.user)
	m.Add("I", h.regCallID)
	m.Add("Q", strconv.FormatUint(h.regCSeq, 10)+" R")
	h.mu.Unlock()
	resp, err := h.Request(ctx, m)
	if err != nil {
		return err
	}
	if resp.Code != 200 {
		return &StatusError{resp.Code, resp.Reason}
	}
	return nil
}

// SendMessage sends an M with text/plain text to to (sip:…, tel:… or a
// number), as N: SendCatSMS when sms, and returns the final status code.
func (h *Handset) SendMessage(ctx context.Context, to, text string, sms bool) (int, error) {
	h.mu.Lock()
	user, domain := h.user, h.domain
	h.mu.Unlock()
	if domain == "" {
		domain = "fetion.com.cn"
	}
	m := &Message{Method: "M", Target: domain, Version: Version}
	if user != "" {
		m.Add("F", user)
	}
	m.Add("I", h.nextCallID())
	m.Add("Q", "1 M")
	m.Add("T", to)
	m.Add("C", "text/plain")
	if sms {
		m.Add("N", "SendCatSMS")
	}
	m.SetBody([]byte(text))
	resp, err := h.Request(ctx, m)
	if err != nil {
		return 0, err
	}
	return resp.Code, nil
}
