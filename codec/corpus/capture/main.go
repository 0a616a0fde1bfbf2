// Command capture records the SIP traces of codec/corpus/traces: Kamailio
// on loopback (registrar with digest authentication, record-routing
// proxy), sipgo user agents and baresip instances registering, messaging,
// calling and subscribing through it, all captured by tcpdump on lo. Each
// user agent's link to Kamailio (both directions) becomes one session.
//
//	go run ./codec/corpus/capture -out codec/corpus/traces
//
// Needs kamailio, baresip and tcpdump (Debian packages of those names) and
// root for tcpdump. The traces are data: re-capturing changes them.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"syscall"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/smsbridge/bridge/codec/corpus"
)

const (
	domain   = "lab.example"
	password = "secret"
)

// kamailioCfg: registrar with digest authentication, proxy authentication
// of local callers, record-routing for dialogs, delivery by location.
const kamailioCfg = `#!KAMAILIO
debug=1
log_stderror=yes
children=2
auto_aliases=no
alias="` + domain + `"
listen=udp:127.0.0.1:PORT
disable_tcp=yes
server_header="Server: kamailio (5.6.3 (x86_64/linux))"
user_agent_header="User-Agent: kamailio (5.6.3 (x86_64/linux))"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "sanity.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
modparam("usrloc", "db_mode", 0)
modparam("registrar", "min_expires", 10)
modparam("rr", "append_fromtag", 1)
request_route {
	if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
	if (!sanity_check("1511", "7")) { exit; }
	if (is_method("CANCEL")) { if (t_check_trans()) { t_relay(); } exit; }
	if (!is_method("ACK")) {
		if (t_precheck_trans()) { t_check_trans(); exit; }
		t_check_trans();
	}
	if (has_totag()) {
		if (loose_route()) { t_relay(); exit; }
		if (is_method("ACK") && t_check_trans()) { t_relay(); exit; }
		sl_send_reply("404", "Not Here");
		exit;
	}
	remove_hf("Route");
	if (is_method("REGISTER")) {
		if (!pv_www_authenticate("$td", "` + password + `", "0")) { www_challenge("$td", "0"); exit; }
		consume_credentials();
		if (!save("location")) { sl_reply_error(); }
		exit;
	}
	if ($rU == $null) {
		if (is_method("OPTIONS")) { sl_send_reply("200", "Keepalive"); } else { sl_send_reply("484", "Address Incomplete"); }
		exit;
	}
	if (is_method("INVITE|MESSAGE|SUBSCRIBE") && from_uri == myself) {
		if (!pv_proxy_authenticate("$fd", "` + password + `", "0")) { proxy_challenge("$fd", "0"); exit; }
		consume_credentials();
	}
	if (is_method("INVITE|SUBSCRIBE")) { record_route(); }
	if (!lookup("location")) { sl_send_reply("404", "Not Found"); exit; }
	if (!t_relay()) { sl_reply_error(); }
	exit;
}
`

func main() {
	out := flag.String("out", "codec/corpus/traces", "directory for the .trace files")
	rounds := flag.Int("rounds", 4, "rounds; every user agent is a new session in each round")
	flag.Parse()
	if err := run(*out, *rounds); err != nil {
		log.Fatal(err)
	}
}

