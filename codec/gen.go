package codec

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

// GenerateCorpus returns a deterministic, realistic SIP-C session of about
// n messages (one handset link, both directions, in order) for tests and
// benchmarks (format version 2 was tuned with it; version 3 is tuned on
// codec/corpus): registration with digest, contact list,
// subscriptions, presence notifications, invitations, instant messages,
// SMS sends, keep-alives, and a share of RFC 3261 SIP traffic. The same
// seed always gives the same bytes.
func GenerateCorpus(seed uint64, n int) [][]byte {
	g := &gen{r: rand.New(rand.NewPCG(seed, seed^0x5eed)), t: time.Date(2009, 4, 16, 14, 0, 0, 0, time.UTC)}
	for len(g.out) < n {
		g.session()
	}
	return g.out[:n]
}

// GenerateSessions returns n deterministic sessions, each one handset
// connection from login to logout (stateful state resets between them).
func GenerateSessions(seed uint64, n int) [][][]byte {
	g := &gen{r: rand.New(rand.NewPCG(seed, seed^0x5eed)), t: time.Date(2009, 4, 16, 14, 0, 0, 0, time.UTC)}
	sessions := make([][][]byte, 0, n)
	for range n {
		g.out = nil
		g.session()
		sessions = append(sessions, g.out)
	}
	return sessions
}

type buddy struct {
	num, p uint64
	name   string
}

type gen struct {
	r      *rand.Rand
	out    [][]byte
	t      time.Time
	self   buddy
	buds   []buddy
	callID int
	regQ   int
}

var (
	genNames = []string{"jiaren", "chengdu", "friends", "work", "classmates", "family", "beijing", "team"}
	genWords = []string{"ni hao", "hello", "where are you", "ok", "see you tomorrow", "haha", "dinner at 7?",
		"on my way", "call me", "thanks!", "good night", "meeting moved to 3pm", "\xe4\xbd\xa0\xe5\xa5\xbd",
		"\xe5\x9c\xa8\xe5\x90\x97", "\xe5\xa5\xbd\xe7\x9a\x84", "lol", "busy now", "what time?", "a", "b"}
	genNick = []string{"xiaoming", "lili", "\xe5\xb0\x8f\xe7\x8e\x8b", "Tom", "jack", "amy", "wangwei", "zhangsan"}
)

func (g *gen) num() uint64  { return 500000000 + g.r.Uint64N(400000000) }
func (g *gen) port() uint64 { return 1000 + g.r.Uint64N(9000) }
func (g *gen) pick(s []string) string {
	return s[g.r.IntN(len(s))]
}
func (g *gen) hex(upper bool) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(g.r.Uint32())
	}
	return string(appendHex(nil, b[:], upper))
}
func (g *gen) uri(b buddy) string { return fmt.Sprintf("sip:%d@fetion.com.cn;p=%d", b.num, b.p) }
func (g *gen) date() string {
	g.t = g.t.Add(time.Duration(1+g.r.IntN(90)) * time.Second)
	return g.t.Format("Mon, 02 Jan 2006 15:04:05 GMT")
}

// emit adds one message: start line, headers, and body with L appended
// when withLen is set and the body is not empty.
func (g *gen) emit(start string, headers []string, body string, withLen bool) {
	var sb strings.Builder
	sb.WriteString(start)
	sb.WriteString("\r\n")
	for _, h := range headers {
		sb.WriteString(h)
		sb.WriteString("\r\n")
	}
	if withLen && body != "" {
		fmt.Fprintf(&sb, "L: %d\r\n", len(body))
	}
	sb.WriteString("\r\n")
	sb.WriteString(body)
	g.out = append(g.out, []byte(sb.String()))
}

func (g *gen) session() {
	g.self = buddy{num: g.num(), p: g.port()}
	g.buds = g.buds[:0]
	for range 3 + g.r.IntN(15) {
		g.buds = append(g.buds, buddy{num: g.num(), p: g.port(), name: g.pick(genNick)})
	}
	g.callID, g.regQ = 1, 1
	g.register()
	g.contacts()
	g.subscribe()
	for range 20 + g.r.IntN(40) {
		switch x := g.r.IntN(100); {
		case x < 25:
			g.presence()
		case x < 50:
			g.chat()
		case x < 62:
			g.sms()
		case x < 72:
			g.setPresence()
		case x < 80:
			g.keepAlive()
		case x < 86:
			g.incoming()
		default:
			g.plainSIP()
		}
	}
	g.emit("R fetion.com.cn SIP-C/2.0", []string{fmt.Sprintf("F: %d", g.self.num), "I: 1 ", fmt.Sprintf("Q: %d R", g.regQ+1), "X: 0"}, "", true)
	g.emit("SIP-C/2.0 200 OK", []string{"I: 1", fmt.Sprintf("Q: %d R", g.regQ+1)}, "", true)
}

