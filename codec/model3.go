package codec

import (
	"bytes"
	"fmt"
	"math/bits"
	"sync"
)

// Format version 3 codes a message field by field in one adaptive range
// coder run (doc.go has the overview): the start line; each header line
// as an op predicted from the message context and the two ops before it,
// then the value as one of the last few of its header context or by kind;
// text without structure through the LZ coder (lz3.go) where it occurs.
//
// Every model starts from the primed state of a profile (SIP-C or SIP),
// built once from dict3/. Stateless frames code from it without adapting
// it (nothing to copy or restore per frame); a stateful session copies it
// at its first frame and adapts from there.

// Profiles.
const (
	profSIPC    = 0
	profSIP     = 1
	nProfiles   = 2
	profileBits = 2
)

// Header op symbols.
const (
	op3End     = 0
	op3LitLine = 1   // a line without ": "
	op3LitName = 2   // a name outside names3: literal name, then the value
	op3Name    = 3   // op3Name + index into names3
	opFirst    = 255 // "previous op" of the first header line

	opPredBits     = 9
	vcWays         = 4 // recent values of one header context that can be named
	vcNew          = vcWays
	vcBudget       = 6 << 10 // bytes of recent values, all contexts
	maxCachedValue = 256
)

// Value kinds.
const (
	k3Lit       = iota // literal text
	k3Int              // decimal number without leading zero
	k3IntSp            // the same followed by one space
	k3Neg              // "-" and a positive number
	k3URI              // sip:N@fetion.com.cn;p=P
	k3CSeq             // "N METHOD"
	k3Tok              // tokens3 entry
	k3Implied          // a length equal to the body length
	k3HexL             // 32 lower-case hex digits
	k3HexU             // 32 upper-case hex digits
	k3Date             // RFC 1123 GMT date
	k3DateDelta        // a date after the previous one
	k3Tel              // tel:N
	k3SipNum           // sip:N@fetion.com.cn
	nKinds3
)

// Start line kinds.
const (
	start3Request = iota
	start3Response
	start3Line
	start3All // no header/body separator: the message is one text span
)

// Model contexts.
const (
	nNameCtx   = 64
	ctxReason  = 0 // literal reason phrase, literal method
	ctxRURI    = 1
	ctxLitName = 2 // the value after a literal name; also the name itself
	ctxLitLine = 3
	ctxName0   = 4 // names3[i] has context min(ctxName0+i, nNameCtx-1)

	msgReq    = 0  // + method symbol: the message context of a request
	msgResp   = 32 // + status class << 5 + method of the last request
	msgLine   = 31
	nNumCls   = 16 // number classes: values by header context & 7, then these
	clsBody   = 12 // body lengths, status codes outside the table
	clsStatus = clsBody
	clsURIN   = 13 // user numbers (sip:N, tel:N)
	clsTel    = clsURIN
	clsSipNum = clsURIN
	clsURIP   = 14
	clsDate   = 15
	methodLit = 31
	statusEsc = 255
)

func nameCtx(op int) int { return min(ctxName0+op-op3Name, nNameCtx-1) }

func numCls(ctx int) int { return ctx & 7 }

// state3 is everything both ends adapt in step.
type state3 struct {
	lz       [n3Probs]uint16
	opHit    [1 << opPredBits][2]uint16
	opPred   [1 << opPredBits][2]uint8 // the last two ops seen in the slot, most recent first
	opTree   [3][256]uint16
	vc       valCache
	vcSym    [nNameCtx][8]uint16
	kind     [nNameCtx][16]uint16
	kindHit  [nNameCtx]uint16 // version 4 SIP: the kind is kindLast's
	kindLast [nNameCtx]uint8
	rel      [nNameCtx][4]uint16
	last     [nNameCtx]uint64
	tokHit   [nNameCtx]uint16
	tokLast  [nNameCtx]uint8
	tokTree  [256]uint16
	numLen   [nNumCls][64]uint16
	numHi    [64][8]uint16
	startK   [4][4]uint16
	verHit   [4]uint16
	verTree  [4]uint16
	method   [32]uint16
	status   [256]uint16
	defRsn   [2]uint16
	cseqHit  [2]uint16
	cseqTree [32]uint16
	nc       numCache
	lastPos  [2 * nNameCtx]uint32 // history position + 1 where the last text of a slot began
}

// Text slots: a header context's literal values, or the bodies of one
// message context.
func (c *coder3) bodySlot() int { return nNameCtx + c.msgCtx%nNameCtx }

