package corpus

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

// profile is a Fetion client: protocol version, the order in which it
// writes request headers, and its login details. The server's header
// order depends on the protocol version only.
type profile struct {
	name      string
	v4        bool
	devType   string
	versions  []string
	order     []string // request header order; unknown names go last
	callSpace bool     // "I: n " with a trailing space, as PC 3.x writes it
	lenZero   bool     // writes "L: 0" on requests without a body
	caps      string
	events    string
	clType    string // v4: CL type
}

var (
	profPC3 = &profile{name: "pc3", devType: "PC", versions: []string{"3.2.0540", "3.3.0370", "3.5.2540", "3.6.1900"},
		order: []string{"F", "I", "Q", "T", "A", "N", "C", "K", "L"}, callSpace: true,
		caps: "simple-im;im-session;temp-group;personal-group", events: "contact;permission;system-message;personal-group"}
	profJ2ME = &profile{name: "j2me", devType: "J2ME", versions: []string{"2.3.0230", "2.5.0070", "2.6.0031"},
		order: []string{"I", "Q", "F", "T", "N", "C", "K", "A", "L"}, lenZero: true,
		caps: "simple-im;sms", events: "contact;permission;system-message"}
	profPC4 = &profile{name: "pc4", v4: true, devType: "PC", versions: []string{"4.0.2510", "4.1.1190", "4.3.0980", "4.5.1820"},
		order: []string{"F", "I", "Q", "T", "CN", "CL", "A", "AK", "N", "C", "K", "L"}, caps: "1ff", events: "7f", clType: "pc"}
	profLinux4 = &profile{name: "linux4", v4: true, devType: "PC", versions: []string{"4.0.2510"},
		order: []string{"F", "I", "Q", "CN", "CL", "A", "AK", "T", "C", "K", "N", "L"}, caps: "ff", events: "7f", clType: "pc"}
	profAndroid4 = &profile{name: "android4", v4: true, devType: "ANDROID", versions: []string{"4.2.1220", "4.4.0500"},
		order: []string{"I", "Q", "F", "T", "N", "K", "C", "CN", "CL", "A", "AK", "L"}, lenZero: true, caps: "3ff", events: "7f", clType: "android"}
)

// mix is what a session does after login: action weights and length.
type mix struct {
	name             string
	minActs, maxActs int
	w                map[string]int
}

var (
	mixChat = &mix{name: "chat", minActs: 15, maxActs: 70, w: map[string]int{
		"chat": 30, "msgIn": 20, "sms": 8, "presenceIn": 10, "keepAlive": 8, "nudge": 6, "setPresence": 4, "typing": 8}}
	mixPresence = &mix{name: "presence", minActs: 30, maxActs: 120, w: map[string]int{
		"presenceIn": 55, "setPresence": 8, "setImpresa": 6, "keepAlive": 10, "msgIn": 6, "chat": 4, "syncIn": 6, "getInfo": 5}}
	mixSMS = &mix{name: "sms", minActs: 10, maxActs: 50, w: map[string]int{
		"sms": 45, "msgIn": 15, "keepAlive": 15, "presenceIn": 10, "chat": 5, "smsSelf": 5}}
	mixContacts = &mix{name: "contacts", minActs: 15, maxActs: 60, w: map[string]int{
		"addBuddy": 12, "applicationIn": 10, "deleteBuddy": 6, "setContact": 12, "getInfo": 14, "buddyList": 6,
		"blacklist": 4, "presenceIn": 15, "keepAlive": 8, "syncIn": 10, "msgIn": 3}}
	mixGroup = &mix{name: "group", minActs: 20, maxActs: 90, w: map[string]int{
		"groupMsgIn": 30, "groupMsgOut": 14, "groupPresence": 14, "groupInfo": 6, "groupMembers": 4,
		"presenceIn": 12, "keepAlive": 8, "msgIn": 6, "chat": 6}}
	mixAll = &mix{name: "all", minActs: 20, maxActs: 100, w: map[string]int{
		"chat": 10, "msgIn": 10, "sms": 8, "presenceIn": 16, "keepAlive": 8, "setPresence": 4, "setImpresa": 3,
		"addBuddy": 3, "applicationIn": 3, "setContact": 3, "getInfo": 4, "syncIn": 4, "groupMsgIn": 6,
		"groupMsgOut": 3, "groupPresence": 4, "nudge": 3, "typing": 4, "smsSelf": 2, "deleteBuddy": 1, "buddyList": 1}}
)

type person struct {
	sid, p, uid, mobile uint64
	nick, impresa       string
	list                int
	online              bool
	ver                 int // personal info version
	crc                 uint32
	showMobile          bool
	level, sms          int
	dev                 string
	devID               uint64
	status              int
}

type group struct {
	id, p   uint64
	name    string
	members []person
}

type sipcGen struct {
	r       *rand.Rand
	pr      *profile
	mx      *mix
	vc      *vocab
	out     [][]byte
	t       time.Time
	self    person
	buds    []person
	groups  []group
	lists   int
	clVer   string
	callID  int
	regQ    int
	bnQ     int
	bnCall  int
	srvCall int
	minMsgs int // session goes on until it has at least this many messages
}

func sipcFamily(pr *profile, mx *mix, vc *vocab) func(seed uint64, n int) [][][]byte {
	return func(seed uint64, n int) [][][]byte {
		var ss [][][]byte
		for i := range n {
			g := newSIPCGen(seed+uint64(i)*7919, pr, mx, vc)
			ss = append(ss, g.session())
		}
		return ss
	}
}

func newSIPCGen(seed uint64, pr *profile, mx *mix, vc *vocab) *sipcGen {
	h := uint64(0)
	for _, c := range pr.name + mx.name {
		h = h*131 + uint64(c)
	}
	r := newRand(seed, h)
	start := time.Date(2009+r.IntN(3), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), 0, time.UTC)
	return &sipcGen{r: r, pr: pr, mx: mx, vc: vc, t: start}
}

func (g *sipcGen) pick(s []string) string { return s[g.r.IntN(len(s))] }
func (g *sipcGen) proto() string {
	if g.pr.v4 {
		return "SIP-C/4.0"
	}
	return "SIP-C/2.0"
}

func (g *sipcGen) sid() uint64 {
	if g.r.IntN(5) == 0 {
		return 1000000000 + g.r.Uint64N(600000000) // ten-digit numbers of later accounts
	}
	return 400000000 + g.r.Uint64N(500000000)
}

func (g *sipcGen) mobile() uint64 {
	pre := []uint64{134, 135, 136, 137, 138, 139, 150, 151, 158, 159, 187, 188}
	return pre[g.r.IntN(len(pre))]*100000000 + g.r.Uint64N(100000000)
}

