package mcp

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// canonMethod maps SIP method names to their SIP-C letters.
func canonMethod(m string) string {
	switch u := strings.ToUpper(m); u {
	case "REGISTER":
		return "R"
	case "MESSAGE":
		return "M"
	default:
		return u
	}
}

// reply answers req, echoing its I, Q and T.
func (c *conn) reply(req *Message, code int, reason string, extra []Header, body []byte) {
	resp := &Message{Code: code, Reason: reason, Version: req.Version}
	resp.Add("I", req.Get("I"))
	resp.Add("Q", req.Get("Q"))
	if t, ok := req.Lookup("T"); ok {
		resp.Add("T", t)
	}
	resp.Headers = append(resp.Headers, extra...)
	resp.SetBody(body)
	if err := c.send(resp); err != nil {
		c.log.Debug("mcp: reply not sent", "code", code, "err", err)
	}
}

// handle runs on the connection's worker goroutine, one request at a time.
func (c *conn) handle(ctx context.Context, req *Message) {
	if req.Get("I") == "" {
		c.reply(req, 400, "Bad Request", nil, nil)
		return
	}
	_, qm, err := req.CSeq()
	method := canonMethod(req.Method)
	if err != nil || canonMethod(qm) != method {
		c.log.Info("mcp: bad Q", "method", req.Method, "q", req.Get("Q"))
		c.reply(req, 400, "Bad Request", nil, nil)
		return
	}
	if method == "R" {
		c.register(ctx, req)
		return
	}
	if _, _, ok := c.registration(); !ok {
		c.reply(req, 401, "Unauthorized", nil, nil)
		return
	}
	switch method {
	case "M":
		c.message(ctx, req)
	case "S":
		if f := c.s.cfg.Service; f != nil {
			user, aor, _ := c.registration()
			if code, reason, res, ok := f(ctx, user, aor, req.Get("N"), req.Body); ok {
				c.reply(req, code, reason, nil, res)
				return
			}
		}
		var body string
		switch n := req.Get("N"); {
		case strings.EqualFold(n, "GetContactList"):
			body = `<results><contacts version="0"><buddies /></contacts></results>`
		case strings.EqualFold(n, "SetPresence"):
		default:
			body = `<results />`
		}
		c.reply(req, 200, "OK", nil, []byte(body))
	case "B", "BN", "O", "I", "A", "SUB":
		// No sessions, invitations or subscriptions are kept for handsets:
		// accepting them keeps real clients happy.
		c.reply(req, 200, "OK", nil, nil)
	default:
		c.reply(req, 501, "Not Implemented", nil, nil)
	}
}

// userOf takes the user out of an R's F header: a bare user or a URI.
func userOf(f string) (string, bool) {
	s := f
	if i := strings.IndexByte(s, '<'); i >= 0 {
		if j := strings.IndexByte(s[i:], '>'); j > 0 {
			s = s[i+1 : i+j]
		}
	}
	for _, p := range []string{"sip:", "sips:", "tel:"} {
		if len(s) > len(p) && strings.EqualFold(s[:len(p)], p) {
			s = s[len(p):]
			break
		}
	}
	if i := strings.IndexAny(s, ";@?"); i >= 0 {
		s = s[:i]
	}
	if s == "" || len(s) > 64 {
		return "", false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || strings.IndexByte("+-_.!~*'", ch) >= 0) {
			return "", false
		}
	}
	return s, true
}

// expiry reads X: absent → default, present → clamped; 0 stays 0.
func expiry(req *Message) (int, error) {
	x, ok := req.Lookup("X")
	if !ok {
		return defExpires, nil
	}
	n, err := strconv.Atoi(x)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad X %q", clip(x))
	}
	if n == 0 {
		return 0, nil
	}
	return min(max(n, minExpires), maxExpires), nil
}