// aimRep makes the first repeat distance point at the start of the last
// text of the same slot, so that a value or body that begins like the
// previous one of its kind starts with a cheap repeat match. It returns
// the position the new text starts at.
func (c *coder3) aimRep(slot int) uint32 {
	cur := c.h.base + uint32(len(c.h.b))
	if lp := c.st.lastPos[slot]; lp != 0 && lp-1 >= c.h.base && cur > lp-1 && cur-(lp-1) <= lz3Window {
		if d := cur - (lp - 1); d != c.sc.run.rep[0] {
			c.sc.run.rep[1], c.sc.run.rep[0] = c.sc.run.rep[0], d
		}
	}
	return cur
}

func (c *coder3) notePos(slot int, start uint32) {
	if !c.frozen {
		c.st.lastPos[slot] = start + 1
	}
}

// valCache holds the last vcWays values of each header context, most
// recent first, identical on both ends because both insert exactly the
// values sent in full. Each context's values are packed in one buffer
// (2-byte length, bytes), which keeps an idle context at a slice header.
type valCache struct {
	b    [nNameCtx][]byte
	tmp  []byte
	size int // bytes in b, at most vcBudget whatever a peer sends
}

// entry returns value k of ctx and the end of its record, or ok false.
func (c *valCache) entry(ctx, k int) (v []byte, end int, ok bool) {
	b, off := c.b[ctx], 0
	for i := 0; off+2 <= len(b); i++ {
		n := int(b[off])<<8 | int(b[off+1])
		if i == k {
			return b[off+2 : off+2+n], off + 2 + n, true
		}
		off += 2 + n
	}
	return nil, 0, false
}

func (c *valCache) find(ctx int, v []byte) int {
	b, off := c.b[ctx], 0
	for i := 0; off+2 <= len(b); i++ {
		n := int(b[off])<<8 | int(b[off+1])
		if string(b[off+2:off+2+n]) == string(v) {
			return i
		}
		off += 2 + n
	}
	return -1
}

// put makes v value 0 of ctx; old value skip (-1: the last one, if the
// context is full) goes. A put that would pass vcBudget is not made.
func (c *valCache) put(ctx int, v []byte, skip int) {
	t := append(c.tmp[:0], byte(len(v)>>8), byte(len(v)))
	t = append(t, v...) // v may point into b: copied before b changes
	b, off := c.b[ctx], 0
	for i := 0; off+2 <= len(b); i++ {
		n := int(b[off])<<8 | int(b[off+1])
		if i != skip && (skip >= 0 || i < vcWays-1) {
			t = append(t, b[off:off+2+n]...)
		}
		off += 2 + n
	}
	c.tmp = t
	if c.size-len(b)+len(t) > vcBudget {
		return
	}
	c.size += len(t) - len(b)
	if cap(b) > 2*len(t)+512 {
		b = nil // its capacity stays bounded by what it holds
	}
	c.b[ctx] = append(b[:0], t...)
}

// use moves value k of ctx to the front.
func (c *valCache) use(ctx, k int) {
	if k == 0 {
		return
	}
	// In place: the records before k move up by k's length.
	v, end, ok := c.entry(ctx, k)
	if !ok {
		return
	}
	b := c.b[ctx]
	off := end - len(v) - 2
	c.tmp = append(c.tmp[:0], b[off:end]...)
	copy(b[end-off:end], b[:off])
	copy(b, c.tmp)
}

func (c *valCache) insert(ctx int, v []byte) {
	if len(v) > maxCachedValue {
		return
	}
	c.put(ctx, v, -1)
}

// opIndex is the prediction slot of the next header op: by message
// context and the two previous ops.
func (c *coder3) opIndex() int {
	return int(uint32(c.msgCtx<<16|c.prevOp2<<8|c.prevOp) * 2654435761 >> (32 - opPredBits))
}

// scalars3 is the small mutable state; a frozen (stateless) frame starts
// from the primed values and drops its changes.
type scalars3 struct {
	run       lzRun
	prevKind  uint8
	lastVer   uint8
	reqMethod uint8
	lastCSeqM uint8
	lastDate  uint32
	hasDate   bool
}

func (s *state3) init() {
	for i := range s.opHit {
		s.opHit[i] = [2]uint16{probInit, probInit}
	}
	for _, p := range [][]uint16{s.lz[:], s.kindHit[:], s.tokHit[:], s.tokTree[:], s.method[:], s.status[:], s.defRsn[:],
		s.cseqHit[:], s.cseqTree[:], s.verHit[:], s.verTree[:]} {
		for i := range p {
			p[i] = probInit
		}
	}
	for i := range s.opTree {
		for j := range s.opTree[i] {
			s.opTree[i][j] = probInit
		}
	}
	for i := range nNameCtx {
		for j := range s.vcSym[i] {
			s.vcSym[i][j] = probInit
		}
		for j := range s.kind[i] {
			s.kind[i][j] = probInit
		}
		for j := range s.rel[i] {
			s.rel[i][j] = probInit
		}
	}
	for i := range s.numLen {
		for j := range s.numLen[i] {
			s.numLen[i][j] = probInit
		}
	}
	for i := range s.numHi {
		for j := range s.numHi[i] {
			s.numHi[i][j] = probInit
		}
	}
	for i := range s.startK {
		for j := range s.startK[i] {
			s.startK[i][j] = probInit
		}
	}
}

