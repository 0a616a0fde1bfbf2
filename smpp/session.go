package smpp

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/ants/v2"
)

// Handler serves the peer's requests (submit_sm, deliver_sm, data_sm,
// query_sm ...). resp arrives prepared (command id, sequence, status 0); the
// handler fills it in. Neither req nor resp may be kept after return: both
// are reused. Handlers run concurrently, up to the session's inbound window.
type Handler interface {
	HandleSMPP(ctx context.Context, s *Session, req, resp *PDU)
}

// Stager is a Handler that can take requests on the session's read
// goroutine and finish them later, so a burst of them costs no goroutine
// each: a store that commits many messages at once answers them all with
// one wake-up. StageSMPP may wait for room (the session then stops reading,
// which is backpressure) but never for an answer. handled=false sends req
// to HandleSMPP on a pooled goroutine instead. With handled and a nil
// Deferred, resp is complete; with a Deferred, the session completes resp
// with Finish once Ready is closed and writes it; requests deferred on one
// session finish in the order they were read.
type Stager interface {
	Handler
	StageSMPP(ctx context.Context, s *Session, req, resp *PDU) (d Deferred, handled bool)
}

// Deferred is a response a Stager completes later.
type Deferred interface {
	// Ready is closed when Finish will not block (nil: at once).
	Ready() <-chan struct{}
	// Finish fills in resp. It is called once, also when the session has
	// ended, so the handler can release what it holds for the request.
	Finish(resp *PDU)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, s *Session, req, resp *PDU)

func (f HandlerFunc) HandleSMPP(ctx context.Context, s *Session, req, resp *PDU) {
	f(ctx, s, req, resp)
}

// Errors of a session.
var (
	ErrClosed      = errors.New("smpp: session closed")
	ErrTimeout     = errors.New("smpp: response timeout")
	ErrNotBound    = errors.New("smpp: not bound")
	errEnquireLost = errors.New("smpp: peer stopped answering enquire_link")
)

// StatusError is a response with a non-zero command_status (or generic_nack).
type StatusError struct {
	Command CommandID
	Status  uint32
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("smpp: %v status 0x%08x (%s)", e.Command, e.Status, StatusName(e.Status))
}

// StatusName is the ESME_ name of a status, for logs and errors.
func StatusName(st uint32) string {
	switch st {
	case ESME_ROK:
		return "ESME_ROK"
	case ESME_RINVMSGLEN:
		return "ESME_RINVMSGLEN"
	case ESME_RINVCMDLEN:
		return "ESME_RINVCMDLEN"
	case ESME_RINVCMDID:
		return "ESME_RINVCMDID"
	case ESME_RINVBNDSTS:
		return "ESME_RINVBNDSTS"
	case ESME_RALYBND:
		return "ESME_RALYBND"
	case ESME_RSYSERR:
		return "ESME_RSYSERR"
	case ESME_RINVSRCADR:
		return "ESME_RINVSRCADR"
	case ESME_RINVDSTADR:
		return "ESME_RINVDSTADR"
	case ESME_RBINDFAIL:
		return "ESME_RBINDFAIL"
	case ESME_RINVPASWD:
		return "ESME_RINVPASWD"
	case ESME_RINVSYSID:
		return "ESME_RINVSYSID"
	case ESME_RMSGQFUL:
		return "ESME_RMSGQFUL"
	case ESME_RINVESMCLASS:
		return "ESME_RINVESMCLASS"
	case ESME_RTHROTTLED:
		return "ESME_RTHROTTLED"
	case ESME_RINVPARLEN:
		return "ESME_RINVPARLEN"
	case ESME_RINVOPTPARSTREAM:
		return "ESME_RINVOPTPARSTREAM"
	case ESME_RINVDCS:
		return "ESME_RINVDCS"
	case ESME_RINVMSGID:
		return "ESME_RINVMSGID"
	case ESME_RCANCELFAIL:
		return "ESME_RCANCELFAIL"
	case ESME_RREPLACEFAIL:
		return "ESME_RREPLACEFAIL"
	case ESME_RQUERYFAIL:
		return "ESME_RQUERYFAIL"
	case ESME_RINVSCHED:
		return "ESME_RINVSCHED"
	case ESME_RINVEXPIRY:
		return "ESME_RINVEXPIRY"
	case ESME_RINVPRTFLG:
		return "ESME_RINVPRTFLG"
	case ESME_RDELIVERYFAILURE:
		return "ESME_RDELIVERYFAILURE"
	}
	return "status"
}

