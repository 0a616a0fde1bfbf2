package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// UAPool is many SIP user agents behind one UDP+TCP listener: every user
// registers the same host:port as contact with its own user part, so the
// Request-URI of an incoming MESSAGE says whose it is. It answers MESSAGE 200
// and reports the token in the body; it also sends MESSAGE as any user.
type UAPool struct {
	agent  *sipgo.UserAgent
	srv    *sipgo.Server
	cli    *sipgo.Client
	host   string
	port   int
	domain string
	pw     string
	// tr is nil for pools whose received MESSAGEs must not count as
	// delivered: the ceiling's ingress responder, the generator's senders
	// and the relay's own user agent.
	tr     *Tracker
	cancel context.CancelFunc

	bad   atomic.Uint64
	nonce atomic.Pointer[string] // last digest nonce; stateless on the bridge, so shared by all users
	nc    atomic.Uint64
	got   atomic.Uint64 // MESSAGEs received
}

// StartUAPool listens on a free loopback port (UDP and TCP). With a nil tr it
// answers and counts per user but reports no delivery.
func StartUAPool(ctx context.Context, domain, password string, tr *Tracker, log *slog.Logger) (*UAPool, error) {
	p := &UAPool{host: "127.0.0.1", domain: domain, pw: password, tr: tr}
	var err error
	p.agent, err = sipgo.NewUA(sipgo.WithUserAgent("bridge-bench"), sipgo.WithUserAgentHostname(p.host))
	if err != nil {
		return nil, fmt.Errorf("sip ua: %w", err)
	}
	p.srv, err = sipgo.NewServer(p.agent, sipgo.WithServerLogger(log))
	if err != nil {
		return nil, fmt.Errorf("sip server: %w", err)
	}
	p.srv.OnMessage(p.onMessage)
	p.srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	ctx, p.cancel = context.WithCancel(ctx)
	var last error
	for range 10 {
		pc, ln, err := listenBoth(p.host)
		if err != nil {
			last = err
			continue
		}
		rc, err := newResponderConn(pc.(*net.UDPConn), p.received)
		if err != nil {
			pc.Close()
			ln.Close()
			last = err
			continue
		}
		p.port = pc.LocalAddr().(*net.UDPAddr).Port
		go p.srv.ServeUDP(rc)
		go p.srv.ServeTCP(ln)
		go func() { <-ctx.Done(); pc.Close(); ln.Close() }()
		last = nil
		break
	}
	if last != nil {
		p.agent.Close()
		return nil, fmt.Errorf("sip listen: %w", last)
	}
	p.cli, err = sipgo.NewClient(p.agent, sipgo.WithClientHostname(p.host), sipgo.WithClientLogger(log))
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("sip client: %w", err)
	}
	return p, nil
}

// listenBoth opens UDP and TCP on the same free port.
func listenBoth(host string) (net.PacketConn, net.Listener, error) {
	pc, err := net.ListenPacket("udp", host+":0")
	if err != nil {
		return nil, nil, err
	}
	// The UAs take a flood of MESSAGEs; a dropped datagram costs the
	// bridge a 500 ms retransmission and would be charged to its latency.
	if uc, ok := pc.(*net.UDPConn); ok {
		uc.SetReadBuffer(4 << 20)
		uc.SetWriteBuffer(4 << 20)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		pc.Close()
		return nil, nil, err
	}
	return pc, ln, nil
}

// Addr is the pool's host:port.
func (p *UAPool) Addr() string { return net.JoinHostPort(p.host, strconv.Itoa(p.port)) }

// Close stops listening and closes the user agent.
func (p *UAPool) Close() {
	p.cancel()
	p.agent.Close()
}

// Received counts the MESSAGEs received.
func (p *UAPool) Received() uint64 { return p.got.Load() }

func (p *UAPool) onMessage(req *sip.Request, tx sip.ServerTransaction) {
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	p.received(req.Recipient.User, req.Body())
}

// received counts one MESSAGE to user and reports its token.
func (p *UAPool) received(user string, body []byte) {
	p.got.Add(1)
	text := string(body)
	if tok, ok := ParseToken(text); ok {
		p.tr.DeliveredAt(tok, AtSIP)
	} else if tok, ok := FindGroupToken(text); ok {
		p.tr.GroupDelivered(tok, AtSIP, user)
	} else {
		p.bad.Add(1)
	}
}

