package corpus

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// RFC 3261 sessions built and rendered with sipgo's message types, laid
// out as a sipgo client and server lay them out (Via, From, To, Call-ID,
// CSeq, Max-Forwards first; responses from sip.NewResponseFromRequest).
// Randomness (tags, branches, Call-IDs) comes from the seeded generator in
// sipgo's formats, so a family is deterministic.

type sipScenario int

const (
	sipIM sipScenario = iota
	sipPresence
	sipCall
)

type sipGen struct {
	r         *rand.Rand
	out       [][]byte
	user      string
	domain    string
	host      string
	port      int
	transport string
	display   string
	ua        string
	peers     []string
	vc        *vocab
	t         time.Time
	cseq      uint32
	regCallID string
	regTag    string
	proxyIP   string
}

func sipFamily(sc sipScenario) func(seed uint64, n int) [][][]byte {
	return func(seed uint64, n int) [][][]byte {
		var ss [][][]byte
		for i := range n {
			g := newSIPGen(seed+uint64(i)*104729, sc)
			ss = append(ss, g.session(sc))
		}
		return ss
	}
}

func newSIPGen(seed uint64, sc sipScenario) *sipGen {
	r := newRand(seed, 0x5150+uint64(sc))
	vc := vocabA
	if sc == sipCall {
		vc = vocabB
	}
	g := &sipGen{r: r, vc: vc, t: time.Date(2024, time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), 0, 0, time.UTC)}
	users := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "oscar"}
	g.user = users[r.IntN(len(users))]
	if r.IntN(3) == 0 {
		g.user = fmt.Sprint(1000 + r.IntN(9000))
	}
	g.domain = []string{"example.com", "sip.example.org", "voip.carrier.net", "im.operator.cn", "10.20.0.5"}[r.IntN(5)]
	g.host = fmt.Sprintf("192.168.%d.%d", r.IntN(256), 2+r.IntN(250))
	if r.IntN(3) == 0 {
		g.host = fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), 2+r.IntN(250))
	}
	g.port = []int{5060, 5060, 5062, 35060 + r.IntN(1000), 50000 + r.IntN(10000)}[r.IntN(5)]
	g.transport = []string{"UDP", "UDP", "TCP", "TLS"}[r.IntN(4)]
	if r.IntN(2) == 0 {
		g.display = strings.ToUpper(g.user[:1]) + g.user[1:]
	}
	g.ua = []string{"sipgo", "sipgo-ua/1.7", "im-client/2.3", ""}[r.IntN(4)]
	g.proxyIP = fmt.Sprintf("203.0.113.%d", 1+r.IntN(250))
	for range 2 + r.IntN(8) {
		p := users[r.IntN(len(users))]
		if r.IntN(3) == 0 {
			p = fmt.Sprint(1000 + r.IntN(9000))
		}
		g.peers = append(g.peers, p)
	}
	return g
}

const sipLetters = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

func (g *sipGen) letters(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = sipLetters[g.r.IntN(len(sipLetters))]
	}
	return string(b)
}