// copyFrom makes s equal to o (the value cache without sharing buffers).
func (s *state3) copyFrom(o *state3) {
	bufs, tmp := s.vc.b, s.vc.tmp
	*s = *o
	for i := range s.vc.b {
		s.vc.b[i] = append(bufs[i][:0], o.vc.b[i]...)
	}
	s.vc.tmp = tmp
}

// primed3 is the state both ends start from, per profile. Read-only once built.
type primed3 struct {
	st   state3
	sc   scalars3
	hist []byte
	base uint32
	hash matchIndex
	dict *dictIndex
}

// Primed states without and with the items of version 4 (lz4.go),
// which only SIP frames of version 4 use: the same data primes both, but
// the coders leave different models. The one without is version 3's SIP
// state and every SIP-C state.
var (
	primedOnce [2][nProfiles]sync.Once
	primedBy   [2][nProfiles]*primed3
)

// useTokens reports whether frames of format version 4 (else 3) and
// profile prof code random tokens as items.
func useTokens(prof int, v4 bool) bool { return v4 && prof == profSIP }

func getPrimed(prof int, tok bool) *primed3 {
	t := 0
	if tok {
		t = 1
	}
	primedOnce[t][prof].Do(func() { primedBy[t][prof] = buildPrimed3(prof, tok) })
	return primedBy[t][prof]
}

// buildPrimed3 codes the profile's prototype messages as one stateful
// session, then its dictionary as one text span; the resulting state is
// the primed one.
func buildPrimed3(prof int, tok bool) *primed3 {
	c := &coder3{enc: true, stateful: true, tok: tok}
	c.own = new(state3)
	c.own.init()
	c.st = c.own
	c.sc.run.rep = [2]uint32{1, 1}
	c.h.b = make([]byte, 0, lz3HistCap)
	c.h.hash = new(matchIndex)
	var rc rcEncoder
	rc.init(nil)
	for _, m := range prototypes3(prof) {
		rc.init(rc.out[:0])
		c.encodeMessage(&rc, m)
	}
	// The dictionary last: it is what the history ends with.
	rc.init(rc.out[:0])
	c.encodeSpan(&rc, dict3[prof], partBody)
	// Keep a window's worth, so that frames have room before the history
	// slides (a stateless end would then copy it all back).
	if drop := len(c.h.b) - lz3Window; drop > 0 {
		c.h.b = append(c.h.b[:0], c.h.b[drop:]...)
		c.h.base += uint32(drop)
	}
	p := &primed3{sc: c.sc, hist: append([]byte(nil), c.h.b...), base: c.h.base, hash: *c.h.hash}
	p.dict = newDictIndex(p.hist, p.base)
	p.st.copyFrom(c.st)
	return p
}

// coder3 is one end (encoding or decoding) of a stateless link or of one
// direction of a stateful one.
type coder3 struct {
	enc      bool
	stateful bool
	tok      bool        // version 4 items (useTokens) in this frame or session
	primed   *primed3    // the primed state the history was last set from
	frozen   bool        // stateless: st is the shared primed state, read-only
	prof     int         // profile of the history (stateless) or session
	ready    bool        // the history holds the profile's primed history
	st       *state3     // the models in use
	own      *state3     // stateful: this link's copy, made at the first frame
	idx      *matchIndex // stateful encoder: this link's match index
	loc      *localIndex // stateless encoder: the frame's match index
	sc       scalars3
	h        hist3
	msgCtx   int // message context of the current message
	prevOp   int // the previous header op of the message, and the one before
	prevOp2  int
	noDyn    bool                     // the value just coded never repeats (id, date): keep its line out of dyn
	lit      []byte                   // encoder: a literal and its CRLF
	collect  func(t []byte, part int) // training: sees every text span coded
}

func (c *coder3) init(enc, stateful bool) {
	c.enc, c.stateful = enc, stateful
	c.prof = -1
}

// reset forgets the session; the next frame begins a new one.
func (c *coder3) reset() { c.ready, c.st = false, nil }

