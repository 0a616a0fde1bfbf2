package codec

import "bytes"

// encodeMessage codes msg (format version 3); dec3.go mirrors it step by step.
func (c *coder3) encodeMessage(rc *rcEncoder, msg []byte) {
	rc.frozen = c.frozen
	// One pass over the CRs finds the end of the header and, for up to
	// len(ends) lines, where each line ends.
	var ends [64]int32
	lines, sep := 0, -1
	for off := 0; ; off++ {
		k := bytes.IndexByte(msg[off:], '\r')
		if k < 0 {
			break
		}
		off += k
		if off+1 < len(msg) && msg[off+1] == '\n' {
			if off+3 < len(msg) && msg[off+2] == '\r' && msg[off+3] == '\n' {
				sep = off
				break
			}
			if lines < len(ends) {
				ends[lines] = int32(off)
			}
			lines++
		}
	}
	if sep < 0 {
		c.msgCtx = msgLine // nothing of the previous message: a stateless decoder has not seen it
		c.encStartKind(rc, start3All)
		c.encNum(rc, clsBody, uint64(len(msg)))
		c.encSpan(rc, msg, partBody, c.bodySlot())
		return
	}
	head, body := msg[:sep], msg[sep+4:]
	if lines > len(ends) {
		line, rest, more := cutCRLF(head)
		c.msgCtx = c.encStartLine(rc, line, len(body))
		c.prevOp, c.prevOp2 = opFirst, opFirst
		for more {
			line, rest, more = cutCRLF(rest)
			op := c.encHeader(rc, line, len(body))
			c.prevOp, c.prevOp2 = op, c.prevOp
		}
	} else {
		from := 0
		for k := 0; k <= lines; k++ {
			to := sep
			if k < lines {
				to = int(ends[k])
			}
			line := head[from:to]
			if k == 0 {
				c.msgCtx = c.encStartLine(rc, line, len(body))
				c.prevOp, c.prevOp2 = opFirst, opFirst
			} else {
				op := c.encHeader(rc, line, len(body))
				c.prevOp, c.prevOp2 = op, c.prevOp
			}
			from = to + 2
		}
	}
	c.encOp(rc, op3End)
	c.encSpan(rc, body, partBody, c.bodySlot())
}

// cutCRLF is bytes.Cut(b, "\r\n") by a search for the CR alone, which
// is rare in a header line.
func cutCRLF(b []byte) (line, rest []byte, found bool) {
	for off := 0; ; {
		i := bytes.IndexByte(b[off:], '\r')
		if i < 0 {
			return b, nil, false
		}
		off += i
		if off+1 < len(b) && b[off+1] == '\n' {
			return b[:off], b[off+2:], true
		}
		off++
	}
}

// indexColonSP is bytes.Index(line, ": ") by a search for the colon.
func indexColonSP(line []byte) int {
	for off := 0; ; {
		i := bytes.IndexByte(line[off:], ':')
		if i < 0 {
			return -1
		}
		off += i
		if off+1 < len(line) && line[off+1] == ' ' {
			return off
		}
		off++
	}
}

func (c *coder3) encSpan(rc *rcEncoder, t []byte, part, slot int) {
	if c.collect != nil {
		c.collect(t, part)
	}
	start := c.aimRep(slot)
	c.encodeSpan(rc, t, part)
	c.notePos(slot, start)
}

// encLiteral codes a text without CRLF (a header value, a start line
// part) followed by CRLF, which ends it: cheaper than a length, and often
// inside a match.
func (c *coder3) encLiteral(rc *rcEncoder, ctx int, t []byte) {
	if c.collect != nil {
		c.lit = append(append(c.lit[:0], t...), '\r', '\n')
		c.collect(c.lit, partValue)
	}
	start := c.aimRep(ctx)
	c.encodeSpan(rc, t, partValue) // partValue: the CRLF is added
	c.notePos(ctx, start)
}

func (c *coder3) encStartKind(rc *rcEncoder, k int) {
	rc.tree(c.st.startK[c.sc.prevKind][:], uint32(k), 2)
	c.sc.prevKind = uint8(k)
}

func (c *coder3) encVersion(rc *rcEncoder, v uint8) {
	hit := uint32(0)
	if v == c.sc.lastVer {
		hit = 1
	}
	rc.bit(&c.st.verHit[c.sc.lastVer&3], hit)
	if hit == 0 {
		rc.tree(c.st.verTree[:], uint32(v), 2)
	}
	c.sc.lastVer = v
}