func (g *sipGen) uuid() string {
	var b [16]byte
	for i := range b {
		b[i] = byte(g.r.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (g *sipGen) branch() string { return sip.RFC3261BranchMagicCookie + "." + g.letters(16) }

func (g *sipGen) self() sip.Uri { return sip.Uri{Scheme: "sip", User: g.user, Host: g.domain} }

func (g *sipGen) contact() *sip.ContactHeader {
	c := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: g.user, Host: g.host, Port: g.port}}
	if g.transport != "UDP" {
		c.Address.UriParams = sip.NewParams()
		c.Address.UriParams.Add("transport", strings.ToLower(g.transport))
	}
	return c
}

func (g *sipGen) emit(m interface{ String() string }) { g.out = append(g.out, []byte(m.String())) }

// dialog is what a request needs beyond its method: the peer and the ids.
type dialog struct {
	to       sip.Uri
	callID   string
	fromTag  string
	toTag    string
	cseq     uint32
	route    []string
	incoming bool // the peer sent the first request
}

// request builds a request as sipgo's ClientRequestBuild lays it out.
func (g *sipGen) request(method sip.RequestMethod, d *dialog, body []byte, extra ...sip.Header) *sip.Request {
	target := d.to
	req := sip.NewRequest(method, target)
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: g.transport, Host: g.host, Port: g.port, Params: sip.NewParams()}
	via.Params.Add("branch", g.branch())
	if g.transport == "UDP" {
		via.Params.Add("rport", "")
	}
	from := &sip.FromHeader{DisplayName: g.display, Address: g.self(), Params: sip.NewParams()}
	from.Params.Add("tag", d.fromTag)
	to := &sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: d.to.User, Host: d.to.Host}, Params: sip.NewParams()}
	if d.toTag != "" {
		to.Params.Add("tag", d.toTag)
	}
	cid := sip.CallIDHeader(d.callID)
	if method != sip.ACK && method != sip.CANCEL {
		d.cseq++
	}
	cs := &sip.CSeqHeader{SeqNo: d.cseq, MethodName: method}
	if method == sip.CANCEL {
		cs.MethodName = sip.INVITE
	}
	mf := sip.MaxForwardsHeader(70)
	for _, h := range []sip.Header{via, from, to, &cid, cs, &mf} {
		req.AppendHeader(h)
	}
	for _, r := range d.route {
		req.AppendHeader(sip.NewHeader("Route", r))
	}
	for _, h := range extra {
		req.AppendHeader(h)
	}
	if g.ua != "" {
		req.AppendHeader(sip.NewHeader("User-Agent", g.ua))
	}
	req.SetBody(body)
	return req
}

// answer is the peer's (or proxy's) response, made by sipgo.
func (g *sipGen) answer(req *sip.Request, code int, reason string, d *dialog, body []byte, extra ...sip.Header) *sip.Response {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	if to := res.To(); to != nil && code != 100 {
		if d.toTag == "" {
			d.toTag = g.uuid()
		}
		to.Params.Add("tag", d.toTag)
	}
	for _, h := range extra {
		res.AppendHeader(h)
	}
	res.SetBody(body)
	return res
}

// incoming builds a request sent to us by a peer through the proxy.
func (g *sipGen) incoming(method sip.RequestMethod, peer string, d *dialog, body []byte, extra ...sip.Header) *sip.Request {
	req := sip.NewRequest(method, sip.Uri{Scheme: "sip", User: g.user, Host: g.host, Port: g.port})
	for _, hop := range []string{g.proxyIP, fmt.Sprintf("198.51.100.%d", 1+g.r.IntN(250))} {
		via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: g.transport, Host: hop, Port: 5060, Params: sip.NewParams()}
		via.Params.Add("branch", g.branch())
		req.AppendHeader(via)
	}
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: peer, Host: g.domain}, Params: sip.NewParams()}
	from.Params.Add("tag", d.toTag)
	to := &sip.ToHeader{DisplayName: g.display, Address: g.self(), Params: sip.NewParams()}
	if d.fromTag != "" && method != sip.MESSAGE && method != sip.INVITE {
		to.Params.Add("tag", d.fromTag)
	}
	cid := sip.CallIDHeader(d.callID)
	d.cseq++
	cs := &sip.CSeqHeader{SeqNo: d.cseq, MethodName: method}
	mf := sip.MaxForwardsHeader(69)
	for _, h := range []sip.Header{from, to, &cid, cs, &mf} {
		req.AppendHeader(h)
	}
	for _, h := range extra {
		req.AppendHeader(h)
	}
	req.SetBody(body)
	return req
}

func (g *sipGen) ourAnswer(req *sip.Request, code int, reason string, tag string, body []byte, extra ...sip.Header) *sip.Response {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	if to := res.To(); to != nil && code != 100 && tag != "" {
		to.Params.Add("tag", tag)
	}
	for _, h := range extra {
		res.AppendHeader(h)
	}
	res.SetBody(body)
	return res
}