func freePort() int {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// proc is a child in its own process group, stopped with the group.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func start(name string, out *os.File, args ...string) (*proc, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *proc) stop(sig syscall.Signal) {
	syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func run(outDir string, rounds int) error {
	tmp, err := os.MkdirTemp("", "sipcapture")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	logf, err := os.Create(filepath.Join(os.TempDir(), "sipcapture-children.log"))
	if err != nil {
		return err
	}
	kport := freePort()
	cfg := filepath.Join(tmp, "kamailio.cfg")
	if err := os.WriteFile(cfg, []byte(strings.ReplaceAll(kamailioCfg, "PORT", strconv.Itoa(kport))), 0o644); err != nil {
		return err
	}
	pcap := filepath.Join(tmp, "cap.pcap")
	td, err := start("tcpdump", logf, "-i", "lo", "-U", "-s", "0", "-w", pcap, "udp", "port", strconv.Itoa(kport))
	if err != nil {
		return err
	}
	time.Sleep(time.Second)
	kam, err := start("kamailio", logf, "-DD", "-E", "-m", "32", "-M", "4", "-f", cfg)
	if err != nil {
		td.stop(syscall.SIGINT)
		return err
	}
	time.Sleep(time.Second)
	kaddr := fmt.Sprintf("127.0.0.1:%d", kport)
	kinds := map[int]string{} // UA port -> trace family
	var firstErr error
	for r := range rounds {
		if err := round(r, kaddr, tmp, logf, kinds); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	kam.stop(syscall.SIGTERM)
	time.Sleep(500 * time.Millisecond)
	td.stop(syscall.SIGINT)
	if firstErr != nil {
		b, _ := os.ReadFile(logf.Name())
		return fmt.Errorf("%w\nchildren:\n%s", firstErr, b)
	}
	return writeTraces(pcap, kport, kinds, outDir)
}

// round starts three sipgo user agents and two baresip instances, runs a
// script of registrations, messages, calls, subscriptions and keep-alives,
// and unregisters them all.
func round(r int, kaddr, tmp string, logf *os.File, kinds map[int]string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	users := [][]string{{"alice", "bob", "dave"}, {"frank", "grace", "heidi"}, {"ivan", "judy", "oscar"}, {"peggy", "rupert", "sybil"}}[r%4]
	var uas []*ua
	for _, u := range users {
		a, err := newUA(ctx, u, kaddr)
		if err != nil {
			return err
		}
		kinds[a.port] = "kamailio-sipgo"
		uas = append(uas, a)
	}
	bnames := [][]string{{"carol", "erin"}, {"trent", "victor"}, {"walter", "xena"}, {"yuri", "zoe"}}[r%4]
	var bs []*baresip
	for i, n := range bnames {
		b, err := newBaresip(n, uas[i].user, kaddr, tmp, logf)
		if err != nil {
			return err
		}
		kinds[b.port] = "kamailio-baresip"
		bs = append(bs, b)
	}
	defer func() {
		for _, b := range bs {
			b.p.stop(syscall.SIGTERM)
		}
	}()
	for _, a := range uas {
		if err := a.register(ctx, 600); err != nil {
			return err
		}
	}
	time.Sleep(1500 * time.Millisecond) // baresip registers
	texts := []string{"hello from the lab", "are you there?", "meeting at 10", "ok", "see you", "\u4f60\u597d", "call me back please", "on my way"}
	for i := range 3 {
		a, b, c := uas[i%3], uas[(i+1)%3], uas[(i+2)%3]
		a.message(ctx, b.user, texts[(r+i)%len(texts)])
		b.message(ctx, a.user, texts[(r+i+3)%len(texts)])
		c.message(ctx, bs[i%2].user, texts[(r+i+5)%len(texts)])
		callee := bs[(i+1)%2]
		a.call(ctx, callee.user, 1500*time.Millisecond, func() { callee.cmd("/accept") })
		bs[i%2].cmd("/dial sip:" + c.user + "@" + domain)
		time.Sleep(2500 * time.Millisecond)
		bs[i%2].cmd("/hangup")
		a.subscribe(ctx, b.user)
		bs[(i+1)%2].cmd("/message " + texts[(r+i+1)%len(texts)])
		b.options(ctx)
		c.call(ctx, a.user, time.Second, nil)
		time.Sleep(500 * time.Millisecond)
		a.register(ctx, 600)
	}
	for _, b := range bs {
		b.cmd("/options sip:" + uas[0].user + "@" + domain)
	}
	time.Sleep(time.Second)
	for _, a := range uas {
		a.register(ctx, 0)
	}
	for _, b := range bs {
		b.cmd("/quit")
	}
	time.Sleep(1500 * time.Millisecond)
	for _, a := range uas {
		a.agent.Close()
	}
	return nil
}

type baresip struct {
	user  string
	port  int
	ctrl  int
	p     *proc
	contr *net.UDPConn
}

func newBaresip(user, peer, kaddr, tmp string, logf *os.File) (*baresip, error) {
	b := &baresip{user: user, port: freePort(), ctrl: freePort()}
	dir := filepath.Join(tmp, "baresip-"+user)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`sip_listen		127.0.0.1:%d
module_path		/usr/lib/baresip/modules
module			cons.so
module			g711.so
module			g722.so
module			ausine.so
module			aufile.so
module			presence.so
module_app		account.so
module_app		contact.so
module_app		menu.so
cons_listen		127.0.0.1:%d
audio_source		aubridge,%s
module			aubridge.so
audio_player		aubridge,%s
audio_alert		aubridge,%s
`, b.port, b.ctrl, user, user, user)
	acct := fmt.Sprintf("<sip:%s@%s>;auth_pass=%s;outbound=\"sip:%s\";regint=600;answermode=auto\n", user, domain, password, kaddr)
	contacts := fmt.Sprintf("\"%s\" <sip:%s@%s>;presence=p2p\n", peer, peer, domain)
	for name, body := range map[string]string{"config": conf, "accounts": acct, "contacts": contacts} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			return nil, err
		}
	}
	p, err := start("baresip", logf, "-f", dir)
	if err != nil {
		return nil, err
	}
	b.p = p
	c, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: b.ctrl})
	if err != nil {
		return nil, err
	}
	b.contr = c
	return b, nil
}

