package codec

// decodeMessage decodes one message (format version 3) and appends it to
// dst: enc3.go step by step, rendering as it goes.
func (c *coder3) decodeMessage(rc *rcDecoder, dst []byte) ([]byte, error) {
	rc.frozen = c.frozen
	start := len(dst)
	k := c.decStartKind(rc)
	bodyLen := c.decNum(rc, clsBody)
	if bodyLen > MaxMessageSize {
		return nil, errTooLarge
	}
	if k == start3All {
		c.msgCtx = msgLine
		return c.decSpan(rc, dst, int(bodyLen), partBody, c.bodySlot())
	}
	dst, msg, err := c.decStartLine(rc, dst, k, int(bodyLen))
	if err != nil {
		return nil, err
	}
	c.msgCtx = msg
	c.prevOp, c.prevOp2 = opFirst, opFirst
	for {
		if rc.pos > len(rc.in)+rcMaxTrim {
			return nil, errOverrun
		}
		if len(dst)-start > MaxMessageSize {
			return nil, errTooLarge
		}
		op := c.decOp(rc)
		if op == op3End {
			break
		}
		if dst, err = c.decHeader(rc, op, dst, int(bodyLen)); err != nil {
			return nil, err
		}
		c.prevOp, c.prevOp2 = op, c.prevOp
	}
	dst = append(dst, "\r\n\r\n"...)
	if dst, err = c.decSpan(rc, dst, int(bodyLen), partBody, c.bodySlot()); err != nil {
		return nil, err
	}
	if len(dst)-start > MaxMessageSize {
		return nil, errTooLarge
	}
	return dst, nil
}

func (c *coder3) decSpan(rc *rcDecoder, dst []byte, n, part, slot int) ([]byte, error) {
	start := c.aimRep(slot)
	t, err := c.decodeSpan(rc, n, part)
	if err != nil {
		return nil, err
	}
	c.notePos(slot, start)
	return append(dst, t...), nil
}

func (c *coder3) decLiteral(rc *rcDecoder, ctx int, dst []byte) ([]byte, error) {
	start := c.aimRep(ctx)
	t, err := c.decodeSpan(rc, -1, partValue)
	if err != nil {
		return nil, err
	}
	c.notePos(ctx, start)
	return append(dst, t[:len(t)-2]...), nil
}

func (c *coder3) decStartKind(rc *rcDecoder) int {
	k := rc.tree(c.st.startK[c.sc.prevKind][:], 2)
	c.sc.prevKind = uint8(k)
	return int(k)
}

func (c *coder3) decVersion(rc *rcDecoder) (uint8, bool) {
	v := c.sc.lastVer
	if rc.bit(&c.st.verHit[c.sc.lastVer&3]) == 0 {
		v = uint8(rc.tree(c.st.verTree[:], 2))
	}
	c.sc.lastVer = v
	return v, int(v) < len(versions)
}

func (c *coder3) decStartLine(rc *rcDecoder, dst []byte, k, bodyLen int) ([]byte, int, error) {
	var err error
	switch k {
	case start3Request:
		vi, ok := c.decVersion(rc)
		if !ok {
			return nil, 0, errSymbol
		}
		m := uint8(rc.tree(c.st.method[:], 5))
		switch {
		case m == methodLit:
			if dst, err = c.decLiteral(rc, ctxReason, dst); err != nil {
				return nil, 0, err
			}
		case int(m) < len(methods):
			dst = append(dst, methods[m]...)
		default:
			return nil, 0, errSymbol
		}
		c.sc.reqMethod = m
		dst = append(dst, ' ')
		if dst, err = c.decValue(rc, ctxRURI, dst, false, bodyLen); err != nil {
			return nil, 0, err
		}
		dst = append(dst, ' ')
		dst = append(dst, versions[vi]...)
		return dst, msgReq + int(m), nil
	case start3Response:
		vi, ok := c.decVersion(rc)
		if !ok {
			return nil, 0, errSymbol
		}
		dst = append(dst, versions[vi]...)
		dst = append(dst, ' ')
		code := uint64(rc.tree(c.st.status[:], 8)) + 100
		if code == statusEsc+100 {
			if code = c.decNum(rc, clsStatus); code >= 1<<20 {
				return nil, 0, errSymbol
			}
		}
		dst = appendUint(dst, code)
		dst = append(dst, ' ')
		if rc.bit(&c.st.defRsn[0]) == 1 {
			reason, ok := reasons[int(code)]
			if !ok {
				return nil, 0, errSymbol
			}
			dst = append(dst, reason...)
		} else if dst, err = c.decLiteral(rc, ctxReason, dst); err != nil {
			return nil, 0, err
		}
		return dst, msgResp + min(int(code/100), 6)<<5 + int(c.sc.reqMethod), nil
	}
	if dst, err = c.decLiteral(rc, ctxLitLine, dst); err != nil {
		return nil, 0, err
	}
	return dst, msgLine, nil
}