// encStartLine codes the start line and the body length; it returns the
// message context.
func (c *coder3) encStartLine(rc *rcEncoder, line []byte, bodyLen int) int {
	// Response: VERSION SP CODE SP REASON.
	if v, rest, ok := bytes.Cut(line, []byte{' '}); ok {
		if vi, ok := versionIndex.get(v); ok {
			if cs, reason, ok := bytes.Cut(rest, []byte{' '}); ok {
				if code, ok := parseUint(cs); ok && code < 1<<20 {
					c.encStartKind(rc, start3Response)
					c.encNum(rc, clsBody, uint64(bodyLen))
					c.encVersion(rc, vi)
					if code >= 100 && code < 100+statusEsc {
						rc.tree(c.st.status[:], uint32(code-100), 8)
					} else {
						rc.tree(c.st.status[:], statusEsc, 8)
						c.encNum(rc, clsStatus, code)
					}
					def := reasonOf(code) == string(reason) && len(reason) > 0
					if def {
						rc.bit(&c.st.defRsn[0], 1)
					} else {
						rc.bit(&c.st.defRsn[0], 0)
						c.encLiteral(rc, ctxReason, reason)
					}
					return msgResp + min(int(code/100), 6)<<5 + int(c.sc.reqMethod)
				}
			}
		}
	}
	// Request: METHOD SP URI SP VERSION.
	if i, j := bytes.IndexByte(line, ' '), bytes.LastIndexByte(line, ' '); i > 0 && j > i {
		if vi, ok := versionIndex.get(line[j+1:]); ok {
			c.encStartKind(rc, start3Request)
			c.encNum(rc, clsBody, uint64(bodyLen))
			c.encVersion(rc, vi)
			m, ok := methodIndex.get(line[:i])
			if !ok {
				m = methodLit
			}
			rc.tree(c.st.method[:], uint32(m), 5)
			if m == methodLit {
				c.encLiteral(rc, ctxReason, line[:i])
			}
			c.sc.reqMethod = m
			c.encValue(rc, ctxRURI, line[i+1:j], -1)
			return msgReq + int(m)
		}
	}
	c.encStartKind(rc, start3Line)
	c.encNum(rc, clsBody, uint64(bodyLen))
	c.encLiteral(rc, ctxLitLine, line)
	return msgLine
}

func opTreeCls(prev int) int {
	switch {
	case prev == opFirst:
		return 0
	case prev >= op3Name:
		return 1
	}
	return 2
}

func (c *coder3) encOp(rc *rcEncoder, op int) {
	st := c.st
	i := c.opIndex()
	pr, hit := &st.opPred[i], &st.opHit[i]
	switch uint8(op) {
	case pr[0]:
		rc.bit(&hit[0], 1)
		return
	case pr[1]:
		rc.bit(&hit[0], 0)
		rc.bit(&hit[1], 1)
		if !c.frozen {
			pr[0], pr[1] = pr[1], pr[0]
		}
		return
	}
	rc.bit(&hit[0], 0)
	rc.bit(&hit[1], 0)
	rc.tree(st.opTree[opTreeCls(c.prevOp)][:], uint32(op), 8)
	if !c.frozen {
		pr[0], pr[1] = uint8(op), pr[0]
	}
}

// encHeader codes one header line and returns its op symbol: the op, then
// whether the value (the line, for a literal name or line) is one of the
// last few of its context, then, if not, the value.
func (c *coder3) encHeader(rc *rcEncoder, line []byte, bodyLen int) int {
	op, ctx, key := op3LitLine, ctxLitLine, line
	var name, val []byte
	if colon := indexColonSP(line); colon > 0 {
		name, val = line[:colon], line[colon+2:]
		op, ctx = op3LitName, ctxLitName
		if ni, ok := name3Index.get(name); ok {
			op = op3Name + int(ni)
			ctx, key = nameCtx(op), val
		}
	}
	c.encOp(rc, op)
	st := c.st
	if k := st.vc.find(ctx, key); k >= 0 {
		c.encVcSym(rc, ctx, k)
		if !c.frozen {
			st.vc.use(ctx, k)
		}
		return op
	}
	c.encVcSym(rc, ctx, vcNew)
	c.noDyn = false
	switch op {
	case op3LitLine:
		c.encLiteral(rc, ctxLitLine, line)
	case op3LitName:
		c.encLiteral(rc, ctxLitName, name)
		c.encValue(rc, ctxLitName, val, -1)
	default:
		if !isLengthName(name) {
			bodyLen = -1
		}
		c.encValue(rc, ctx, val, bodyLen)
	}
	if !c.frozen && !c.noDyn {
		st.vc.insert(ctx, key)
	}
	return op
}

// encVcSym codes whether a value is one of the last few of its context
// (and which) or new. Version 4 SIP frames code "new" as one bit, not as
// the 3-bit tree's path.
func (c *coder3) encVcSym(rc *rcEncoder, ctx, k int) {
	p := c.st.vcSym[ctx][:]
	if !c.tok {
		rc.tree(p, uint32(k), 3)
		return
	}
	if k == vcNew {
		rc.bit(&p[1], 1)
		return
	}
	rc.bit(&p[1], 0)
	rc.tree(p[4:8], uint32(k), 2)
}

// encKind codes the kind of a value. Version 4 SIP frames first code
// whether it is the last kind of its context, which it mostly is.
func (c *coder3) encKind(rc *rcEncoder, ctx, k int) {
	st := c.st
	if c.tok {
		hit := uint32(0)
		if uint8(k) == st.kindLast[ctx] {
			hit = 1
		}
		rc.bit(&st.kindHit[ctx], hit)
		if !c.frozen {
			st.kindLast[ctx] = uint8(k)
		}
		if hit == 1 {
			return
		}
	}
	rc.tree(st.kind[ctx][:], uint32(k), 4)
}