func (b *baresip) cmd(s string) {
	b.contr.Write([]byte(s + "\n"))
	time.Sleep(300 * time.Millisecond)
}

// ua is a sipgo user agent: it answers MESSAGE, OPTIONS, NOTIFY and INFO
// with 200, calls with 180 then 200 and an SDP answer, subscriptions with
// 200 and a NOTIFY.
type ua struct {
	user  string
	port  int
	kaddr string
	agent *sipgo.UserAgent
	srv   *sipgo.Server
	cli   *sipgo.Client
	dsrv  *sipgo.DialogServerCache
	dcli  *sipgo.DialogClientCache
}

func newUA(ctx context.Context, user, kaddr string) (*ua, error) {
	u := &ua{user: user, kaddr: kaddr, port: freePort()}
	var err error
	if u.agent, err = sipgo.NewUA(sipgo.WithUserAgent(user), sipgo.WithUserAgentHostname(domain)); err != nil {
		return nil, err
	}
	if u.srv, err = sipgo.NewServer(u.agent); err != nil {
		return nil, err
	}
	if u.cli, err = sipgo.NewClient(u.agent, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientPort(u.port)); err != nil {
		return nil, err
	}
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: u.port}}
	u.dsrv = sipgo.NewDialogServerCache(u.cli, contact)
	u.dcli = sipgo.NewDialogClientCache(u.cli, contact)
	ok := func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	}
	u.srv.OnMessage(ok)
	u.srv.OnOptions(ok)
	u.srv.OnNotify(ok)
	u.srv.OnInfo(ok)
	u.srv.OnPublish(ok)
	u.srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		d, err := u.dsrv.ReadInvite(req, tx)
		if err != nil {
			return
		}
		d.Respond(180, "Ringing", nil)
		time.Sleep(200 * time.Millisecond)
		d.RespondSDP(sdp(u.port + 2))
		<-d.Context().Done()
	})
	u.srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { u.dsrv.ReadAck(req, tx) })
	u.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := u.dsrv.ReadBye(req, tx); errors.Is(err, sipgo.ErrDialogDoesNotExists) {
			u.dcli.ReadBye(req, tx)
		}
	})
	u.srv.OnSubscribe(func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(sip.NewHeader("Expires", "600"))
		res.AppendHeader(&contact)
		tx.Respond(res)
		go u.notify(req, res)
	})
	errc := make(chan error, 1)
	go func() { errc <- u.srv.ListenAndServe(ctx, "udp", fmt.Sprintf("127.0.0.1:%d", u.port)) }()
	select {
	case err := <-errc:
		return nil, fmt.Errorf("ua %s listen: %w", user, err)
	case <-time.After(150 * time.Millisecond):
	}
	return u, nil
}