// sessionConfig is shared by the server and client roles.
type sessionConfig struct {
	Handler         Handler
	Logger          *slog.Logger
	Window          int           // our requests in flight; Send waits beyond it (default 64)
	InboundWindow   int           // peer requests handled at once; reading pauses beyond it (default 64)
	EnquireInterval time.Duration // idle time before we probe with enquire_link (default 30s; <0 off)
	RespTimeout     time.Duration // wait for a response (default 10s)
	MaxPDU          int           // largest PDU read (default MaxPDU)

	// server role: authenticate a bind; returns the status to answer with.
	onBind func(s *Session, req *PDU) uint32
	// server role: our system_id in bind responses.
	systemID string
	// server role: told the system_id of a session bound as a receiver
	// or transceiver (ServerConfig.OnReceivers).
	onBound func(systemID string)
}

func (c *sessionConfig) defaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Window <= 0 {
		c.Window = 64
	}
	if c.InboundWindow <= 0 {
		c.InboundWindow = 64
	}
	if c.EnquireInterval == 0 {
		c.EnquireInterval = 30 * time.Second
	}
	if c.RespTimeout <= 0 {
		c.RespTimeout = 10 * time.Second
	}
	if c.MaxPDU <= 0 {
		c.MaxPDU = MaxPDU
	}
}

// Session is one SMPP connection, in either role. Our requests and the
// peer's requests have separate sequence spaces: responses from the peer are
// matched only against requests we sent.
type Session struct {
	conn net.Conn
	cfg  sessionConfig
	log  *slog.Logger
	r    *bufio.Reader

	// Writers append encoded PDUs to wbuf; one flusher goroutine writes
	// whatever has accumulated in one syscall, so a burst of responses
	// shares a write instead of paying one each.
	wmu    sync.Mutex
	wbuf   []byte
	werr   error
	wkick  chan struct{}
	fmu    sync.Mutex // serialises conn writes (flusher, final flush)
	wspare []byte

	seq     atomic.Uint32
	window  chan struct{}
	inbound chan struct{}
	workers *ants.PoolWithFuncGeneric[*PDU] // handler goroutines running handle, reused (see dispatch)
	// started: the pool, flusher, sweeper, keepalive and acker run. A
	// server session starts them only once bound, so a connection that
	// never binds costs its reader and a few hundred bytes (preauth_test).
	started   atomic.Bool
	ackerDone chan struct{}

	// Requests waiting for their responses. A waiter is answered once, by
	// whoever removes its entry: the reader with the response, the sweeper
	// with timedOut, or close with closedResp (then pending is nil).
	pmu        sync.Mutex
	pending    map[uint32]waiter
	timedOut   *PDU // sentinels, compared by address
	closedResp *PDU

	// Deferred responses in read order (Stager), finished by acker.
	dmu      sync.Mutex
	deferred []deferredResp
	dkick    chan struct{}

	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{}
	doneOnce sync.Once
	err      error
	handlers sync.WaitGroup

	mu       sync.Mutex
	systemID string    // peer's system_id (server role) or ours (client role)
	bind     CommandID // bind command that bound the session; 0 before
	boundAt  time.Time
	bound    atomic.Bool
	lastRead atomic.Int64 // unix nanos

	pool *sync.Pool // *PDU
}

// readBuf is the read buffer of a new session: the smallest bufio allows
// (a PDU header) until a server session is bound, then 16 KiB.
func readBuf(unbound bool) int {
	if unbound {
		return HeaderLen
	}
	return 16 << 10
}