func (c *coder3) decOp(rc *rcDecoder) int {
	st := c.st
	i := c.opIndex()
	pr, hit := &st.opPred[i], &st.opHit[i]
	if rc.bit(&hit[0]) == 1 {
		return int(pr[0])
	}
	if rc.bit(&hit[1]) == 1 {
		op := pr[1]
		if !c.frozen {
			pr[0], pr[1] = pr[1], pr[0]
		}
		return int(op)
	}
	op := uint8(rc.tree(st.opTree[opTreeCls(c.prevOp)][:], 8))
	if !c.frozen {
		pr[0], pr[1] = op, pr[0]
	}
	return int(op)
}

// decHeader decodes the header line of op (encHeader) and appends it
// after a CRLF.
func (c *coder3) decHeader(rc *rcDecoder, op int, dst []byte, bodyLen int) ([]byte, error) {
	ctx, ni := ctxLitLine, -1
	switch {
	case op == op3LitName:
		ctx = ctxLitName
	case op >= op3Name:
		if ni = op - op3Name; ni >= len(names3) {
			return nil, errSymbol
		}
		ctx = nameCtx(op)
	case op != op3LitLine:
		return nil, errSymbol
	}
	dst = append(dst, '\r', '\n')
	ls := len(dst)
	if ni >= 0 {
		dst = append(dst, names3[ni]...)
		dst = append(dst, ':', ' ')
	}
	st := c.st
	if k := c.decVcSym(rc, ctx); k != vcNew {
		v, _, ok := st.vc.entry(ctx, k)
		if !ok || k >= vcWays {
			return nil, errSymbol
		}
		dst = append(dst, v...)
		if !c.frozen {
			st.vc.use(ctx, k)
		}
		return dst, nil
	}
	c.noDyn = false
	vs := len(dst) // where the cached key starts
	var err error
	switch {
	case op == op3LitLine:
		dst, err = c.decLiteral(rc, ctxLitLine, dst)
	case op == op3LitName:
		if dst, err = c.decLiteral(rc, ctxLitName, dst); err == nil {
			dst = append(dst, ':', ' ')
			dst, err = c.decValue(rc, ctxLitName, dst, false, bodyLen)
		}
		vs = ls
	default:
		dst, err = c.decValue(rc, ctx, dst, isLengthName([]byte(names3[ni])), bodyLen)
	}
	if err != nil {
		return nil, err
	}
	if !c.frozen && !c.noDyn {
		st.vc.insert(ctx, dst[vs:])
	}
	return dst, nil
}

// decRel decodes a number coded by encRel.
func (c *coder3) decRel(rc *rcDecoder, ctx int, neg bool) int64 {
	last := int64(c.st.last[ctx])
	var v int64
	switch rc.tree(c.st.rel[ctx][:], 2) {
	case relSame:
		v = last
	case relNext:
		v = last + 1
	case relPrev:
		v = last - 1
	default:
		v = int64(c.decNum(rc, numCls(ctx)))
		if neg {
			v = -v
		}
	}
	if !c.frozen {
		c.st.last[ctx] = uint64(v)
	}
	return v
}

func (c *coder3) decVcSym(rc *rcDecoder, ctx int) int {
	p := c.st.vcSym[ctx][:]
	if !c.tok {
		return int(rc.tree(p, 3))
	}
	if rc.bit(&p[1]) == 1 {
		return vcNew
	}
	return int(rc.tree(p[4:8], 2))
}