func sdp(port int) []byte {
	return []byte(fmt.Sprintf("v=0\r\no=- %d %d IN IP4 127.0.0.1\r\ns=sipgo\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n",
		time.Now().UnixNano()/1000, time.Now().Unix(), port))
}

func (u *ua) aor(user string) sip.Uri { return sip.Uri{Scheme: "sip", User: user, Host: domain} }

// route preloads Kamailio as outbound proxy, so that sipgo sends every
// request of the transaction and the dialog there.
func (u *ua) route(req *sip.Request) {
	req.AppendHeader(sip.NewHeader("Route", "<sip:"+u.kaddr+";lr>"))
}

func (u *ua) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	u.route(req)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err := u.cli.Do(ctx, req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode == 401 || res.StatusCode == 407 {
		return u.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: u.user, Password: password})
	}
	return res, nil
}

func (u *ua) register(ctx context.Context, expires int) error {
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: domain})
	req.AppendHeader(&sip.ToHeader{Address: u.aor(u.user)})
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: u.user, Host: "127.0.0.1", Port: u.port}})
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	res, err := u.do(ctx, req)
	if err != nil {
		return fmt.Errorf("%s REGISTER: %w", u.user, err)
	}
	if res.StatusCode != 200 {
		return fmt.Errorf("%s REGISTER: %d", u.user, res.StatusCode)
	}
	return nil
}

func (u *ua) message(ctx context.Context, to, text string) {
	req := sip.NewRequest(sip.MESSAGE, u.aor(to))
	req.AppendHeader(sip.NewHeader("Content-Type", "text/plain;charset=UTF-8"))
	req.SetBody([]byte(text))
	if _, err := u.do(ctx, req); err != nil {
		log.Printf("%s MESSAGE %s: %v", u.user, to, err)
	}
}

func (u *ua) options(ctx context.Context) {
	req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: domain})
	if _, err := u.do(ctx, req); err != nil {
		log.Printf("%s OPTIONS: %v", u.user, err)
	}
}

func (u *ua) call(ctx context.Context, to string, talk time.Duration, ringing func()) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req := sip.NewRequest(sip.INVITE, u.aor(to))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(sdp(u.port + 2))
	u.route(req)
	d, err := u.dcli.WriteInvite(ctx, req)
	if err != nil {
		log.Printf("%s INVITE %s: %v", u.user, to, err)
		return
	}
	defer d.Close()
	if ringing != nil {
		go func() { time.Sleep(700 * time.Millisecond); ringing() }()
	}
	if err := d.WaitAnswer(ctx, sipgo.AnswerOptions{Username: u.user, Password: password}); err != nil {
		log.Printf("%s INVITE %s answer: %v", u.user, to, err)
		return
	}
	if err := d.Ack(ctx); err != nil {
		log.Printf("%s ACK: %v", u.user, err)
		return
	}
	time.Sleep(talk)
	if err := d.Bye(ctx); err != nil {
		log.Printf("%s BYE: %v", u.user, err)
	}
}

func (u *ua) subscribe(ctx context.Context, to string) {
	req := sip.NewRequest(sip.SUBSCRIBE, u.aor(to))
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: u.user, Host: "127.0.0.1", Port: u.port}})
	req.AppendHeader(sip.NewHeader("Event", "presence"))
	req.AppendHeader(sip.NewHeader("Accept", "application/pidf+xml"))
	req.AppendHeader(sip.NewHeader("Expires", "600"))
	if _, err := u.do(ctx, req); err != nil {
		log.Printf("%s SUBSCRIBE %s: %v", u.user, to, err)
	}
}