func newSession(ctx context.Context, conn net.Conn, cfg sessionConfig, pool *sync.Pool) *Session {
	cfg.defaults()
	s := &Session{
		conn:       conn,
		cfg:        cfg,
		log:        cfg.Logger.With("peer", conn.RemoteAddr().String()),
		r:          bufio.NewReaderSize(conn, readBuf(cfg.onBind != nil)),
		wkick:      make(chan struct{}, 1),
		window:     make(chan struct{}, cfg.Window),
		inbound:    make(chan struct{}, cfg.InboundWindow),
		pending:    make(map[uint32]waiter),
		timedOut:   timedOutResp,
		closedResp: closedResp,
		dkick:      make(chan struct{}, 1),
		done:       make(chan struct{}),
		pool:       pool,
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.lastRead.Store(time.Now().UnixNano())
	return s
}

// SystemID is the peer's system_id once bound (server role), or ours
// (client role).
func (s *Session) SystemID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.systemID
}

// BindType is the bind command that bound the session (0 before).
func (s *Session) BindType() CommandID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bind
}

// SessionInfo is what an operator sees of a bound session.
type SessionInfo struct {
	SystemID string
	Bind     CommandID
	Remote   string
	Since    time.Time // when the bind succeeded
	// Our requests awaiting their responses, and the most there may be;
	// the peer's requests being handled, and their most.
	WindowUsed, Window   int
	InboundUsed, Inbound int
}

// Info describes the session now; the window counts move while it runs.
func (s *Session) Info() SessionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return SessionInfo{SystemID: s.systemID, Bind: s.bind, Remote: s.conn.RemoteAddr().String(), Since: s.boundAt,
		WindowUsed: len(s.window), Window: cap(s.window), InboundUsed: len(s.inbound), Inbound: cap(s.inbound)}
}

// CanReceive reports whether the peer may be sent deliver_sm (it bound as a
// receiver or transceiver).
func (s *Session) CanReceive() bool { return s.bound.Load() && s.wasReceiver() }

// wasReceiver reports whether the peer bound as a receiver or transceiver,
// bound still or not.
func (s *Session) wasReceiver() bool {
	b := s.BindType()
	return b == BindReceiver || b == BindTransceiver
}

// RemoteAddr is the peer's address.
func (s *Session) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err is why the session ended (nil while it runs or after a clean unbind).
func (s *Session) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

func (s *Session) setBound(systemID string, bind CommandID) {
	s.mu.Lock()
	s.systemID, s.bind, s.boundAt = systemID, bind, time.Now()
	s.mu.Unlock()
	s.bound.Store(true)
}

func (s *Session) nextSeq() uint32 {
	for {
		n := s.seq.Add(1) & 0x7FFFFFFF
		if n != 0 {
			return n
		}
	}
}

// Send sends request p and waits for its response, first waiting (at most
// RespTimeout) for room in the window if it is full. It sets p.Seq. A response with a non-zero
// status is returned together with a *StatusError.
func (s *Session) Send(ctx context.Context, p *PDU) (*PDU, error) {
	select {
	case s.window <- struct{}{}:
	default: // full: wait, at most RespTimeout (the timer only on this path)
		t := time.NewTimer(s.cfg.RespTimeout)
		select {
		case s.window <- struct{}{}:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-s.done:
			t.Stop()
			return nil, ErrClosed
		case <-t.C:
			return nil, fmt.Errorf("%w: no room in the window of %d after %v", ErrTimeout, cap(s.window), s.cfg.RespTimeout)
		}
	}
	defer func() { <-s.window }()
	return s.roundTrip(ctx, p)
}

// Answers to waiters that are no response, shared by every session: only
// their addresses are compared, and each waiter's channel is its session's.
var timedOutResp, closedResp = new(PDU), new(PDU)

type waiter struct {
	ch       chan *PDU
	deadline int64 // unix nanos: the sweeper answers timedOut after it
}