func (g *sipcGen) newPerson() person {
	return person{sid: g.sid(), p: 3000 + g.r.Uint64N(2100), uid: 200000000 + g.r.Uint64N(700000000), mobile: g.mobile(),
		nick: g.pick(g.vc.nicks), impresa: g.pick(g.vc.impresas), list: 1 + g.r.IntN(max(g.lists, 1)),
		online: g.r.IntN(3) > 0, ver: g.r.IntN(400), crc: g.r.Uint32() >> 1, showMobile: g.r.IntN(2) == 0,
		level: g.r.IntN(8), sms: g.r.IntN(3), dev: []string{"PC", "PC", "MOBILE", "WAP", "ANDROID"}[g.r.IntN(5)],
		devID: g.r.Uint64N(1e10), status: []int{400, 400, 0, 100, 600, 300}[g.r.IntN(6)]}
}

func (g *sipcGen) hex(n int, upper bool) string {
	const lo, up = "0123456789abcdef", "0123456789ABCDEF"
	d := lo
	if upper {
		d = up
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = d[g.r.IntN(16)]
	}
	return string(b)
}

func (g *sipcGen) b64(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.Uint32())
	}
	return base64.StdEncoding.EncodeToString(b)
}

func uri(p person) string { return fmt.Sprintf("sip:%d@fetion.com.cn;p=%d", p.sid, p.p) }
func guri(gr group) string {
	return fmt.Sprintf("sip:PG%d@fetion.com.cn;p=%d", gr.id, gr.p)
}

func (g *sipcGen) tick(maxSec int) string {
	g.t = g.t.Add(time.Duration(1+g.r.IntN(maxSec)) * time.Second)
	return g.t.Format("Mon, 02 Jan 2006 15:04:05 GMT")
}

func (g *sipcGen) text() string {
	s := g.pick(g.vc.phrases)
	for g.r.IntN(4) == 0 {
		s += " " + g.pick(g.vc.phrases)
	}
	return s
}

type hdr struct{ k, v string }

// emit writes a message. Client requests follow the profile's header
// order; everything else keeps the order given. L is added for a body
// (and for an empty one when the profile writes "L: 0").
func (g *sipcGen) emit(start string, hs []hdr, body string, client bool) {
	if body != "" || (client && g.pr.lenZero && strings.HasSuffix(start, g.proto())) {
		hs = append(hs, hdr{"L", fmt.Sprint(len(body))})
	}
	if client {
		idx := func(k string) int {
			for i, o := range g.pr.order {
				if o == k {
					return i
				}
			}
			return len(g.pr.order)
		}
		sort.SliceStable(hs, func(i, j int) bool { return idx(hs[i].k) < idx(hs[j].k) })
	}
	var sb strings.Builder
	sb.WriteString(start)
	sb.WriteString("\r\n")
	for _, h := range hs {
		sb.WriteString(h.k)
		sb.WriteString(": ")
		sb.WriteString(h.v)
		sb.WriteString("\r\n")
	}
	sb.WriteString("\r\n")
	sb.WriteString(body)
	g.out = append(g.out, []byte(sb.String()))
}

// req is a client request to the server; it returns the call id used.
func (g *sipcGen) req(method string, q int, hs []hdr, body string) int {
	g.callID++
	c := g.callID
	return g.reqCall(method, c, q, hs, body)
}

func (g *sipcGen) reqCall(method string, c, q int, hs []hdr, body string) int {
	i := fmt.Sprint(c)
	if g.pr.callSpace {
		i += " "
	}
	hs = append([]hdr{{"F", fmt.Sprint(g.self.sid)}, {"I", i}, {"Q", fmt.Sprintf("%d %s", q, method)}}, hs...)
	g.emit(method+" fetion.com.cn "+g.proto(), hs, body, true)
	return c
}

// resp is the server's answer to a client request.
func (g *sipcGen) resp(code int, reason string, c, q int, method string, hs []hdr, body string) {
	base := []hdr{{"I", fmt.Sprint(c)}, {"Q", fmt.Sprintf("%d %s", q, method)}}
	if g.pr.v4 {
		base = append([]hdr{{"F", fmt.Sprint(g.self.sid)}}, base...)
	}
	g.emit(fmt.Sprintf("%s %d %s", g.proto(), code, reason), append(base, hs...), body, false)
}

// ack is the client's 200 OK to a server request.
func (g *sipcGen) ack(from string, c string, q string) {
	g.emit(g.proto()+" 200 OK", []hdr{{"F", from}, {"I", c}, {"Q", q}}, "", true)
}

func (g *sipcGen) session() [][]byte {
	g.out = nil
	g.self = g.newPerson()
	g.lists = 1 + g.r.IntN(5)
	nb := 4 + g.r.IntN(25)
	if g.mx == mixPresence || g.mx == mixContacts {
		nb = 30 + g.r.IntN(120)
	}
	g.buds = g.buds[:0]
	for range nb {
		g.buds = append(g.buds, g.newPerson())
	}
	g.groups = nil
	if g.mx == mixGroup || g.mx == mixAll {
		for range 1 + g.r.IntN(4) {
			gr := group{id: 10000000 + g.r.Uint64N(90000000), p: 3000 + g.r.Uint64N(2100), name: g.pick(g.vc.groups)}
			for range 3 + g.r.IntN(40) {
				gr.members = append(gr.members, g.newPerson())
			}
			g.groups = append(g.groups, gr)
		}
	}
	g.clVer = g.pick(g.pr.versions)
	g.callID = 0
	g.regQ = 1
	g.bnQ = 1 + g.r.IntN(3)
	g.bnCall = 1 + g.r.IntN(8)
	g.srvCall = -(1 + g.r.IntN(80))
	if g.pr.v4 {
		g.loginV4()
	} else {
		g.loginV2()
	}
	acts := g.mx.minActs + g.r.IntN(g.mx.maxActs-g.mx.minActs+1)
	keys := make([]string, 0, len(g.mx.w))
	total := 0
	for k, w := range g.mx.w {
		keys = append(keys, k)
		total += w
	}
	sort.Strings(keys)
	for i := 0; i < acts || len(g.out) < g.minMsgs; i++ {
		x := g.r.IntN(total)
		for _, k := range keys {
			if x -= g.mx.w[k]; x < 0 {
				g.act(k)
				break
			}
		}
	}
	g.logout()
	return g.out
}