// encRel codes v as a relation to the last number of ctx, or in full.
func (c *coder3) encRel(rc *rcEncoder, ctx int, v int64) {
	r := relation(v, int64(c.st.last[ctx]))
	rc.tree(c.st.rel[ctx][:], r, 2)
	if r == relNew {
		m := v
		if m < 0 {
			m = -m
		}
		c.encNum(rc, numCls(ctx), uint64(m))
	}
	if !c.frozen {
		c.st.last[ctx] = uint64(v)
	}
}

// encValue picks the first kind that re-renders v byte for byte.
func (c *coder3) encValue(rc *rcEncoder, ctx int, v []byte, bodyLen int) {
	if bodyLen >= 0 {
		if n, ok := parseUint(v); ok && n == uint64(bodyLen) {
			c.encKind(rc, ctx, k3Implied)
			return
		}
	}
	if t, ok := token3Index.get(v); ok {
		c.encKind(rc, ctx, k3Tok)
		st := c.st
		if t == st.tokLast[ctx] {
			rc.bit(&st.tokHit[ctx], 1)
			return
		}
		rc.bit(&st.tokHit[ctx], 0)
		rc.tree(st.tokTree[:], uint32(t), 8)
		if !c.frozen {
			st.tokLast[ctx] = t
		}
		return
	}
	if n, ok := parseUint(v); ok && n < 1<<62 {
		c.encKind(rc, ctx, k3Int)
		c.encRel(rc, ctx, int64(n))
		return
	}
	if l := len(v); l > 1 && v[l-1] == ' ' {
		if n, ok := parseUint(v[:l-1]); ok && n < 1<<62 {
			c.encKind(rc, ctx, k3IntSp)
			c.encRel(rc, ctx, int64(n))
			return
		}
	}
	if len(v) > 1 && v[0] == '-' {
		if n, ok := parseUint(v[1:]); ok && n > 0 && n < 1<<62 {
			c.encKind(rc, ctx, k3Neg)
			c.encRel(rc, ctx, -int64(n))
			return
		}
	}
	if n, p, ok := parseFetionURI(v); ok {
		c.encKind(rc, ctx, k3URI)
		c.encNum(rc, clsURIN, n)
		c.encNum(rc, clsURIP, p)
		return
	}
	if n, m, ok := parseCSeq(v); ok && n < 1<<62 {
		c.encKind(rc, ctx, k3CSeq)
		c.encRel(rc, ctx, int64(n))
		c.encCSeqMethod(rc, m)
		return
	}
	if hc := hexCase(v); hc != 0 {
		c.noDyn = true
		c.encKind(rc, ctx, k3HexL+hc-1)
		for i := 0; i < len(v); i += 4 {
			var w uint32
			for _, ch := range v[i : i+4] {
				w = w<<4 | uint32(unhex(ch))
			}
			rc.uniform(w, 16)
		}
		return
	}
	if d, ok := parseDate(v); ok {
		c.noDyn = true
		if c.sc.hasDate && d >= c.sc.lastDate {
			c.encKind(rc, ctx, k3DateDelta)
			c.encNum(rc, clsDate, uint64(d-c.sc.lastDate))
		} else {
			c.encKind(rc, ctx, k3Date)
			directBits(rc, uint64(d), 32)
		}
		c.sc.lastDate, c.sc.hasDate = d, true
		return
	}
	if len(v) > len(telPrefix) && string(v[:len(telPrefix)]) == telPrefix {
		if n, ok := parseUint(v[len(telPrefix):]); ok {
			c.encKind(rc, ctx, k3Tel)
			c.encNum(rc, clsTel, n)
			return
		}
	}
	if l := len(v) - len("@fetion.com.cn"); l > len(sipPrefix) && string(v[:len(sipPrefix)]) == sipPrefix &&
		string(v[l:]) == "@fetion.com.cn" {
		if n, ok := parseUint(v[len(sipPrefix):l]); ok {
			c.encKind(rc, ctx, k3SipNum)
			c.encNum(rc, clsSipNum, n)
			return
		}
	}
	c.encKind(rc, ctx, k3Lit)
	c.encLiteral(rc, ctx, v)
}

// encCSeqMethod codes the method of a CSeq value: usually the request's
// own (a request) or the last one seen (a response).
func (c *coder3) encCSeqMethod(rc *rcEncoder, m uint8) {
	resp := 0
	exp := c.sc.reqMethod
	if c.sc.prevKind != start3Request {
		resp, exp = 1, c.sc.lastCSeqM
	}
	if m == exp {
		rc.bit(&c.st.cseqHit[resp], 1)
	} else {
		rc.bit(&c.st.cseqHit[resp], 0)
		rc.tree(c.st.cseqTree[:], uint32(m), 5)
	}
	c.sc.lastCSeqM = m
}