// roundTrip sends p outside the window (binds, enquire_link, unbind).
// RespTimeout is enforced by the session's sweeper, not a timer per request,
// and the end of the session by close answering every waiter: the wait is a
// select on the response and ctx alone, with no timer per request and no
// channel that every waiter locks (BenchmarkSubmitRoundTrip).
func (s *Session) roundTrip(ctx context.Context, p *PDU) (*PDU, error) {
	p.Seq = s.nextSeq()
	ch := make(chan *PDU, 1)
	s.pmu.Lock()
	if s.pending == nil {
		s.pmu.Unlock()
		return nil, ErrClosed
	}
	s.pending[p.Seq] = waiter{ch: ch, deadline: time.Now().Add(s.cfg.RespTimeout).UnixNano()}
	s.pmu.Unlock()
	forget := func() {
		s.pmu.Lock()
		if w, ok := s.pending[p.Seq]; ok && w.ch == ch {
			delete(s.pending, p.Seq)
		}
		s.pmu.Unlock()
	}
	if err := s.write(p); err != nil {
		forget()
		return nil, err
	}
	select {
	case resp := <-ch:
		switch resp {
		case s.timedOut:
			return nil, fmt.Errorf("%w: %v seq %d after %v", ErrTimeout, p.ID, p.Seq, s.cfg.RespTimeout)
		case s.closedResp:
			return nil, ErrClosed
		}
		if resp.ID == GenericNack || resp.Status != ESME_ROK {
			cmd := resp.ID
			if cmd != GenericNack {
				cmd = p.ID.Resp()
			}
			return resp, &StatusError{Command: cmd, Status: resp.Status}
		}
		if resp.ID != p.ID.Resp() {
			return resp, fmt.Errorf("smpp: %v answered with %v", p.ID, resp.ID)
		}
		return resp, nil
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	}
}

// sweeper answers waiters whose RespTimeout has passed, checking a few
// times per timeout: a response is declared late up to an eighth of
// RespTimeout after its deadline.
func (s *Session) sweeper() {
	t := time.NewTicker(max(s.cfg.RespTimeout/8, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			n := now.UnixNano()
			s.pmu.Lock()
			for seq, w := range s.pending {
				if n >= w.deadline {
					delete(s.pending, seq)
					w.ch <- s.timedOut
				}
			}
			s.pmu.Unlock()
		}
	}
}

// write queues p for the flusher. An encoding error is returned at once;
// a connection error ends the session (waiters see ErrClosed).
func (s *Session) write(p *PDU) error {
	s.wmu.Lock()
	if s.werr != nil {
		s.wmu.Unlock()
		return s.werr
	}
	var err error
	s.wbuf, err = p.AppendTo(s.wbuf)
	s.wmu.Unlock()
	if err != nil {
		return err
	}
	if !s.started.Load() {
		return s.flush() // no flusher yet: only the reader writes
	}
	select {
	case s.wkick <- struct{}{}:
	default:
	}
	return nil
}

// flusher writes queued PDUs until the session ends.
func (s *Session) flusher() {
	for {
		select {
		case <-s.done:
			return
		case <-s.wkick:
		}
		// Let the goroutines that are about to queue more PDUs do so: one
		// write for several PDUs is the cheapest syscall saving there is.
		runtime.Gosched()
		if err := s.flush(); err != nil {
			s.close(err)
			return
		}
	}
}

// flush writes everything queued so far.
func (s *Session) flush() error {
	s.fmu.Lock()
	defer s.fmu.Unlock()
	s.wmu.Lock()
	buf := s.wbuf
	s.wbuf = s.wspare[:0]
	s.wmu.Unlock()
	if len(buf) == 0 {
		s.wspare = buf
		return nil
	}
	s.conn.SetWriteDeadline(time.Now().Add(s.cfg.RespTimeout))
	_, err := s.conn.Write(buf)
	if cap(buf) <= 256<<10 {
		s.wspare = buf[:0] // keep a buffer of sane size for the next swap
	} else {
		s.wspare = nil
	}
	if err != nil {
		err = fmt.Errorf("smpp: write: %w", err)
		s.wmu.Lock()
		s.werr = err
		s.wmu.Unlock()
	}
	return err
}