func (g *sipcGen) act(k string) {
	switch k {
	case "chat":
		g.chat()
	case "msgIn":
		g.msgIn()
	case "sms":
		g.sms(false)
	case "smsSelf":
		g.sms(true)
	case "presenceIn":
		g.presenceIn()
	case "keepAlive":
		g.keepAlive()
	case "setPresence":
		g.setPresence()
	case "setImpresa":
		g.setImpresa()
	case "nudge":
		g.info("nudge")
	case "typing":
		g.info("active")
	case "syncIn":
		g.syncIn()
	case "getInfo":
		g.getInfo()
	case "addBuddy":
		g.addBuddy()
	case "applicationIn":
		g.applicationIn()
	case "deleteBuddy":
		g.deleteBuddy()
	case "setContact":
		g.setContact()
	case "buddyList":
		g.buddyList()
	case "blacklist":
		g.blacklist()
	case "groupMsgIn":
		g.groupMsgIn()
	case "groupMsgOut":
		g.groupMsgOut()
	case "groupPresence":
		g.groupPresence()
	case "groupInfo":
		g.groupInfo()
	case "groupMembers":
		g.groupMembers()
	default:
		panic("corpus: unknown action " + k)
	}
}

func (g *sipcGen) bud() person { return g.buds[g.r.IntN(len(g.buds))] }

func (g *sipcGen) loginV2() {
	body := fmt.Sprintf(`<args><device type="%s" version="%d" client-version="%s" /><caps value="%s" /><events value="%s" /><oem-tag value="cmcc.%s.%04d" /><user-info attributes="all" /><presence><basic value="%d" desc="" /></presence></args>`,
		g.pr.devType, 10+g.r.IntN(80), g.clVer, g.pr.caps, g.pr.events, g.pick([]string{"sjb0.inet", "j2me.wap", "sjb0.mob"}), g.r.IntN(300),
		[]int{400, 400, 600, 100}[g.r.IntN(4)])
	g.reqCall("R", 1, 1, nil, body)
	g.resp(401, "Unauthoried", 1, 1, "R", []hdr{{"W", fmt.Sprintf(`Digest algorithm="MD5-sess;SHA1-sess",nonce="%s"`, g.hex(32, true))}}, "")
	g.reqCall("R", 1, 2, []hdr{{"A", fmt.Sprintf(`Digest algorithm="SHA1-sess",response="%s",cnonce="%s",salt="%s"`, g.hex(32, true), g.hex(32, true), g.hex(8, true))}}, body)
	res := fmt.Sprintf(`<results><client public-ip="%d.%d.%d.%d"><custom-config version="%d"></custom-config></client><user-info personal-info-version="%d" contact-version="%d" permission-version="%d"/><presence result="200"/></results>`,
		58+g.r.IntN(160), g.r.IntN(256), g.r.IntN(256), g.r.IntN(256), g.r.IntN(40), g.r.IntN(30), g.r.IntN(90), g.r.IntN(6))
	g.resp(200, "OK", 1, 2, "R", []hdr{{"X", "600"}}, res)
	g.callID = 1
	g.regQ = 2
	// Personal info, contact list, presence subscription.
	c := g.req("S", 1, []hdr{{"N", "GetPersonalInfo"}}, `<args><personal attributes="all" /><services version="" attributes="all" /><config version="" attributes="all" /><mobile-device attributes="all" /></args>`)
	g.resp(200, "OK", c, 1, "S", nil, fmt.Sprintf(`<results><personal version="%d" user-id="%d" nickname="%s" gender="%d" impresa="%s" mobile-no="%d" name="" nation="CN" province="%s" city="%s" ivr-enabled="1" portrait-crc="%d" provisioning="1" /><services version="%d"><service id="2" status="1" /><service id="8" status="0" /></services></results>`,
		g.self.ver, g.self.uid, g.self.nick, g.r.IntN(3), g.self.impresa, g.self.mobile, g.pick([]string{"bj", "sh", "gd", "sc"}), g.pick(g.vc.cities), g.r.Uint32()>>1, g.r.IntN(20)))
	c = g.req("S", 1, []hdr{{"N", "GetContactList"}}, `<args><contacts><buddy-lists /><buddies attributes="all" /><mobile-buddies attributes="all" /><chat-friends /><blacklist /></contacts></args>`)
	var sb strings.Builder
	fmt.Fprintf(&sb, `<results><contacts version="%d"><buddy-lists>`, g.r.IntN(300))
	for i := 1; i <= g.lists; i++ {
		fmt.Fprintf(&sb, `<buddy-list id="%d" name="%s" />`, i, g.pick(g.vc.lists))
	}
	sb.WriteString(`</buddy-lists><buddies>`)
	// Shapes of the real capture (codec/testdata/sipc-sample).
	for _, b := range g.buds {
		ln := ""
		if g.r.IntN(2) == 0 {
			ln = b.nick
		}
		fmt.Fprintf(&sb, `<buddy uri="%s" local-name="%s" buddy-lists="%d" relation-status="1" online-notify="%d" />`, uri(b), ln, b.list, g.r.IntN(2))
	}
	sb.WriteString(`</buddies>`)
	if n := g.r.IntN(4); n == 0 {
		sb.WriteString(`<mobile-buddies />`)
	} else {
		sb.WriteString(`<mobile-buddies>`)
		for range n {
			fmt.Fprintf(&sb, `<mobile-buddy uri="tel:%d" local-name="%s" buddy-lists="%d" relation-status="1" />`, g.mobile(), g.pick(g.vc.nicks), 1+g.r.IntN(g.lists))
		}
		sb.WriteString(`</mobile-buddies>`)
	}
	sb.WriteString(`<chat-friends /></contacts></results>`)
	g.resp(200, "OK", c, 1, "S", nil, sb.String())
	const pres = `<presence><basic attributes="all" /><personal attributes="all" /><extended types="sms;location;listening;ring-back-tone" /></presence>`
	sb.Reset()
	sb.WriteString(`<args><subscription><contacts>`)
	for _, b := range g.buds {
		fmt.Fprintf(&sb, `<contact uri="%s" />`, uri(b))
	}
	fmt.Fprintf(&sb, `</contacts>%s</subscription><subscription><contacts><contact uri="%s" /></contacts><presence><extended types="sms;location;listening;ring-back-tone" /></presence></subscription></args>`, pres, uri(g.self))
	c = g.req("SUB", 1, []hdr{{"N", "presence"}}, sb.String())
	sb.Reset()
	sb.WriteString(`<results><subscription><contacts>`)
	for _, b := range g.buds {
		if b.online {
			fmt.Fprintf(&sb, `<contact uri="%s" status-code="200" />`, uri(b))
		}
	}
	sb.WriteString(`</contacts>` + pres + `</subscription></results>`)
	g.resp(200, "OK", c, 1, "SUB", []hdr{{"X", "25200"}}, sb.String())
	g.presenceBatch()
}