func (c *conn) register(ctx context.Context, req *Message) {
	if c.fails >= maxAuthFails {
		c.reply(req, 403, "Forbidden", nil, nil)
		return
	}
	user, ok := userOf(req.Get("F"))
	x, err := expiry(req)
	if !ok || err != nil {
		c.log.Info("mcp: bad R", "f", req.Get("F"), "x", req.Get("X"))
		c.reply(req, 400, "Bad Request", nil, nil)
		return
	}
	cur, curAOR, registered := c.registration()
	if x == 0 {
		if registered && cur == user {
			c.unregister(ctx, curAOR)
		}
		c.reply(req, 200, "OK", []Header{{"X", "0"}}, nil)
		return
	}
	auth, hasA := req.Lookup("A")
	keepalive := registered && cur == user && !hasA && len(req.Body) == 0 && req.Get("I") == c.regCallID
	if !keepalive && !c.s.cfg.OpenRegistration {
		if !hasA || c.nonce == "" {
			c.challenge(req)
			return
		}
		nonce := c.nonce
		c.nonce = "" // single use, right or wrong
		if err := c.checkDigest(user, nonce, auth); err != nil {
			c.fails++
			c.log.Info("mcp: digest failed", "user", user, "err", err, "fails", c.fails)
			if c.fails >= maxAuthFails {
				c.reply(req, 403, "Forbidden", nil, nil)
				return
			}
			c.challenge(req)
			return
		}
	}
	aor, err := msg.FromAOR("sip:"+user+"@"+c.s.cfg.Domain, c.s.cfg.CountryCode)
	if err != nil {
		c.log.Info("mcp: user has no valid AOR", "user", user, "err", err)
		c.reply(req, 403, "Forbidden", nil, nil)
		return
	}
	if registered && curAOR != aor {
		c.unregister(ctx, curAOR) // the connection changed user
	}
	now := time.Now()
	b := presence.Binding{AOR: aor, Contact: c.id, Via: "mcp", Expires: now.Add(time.Duration(x) * time.Second), Updated: now}
	if err := c.s.reg.Register(ctx, b); err != nil {
		c.log.Warn("mcp: register failed", "aor", aor, "err", err)
		c.reply(req, 500, "Server Internal Error", nil, nil)
		return
	}
	c.rmu.Lock()
	c.user, c.aor, c.registered, c.expires = user, aor, true, b.Expires
	c.loggedIn()
	c.rmu.Unlock()
	c.regCallID = req.Get("I")
	c.fails = 0
	if !keepalive {
		c.log.Info("mcp registered", "user", user, "aor", aor, "expires", x)
	}
	c.reply(req, 200, "OK", []Header{{"X", strconv.Itoa(x)}}, nil)
}

func (c *conn) unregister(ctx context.Context, aor msg.Address) {
	c.rmu.Lock()
	c.registered = false
	c.rmu.Unlock()
	c.regCallID = ""
	if err := c.s.reg.Unregister(ctx, aor, c.id); err != nil {
		c.log.Warn("mcp: unregister failed", "aor", aor, "err", err)
	}
}

func (c *conn) challenge(req *Message) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		c.reply(req, 500, "Server Internal Error", nil, nil)
		return
	}
	c.nonce = strings.ToUpper(hex.EncodeToString(b[:]))
	c.reply(req, 401, "Unauthorized", []Header{{"W", `Digest algorithm="MD5-sess",nonce="` + c.nonce + `"`}}, nil)
}

var errDigest = errors.New("wrong digest answer")

// DigestResponse computes the handset's answer to a challenge:
// hex(md5(ha1 ":" nonce ":" cnonce)), ha1 = hex(md5(user ":" domain ":" password)).
func DigestResponse(ha1, nonce, cnonce string) string {
	return md5hex(strings.ToLower(ha1) + ":" + nonce + ":" + cnonce)
}

// HA1 computes hex(md5(user ":" domain ":" password)).
func HA1(user, domain, password string) string { return md5hex(user + ":" + domain + ":" + password) }

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

func (c *conn) checkDigest(user, nonce, header string) error {
	p, err := digestParams(header)
	if err != nil {
		return err
	}
	resp, cnonce := strings.ToLower(p["response"]), p["cnonce"]
	if resp == "" || cnonce == "" {
		return fmt.Errorf("A without response or cnonce: %w", errDigest)
	}
	// The ordinary credential, then, when it does not match, each issued
	// one (one per device); every candidate compared in constant time.
	match, known := 0, false
	if c.s.cfg.HA1 != nil {
		if ha1, ok := c.s.cfg.HA1(user); ok {
			known = true
			match = subtle.ConstantTimeCompare([]byte(DigestResponse(ha1, nonce, cnonce)), []byte(resp))
		}
	}
	if match != 1 && c.s.cfg.Issued != nil {
		for _, ha1 := range c.s.cfg.Issued(user) {
			known = true
			match |= subtle.ConstantTimeCompare([]byte(DigestResponse(ha1, nonce, cnonce)), []byte(resp))
		}
	}
	if !known {
		// Same outcome as a wrong password: no user enumeration.
		return fmt.Errorf("unknown user: %w", errDigest)
	}
	if match != 1 {
		return errDigest
	}
	return nil
}

// digestParams parses `Digest k="v",k=v,...` (names lower-cased).
func digestParams(v string) (map[string]string, error) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(v), " ")
	if !strings.EqualFold(scheme, "Digest") {
		return nil, fmt.Errorf("A scheme %q is not Digest: %w", clip(scheme), errDigest)
	}
	out := make(map[string]string)
	for s := rest; ; {
		s = strings.TrimLeft(s, " \t,")
		if s == "" {
			return out, nil
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || len(out) > 16 {
			return nil, fmt.Errorf("bad A parameters: %w", errDigest)
		}
		name := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val string
		if strings.HasPrefix(s, `"`) {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unterminated A parameter %q: %w", name, errDigest)
			}
			val, s = s[1:1+end], s[2+end:]
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			val, s = strings.TrimSpace(s[:end]), s[end:]
		}
		out[name] = val
	}
}