// close ends the session at once; waiters get ErrClosed.
func (s *Session) close(err error) {
	if err == nil {
		s.flush() // a clean end still sends what was queued (unbind_resp)
	}
	s.doneOnce.Do(func() {
		s.err = err
		s.bound.Store(false)
		close(s.done)
		s.pmu.Lock()
		for _, w := range s.pending {
			w.ch <- s.closedResp
		}
		s.pending = nil
		s.pmu.Unlock()
		s.cancel()
		s.conn.Close()
	})
}

// Close unbinds politely (waiting briefly for unbind_resp) and closes.
func (s *Session) Close() error {
	if s.bound.Load() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		p := &PDU{ID: Unbind}
		s.roundTrip(ctx, p)
		cancel()
	}
	s.close(nil)
	return nil
}

// serve reads until the connection ends. It answers enquire_link, unbind,
// binds (server role) and malformed PDUs itself and hands other requests to
// the handler.
func (s *Session) serve() error {
	if s.cfg.onBind == nil { // client role: we bind, which needs all of it
		if err := s.start(); err != nil {
			return err
		}
	}
	stager, _ := s.cfg.Handler.(Stager)
	defer func() {
		s.handlers.Wait()
		if s.ackerDone != nil {
			close(s.ackerDone)
		}
		if s.workers != nil {
			s.workers.Release()
		}
	}()
	for {
		p := s.pool.Get().(*PDU)
		p.Reset()
		err := ReadPDU(s.r, p, s.cfg.MaxPDU)
		s.lastRead.Store(time.Now().UnixNano())
		if err != nil {
			var de *DecodeError
			if errors.As(err, &de) {
				s.log.Warn("malformed pdu", "cmd", p.ID, "seq", p.Seq, "err", err)
				if !p.ID.IsResponse() || p.ID == GenericNack {
					s.nack(p.Seq, de.Status)
				}
				s.pool.Put(p)
				continue
			}
			s.pool.Put(p)
			if errors.Is(err, ErrFraming) {
				// The stream cannot be resynchronised: say why, then go.
				s.nack(0, ESME_RINVCMDLEN)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				err = nil
			}
			s.close(err)
			return s.err
		}
		if p.ID.IsResponse() {
			s.pmu.Lock()
			w, ok := s.pending[p.Seq]
			delete(s.pending, p.Seq)
			s.pmu.Unlock()
			if !ok {
				s.log.Debug("response to no request of ours", "cmd", p.ID, "seq", p.Seq)
				s.pool.Put(p)
				continue
			}
			if p.Status == ESME_ROK && (p.ID &^ 0x80000000).IsBind() {
				// The peer may send requests right behind its bind_resp:
				// they must find the session bound, before our waiter wakes.
				s.bound.Store(true)
			}
			w.ch <- p // the waiter owns p now; it is not returned to the pool
			continue
		}
		if s.control(p) {
			id := p.ID
			s.pool.Put(p)
			if id == Unbind {
				s.close(nil)
				return nil
			}
			continue
		}
		// Backpressure: beyond the inbound window we stop reading.
		select {
		case s.inbound <- struct{}{}:
		case <-s.done:
			s.pool.Put(p)
			return s.err
		}
		s.handlers.Add(1)
		if stager == nil || !s.stage(stager, p) {
			s.dispatch(p)
		}
	}
}