// Register registers user at the bridge (digest auth) with the pool as its
// contact and returns the final status code.
func (p *UAPool) Register(ctx context.Context, bridge, user string, expires int) (int, error) {
	host, port, err := splitHostPort(bridge)
	if err != nil {
		return 0, err
	}
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: host, Port: port})
	aor := "<sip:" + user + "@" + p.domain + ">"
	req.AppendHeader(sip.NewHeader("From", aor+";tag=r"+user))
	req.AppendHeader(sip.NewHeader("To", aor))
	req.AppendHeader(sip.NewHeader("Contact", "<sip:"+user+"@"+p.Addr()+">"))
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		return 0, fmt.Errorf("REGISTER %s: %w", user, err)
	}
	if res.StatusCode == 401 || res.StatusCode == 407 {
		res, err = p.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: user, Password: p.pw})
		if err != nil {
			return 0, fmt.Errorf("REGISTER %s with auth: %w", user, err)
		}
	}
	return int(res.StatusCode), nil
}

func splitHostPort(hp string) (string, int, error) {
	host, ps, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: %w", hp, err)
	}
	port, err := strconv.Atoi(ps)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: bad port", hp)
	}
	return host, port, nil
}

// errChallenge is a 401/407 that our own credentials could not satisfy.
var errChallenge = errors.New("sip: digest challenge not satisfied")

// Message sends a MESSAGE from user to the AOR user part toUser, to the SIP
// server at dst, and returns the final status. With auth set it answers the
// bridge's digest challenge up front: the bridge's nonces are stateless and
// live for minutes, so one challenge serves every user and the steady state
// is one round trip per message, as with a real client that caches its nonce.
func (p *UAPool) Message(ctx context.Context, dst, user, toUser, text string, auth bool) (int, error) {
	for attempt := 0; ; attempt++ {
		to := sip.Uri{Scheme: "sip", User: toUser, Host: p.domain}
		req := sip.NewRequest(sip.MESSAGE, to)
		req.AppendHeader(sip.NewHeader("From", "<sip:"+user+"@"+p.domain+">;tag="+sip.GenerateTagN(8)))
		req.AppendHeader(sip.NewHeader("To", "<sip:"+toUser+"@"+p.domain+">"))
		req.AppendHeader(sip.NewHeader("Content-Type", "text/plain;charset=UTF-8"))
		if auth {
			if n := p.nonce.Load(); n != nil {
				req.AppendHeader(sip.NewHeader("Authorization", p.authorization(user, *n, to.String())))
			}
		}
		req.SetBody([]byte(text))
		req.SetDestination(dst)
		res, err := p.cli.Do(ctx, req)
		if err != nil {
			return 0, fmt.Errorf("MESSAGE %s→%s: %w", user, toUser, err)
		}
		if res.StatusCode != 401 && res.StatusCode != 407 {
			return int(res.StatusCode), nil
		}
		if !auth || attempt > 0 {
			return int(res.StatusCode), errChallenge
		}
		h := res.GetHeader("WWW-Authenticate")
		if h == nil {
			return int(res.StatusCode), errChallenge
		}
		n, ok := digestParam(h.Value(), "nonce")
		if !ok {
			return int(res.StatusCode), errChallenge
		}
		p.nonce.Store(&n)
	}
}

// authorization renders RFC 2617 digest credentials (qop=auth).
func (p *UAPool) authorization(user, nonce, uri string) string {
	ha1 := md5hex(user + ":" + p.domain + ":" + p.pw)
	ha2 := md5hex("MESSAGE:" + uri)
	nc := fmt.Sprintf("%08x", p.nc.Add(1)&0xffffffff)
	cnonce := strconv.FormatInt(time.Now().UnixNano(), 36)
	resp := md5hex(ha1 + ":" + nonce + ":" + nc + ":" + cnonce + ":auth:" + ha2)
	return `Digest username="` + user + `", realm="` + p.domain + `", nonce="` + nonce + `", uri="` + uri +
		`", response="` + resp + `", algorithm=MD5, qop=auth, nc=` + nc + `, cnonce="` + cnonce + `"`
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// digestParam extracts one parameter of a WWW-Authenticate value.
func digestParam(v, name string) (string, bool) {
	v = strings.TrimSpace(v)
	rest, ok := strings.CutPrefix(v, "Digest ")
	if !ok {
		return "", false
	}
	for part := range strings.SplitSeq(rest, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), name) {
			continue
		}
		val = strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = val[1 : len(val)-1]
		}
		if val == "" {
			return "", false
		}
		return val, true
	}
	return "", false
}