// ParseTarget maps an M's T (sip:N@host[;p=..], tel:+N, a bare number, or
// sip:user@host) to the recipient's Address.
func ParseTarget(t, cc string) (msg.Address, error) {
	s := strings.TrimSpace(t)
	if len(s) > 4 && strings.EqualFold(s[:4], "tel:") {
		num := s[4:]
		if i := strings.IndexByte(num, ';'); i >= 0 {
			num = num[:i] // tel: parameters (phone-context...) are not needed
		}
		return msg.NormalizeNumber(num, msg.TONUnknown, msg.NPIISDN, cc)
	}
	if !strings.ContainsAny(s, ":@<") {
		return msg.NormalizeNumber(s, msg.TONUnknown, msg.NPIISDN, cc)
	}
	return msg.FromAOR(s, cc)
}

// bodyText returns the text of an M body by content type.
func bodyText(ctype string, body []byte) (string, int, error) {
	typ, _, _ := strings.Cut(ctype, ";")
	typ = strings.ToLower(strings.TrimSpace(typ))
	if !utf8.Valid(body) {
		return "", 400, errors.New("body is not UTF-8")
	}
	switch typ {
	case "", "text/plain":
		return string(body), 0, nil
	case "text/html-fragment":
		return FragmentText(string(body)), 0, nil
	}
	return "", 415, fmt.Errorf("content type %q not supported", clip(typ))
}

// FragmentText extracts the text of a Fetion text/html-fragment such as
// <Font Face='Arial' Color='-16777216' Size='10.5'>a &amp; b</Font>: tags
// are dropped (a <br> becomes a newline) and entities unescaped.
func FragmentText(s string) string {
	var b strings.Builder
	for s != "" {
		lt := strings.IndexByte(s, '<')
		if lt < 0 {
			b.WriteString(html.UnescapeString(s))
			break
		}
		b.WriteString(html.UnescapeString(s[:lt]))
		gt := strings.IndexByte(s[lt:], '>')
		if gt < 0 {
			b.WriteString(html.UnescapeString(s[lt:])) // a lone '<' is text
			break
		}
		tag := strings.ToLower(strings.Trim(s[lt+1:lt+gt], " /"))
		if tag == "br" || strings.HasPrefix(tag, "br ") {
			b.WriteByte('\n')
		}
		s = s[lt+gt+1:]
	}
	return b.String()
}

func (c *conn) message(ctx context.Context, req *Message) {
	_, from, _ := c.registration()
	to, err := ParseTarget(req.Get("T"), c.s.cfg.CountryCode)
	if err != nil {
		c.log.Info("mcp: bad M target", "t", req.Get("T"), "err", err)
		c.reply(req, 400, "Bad Request", nil, nil)
		return
	}
	text, code, err := bodyText(req.Get("C"), req.Body)
	if err == nil && text == "" {
		code, err = 400, errors.New("empty message")
	}
	if err != nil {
		c.log.Info("mcp: bad M body", "err", err)
		reason := "Bad Request"
		if code == 415 {
			reason = "Unsupported Media Type"
		}
		c.reply(req, code, reason, nil, nil)
		return
	}
	m := &msg.Message{
		From: from, To: to, Text: text,
		Origin: msg.Origin{Kind: msg.FromMCP, Account: string(from), Ref: req.Get("I")},
	}
	sctx, cancel := context.WithTimeout(ctx, submitTimeout)
	err = msg.Accept(sctx, c.s.sub, m)
	cancel()
	switch {
	case err == nil:
	case errors.Is(err, msg.ErrOverloaded):
		c.reply(req, 503, "Service Unavailable", nil, nil)
		return
	case errors.Is(err, msg.ErrNoRoute):
		c.reply(req, 404, "Not Found", nil, nil)
		return
	case errors.Is(err, msg.ErrTooLong):
		c.reply(req, 413, "Request Entity Too Large", nil, nil)
		return
	default:
		c.log.Warn("mcp: submit failed", "from", from, "to", to, "err", err)
		c.reply(req, 500, "Server Internal Error", nil, nil)
		return
	}
	extra := []Header{{"D", time.Now().UTC().Format(dateFormat)}}
	if m.ID != "" && validText(m.ID) {
		extra = append(extra, Header{"XI", m.ID})
	}
	sms := strings.EqualFold(req.Get("N"), "SendCatSMS")
	if !sms && c.s.cfg.Lookup != nil && to.IsMSISDN() {
		_, online := c.s.cfg.Lookup(to)
		sms = !online
	}
	if sms {
		c.reply(req, 280, "Send SMS OK", extra, nil)
		return
	}
	c.reply(req, 200, "OK", extra, nil)
}