func (g *sipcGen) loginV4() {
	cn := g.hex(32, true)
	cl := fmt.Sprintf(`type="%s" ,version="%s"`, g.pr.clType, g.clVer)
	g.reqCall("R", 1, 2, []hdr{{"CN", cn}, {"CL", cl}}, "")
	g.resp(401, "Unauthoried", 1, 2, "R", []hdr{{"W", fmt.Sprintf(`Digest algorithm="SHA1-sess-v4",nonce="%s",key="%s",signature="%s"`, g.hex(32, true), serverKey, g.hex(256, true))}}, "")
	body := fmt.Sprintf(`<args><device machine-code="%s" /><caps value="%s" /><events value="%s" /><user-info mobile-no="%d" user-id="%d"><personal version="%d" attributes="v4default;alv2-version;alv2-warn;dynamic-version" /><custom-config version="%d"/><contact-list version="%d" buddy-attributes="v4default" /></user-info><credentials domains="fetion.com.cn;m161.com.cn;www.ikuwa.cn;games.fetion.com.cn;turn.fetion.com.cn;pos.fetion.com.cn;ent.fetion.com.cn;mms.fetion.com.cn"/><presence><basic value="%d" desc="" /><extendeds /></presence></args>`,
		g.hex(32, true), g.pr.caps, g.pr.events, g.self.mobile, g.self.uid, g.self.ver, g.r.IntN(200), g.r.IntN(500), []int{400, 400, 0, 600}[g.r.IntN(4)])
	g.reqCall("R", 1, 3, []hdr{{"A", fmt.Sprintf(`Digest response="%s",algorithm="SHA1-sess-v4"`, g.hex(256, true))}, {"AK", "ak-value"}}, body)
	var sb strings.Builder
	fmt.Fprintf(&sb, `<results><client public-ip="%d.%d.%d.%d" login-times="%d" last-login-ip="%d.%d.%d.%d" last-login-time="%s" /><user-info><personal version="%d" user-id="%d" sid="%d" mobile-no="%d" uri="%s" name="" nickname="%s" gender="%d" impresa="%s" portrait-crc="%d" carrier-region="CN.%s.%s." user-region="" profile="" blood-type="0" birth-date="1900-01-01" birthday-valid="0" lunar-animal="0" horoscope="0" carrier="CMCC" carrier-status="0" sms-online-status="0.0:0:0" /><custom-config version="%d">%s</custom-config>`,
		58+g.r.IntN(160), g.r.IntN(256), g.r.IntN(256), g.r.IntN(256), g.r.IntN(3000), 58+g.r.IntN(160), g.r.IntN(256), g.r.IntN(256), g.r.IntN(256),
		g.t.Add(-time.Duration(g.r.IntN(900000))*time.Second).Format("Mon, 02 Jan 2006 15:04:05 GMT"),
		g.self.ver, g.self.uid, g.self.sid, g.self.mobile, uri(g.self), g.self.nick, g.r.IntN(3), g.self.impresa, g.r.Uint32()>>1,
		g.pick([]string{"bj", "sh", "gd", "sc", "js"}), g.pick(g.vc.cities), g.r.IntN(200), g.b64(60+g.r.IntN(120)))
	fmt.Fprintf(&sb, `<contact-list version="%d"><buddy-lists>`, g.r.IntN(500))
	for i := 1; i <= g.lists; i++ {
		fmt.Fprintf(&sb, `<buddy-list id="%d" name="%s"/>`, i, g.pick(g.vc.lists))
	}
	sb.WriteString(`</buddy-lists><buddies>`)
	for _, b := range g.buds {
		n := ""
		if g.r.IntN(3) == 0 {
			n = b.nick
		}
		fmt.Fprintf(&sb, `<b i="%d" u="%s" n="%s" l="%d" f="0" r="%d" o="%d" p="identity=%d;"/>`, b.uid, uri(b), n, b.list, 1+g.r.IntN(2)/2, g.r.IntN(2), g.r.IntN(2))
	}
	sb.WriteString(`</buddies><chat-friends></chat-friends><blacklist></blacklist></contact-list></user-info>`)
	fmt.Fprintf(&sb, `<credentials><credential domain="fetion.com.cn" c="%s" /><credential domain="m161.com.cn" c="%s" /></credentials></results>`, g.b64(48), g.b64(48))
	g.resp(200, "OK", 1, 3, "R", []hdr{{"X", "600"}}, sb.String())
	g.callID = 1
	g.regQ = 3
	c := g.req("SUB", 2, []hdr{{"N", "PresenceV4"}}, `<args><subscription self="v4default;mail-count" buddy="v4default" version="0"/></args>`)
	g.resp(200, "OK", c, 2, "SUB", nil, "")
	g.presenceBatch()
	if g.r.IntN(2) == 0 {
		c = g.req("S", 2, []hdr{{"N", "GetOfflineMessagesV4"}}, "")
		g.resp(200, "OK", c, 2, "S", nil, `<results><messages></messages></results>`)
	}
}

// serverKey stands for the server's RSA public key, the same in every v4
// login challenge.
var serverKey = func() string {
	r := newRand(1, 0x6b6579)
	b := make([]byte, 256)
	for i := range b {
		b[i] = "0123456789ABCDEF"[r.IntN(16)]
	}
	return string(b) + "010001"
}()

func (g *sipcGen) logout() {
	if g.pr.v4 {
		c := g.req("B", 2, []hdr{{"T", uri(g.self)}}, "")
		g.resp(200, "OK", c, 2, "B", nil, "")
		return
	}
	g.regQ++
	g.reqCall("R", 1, g.regQ, []hdr{{"X", "0"}}, "")
	g.resp(200, "OK", 1, g.regQ, "R", nil, "")
}

// bn is a server notification (BN) of the given event.
func (g *sipcGen) bn(event string, body string) {
	g.bnQ++
	hs := []hdr{{"Q", fmt.Sprintf("%d BN", g.bnQ)}, {"N", event}}
	if !g.pr.v4 {
		hs = append(hs, hdr{"X", fmt.Sprint(20000 + g.r.IntN(5200))})
	}
	hs = append(hs, hdr{"I", fmt.Sprint(g.bnCall)})
	if g.pr.v4 {
		hs = []hdr{hs[1], hs[2], hs[0]}
	}
	g.emit(fmt.Sprintf("BN %d %s", g.self.sid, g.proto()), hs, body, false)
}