func (g *gen) nextCall() int { g.callID += 1 + g.r.IntN(3); return g.callID }

func (g *gen) register() {
	ver := []string{"3.2.0540", "3.3.0370", "3.5.2540", "2.3.0230"}[g.r.IntN(4)]
	body := fmt.Sprintf(`<args><device type="PC" version="%d" client-version="%s" /><caps value="simple-im;im-session;temp-group;personal-group" /><events value="contact;permission;system-message;personal-group" /><oem-tag value="cmcc.sjb0.inet.%04d" /><user-info attributes="all" /><presence><basic value="400" desc="" /></presence></args>`,
		30+g.r.IntN(40), ver, g.r.IntN(100))
	f := fmt.Sprintf("F: %d", g.self.num)
	g.emit("R fetion.com.cn SIP-C/2.0", []string{f, "I: 1 ", "Q: 1 R"}, body, true)
	g.emit("SIP-C/2.0 401 Unauthorized", []string{"I: 1", "Q: 1 R", `W: Digest algorithm="MD5-sess;SHA1-sess",nonce="` + g.hex(true) + `"`}, "", true)
	g.emit("R fetion.com.cn SIP-C/2.0", []string{f, "I: 1 ", "Q: 2 R",
		fmt.Sprintf(`A: Digest algorithm="SHA1-sess",response="%s",cnonce="%s",salt="%08X"`, g.hex(true), g.hex(true), g.r.Uint32())}, body, true)
	res := fmt.Sprintf(`<results><client public-ip="%d.%d.%d.%d"><custom-config version="%d"></custom-config></client><user-info personal-info-version="%d" contact-version="%d" permission-version="%d"/><presence result="200"/></results>`,
		g.r.IntN(223)+1, g.r.IntN(256), g.r.IntN(256), g.r.IntN(256), g.r.IntN(100), g.r.IntN(20), g.r.IntN(20), g.r.IntN(5))
	g.emit("SIP-C/2.0 200 OK", []string{"I: 1", "Q: 2 R", "X: 600"}, res, true)
	g.regQ = 2
}

func (g *gen) contacts() {
	c := g.nextCall()
	g.emit("S fetion.com.cn SIP-C/2.0", []string{fmt.Sprintf("F: %d", g.self.num), fmt.Sprintf("I: %d ", c), "Q: 1 S", "N: GetContactList"},
		`<args><contacts><buddy-lists /><buddies attributes="all" /><mobile-buddies attributes="all" /><chat-friends /><blacklist /></contacts></args>`, true)
	var sb strings.Builder
	fmt.Fprintf(&sb, `<results><contacts version="%d"><buddy-lists>`, g.r.IntN(40))
	lists := 1 + g.r.IntN(3)
	for i := 1; i <= lists; i++ {
		fmt.Fprintf(&sb, `<buddy-list id="%d" name="%s" />`, i, g.pick(genNames))
	}
	sb.WriteString(`</buddy-lists><buddies>`)
	for _, b := range g.buds {
		fmt.Fprintf(&sb, `<buddy uri="%s" local-name="%s" buddy-lists="%d" relation-status="1" online-notify="%d" />`,
			g.uri(b), []string{"", b.name}[g.r.IntN(2)], 1+g.r.IntN(lists), g.r.IntN(2))
	}
	sb.WriteString(`</buddies><mobile-buddies />`)
	if g.r.IntN(2) == 0 {
		fmt.Fprintf(&sb, `<mobile-buddies><mobile-buddy uri="tel:13%09d" local-name="" buddy-lists="1" relation-status="1" /></mobile-buddies>`, g.r.IntN(1e9))
	}
	sb.WriteString(`<chat-friends /></contacts></results>`)
	g.emit("SIP-C/2.0 200 OK", []string{fmt.Sprintf("I: %d", c), "Q: 1 S"}, sb.String(), true)
}

func (g *gen) subscribe() {
	c := g.nextCall()
	var sb strings.Builder
	sb.WriteString(`<args><subscription><contacts>`)
	for _, b := range g.buds {
		fmt.Fprintf(&sb, `<contact uri="%s" />`, g.uri(b))
	}
	sb.WriteString(`</contacts><presence><basic attributes="all" /><personal attributes="all" /><extended types="sms;location;listening;ring-back-tone" /></presence></subscription></args>`)
	g.emit("SUB fetion.com.cn SIP-C/2.0", []string{fmt.Sprintf("F: %d", g.self.num), fmt.Sprintf("I: %d ", c), "Q: 1 SUB", "N: presence"}, sb.String(), true)
	sb.Reset()
	sb.WriteString(`<results><subscription><contacts>`)
	for _, b := range g.buds {
		fmt.Fprintf(&sb, `<contact uri="%s" status-code="200" />`, g.uri(b))
	}
	sb.WriteString(`</contacts><presence><basic attributes="all" /><personal attributes="all" /><extended types="sms;location;listening;ring-back-tone" /></presence></subscription></results>`)
	g.emit("SIP-C/2.0 200 OK", []string{fmt.Sprintf("I: %d", c), "Q: 1 SUB", "X: 25200"}, sb.String(), true)
}