// notify sends the first NOTIFY of a subscription we accepted, along its
// route set.
func (u *ua) notify(sub *sip.Request, res *sip.Response) {
	time.Sleep(100 * time.Millisecond)
	target := sub.Contact()
	if target == nil {
		return
	}
	req := sip.NewRequest(sip.NOTIFY, target.Address)
	for _, rr := range sub.GetHeaders("Record-Route") {
		req.AppendHeader(sip.NewHeader("Route", rr.Value()))
	}
	from, to := res.To(), sub.From()
	req.AppendHeader(&sip.FromHeader{DisplayName: from.DisplayName, Address: from.Address, Params: from.Params})
	req.AppendHeader(&sip.ToHeader{DisplayName: to.DisplayName, Address: to.Address, Params: to.Params})
	cid := *sub.CallID()
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.NOTIFY})
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: u.user, Host: "127.0.0.1", Port: u.port}})
	req.AppendHeader(sip.NewHeader("Event", "presence"))
	req.AppendHeader(sip.NewHeader("Subscription-State", "active;expires=600"))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/pidf+xml"))
	req.SetBody([]byte(fmt.Sprintf("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:%s@%s\">\n<tuple id=\"t1\"><status><basic>open</basic></status></tuple>\n</presence>\n", u.user, domain)))
	req.SetDestination(u.kaddr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := u.cli.Do(ctx, req); err != nil {
		log.Printf("%s NOTIFY: %v", u.user, err)
	}
}

// writeTraces splits the capture into one session per user agent port
// (the end of each datagram that is not Kamailio) and writes the families.
func writeTraces(pcap string, kport int, kinds map[int]string, outDir string) error {
	pkts, err := readPcap(pcap)
	if err != nil {
		return err
	}
	sessOf := map[int]int{}
	bufs := map[string][]byte{}
	counts := map[string]int{}
	for _, p := range pkts {
		peer := p.src
		if p.src == kport {
			peer = p.dst
		}
		fam, ok := kinds[peer]
		if !ok || len(p.payload) < 4 {
			continue // keep-alive CRLFs and strangers
		}
		s, ok := sessOf[peer]
		if !ok {
			s = len(sessOf)
			sessOf[peer] = s
		}
		bufs[fam] = corpus.AppendTrace(bufs[fam], s, p.payload)
		counts[fam]++
	}
	names := make([]string, 0, len(bufs))
	for n := range bufs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		var z bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
		zw.Write(bufs[n])
		if err := zw.Close(); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(outDir, n+".trace.gz"), z.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Printf("%s: %d messages\n", n, counts[n])
	}
	return nil
}

type packet struct {
	src, dst int
	payload  []byte
}

// readPcap reads the UDP/IPv4 datagrams of a classic pcap file of the
// loopback interface (Ethernet link type).
func readPcap(name string) ([]packet, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var gh [24]byte
	if _, err := ioReadFull(r, gh[:]); err != nil {
		return nil, fmt.Errorf("pcap header: %w", err)
	}
	var bo binary.ByteOrder = binary.LittleEndian
	switch binary.LittleEndian.Uint32(gh[:4]) {
	case 0xa1b2c3d4, 0xa1b23c4d:
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("not a pcap file")
	}
	if lt := bo.Uint32(gh[20:]); lt != 1 {
		return nil, fmt.Errorf("pcap link type %d, want Ethernet", lt)
	}
	var out []packet
	for {
		var ph [16]byte
		if _, err := ioReadFull(r, ph[:]); err != nil {
			return out, nil
		}
		n := int(bo.Uint32(ph[8:]))
		b := make([]byte, n)
		if _, err := ioReadFull(r, b); err != nil {
			return out, nil
		}
		if len(b) < 14+20+8 || binary.BigEndian.Uint16(b[12:]) != 0x0800 {
			continue
		}
		ip := b[14:]
		ihl := int(ip[0]&15) * 4
		if ip[9] != 17 || len(ip) < ihl+8 {
			continue
		}
		udp := ip[ihl:]
		out = append(out, packet{src: int(binary.BigEndian.Uint16(udp)), dst: int(binary.BigEndian.Uint16(udp[2:])), payload: udp[8:]})
	}
}

func ioReadFull(r *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