// presenceXML is one buddy's presence; full adds the personal part. A
// buddy's attributes are stable; its status and sometimes its device,
// impresa or portrait change between notifications.
func (g *sipcGen) presenceXML(i int, full bool) string {
	b := &g.buds[i]
	if g.r.IntN(3) == 0 {
		b.status = []int{400, 400, 0, 100, 600, 300}[g.r.IntN(6)]
	}
	if g.r.IntN(8) == 0 {
		b.dev, b.devID = []string{"PC", "PC", "MOBILE", "WAP", "ANDROID"}[g.r.IntN(5)], g.r.Uint64N(1e10)
	}
	if g.r.IntN(10) == 0 {
		b.impresa, b.ver = g.pick(g.vc.impresas), b.ver+1
	}
	if g.r.IntN(20) == 0 {
		b.crc, b.ver = g.r.Uint32()>>1, b.ver+1
	}
	m := ""
	if b.showMobile {
		m = fmt.Sprint(b.mobile)
	}
	if g.pr.v4 {
		var sb strings.Builder
		fmt.Fprintf(&sb, `<c id="%d">`, b.uid)
		if full {
			fmt.Fprintf(&sb, `<p v="%d" sid="%d" su="%s" m="%s" c="CMCC" cs="0" s="1" l="%d" svc="" n="%s" i="%s" p="%d" sms="%d.0:0:0" sp="0" sh="0"/>`,
				b.ver, b.sid, uri(*b), m, b.level, b.nick, b.impresa, b.crc, b.sms)
		}
		if b.online || !full {
			dc := 17
			if b.dev != "PC" {
				dc = 227
			}
			fmt.Fprintf(&sb, `<pr di="%sCL%010d" b="%d" d="" dt="%s" dc="%d" bb=""/>`, b.dev[:2], b.devID, b.status, b.dev, dc)
		}
		sb.WriteString(`</c>`)
		return sb.String()
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<presence uri="%s">`, uri(*b))
	if full || g.r.IntN(2) == 0 {
		dev := b.dev
		if dev == "ANDROID" || dev == "MOBILE" {
			dev = "J2ME"
		}
		fmt.Fprintf(&sb, `<basic device-id="%sCL%010d" value="%d" desc="" device-type="%s" device-caps="simple-im,im-session,temp-group,personal-group" />`,
			dev[:2], b.devID, b.status, dev)
		fmt.Fprintf(&sb, `<personal nickname="%s" impresa="%s" portrait-crc="%d" />`, b.nick, b.impresa, b.crc)
	}
	fmt.Fprintf(&sb, `<extended type="sms">%d.0:0:0</extended><extended type="listening"></extended><extended type="location"><location city="" distance="" /></extended></presence>`, b.sms)
	return sb.String()
}

// presenceBatch is the server's first report of every online buddy.
func (g *sipcGen) presenceBatch() {
	var on []int
	for i, b := range g.buds {
		if b.online {
			on = append(on, i)
		}
	}
	for len(on) > 0 {
		k := min(len(on), 3+g.r.IntN(12))
		batch := on[:k]
		on = on[k:]
		var sb strings.Builder
		if g.pr.v4 {
			sb.WriteString(`<events><event type="PresenceChanged"><contacts>`)
		} else {
			sb.WriteString(`<events><event type="PresenceChanged">`)
		}
		for _, i := range batch {
			sb.WriteString(g.presenceXML(i, true))
		}
		if g.pr.v4 {
			sb.WriteString(`</contacts></event></events>`)
			g.bn("PresenceV4", sb.String())
		} else {
			sb.WriteString(`</event></events>`)
			g.bn("presence", sb.String())
		}
	}
}

func (g *sipcGen) presenceIn() {
	var sb strings.Builder
	k := 1 + g.r.IntN(3)
	if g.pr.v4 {
		sb.WriteString(`<events><event type="PresenceChanged"><contacts>`)
		for range k {
			sb.WriteString(g.presenceXML(g.r.IntN(len(g.buds)), g.r.IntN(3) == 0))
		}
		sb.WriteString(`</contacts></event></events>`)
		g.bn("PresenceV4", sb.String())
		return
	}
	sb.WriteString(`<events><event type="PresenceChanged">`)
	for range k {
		sb.WriteString(g.presenceXML(g.r.IntN(len(g.buds)), false))
	}
	sb.WriteString(`</event></events>`)
	g.bn("presence", sb.String())
}

func (g *sipcGen) keepAlive() {
	g.tick(300)
	g.regQ++
	if g.pr.v4 {
		c := g.req("R", g.regQ, []hdr{{"N", "KeepAlive"}}, `<args><credentials domains="fetion.com.cn" /></args>`)
		body := "" // the credential is renewed now and then
		if g.r.IntN(5) == 0 {
			body = `<results><credentials><credential domain="fetion.com.cn" c="` + g.b64(48) + `" /></credentials></results>`
		}
		g.resp(200, "OK", c, g.regQ, "R", nil, body)
		return
	}
	g.reqCall("R", 1, g.regQ, nil, "")
	g.resp(200, "OK", 1, g.regQ, "R", []hdr{{"X", "600"}}, "")
}

func (g *sipcGen) chatBody() (string, string) {
	t := g.text()
	if g.r.IntN(3) == 0 {
		return "text/plain", t
	}
	return "text/html-fragment", fmt.Sprintf(`<Font Face='%s' Color='%s' Size='%s'>%s</Font>`,
		g.pick([]string{"Arial", "Tahoma", "\u5b8b\u4f53", "Verdana"}), g.pick([]string{"-16777216", "-16776961", "-65536", "-16744448"}), g.pick([]string{"10.5", "9", "12"}), t)
}

func (g *sipcGen) chat() {
	b := g.bud()
	g.tick(120)
	if g.pr.v4 {
		// A conversation starts with StartChat; messages follow with CatMsg.
		c := g.req("S", 2, []hdr{{"N", "StartChat"}}, "")
		g.resp(200, "OK", c, 2, "S", []hdr{{"A", fmt.Sprintf(`CS address="221.176.31.%d:8080;221.176.31.%d:443",credential="%d.%d"`, g.r.IntN(250), g.r.IntN(250), g.r.Uint32()>>1, g.r.Uint32()>>1)}}, "")
		for range 1 + g.r.IntN(6) {
			ct, body := g.chatBody()
			c := g.req("M", 2, []hdr{{"T", uri(b)}, {"C", ct}, {"K", "SaveHistory"}, {"N", "CatMsg"}}, body)
			g.resp(200, "OK", c, 2, "M", []hdr{{"T", uri(b)}, {"D", g.tick(30)}, {"XI", g.hex(32, true)}}, "")
			if g.r.IntN(2) == 0 {
				g.msgFrom(b)
			}
		}
		return
	}
	port := 1024 + g.r.IntN(9000)
	sdp := fmt.Sprintf("v=0\r\no=-0 0 IN 127.0.0.1:%d\r\ns=session\r\nc=IN IP4 127.0.0.1:%d\r\nt=0 0\r\nm=message %d sip %s", port, port, port, uri(g.self))
	ks := []hdr{{"K", "text/html-fragment"}, {"K", "multiparty"}, {"K", "nudge"}, {"K", "share-background"}}
	c := g.req("I", 1, append([]hdr{{"T", uri(b)}}, ks...), sdp)
	g.emit(g.proto()+" 100 Trying", []hdr{{"T", uri(b)}, {"I", fmt.Sprint(c)}, {"Q", "1 I"}}, "", false)
	g.resp(200, "OK", c, 1, "I", append([]hdr{{"T", uri(b)}}, ks...), "")
	g.reqCall("A", c, 1, []hdr{{"T", uri(b)}}, "")
	if g.r.IntN(3) == 0 {
		// The server asks what the session supports.
		q := fmt.Sprintf("%d O", 2+g.r.IntN(3))
		g.emit(fmt.Sprintf("O %d %s", g.self.sid, g.proto()), []hdr{{"I", fmt.Sprint(c)}, {"Q", q}, {"K", "text/plain"}, {"K", "text/html-fragment"}, {"K", "multiparty"}, {"K", "nudge"}, {"F", uri(b)}}, "", false)
		g.ack(uri(b), fmt.Sprint(c), q)
	}
	q := 2
	for range 1 + g.r.IntN(6) {
		ct, body := g.chatBody()
		g.reqCall("M", c, q, []hdr{{"T", uri(b)}, {"C", ct}, {"K", "SaveHistory"}}, body)
		g.resp(200, "OK", c, q, "M", []hdr{{"T", uri(b)}, {"D", g.tick(30)}, {"XI", g.hex(32, false)}}, "")
		q++
		if g.r.IntN(2) == 0 {
			g.msgFrom(b)
		}
	}
	g.reqCall("B", c, q, []hdr{{"T", uri(b)}}, "")
	g.resp(200, "OK", c, q, "B", []hdr{{"T", uri(b)}}, "")
}

// msgFrom is a message from a buddy, pushed by the server, and its 200 OK.
func (g *sipcGen) msgFrom(b person) {
	ct, body := g.chatBody()
	g.srvCall--
	c := fmt.Sprint(g.srvCall)
	if !g.pr.v4 {
		c = fmt.Sprint(100 + g.r.IntN(900))
	}
	q := fmt.Sprintf("%d M", 1+g.r.IntN(4))
	hs := []hdr{{"F", uri(b)}, {"I", c}, {"Q", q}, {"C", ct}, {"K", "SaveHistory"}, {"D", g.tick(60)}, {"XI", g.hex(32, g.pr.v4)}}
	if g.pr.v4 {
		hs = append(hs, hdr{"SV", "1"})
	}
	g.emit(fmt.Sprintf("M %d %s", g.self.sid, g.proto()), hs, body, false)
	g.ack(uri(b), c, q)
}

func (g *sipcGen) msgIn() { g.msgFrom(g.bud()) }

func (g *sipcGen) sms(self bool) {
	g.tick(200)
	to := uri(g.bud())
	if self {
		to = uri(g.self)
	} else if g.r.IntN(4) == 0 {
		to = fmt.Sprintf("tel:%d", g.mobile())
	}
	n := "SendCatSMS"
	if !g.pr.v4 && g.r.IntN(2) == 0 {
		n = "SendSMS"
	}
	c := g.req("M", 1, []hdr{{"T", to}, {"N", n}}, g.text())
	switch x := g.r.IntN(20); {
	case x == 0:
		g.resp(486, "Busy Here", c, 1, "M", []hdr{{"T", to}}, "")
	case x == 1:
		g.resp(420, "Bad Extension", c, 1, "M", []hdr{{"T", to}}, "")
	default:
		body := ""
		if g.pr.v4 {
			body = fmt.Sprintf(`<results><frequency limit-per-day="%d" count-per-day="%d" limit-per-month="%d" count-per-month="%d" /></results>`, 500, g.r.IntN(200), 10000, g.r.IntN(3000))
		}
		g.resp(280, "Send SMS OK", c, 1, "M", []hdr{{"T", to}}, body)
	}
}

func (g *sipcGen) setPresence() {
	v := []string{"400", "600", "100", "300", "0", "150"}[g.r.IntN(6)]
	if g.pr.v4 {
		c := g.req("S", 2, []hdr{{"N", "SetPresenceV4"}}, `<args><presence><basic value="`+v+`" /></presence></args>`)
		g.resp(200, "OK", c, 2, "S", nil, "")
		return
	}
	c := g.req("S", 1, []hdr{{"N", "SetPresence"}}, `<args><presence><basic value="`+v+`" /></presence></args>`)
	g.resp(200, "OK", c, 1, "S", nil, `<results><presence><basic value="`+v+`" desc="" /></presence></results>`)
}

func (g *sipcGen) setImpresa() {
	g.self.impresa = g.pick(g.vc.impresas)
	g.self.ver++
	if g.pr.v4 {
		c := g.req("S", 2, []hdr{{"N", "SetUserInfoV4"}}, fmt.Sprintf(`<args><userinfo><personal impresa="%s" version="%d" /><custom-config type="PC" version="%d" /></userinfo></args>`, g.self.impresa, g.self.ver, g.r.IntN(200)))
		g.resp(200, "OK", c, 2, "S", nil, fmt.Sprintf(`<results><userinfo><personal impresa="%s" version="%d" /></userinfo></results>`, g.self.impresa, g.self.ver))
		return
	}
	c := g.req("S", 1, []hdr{{"N", "SetPersonalInfo"}}, fmt.Sprintf(`<args><personal impresa="%s" /></args>`, g.self.impresa))
	g.resp(200, "OK", c, 1, "S", nil, fmt.Sprintf(`<results><personal version="%d" /></results>`, g.self.ver))
}

func (g *sipcGen) info(state string) {
	b := g.bud()
	body := "<is-composing><state>" + state + "</state></is-composing>"
	if g.r.IntN(2) == 0 {
		c := g.req("IN", 2, []hdr{{"T", uri(b)}}, body)
		g.resp(200, "OK", c, 2, "IN", nil, "")
		return
	}
	g.srvCall--
	c := fmt.Sprint(g.srvCall)
	g.emit(fmt.Sprintf("IN %d %s", g.self.sid, g.proto()), []hdr{{"F", uri(b)}, {"I", c}, {"Q", "2 IN"}}, body, false)
	g.ack(uri(b), c, "2 IN")
}

func (g *sipcGen) syncIn() {
	b := g.bud()
	if g.pr.v4 {
		g.bn("SyncUserInfoV4", fmt.Sprintf(`<events><event type="SyncUserInfo"><user-info><contact-list version="%d"><buddies><buddy action="update" user-id="%d" uri="%s" relation-status="1" /></buddies></contact-list></user-info></event></events>`, g.r.IntN(600), b.uid, uri(b)))
		return
	}
	g.bn("contact", fmt.Sprintf(`<events><event type="ServiceResult"><results><contacts version="%d"><buddies><buddy uri="%s" relation-status="1" /></buddies></contacts></results></event></events>`, g.r.IntN(300), uri(b)))
}

func (g *sipcGen) getInfo() {
	b := g.bud()
	if g.pr.v4 {
		c := g.req("S", 2, []hdr{{"N", "GetContactInfoV4"}}, fmt.Sprintf(`<args><contact user-id="%d" /></args>`, b.uid))
		g.resp(200, "OK", c, 2, "S", nil, fmt.Sprintf(`<results><contact user-id="%d" uri="%s" version="%d" sid="%d" mobile-no="%d" basic-service-status="1" carrier="CMCC" carrier-status="0" nickname="%s" gender="%d" birth-date="1900-01-01" birthday-valid="0" impresa="%s" carrier-region="CN.%s.%s." user-region="" profile="" blood-type="0" occupation="" hobby="" job-title="" home-phone="" work-phone="" other-phone="" personal-email="" work-email="" other-email="" primary-email="0" company="" company-website="" global-permission="identity=1;phone=0;" sms-online-status="0.0:0:0" /></results>`,
			b.uid, uri(b), b.ver, b.sid, b.mobile, b.nick, g.r.IntN(3), b.impresa, g.pick([]string{"bj", "sh", "gd"}), g.pick(g.vc.cities)))
		return
	}
	c := g.req("S", 1, []hdr{{"N", "GetContactsInfo"}}, fmt.Sprintf(`<args><contacts attributes="all"><contact uri="%s" /></contacts></args>`, uri(b)))
	g.resp(200, "OK", c, 1, "S", nil, fmt.Sprintf(`<results><contacts><contact uri="%s" status-code="200"><personal version="%d" user-id="%d" nickname="%s" gender="%d" impresa="%s" mobile-no="" name="" nation="CN" province="" city="%s" ivr-enabled="1" portrait-crc="%d" provisioning="1" /></contact></contacts></results>`,
		uri(b), b.ver, b.uid, b.nick, g.r.IntN(3), b.impresa, g.pick(g.vc.cities), b.crc))
}

func (g *sipcGen) addBuddy() {
	b := g.newPerson()
	g.buds = append(g.buds, b)
	if g.pr.v4 {
		c := g.req("S", 2, []hdr{{"N", "AddBuddyV4"}}, fmt.Sprintf(`<args><contacts><buddies><buddy uri="tel:%d" buddy-lists="%d" desc="%s" expose-mobile-no="1" expose-name="1" addbuddy-phrase-id="0" /></buddies></contacts></args>`, b.mobile, b.list, g.self.nick))
		g.resp(200, "OK", c, 2, "S", nil, fmt.Sprintf(`<results><contacts version="%d"><buddies><buddy uri="%s" buddy-lists="%d" user-id="%d" local-name="" relation-status="0" status-code="200" /></buddies></contacts></results>`, g.r.IntN(600), uri(b), b.list, b.uid))
		return
	}
	c := g.req("S", 1, []hdr{{"N", "AddBuddy"}}, fmt.Sprintf(`<args><contacts><buddies><buddy uri="%s" buddy-lists="%d" desc="%s" expose-mobile-no="1" expose-name="1" /></buddies></contacts></args>`, uri(b), b.list, g.self.nick))
	g.resp(200, "OK", c, 1, "S", nil, fmt.Sprintf(`<results><contacts version="%d"><buddies><buddy uri="%s" local-name="" buddy-lists="%d" relation-status="0" status-code="200" /></buddies></contacts></results>`, g.r.IntN(300), uri(b), b.list))
}

func (g *sipcGen) applicationIn() {
	b := g.newPerson()
	if g.pr.v4 {
		g.bn("contact", fmt.Sprintf(`<events><event type="AddBuddyApplication"><application uri="%s" user-id="%d" desc="%s" addbuddy-phrase-id="0" /></event></events>`, uri(b), b.uid, b.nick))
		c := g.req("S", 2, []hdr{{"N", "HandleContactRequestV4"}}, fmt.Sprintf(`<args><contacts><buddies><buddy user-id="%d" uri="%s" result="%d" buddy-lists="%d" local-name="%s" expose-mobile-no="1" expose-name="1" /></buddies></contacts></args>`, b.uid, uri(b), g.r.IntN(2), b.list, b.nick))
		g.resp(200, "OK", c, 2, "S", nil, "")
	} else {
		g.bn("contact", fmt.Sprintf(`<events><event type="BuddyApplication"><application uri="%s" desc="%s" type="1" /></event></events>`, uri(b), b.nick))
		c := g.req("S", 1, []hdr{{"N", "HandleContactRequest"}}, fmt.Sprintf(`<args><contacts><buddies><buddy uri="%s" result="1" buddy-lists="%d" expose-mobile-no="1" expose-name="1" /></buddies></contacts></args>`, uri(b), b.list))
		g.resp(200, "OK", c, 1, "S", nil, "")
	}
	g.buds = append(g.buds, b)
}

func (g *sipcGen) deleteBuddy() {
	if len(g.buds) < 3 {
		return
	}
	i := g.r.IntN(len(g.buds))
	b := g.buds[i]
	g.buds = append(g.buds[:i], g.buds[i+1:]...)
	if g.pr.v4 {
		c := g.req("S", 2, []hdr{{"N", "DeleteBuddyV4"}}, fmt.Sprintf(`<args><contacts><buddies><buddy user-id="%d" delete-both="%d" /></buddies></contacts></args>`, b.uid, g.r.IntN(2)))
		g.resp(200, "OK", c, 2, "S", nil, fmt.Sprintf(`<results><contacts version="%d"><buddies><buddy user-id="%d" /></buddies></contacts></results>`, g.r.IntN(600), b.uid))
		return
	}
	c := g.req("S", 1, []hdr{{"N", "DeleteBuddy"}}, fmt.Sprintf(`<args><contacts><buddies><buddy uri="%s" /></buddies></contacts></args>`, uri(b)))
	g.resp(200, "OK", c, 1, "S", nil, fmt.Sprintf(`<results><contacts version="%d" /></results>`, g.r.IntN(300)))
}

func (g *sipcGen) setContact() {
	b := g.bud()
	name := g.pick(g.vc.nicks)
	if g.pr.v4 {
		c := g.req("S", 2, []hdr{{"N", "SetContactInfoV4"}}, fmt.Sprintf(`<args><contacts><contact user-id="%d" local-name="%s" buddy-lists="%d" /></contacts></args>`, b.uid, name, 1+g.r.IntN(g.lists)))
		g.resp(200, "OK", c, 2, "S", nil, fmt.Sprintf(`<results><contacts version="%d"><contact user-id="%d" local-name="%s" /></contacts></results>`, g.r.IntN(600), b.uid, name))
		return
	}
	c := g.req("S", 1, []hdr{{"N", "SetContactInfo"}}, fmt.Sprintf(`<args><contacts><contact uri="%s" local-name="%s" /></contacts></args>`, uri(b), name))
	g.resp(200, "OK", c, 1, "S", nil, fmt.Sprintf(`<results><contacts version="%d" /></results>`, g.r.IntN(300)))
}

func (g *sipcGen) buddyList() {
	g.lists++
	name := g.pick(g.vc.lists)
	n := "CreateBuddyList"
	if g.pr.v4 {
		n = "CreateBuddyListV4"
	}
	c := g.req("S", 2, []hdr{{"N", n}}, fmt.Sprintf(`<args><contacts><buddy-lists><buddy-list name="%s" /></buddy-lists></contacts></args>`, name))
	g.resp(200, "OK", c, 2, "S", nil, fmt.Sprintf(`<results><contacts version="%d"><buddy-lists><buddy-list id="%d" name="%s" /></buddy-lists></contacts></results>`, g.r.IntN(600), g.lists, name))
}

func (g *sipcGen) blacklist() {
	b := g.bud()
	n, key := "AddToBlacklist", fmt.Sprintf(`uri="%s"`, uri(b))
	if g.pr.v4 {
		n, key = "AddToBlacklistV4", fmt.Sprintf(`user-id="%d"`, b.uid)
	}
	c := g.req("S", 2, []hdr{{"N", n}}, fmt.Sprintf(`<args><contacts><blacklist><blocked %s /></blacklist></contacts></args>`, key))
	g.resp(200, "OK", c, 2, "S", nil, fmt.Sprintf(`<results><contacts version="%d"><blacklist><blocked %s /></blacklist></contacts></results>`, g.r.IntN(600), key))
}

func (g *sipcGen) grp() *group {
	if len(g.groups) == 0 {
		gr := group{id: 10000000 + g.r.Uint64N(90000000), p: 3000 + g.r.Uint64N(2100), name: g.pick(g.vc.groups)}
		for range 3 + g.r.IntN(20) {
			gr.members = append(gr.members, g.newPerson())
		}
		g.groups = append(g.groups, gr)
		c := g.req("S", 2, []hdr{{"N", "PGGetGroupList"}}, `<args><group-list version="0" attributes="name;identity" /></args>`)
		g.resp(200, "OK", c, 2, "S", nil, fmt.Sprintf(`<results><group-list version="%d"><group uri="%s" identity="%d" /></group-list></results>`, g.r.IntN(90), guri(gr), 1+g.r.IntN(3)))
	}
	return &g.groups[g.r.IntN(len(g.groups))]
}

func (g *sipcGen) groupMsgIn() {
	gr := g.grp()
	m := gr.members[g.r.IntN(len(gr.members))]
	ct, body := g.chatBody()
	g.srvCall--
	c := fmt.Sprint(g.srvCall)
	q := fmt.Sprintf("%d M", 2+g.r.IntN(3))
	g.emit(fmt.Sprintf("M %d %s", g.self.sid, g.proto()), []hdr{{"F", guri(*gr)}, {"I", c}, {"Q", q}, {"SO", uri(m)}, {"C", ct}, {"K", "SaveHistory"}, {"D", g.tick(40)}, {"XI", g.hex(32, true)}}, body, false)
	g.ack(guri(*gr), c, q)
}

func (g *sipcGen) groupMsgOut() {
	gr := g.grp()
	ct, body := g.chatBody()
	c := g.req("M", 2, []hdr{{"T", guri(*gr)}, {"C", ct}, {"K", "SaveHistory"}}, body)
	g.resp(200, "OK", c, 2, "M", []hdr{{"T", guri(*gr)}, {"D", g.tick(20)}, {"XI", g.hex(32, true)}}, "")
}

func (g *sipcGen) groupPresence() {
	gr := g.grp()
	var sb strings.Builder
	fmt.Fprintf(&sb, `<events><event type="PGPresenceChanged"><group uri="%s">`, guri(*gr))
	for range 1 + g.r.IntN(4) {
		m := gr.members[g.r.IntN(len(gr.members))]
		fmt.Fprintf(&sb, `<member uri="%s" nickname="%s" state="%d" client-type="%s" identity="%d" />`, uri(m), m.nick, []int{400, 0, 100, 600}[g.r.IntN(4)], g.pick([]string{"PC", "ANDROID", "WAP", "J2ME"}), 1+g.r.IntN(3))
	}
	sb.WriteString(`</group></event></events>`)
	g.bn("PGPresence", sb.String())
}

func (g *sipcGen) groupInfo() {
	gr := g.grp()
	c := g.req("S", 2, []hdr{{"N", "PGGetGroupInfo"}}, fmt.Sprintf(`<args><groups attributes="all"><group uri="%s" /></groups></args>`, guri(*gr)))
	g.resp(200, "OK", c, 2, "S", nil, fmt.Sprintf(`<results><groups><group uri="%s" status-code="200" name="%s" category="%d" introduce="" bulletin="%s" portrait-crc="%d" search-type="1" join-approved-type="%d" current-member-count="%d" limit-member-count="100" group-attributes="" /></groups></results>`,
		guri(*gr), gr.name, 1+g.r.IntN(9), g.text(), g.r.Uint32()>>1, g.r.IntN(3), len(gr.members)))
	s := g.req("SUB", 2, []hdr{{"N", "PGPresence"}}, fmt.Sprintf(`<args><subscription><groups><group uri="%s" /></groups></subscription></args>`, guri(*gr)))
	g.resp(200, "OK", s, 2, "SUB", []hdr{{"X", "600"}}, "")
}

func (g *sipcGen) groupMembers() {
	gr := g.grp()
	c := g.req("S", 2, []hdr{{"N", "PGGetGroupMembers"}}, fmt.Sprintf(`<args><groups attributes="member-uri;member-nickname;member-iicnickname;member-identity;member-t6svcid"><group uri="%s" /></groups></args>`, guri(*gr)))
	var sb strings.Builder
	fmt.Fprintf(&sb, `<results><groups><group uri="%s">`, guri(*gr))
	for _, m := range gr.members {
		fmt.Fprintf(&sb, `<member uri="%s" nickname="%s" iicnickname="%s" identity="%d" t6svcid="0" />`, uri(m), m.nick, m.nick, 1+g.r.IntN(3))
	}
	sb.WriteString(`</group></groups></results>`)
	g.resp(200, "OK", c, 2, "S", nil, sb.String())
}