func (g *gen) presence() {
	var sb strings.Builder
	sb.WriteString(`<events><event type="PresenceChanged">`)
	for range 1 + g.r.IntN(3) {
		b := g.buds[g.r.IntN(len(g.buds))]
		fmt.Fprintf(&sb, `<presence uri="%s">`, g.uri(b))
		if g.r.IntN(2) == 0 {
			fmt.Fprintf(&sb, `<basic device-id="PCCL%010d" value="%s" desc="" device-type="PC" device-caps="simple-im,im-session,temp-group,personal-group" />`,
				g.r.IntN(1e9), []string{"400", "600", "100", "0"}[g.r.IntN(4)])
			fmt.Fprintf(&sb, `<personal nickname="%s" impresa="%s" portrait-crc="%d" />`, b.name, g.pick(genWords), g.r.Uint32()>>1)
		}
		sb.WriteString(`<extended type="sms">0.0:0:0</extended><extended type="listening"></extended><extended type="location"><location city="" distance="" /></extended></presence>`)
	}
	sb.WriteString(`</event></events>`)
	g.emit(fmt.Sprintf("BN %d SIP-C/2.0", g.self.num), []string{"Q: 3 BN", "N: presence", fmt.Sprintf("X: %d", 20000+g.r.IntN(5200)), "I: 5"}, sb.String(), true)
}

func (g *gen) chat() {
	b := g.buds[g.r.IntN(len(g.buds))]
	c := g.nextCall()
	f, to := fmt.Sprintf("F: %d", g.self.num), "T: "+g.uri(b)
	ks := []string{"K: text/html-fragment", "K: multiparty", "K: nudge", "K: share-background"}
	port := 1024 + g.r.IntN(60000)
	sdp := fmt.Sprintf("v=0\r\no=-0 0 IN 127.0.0.1:%d\r\ns=session\r\nc=IN IP4 127.0.0.1:%d\r\nt=0 0\r\nm=message %d sip %s", port, port, port, g.uri(g.self))
	g.emit("I fetion.com.cn SIP-C/2.0", append([]string{f, fmt.Sprintf("I: %d ", c), "Q: 1 I", to}, ks...), sdp, true)
	g.emit("SIP-C/2.0 100 Trying", []string{to, fmt.Sprintf("I: %d", c), "Q: 1 I"}, "", true)
	g.emit("SIP-C/2.0 200 OK", append([]string{to, fmt.Sprintf("I: %d", c), "Q: 1 I"}, ks...), "", true)
	g.emit("A fetion.com.cn SIP-C/2.0", []string{fmt.Sprintf("I: %d ", c), "Q: 1 A", to, f}, "", true)
	q := 2
	for range 1 + g.r.IntN(5) {
		body := fmt.Sprintf("<Font Face='Arial' Color='-16777216' Size='10.5'>%s</Font>", g.pick(genWords))
		if g.r.IntN(3) == 0 {
			body = g.pick(genWords)
		}
		ct := "C: text/html-fragment"
		if !strings.HasPrefix(body, "<Font") {
			ct = "C: text/plain"
		}
		g.emit("M fetion.com.cn SIP-C/2.0", []string{f, fmt.Sprintf("I: %d ", c), fmt.Sprintf("Q: %d M", q), to, ct, "K: SaveHistory"}, body, true)
		g.emit("SIP-C/2.0 200 OK", []string{fmt.Sprintf("I: %d", c), fmt.Sprintf("Q: %d M", q), "D: " + g.date(), "XI: " + g.hex(false), to}, "", true)
		q++
		if g.r.IntN(2) == 0 {
			from := "F: " + g.uri(b)
			g.emit(fmt.Sprintf("M %d SIP-C/2.0", g.self.num), []string{fmt.Sprintf("I: %d", c), fmt.Sprintf("Q: %d M", q+1), from, ct, "K: SaveHistory", fmt.Sprintf("L: %d", len(body)), "D: " + g.date(), "XI: " + g.hex(false)}, body, false)
			g.emit("SIP-C/2.0 200 OK", []string{from, fmt.Sprintf("I: %d ", c), fmt.Sprintf("Q: %d M", q+1)}, "", true)
		}
	}
	g.emit("B fetion.com.cn SIP-C/2.0", []string{f, fmt.Sprintf("I: %d ", c), fmt.Sprintf("Q: %d B", q), to}, "", true)
	g.emit("SIP-C/2.0 200 OK", []string{to, fmt.Sprintf("I: %d", c), fmt.Sprintf("Q: %d B", q)}, "", true)
}