func (c *coder3) decKind(rc *rcDecoder, ctx int) uint32 {
	st := c.st
	if c.tok {
		hit := rc.bit(&st.kindHit[ctx]) == 1
		if hit {
			return uint32(st.kindLast[ctx])
		}
		k := rc.tree(st.kind[ctx][:], 4)
		if !c.frozen {
			st.kindLast[ctx] = uint8(k)
		}
		return k
	}
	return rc.tree(st.kind[ctx][:], 4)
}

func (c *coder3) decValue(rc *rcDecoder, ctx int, dst []byte, lengthName bool, bodyLen int) ([]byte, error) {
	st := c.st
	switch k := c.decKind(rc, ctx); k {
	case k3Lit:
		return c.decLiteral(rc, ctx, dst)
	case k3Implied:
		if !lengthName {
			return nil, errSymbol
		}
		return appendUint(dst, uint64(bodyLen)), nil
	case k3Tok:
		t := st.tokLast[ctx]
		if rc.bit(&st.tokHit[ctx]) == 0 {
			t = uint8(rc.tree(st.tokTree[:], 8))
			if !c.frozen {
				st.tokLast[ctx] = t
			}
		}
		if int(t) >= len(tokens3) {
			return nil, errSymbol
		}
		return append(dst, tokens3[t]...), nil
	case k3Int, k3IntSp:
		v := c.decRel(rc, ctx, false)
		if v < 0 || v >= 1<<62 {
			return nil, errSymbol
		}
		dst = appendUint(dst, uint64(v))
		if k == k3IntSp {
			dst = append(dst, ' ')
		}
		return dst, nil
	case k3Neg:
		v := c.decRel(rc, ctx, true)
		if v >= 0 || v <= -1<<62 {
			return nil, errSymbol
		}
		return appendUint(append(dst, '-'), uint64(-v)), nil
	case k3URI:
		n := c.decNum(rc, clsURIN)
		return appendFetionURI(dst, n, c.decNum(rc, clsURIP)), nil
	case k3CSeq:
		v := c.decRel(rc, ctx, false)
		if v < 0 || v >= 1<<62 {
			return nil, errSymbol
		}
		m := c.decCSeqMethod(rc)
		if int(m) >= len(methods) {
			return nil, errSymbol
		}
		dst = appendUint(dst, uint64(v))
		dst = append(dst, ' ')
		return append(dst, methods[m]...), nil
	case k3HexL, k3HexU:
		c.noDyn = true
		digits := hexLower
		if k == k3HexU {
			digits = hexUpper
		}
		for range 8 {
			w := rc.uniform(16)
			for s := 12; s >= 0; s -= 4 {
				dst = append(dst, digits[w>>uint(s)&15])
			}
		}
		return dst, nil
	case k3Date:
		c.noDyn = true
		d := uint32(readDirectBits(rc, 32))
		c.sc.lastDate, c.sc.hasDate = d, true
		return appendDate(dst, d), nil
	case k3DateDelta:
		c.noDyn = true
		delta := c.decNum(rc, clsDate)
		if !c.sc.hasDate || delta > uint64(0xFFFFFFFF-c.sc.lastDate) {
			return nil, errSymbol
		}
		c.sc.lastDate += uint32(delta)
		return appendDate(dst, c.sc.lastDate), nil
	case k3Tel:
		return appendUint(append(dst, telPrefix...), c.decNum(rc, clsTel)), nil
	case k3SipNum:
		dst = appendUint(append(dst, sipPrefix...), c.decNum(rc, clsSipNum))
		return append(dst, "@fetion.com.cn"...), nil
	}
	return nil, errSymbol
}

func (c *coder3) decCSeqMethod(rc *rcDecoder) uint8 {
	resp := 0
	exp := c.sc.reqMethod
	if c.sc.prevKind != start3Request {
		resp, exp = 1, c.sc.lastCSeqM
	}
	m := exp
	if rc.bit(&c.st.cseqHit[resp]) == 0 {
		m = uint8(rc.tree(c.st.cseqTree[:], 5))
	}
	c.sc.lastCSeqM = m
	return m
}