// start runs what a bound session needs: the handler pool, the flusher,
// the sweeper, keepalive and the acker, and a full-size read buffer. It
// runs on the read goroutine (or before it starts).
func (s *Session) start() error {
	workers, err := ants.NewPoolWithFuncGeneric(s.cfg.InboundWindow, s.handle, ants.WithDisablePurge(true))
	if err != nil {
		err = fmt.Errorf("smpp: handler pool: %w", err)
		s.close(err)
		return err
	}
	s.workers = workers
	if s.r.Size() < 16<<10 {
		// What the small buffer holds past the bind is read first.
		var rd io.Reader = s.conn
		if n := s.r.Buffered(); n > 0 {
			rest, _ := s.r.Peek(n)
			rd = io.MultiReader(bytes.NewReader(bytes.Clone(rest)), s.conn)
		}
		s.r = bufio.NewReaderSize(rd, 16<<10)
	}
	if _, ok := s.cfg.Handler.(Stager); ok {
		s.ackerDone = make(chan struct{})
		go s.acker(s.ackerDone)
	}
	s.fmu.Lock() // a synchronous write in progress ends before the flusher takes over
	s.started.Store(true)
	s.fmu.Unlock()
	go s.flusher()
	go s.sweeper()
	if s.cfg.EnquireInterval > 0 {
		go s.keepalive()
	}
	return nil
}

type deferredResp struct {
	d    Deferred
	resp *PDU
}

// stage offers p to the Stager on the read goroutine; false: it goes to
// the pool. It owns p's inbound slot and handler count from here when true.
func (s *Session) stage(st Stager, req *PDU) (handled bool) {
	resp := s.respFor(req)
	var d Deferred
	if s.guard(req.ID, resp, func() { d, handled = st.StageSMPP(s.ctx, s, req, resp) }) {
		d, handled = nil, true
	}
	if !handled {
		s.pool.Put(resp)
		return false
	}
	s.pool.Put(req)
	if d == nil {
		s.respond(resp)
		return true
	}
	s.dmu.Lock()
	s.deferred = append(s.deferred, deferredResp{d, resp})
	s.dmu.Unlock()
	select {
	case s.dkick <- struct{}{}:
	default:
	}
	return true
}

// acker finishes deferred responses in order: one wake-up answers all the
// requests a commit made ready. It finishes every one, also after the
// session ended (the handler releases what it held), and returns when
// done is closed, which serve does once no request is outstanding.
func (s *Session) acker(done chan struct{}) {
	var q []deferredResp
	for {
		s.dmu.Lock()
		q, s.deferred = s.deferred, q[:0]
		s.dmu.Unlock()
		if len(q) == 0 {
			select {
			case <-s.dkick:
			case <-done:
				return
			}
			continue
		}
		for i := range q {
			e := &q[i]
			if ch := e.d.Ready(); ch != nil {
				<-ch
			}
			s.guard(e.resp.ID, e.resp, func() { e.d.Finish(e.resp) })
			s.respond(e.resp)
			*e = deferredResp{}
		}
	}
}

// guard runs a piece of a handler; a panic is logged and answered with
// ESME_RSYSERR instead of ending the process.
func (s *Session) guard(cmd CommandID, resp *PDU, fn func()) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("handler panic", "cmd", cmd, "panic", r)
			resp.Status = ESME_RSYSERR
			panicked = true
		}
	}()
	fn()
	return false
}

// respond writes a handler's response and gives back its request's slot.
func (s *Session) respond(resp *PDU) {
	if err := s.write(resp); err != nil && !errors.Is(err, ErrClosed) {
		s.log.Debug("response not written", "cmd", resp.ID, "err", err)
	}
	s.pool.Put(resp)
	<-s.inbound
	s.handlers.Done()
}

// dispatch runs the handler for p on a pooled goroutine. The pool holds at
// most InboundWindow of them (each holds an inbound slot while it works) and
// keeps them for the session's life: a goroutine per request would grow a
// fresh stack through the store's call depth every time (runtime.copystack).
// The pool is released only after the read loop ends, and it waits rather
// than refuses when busy, so Invoke cannot fail here; if it ever did, the
// request still gets its own goroutine rather than being dropped. Invoke
// passes p to the pool's one function: no closure per request.
func (s *Session) dispatch(p *PDU) {
	if err := s.workers.Invoke(p); err != nil {
		go s.handle(p)
	}
}