func (g *gen) sms() {
	b := g.buds[g.r.IntN(len(g.buds))]
	c := g.nextCall()
	to := "T: " + g.uri(b)
	n := []string{"N: SendCatSMS", "N: SendSMS"}[g.r.IntN(2)]
	g.emit("M fetion.com.cn SIP-C/2.0", []string{fmt.Sprintf("F: %d", g.self.num), fmt.Sprintf("I: %d ", c), "Q: 1 M", to, n}, g.pick(genWords), true)
	if g.r.IntN(10) == 0 {
		g.emit("SIP-C/2.0 486 Busy Here", []string{to, fmt.Sprintf("I: %d", c), "Q: 1 M"}, "", true)
		return
	}
	g.emit("SIP-C/2.0 280 Send SMS OK", []string{to, fmt.Sprintf("I: %d", c), "Q: 1 M"}, "", true)
}

func (g *gen) setPresence() {
	c := g.nextCall()
	v := []string{"400", "600", "100", "300"}[g.r.IntN(4)]
	g.emit("S fetion.com.cn SIP-C/2.0", []string{fmt.Sprintf("F: %d", g.self.num), fmt.Sprintf("I: %d ", c), "Q: 1 S", "N: SetPresence"},
		`<args><presence><basic value="`+v+`" /></presence></args>`, true)
	g.emit("SIP-C/2.0 200 OK", []string{fmt.Sprintf("I: %d", c), "Q: 1 S"}, `<results><presence><basic value="`+v+`" desc="" /></presence></results>`, true)
}

func (g *gen) keepAlive() {
	g.regQ++
	g.emit("R fetion.com.cn SIP-C/2.0", []string{fmt.Sprintf("F: %d", g.self.num), "I: 1 ", fmt.Sprintf("Q: %d R", g.regQ)}, "", true)
	g.emit("SIP-C/2.0 200 OK", []string{"I: 1", fmt.Sprintf("Q: %d R", g.regQ), "X: 600"}, "", true)
}

func (g *gen) incoming() {
	b := g.buds[g.r.IntN(len(g.buds))]
	c := 100 + g.r.IntN(900)
	from := "F: " + g.uri(b)
	body := g.pick(genWords)
	g.emit(fmt.Sprintf("M %d SIP-C/2.0", g.self.num), []string{fmt.Sprintf("I: %d", c), "Q: 1 M", from, "C: text/plain", "K: SaveHistory", fmt.Sprintf("L: %d", len(body)), "D: " + g.date(), "XI: " + g.hex(false)}, body, false)
	g.emit("SIP-C/2.0 200 OK", []string{from, fmt.Sprintf("I: %d ", c), "Q: 1 M"}, "", true)
}

// plainSIP is RFC 3261 traffic: a MESSAGE and its 200 OK.
func (g *gen) plainSIP() {
	b := g.buds[g.r.IntN(len(g.buds))]
	branch := fmt.Sprintf("z9hG4bK%x", g.r.Uint64())
	tag := fmt.Sprintf("%x", g.r.Uint32())
	callID := fmt.Sprintf("%s@10.0.0.%d", g.hex(false)[:16], 1+g.r.IntN(254))
	body := g.pick(genWords)
	via := fmt.Sprintf("Via: SIP/2.0/TCP 10.0.0.%d:5060;branch=%s", 1+g.r.IntN(254), branch)
	from := fmt.Sprintf("From: <sip:%d@fetion.com.cn>;tag=%s", g.self.num, tag)
	to := fmt.Sprintf("To: <sip:%d@fetion.com.cn>", b.num)
	cseq := fmt.Sprintf("CSeq: %d MESSAGE", 1+g.r.IntN(20))
	g.emit(fmt.Sprintf("MESSAGE sip:%d@fetion.com.cn SIP/2.0", b.num), []string{via, "Max-Forwards: 70", from, to, "Call-ID: " + callID, cseq,
		"Content-Type: text/plain", fmt.Sprintf("Content-Length: %d", len(body))}, body, false)
	g.emit("SIP/2.0 200 OK", []string{via, from, to + ";tag=" + fmt.Sprintf("%x", g.r.Uint32()), "Call-ID: " + callID, cseq, "Content-Length: 0"}, "", false)
}