func (g *sipGen) peerURI() sip.Uri {
	return sip.Uri{Scheme: "sip", User: g.peers[g.r.IntN(len(g.peers))], Host: g.domain}
}

func (g *sipGen) session(sc sipScenario) [][]byte {
	g.out = nil
	g.regCallID = g.uuid()
	g.regTag = g.letters(16)
	g.cseq = uint32(g.r.IntN(32768))
	g.register(3600)
	n := 8 + g.r.IntN(40)
	for i := 0; i < n; i++ {
		switch sc {
		case sipIM:
			switch x := g.r.IntN(10); {
			case x < 5:
				g.message()
			case x < 8:
				g.messageIn()
			case x < 9:
				g.options()
			default:
				g.register(3600)
			}
		case sipPresence:
			switch x := g.r.IntN(10); {
			case x < 5:
				g.notifyIn()
			case x < 7:
				g.subscribe()
			case x < 8:
				g.publish()
			case x < 9:
				g.winfo()
			default:
				g.register(3600)
			}
		case sipCall:
			switch x := g.r.IntN(10); {
			case x < 5:
				g.call()
			case x < 8:
				g.callIn()
			case x < 9:
				g.options()
			default:
				g.register(3600)
			}
		}
	}
	g.register(0)
	return g.out
}

func md5hex(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }

func (g *sipGen) register(expires int) {
	d := &dialog{to: sip.Uri{Scheme: "sip", Host: g.domain}, callID: g.regCallID, fromTag: g.regTag, cseq: g.cseq}
	d.to.User = ""
	ct := g.contact()
	ex := sip.ExpiresHeader(uint32(expires))
	req := g.request(sip.REGISTER, d, nil, ct, &ex)
	// REGISTER's To is the address of record.
	req.To().Address = g.self()
	g.emit(req)
	realm := g.domain
	nonce := g.letters(12) + hex.EncodeToString([]byte(g.letters(8)))
	chal := g.answer(req, 401, "Unauthorized", &dialog{}, nil,
		sip.NewHeader("WWW-Authenticate", fmt.Sprintf(`Digest realm="%s", nonce="%s", qop="auth", algorithm=MD5`, realm, nonce)))
	chal.To().Params.Remove("tag")
	g.emit(chal)
	cnonce := g.letters(16)
	resp := md5hex(md5hex(g.user+":"+realm+":secret") + ":" + nonce + ":00000001:" + cnonce + ":auth:" + md5hex("REGISTER:sip:"+g.domain))
	ex2 := sip.ExpiresHeader(uint32(expires))
	req2 := g.request(sip.REGISTER, d, nil, g.contact(), &ex2,
		sip.NewHeader("Authorization", fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="sip:%s", response="%s", algorithm=MD5, cnonce="%s", qop=auth, nc=00000001`, g.user, realm, nonce, g.domain, resp, cnonce)))
	req2.To().Address = g.self()
	g.emit(req2)
	ok := g.answer(req2, 200, "OK", &dialog{}, nil, g.contactExpires(expires), sip.NewHeader("Date", g.tick(5)))
	ok.To().Params.Remove("tag")
	ok.To().Params.Add("tag", g.letters(10))
	g.emit(ok)
	g.cseq = d.cseq
}

func (g *sipGen) contactExpires(expires int) sip.Header {
	c := g.contact()
	c.Params = sip.NewParams()
	c.Params.Add("expires", fmt.Sprint(expires))
	return c
}

func (g *sipGen) tick(maxSec int) string {
	g.t = g.t.Add(time.Duration(1+g.r.IntN(maxSec)) * time.Second)
	return g.t.Format(time.RFC1123)
}

func (g *sipGen) text() string {
	s := g.vc.phrases[g.r.IntN(len(g.vc.phrases))]
	for g.r.IntN(3) == 0 {
		s += " " + g.vc.phrases[g.r.IntN(len(g.vc.phrases))]
	}
	return s
}

func (g *sipGen) message() {
	d := &dialog{to: g.peerURI(), callID: g.uuid(), fromTag: g.letters(16), cseq: uint32(g.r.IntN(32768))}
	ct := sip.ContentTypeHeader("text/plain")
	req := g.request(sip.MESSAGE, d, []byte(g.text()), &ct)
	g.emit(req)
	if g.r.IntN(10) == 0 {
		g.emit(g.answer(req, 404, "Not Found", d, nil))
		return
	}
	g.emit(g.answer(req, 200, "OK", d, nil))
}

func (g *sipGen) messageIn() {
	peer := g.peers[g.r.IntN(len(g.peers))]
	d := &dialog{callID: g.uuid(), toTag: g.letters(16), cseq: uint32(g.r.IntN(32768))}
	ct := sip.ContentTypeHeader("text/plain")
	if g.r.IntN(4) == 0 {
		ct = sip.ContentTypeHeader("text/plain;charset=UTF-8")
	}
	req := g.incoming(sip.MESSAGE, peer, d, []byte(g.text()), &ct)
	g.emit(req)
	g.emit(g.ourAnswer(req, 200, "OK", g.uuid(), nil))
}

func (g *sipGen) options() {
	d := &dialog{to: sip.Uri{Scheme: "sip", Host: g.domain}, callID: g.uuid(), fromTag: g.letters(16), cseq: 0}
	req := g.request(sip.OPTIONS, d, nil, sip.NewHeader("Accept", "application/sdp"))
	g.emit(req)
	g.emit(g.answer(req, 200, "OK", d, nil, sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, SUBSCRIBE, NOTIFY"), sip.NewHeader("Accept", "application/sdp")))
}

func (g *sipGen) pidf(entity string, open bool, note string) []byte {
	st := "closed"
	if open {
		st = "open"
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"%s\">\n<tuple id=\"%s\">\n<status><basic>%s</basic></status>\n", entity, g.letters(8), st)
	if note != "" {
		fmt.Fprintf(&sb, "<note>%s</note>\n", note)
	}
	sb.WriteString("</tuple>\n</presence>\n")
	return []byte(sb.String())
}

func (g *sipGen) subscribe() {
	d := &dialog{to: g.peerURI(), callID: g.uuid(), fromTag: g.letters(16), cseq: uint32(g.r.IntN(32768))}
	ex := sip.ExpiresHeader(3600)
	req := g.request(sip.SUBSCRIBE, d, nil, g.contact(), sip.NewHeader("Event", "presence"), sip.NewHeader("Accept", "application/pidf+xml"), &ex)
	g.emit(req)
	g.emit(g.answer(req, 202, "Accepted", d, nil, &ex))
	n := g.incoming(sip.NOTIFY, d.to.User, &dialog{callID: d.callID, toTag: d.toTag, fromTag: d.fromTag, cseq: uint32(g.r.IntN(100))},
		g.pidf("sip:"+d.to.User+"@"+g.domain, g.r.IntN(2) == 0, ""),
		sip.NewHeader("Event", "presence"), sip.NewHeader("Subscription-State", "active;expires=3600"), ptr(sip.ContentTypeHeader("application/pidf+xml")))
	g.emit(n)
	g.emit(g.ourAnswer(n, 200, "OK", "", nil))
}

func ptr[T any](v T) *T { return &v }

func (g *sipGen) notifyIn() {
	peer := g.peers[g.r.IntN(len(g.peers))]
	d := &dialog{callID: g.uuid(), toTag: g.letters(16), fromTag: g.letters(16), cseq: uint32(g.r.IntN(100))}
	note := ""
	if g.r.IntN(2) == 0 {
		note = g.vc.impresas[g.r.IntN(len(g.vc.impresas))]
	}
	state := fmt.Sprintf("active;expires=%d", 60+g.r.IntN(3540))
	n := g.incoming(sip.NOTIFY, peer, d, g.pidf("sip:"+peer+"@"+g.domain, g.r.IntN(3) > 0, note),
		sip.NewHeader("Event", "presence"), sip.NewHeader("Subscription-State", state), ptr(sip.ContentTypeHeader("application/pidf+xml")))
	g.emit(n)
	g.emit(g.ourAnswer(n, 200, "OK", "", nil))
}

func (g *sipGen) publish() {
	d := &dialog{to: g.self(), callID: g.uuid(), fromTag: g.letters(16), cseq: uint32(g.r.IntN(32768))}
	ex := sip.ExpiresHeader(600)
	hs := []sip.Header{sip.NewHeader("Event", "presence"), &ex, ptr(sip.ContentTypeHeader("application/pidf+xml"))}
	if g.r.IntN(2) == 0 {
		hs = append(hs, sip.NewHeader("SIP-If-Match", g.letters(10)))
	}
	req := g.request(sip.PUBLISH, d, g.pidf("sip:"+g.user+"@"+g.domain, true, g.vc.impresas[g.r.IntN(len(g.vc.impresas))]), hs...)
	g.emit(req)
	g.emit(g.answer(req, 200, "OK", d, nil, sip.NewHeader("SIP-ETag", g.letters(10)), &ex))
}

func (g *sipGen) winfo() {
	d := &dialog{to: g.self(), callID: g.uuid(), fromTag: g.letters(16), cseq: uint32(g.r.IntN(32768))}
	ex := sip.ExpiresHeader(3600)
	req := g.request(sip.SUBSCRIBE, d, nil, g.contact(), sip.NewHeader("Event", "presence.winfo"), sip.NewHeader("Accept", "application/watcherinfo+xml"), &ex)
	g.emit(req)
	g.emit(g.answer(req, 200, "OK", d, nil, &ex))
	var sb strings.Builder
	fmt.Fprintf(&sb, "<?xml version=\"1.0\"?>\n<watcherinfo xmlns=\"urn:ietf:params:xml:ns:watcherinfo\" version=\"%d\" state=\"full\">\n<watcher-list resource=\"sip:%s@%s\" package=\"presence\">\n", g.r.IntN(20), g.user, g.domain)
	for range 1 + g.r.IntN(4) {
		p := g.peers[g.r.IntN(len(g.peers))]
		fmt.Fprintf(&sb, "<watcher id=\"%s\" event=\"subscribe\" status=\"%s\">sip:%s@%s</watcher>\n", g.letters(8), []string{"active", "pending"}[g.r.IntN(2)], p, g.domain)
	}
	sb.WriteString("</watcher-list>\n</watcherinfo>\n")
	n := g.incoming(sip.NOTIFY, g.user, &dialog{callID: d.callID, toTag: d.toTag, fromTag: d.fromTag, cseq: 1}, []byte(sb.String()),
		sip.NewHeader("Event", "presence.winfo"), sip.NewHeader("Subscription-State", "active;expires=3600"), ptr(sip.ContentTypeHeader("application/watcherinfo+xml")))
	g.emit(n)
	g.emit(g.ourAnswer(n, 200, "OK", "", nil))
}

func (g *sipGen) sdp(sess uint64, ver int, mode string) []byte {
	port := 10000 + 2*g.r.IntN(10000)
	codecs := [][2]string{{"0", "PCMU/8000"}, {"8", "PCMA/8000"}, {"9", "G722/8000"}, {"111", "opus/48000/2"}, {"101", "telephone-event/8000"}}
	n := 2 + g.r.IntN(4)
	var pts []string
	for _, c := range codecs[:n] {
		pts = append(pts, c[0])
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "v=0\r\no=- %d %d IN IP4 %s\r\ns=sipgo\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP %s\r\n", sess, ver, g.host, g.host, port, strings.Join(pts, " "))
	for _, c := range codecs[:n] {
		fmt.Fprintf(&sb, "a=rtpmap:%s %s\r\n", c[0], c[1])
	}
	if n > 4 {
		sb.WriteString("a=fmtp:101 0-16\r\n")
	}
	fmt.Fprintf(&sb, "a=ptime:20\r\na=%s\r\n", mode)
	return []byte(sb.String())
}

func (g *sipGen) call() {
	d := &dialog{to: g.peerURI(), callID: g.uuid(), fromTag: g.letters(16), cseq: uint32(g.r.IntN(32768))}
	sess := g.r.Uint64N(1 << 62)
	ct := ptr(sip.ContentTypeHeader("application/sdp"))
	inv := g.request(sip.INVITE, d, g.sdp(sess, 1, "sendrecv"), g.contact(), ct)
	g.emit(inv)
	g.emit(g.answer(inv, 100, "Trying", &dialog{}, nil))
	peerContact := sip.NewHeader("Contact", fmt.Sprintf("<sip:%s@198.51.100.%d:5060>", d.to.User, 1+g.r.IntN(250)))
	if g.r.IntN(5) == 0 {
		g.emit(g.answer(inv, 180, "Ringing", d, nil, peerContact))
		cancel := g.request(sip.CANCEL, d, nil)
		b, _ := inv.Via().Params.Get("branch")
		cancel.Via().Params.Add("branch", b)
		g.emit(cancel)
		g.emit(g.answer(cancel, 200, "OK", d, nil))
		g.emit(g.answer(inv, 487, "Request Terminated", d, nil))
		ack := g.request(sip.ACK, d, nil)
		g.emit(ack)
		return
	}
	g.emit(g.answer(inv, 180, "Ringing", d, nil, peerContact))
	g.emit(g.answer(inv, 200, "OK", d, g.sdp(g.r.Uint64N(1<<62), 1, "sendrecv"), peerContact, ct))
	ack := g.request(sip.ACK, d, nil)
	g.emit(ack)
	if g.r.IntN(3) == 0 {
		re := g.request(sip.INVITE, d, g.sdp(sess, 2, "sendonly"), g.contact(), ct)
		g.emit(re)
		g.emit(g.answer(re, 200, "OK", d, g.sdp(g.r.Uint64N(1<<62), 2, "recvonly"), peerContact, ct))
		g.emit(g.request(sip.ACK, d, nil))
	}
	for range g.r.IntN(4) {
		info := g.request(sip.INFO, d, []byte(fmt.Sprintf("Signal=%d\r\nDuration=160\r\n", g.r.IntN(10))), ptr(sip.ContentTypeHeader("application/dtmf-relay")))
		g.emit(info)
		g.emit(g.answer(info, 200, "OK", d, nil))
	}
	g.tick(300)
	bye := g.request(sip.BYE, d, nil)
	g.emit(bye)
	g.emit(g.answer(bye, 200, "OK", d, nil))
}

func (g *sipGen) callIn() {
	peer := g.peers[g.r.IntN(len(g.peers))]
	d := &dialog{callID: g.uuid(), toTag: g.letters(16), cseq: uint32(g.r.IntN(32768))}
	ct := ptr(sip.ContentTypeHeader("application/sdp"))
	inv := g.incoming(sip.INVITE, peer, d, g.sdp(g.r.Uint64N(1<<62), 1, "sendrecv"), sip.NewHeader("Contact", fmt.Sprintf("<sip:%s@198.51.100.%d:5060>", peer, 1+g.r.IntN(250))), ct)
	g.emit(inv)
	tag := g.uuid()
	g.emit(g.ourAnswer(inv, 180, "Ringing", tag, nil))
	if g.r.IntN(4) == 0 {
		g.emit(g.ourAnswer(inv, 486, "Busy Here", tag, nil))
		return
	}
	g.emit(g.ourAnswer(inv, 200, "OK", tag, g.sdp(g.r.Uint64N(1<<62), 1, "sendrecv"), g.contact(), ct))
	ackD := &dialog{callID: d.callID, toTag: d.toTag, fromTag: tag, cseq: d.cseq - 1}
	ack := g.incoming(sip.ACK, peer, ackD, nil)
	g.emit(ack)
	g.tick(300)
	// We hang up.
	bd := &dialog{to: sip.Uri{Scheme: "sip", User: peer, Host: g.domain}, callID: d.callID, fromTag: tag, toTag: d.toTag, cseq: uint32(g.r.IntN(1000))}
	bye := g.request(sip.BYE, bd, nil)
	g.emit(bye)
	g.emit(g.answer(bye, 200, "OK", bd, nil))
}