// control answers session-level requests; true when p was one.
func (s *Session) control(p *PDU) bool {
	switch {
	case p.ID == EnquireLink:
		s.write(&PDU{ID: EnquireLinkResp, Seq: p.Seq})
	case p.ID == Unbind:
		s.write(&PDU{ID: UnbindResp, Seq: p.Seq})
		s.bound.Store(false)
	case p.ID.IsBind():
		resp := &PDU{ID: p.ID.Resp(), Seq: p.Seq, SystemID: s.cfg.systemID}
		switch {
		case s.cfg.onBind == nil:
			resp.Status = ESME_RINVCMDID // we are the client: peers don't bind to us
		case s.bound.Load():
			resp.Status = ESME_RALYBND
		default:
			resp.Status = s.cfg.onBind(s, p)
		}
		if resp.Status == ESME_ROK && !s.started.Load() && s.start() != nil {
			resp.Status = ESME_RSYSERR
		}
		if resp.Status == ESME_ROK {
			s.setBound(p.SystemID, p.ID)
			s.log.Info("bound", "system_id", p.SystemID, "bind", p.ID)
			s.write(resp)
			if s.cfg.onBound != nil && s.wasReceiver() {
				s.cfg.onBound(p.SystemID)
			}
		} else {
			s.log.Warn("bind refused", "system_id", p.SystemID, "bind", p.ID, "status", StatusName(resp.Status))
			s.write(resp)
			if !s.bound.Load() {
				// A refused bind ends the connection after the answer.
				go func() {
					time.Sleep(100 * time.Millisecond)
					s.close(fmt.Errorf("smpp: bind refused: %s", StatusName(resp.Status)))
				}()
			}
		}
	case p.ID == Outbind || p.ID == AlertNotification:
		// Nothing to answer (neither has a response); noted only.
		s.log.Debug("ignored", "cmd", p.ID)
	case !s.bound.Load():
		s.write(&PDU{ID: p.ID.Resp(), Seq: p.Seq, Status: ESME_RINVBNDSTS})
	case s.cfg.onBind != nil && !s.permitted(p.ID):
		s.write(&PDU{ID: p.ID.Resp(), Seq: p.Seq, Status: ESME_RINVBNDSTS})
	case s.cfg.Handler == nil:
		s.write(&PDU{ID: p.ID.Resp(), Seq: p.Seq, Status: ESME_RINVCMDID})
	default:
		return false
	}
	return true
}

// permitted: a receiver may not submit (server role).
func (s *Session) permitted(id CommandID) bool {
	if id == SubmitSM || id == DataSM || id == QuerySM || id == SubmitMulti || id == CancelSM || id == ReplaceSM {
		return s.BindType() != BindReceiver
	}
	return true
}

func (s *Session) nack(seq, status uint32) {
	s.write(&PDU{ID: GenericNack, Seq: seq, Status: status})
}

func (s *Session) handle(req *PDU) {
	resp := s.respFor(req)
	s.guard(req.ID, resp, func() { s.cfg.Handler.HandleSMPP(s.ctx, s, req, resp) })
	s.pool.Put(req)
	s.respond(resp)
}

// respFor is the response a handler fills in: command id, sequence, status 0.
func (s *Session) respFor(req *PDU) *PDU {
	resp := s.pool.Get().(*PDU)
	resp.Reset()
	resp.ID, resp.Seq = req.ID.Resp(), req.Seq
	return resp
}

// keepalive probes an idle peer and ends the session when it stops
// answering.
func (s *Session) keepalive() {
	iv := s.cfg.EnquireInterval
	t := time.NewTicker(iv / 2)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		idle := time.Since(time.Unix(0, s.lastRead.Load()))
		if idle < iv || !s.bound.Load() {
			if !s.bound.Load() && idle > 3*iv {
				s.close(errors.New("smpp: no bind in time"))
				return
			}
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.RespTimeout)
		_, err := s.roundTrip(ctx, &PDU{ID: EnquireLink})
		cancel()
		if err != nil && !errors.Is(err, ErrClosed) {
			var se *StatusError
			if errors.As(err, &se) {
				continue // answered, even if oddly: the peer is alive
			}
			s.log.Warn("enquire_link failed", "err", err)
			s.close(fmt.Errorf("%w: %v", errEnquireLost, err))
			return
		}
	}
}