// beginFrame prepares a stateless frame of profile prof (format version
// 4, else 3).
func (c *coder3) beginFrame(prof int, v4 bool) {
	c.tok = useTokens(prof, v4)
	p := getPrimed(prof, c.tok)
	c.frozen = true
	c.st, c.sc = &p.st, p.sc
	if c.h.b == nil {
		c.h.b = make([]byte, 0, lz3HistCap)
	}
	if c.enc {
		// The primed index, read-only, for the primed history; the frame's
		// own positions in a local index.
		c.h.hash, c.h.dict = &p.hash, p.dict
		if c.loc == nil {
			c.loc = new(localIndex)
		}
		c.loc.n = [len(c.loc.n)]uint8{}
		c.h.loc = c.loc
	}
	// The history is the primed one plus the last message: cut back to the
	// primed part unless a large message slid it or the profile changed.
	if !c.ready || c.primed != p || len(c.h.b) < len(p.hist) || c.h.base != p.base {
		if cap(c.h.b) > 2*lz3HistCap {
			c.h.b = make([]byte, 0, lz3HistCap)
		}
		c.h.b = append(c.h.b[:0], p.hist...)
		c.h.base = p.base
		c.prof, c.ready, c.primed = prof, true, p
	}
	c.h.b = c.h.b[:len(p.hist)]
}

// beginSession starts a stateful session of profile prof (format version
// 4, else 3) from its primed state.
func (c *coder3) beginSession(prof int, v4 bool) {
	c.tok = useTokens(prof, v4)
	p := getPrimed(prof, c.tok)
	if c.own == nil {
		c.own = new(state3)
	}
	c.own.copyFrom(&p.st)
	c.st, c.sc, c.frozen = c.own, p.sc, false
	if c.h.b == nil || cap(c.h.b) > 2*lz3HistCap {
		c.h.b = make([]byte, 0, lz3HistCap)
	}
	c.h.b = append(c.h.b[:0], p.hist...)
	c.h.base = p.base
	if c.enc {
		if c.idx == nil {
			c.idx = new(matchIndex)
		}
		*c.idx = p.hash
		c.h.hash, c.h.loc, c.h.dict = c.idx, nil, nil
	}
	c.prof, c.ready, c.primed = prof, true, p
}

// Numbers: the bit length by an adaptive tree per class, up to 3 adaptive
// bits below the leading one, the rest at p = 1/2.
func (c *coder3) encNum(rc *rcEncoder, cls int, v uint64) {
	nb := bits.Len64(v)
	if nb > 62 {
		rc.tree(c.st.numLen[cls][:], 63, 6)
		directBits(rc, v, 64)
		return
	}
	rc.tree(c.st.numLen[cls][:], uint32(nb), 6)
	if nb <= 1 {
		return
	}
	n := nb - 1
	hi := min(n, 3)
	rem := v &^ (1 << uint(n))
	rc.tree(c.st.numHi[nb][:], uint32(rem>>uint(n-hi)), hi)
	directBits(rc, rem, n-hi)
}

func (c *coder3) decNum(rc *rcDecoder, cls int) uint64 {
	nb := int(rc.tree(c.st.numLen[cls][:], 6))
	if nb == 63 {
		return readDirectBits(rc, 64)
	}
	if nb <= 1 {
		return uint64(nb)
	}
	n := nb - 1
	hi := min(n, 3)
	top := uint64(rc.tree(c.st.numHi[nb][:], hi))
	low := readDirectBits(rc, n-hi)
	return 1<<uint(n) | top<<uint(n-hi) | low
}

// Number relations to the last number of the same header.
const (
	relSame = iota
	relNext
	relNew
	relPrev
)

func relation(v, last int64) uint32 {
	switch v {
	case last:
		return relSame
	case last + 1:
		return relNext
	case last - 1:
		return relPrev
	}
	return relNew
}

// Errors of hostile or damaged frames; static, so a failing decode does
// not allocate.
var (
	errOverrun  = fmt.Errorf("codec: coded data overruns its frame: %w", ErrCorrupt)
	errBadItem  = fmt.Errorf("codec: bad number or hex run: %w", ErrCorrupt)
	errBadMatch = fmt.Errorf("codec: match outside the history: %w", ErrCorrupt)
	errSymbol   = fmt.Errorf("codec: symbol out of range: %w", ErrCorrupt)
	errTooLarge = fmt.Errorf("codec: decoded message too large: %w", ErrCorrupt)
)

// pickProfile is SIP for RFC 3261 messages, SIP-C for everything else.
func pickProfile(msg []byte) int {
	if len(msg) >= 8 && string(msg[:8]) == "SIP/2.0 " {
		return profSIP
	}
	line := msg[:min(len(msg), 2048)]
	if i := bytes.IndexByte(line, '\r'); i >= 0 {
		line = line[:i]
	}
	if len(line) >= 8 && string(line[len(line)-8:]) == " SIP/2.0" {
		return profSIP
	}
	return profSIPC
}
