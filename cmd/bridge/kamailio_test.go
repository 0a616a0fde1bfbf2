package main

// Interop with a real Kamailio as the IM server in front of IM users, using
// the config kept in kamailio/kamailio.cfg (the same file docker-compose.yml
// mounts): users register at Kamailio, Kamailio PUBLISHes their reg state
// (RFC 3680) to the bridge, and the bridge sends IM through Kamailio as its
// outbound proxy.

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutext"

	"github.com/smsbridge/bridge/internal/testutil"
)

// requireInterop skips when tool is not installed, unless the run demands
// every interop peer (./test.sh sets BRIDGE_REQUIRE_INTEROP=1).
func requireInterop(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("BRIDGE_REQUIRE_INTEROP") == "1" {
			t.Fatalf("%s not found on PATH and BRIDGE_REQUIRE_INTEROP=1: %v", tool, err)
		}
		t.Skipf("%s not installed (Debian: apt-get install %s); set BRIDGE_REQUIRE_INTEROP=1 to make this a failure", tool, debianPackage(tool))
	}
	return p
}

func debianPackage(tool string) string {
	switch tool {
	case "kamailio":
		return "kamailio kamailio-presence-modules"
	case "promtool":
		return "prometheus"
	}
	return tool
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repo root not found from %s: %v", root, err)
	}
	return root
}

type kamailio struct {
	addr string // 127.0.0.1:port, UDP
	cmd  *exec.Cmd
	out  *testutil.SyncBuffer
	done chan struct{}
}

// startKamailio runs kamailio in the foreground on addr with the repo's
// config, publishing reg state to bridgeSIP. Its pua state goes to a
// private copy of kamailio/dbtext.
func startKamailio(t *testing.T, bin, addr, bridgeSIP string) *kamailio {
	t.Helper()
	root := repoRoot(t)
	db := t.TempDir()
	for _, f := range []string{"version", "pua"} {
		b, err := os.ReadFile(filepath.Join(root, "kamailio", "dbtext", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(db, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	k := &kamailio{addr: addr, out: &testutil.SyncBuffer{}, done: make(chan struct{})}
	k.cmd = exec.Command(bin, "-DD", "-E", "-m", "32", "-M", "4",
		"-f", filepath.Join(root, "kamailio", "kamailio.cfg"),
		"-A", "LISTEN=udp:"+addr,
		"-A", `DOMAIN="`+testDomain+`"`,
		"-A", `BRIDGE_URI="sip:`+bridgeSIP+`"`,
		"-A", `DBURL="text://`+db+`"`,
		"-A", `SERVER_ADDRESS="sip:reginfo@127.0.0.1"`,
	)
	k.cmd.Stdout, k.cmd.Stderr = k.out, k.out
	// Its own process group, so the workers it forks go with it.
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := k.cmd.Start(); err != nil {
		t.Fatalf("start kamailio: %v", err)
	}
	go func() { k.cmd.Wait(); close(k.done) }()
	t.Cleanup(func() {
		k.stop(t)
		if t.Failed() {
			t.Logf("kamailio output:\n%s", k.out.String())
		}
	})
	return k
}

func (k *kamailio) stop(t *testing.T) {
	pgid := k.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-k.done:
	case <-time.After(5 * time.Second):
		t.Log("kamailio ignored SIGTERM; killing its process group")
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-k.done
	}
}

func (k *kamailio) exited() bool {
	select {
	case <-k.done:
		return true
	default:
		return false
	}
}

// sipAt sends req to the UDP address dst and returns the final status.
func (u *ua) sipAt(t *testing.T, req *sipmsg.Request, dst string) (*sipmsg.Response, error) {
	t.Helper()
	req.SetDestination(dst)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return u.cli.Do(ctx, req)
}

// registerAt REGISTERs u at the registrar reached at addr (no auth).
func (u *ua) registerAt(t *testing.T, addr string, expires int) int {
	t.Helper()
	req := sipmsg.NewRequest(sipmsg.REGISTER, sipmsg.Uri{Scheme: "sip", Host: testDomain})
	aor := "<sip:" + u.user + "@" + testDomain + ">"
	req.AppendHeader(sipmsg.NewHeader("From", aor+";tag=reg"+strconv.Itoa(u.port)))
	req.AppendHeader(sipmsg.NewHeader("To", aor))
	req.AppendHeader(sipmsg.NewHeader("Contact", "<sip:"+u.user+"@127.0.0.1:"+strconv.Itoa(u.port)+">"))
	req.AppendHeader(sipmsg.NewHeader("Expires", strconv.Itoa(expires)))
	res, err := u.sipAt(t, req, addr)
	if err != nil {
		t.Fatalf("REGISTER at %s: %v", addr, err)
	}
	return int(res.StatusCode)
}

// presenceUsers reads bridge_presence_users from /metrics.
func presenceUsers(t *testing.T, b *running) int {
	t.Helper()
	return int(metricValue(t, b, "bridge_presence_users"))
}

// metricValue reads the unlabelled sample name from b's /metrics.
func metricValue(t *testing.T, b *running, name string) float64 {
	t.Helper()
	for l := range strings.Lines(metricsText(t, "http://"+b.addrs.HTTP)) {
		if v, ok := strings.CutPrefix(strings.TrimSuffix(l, "\n"), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s %q: %v", name, v, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// checkKamailioConfig runs kamailio -c on the repo config: it finds a
// missing module package (pua_reginfo is in kamailio-presence-modules)
// before the real start, with a clear message.
func checkKamailioConfig(t *testing.T, bin string) {
	t.Helper()
	out, err := exec.Command(bin, "-c", "-f", filepath.Join(repoRoot(t), "kamailio", "kamailio.cfg")).CombinedOutput()
	if err == nil {
		return
	}
	if bytes.Contains(out, []byte("pua")) && os.Getenv("BRIDGE_REQUIRE_INTEROP") != "1" {
		t.Skipf("kamailio lacks pua/pua_reginfo (apt-get install kamailio-presence-modules):\n%s", out)
	}
	t.Fatalf("kamailio -c kamailio/kamailio.cfg: %v\n%s", err, out)
}

func TestKamailioInterop(t *testing.T) {
	bin := requireInterop(t, "kamailio")
	checkKamailioConfig(t, bin)
	sc := startSMSC(t)
	kaddr := "127.0.0.1:" + strconv.Itoa(freeSIPPort(t))
	b := startBridge(t, t.TempDir(),
		"--smsc", sc.url(),
		"--outbound-proxy", "sip:"+kaddr,
		"--reginfo-from", "127.0.0.1",
		"--http-listen", "127.0.0.1:0",
	)
	k := startKamailio(t, bin, kaddr, b.addrs.SIP)

	const user = "8613800000001"
	u := startUA(t, user, "")
	// Kamailio is up when it answers OPTIONS (the config answers 200 to
	// OPTIONS for the server itself).
	testutil.WaitFor(t, "kamailio answering OPTIONS", 15*time.Second, func() bool {
		if k.exited() {
			t.Fatalf("kamailio exited:\n%s", k.out.String())
		}
		res, err := u.sipAt(t, sipmsg.NewRequest(sipmsg.OPTIONS, sipmsg.Uri{Scheme: "sip", Host: testDomain}), kaddr)
		return err == nil && res.StatusCode == 200
	})

	if n := presenceUsers(t, b); n != 0 {
		t.Fatalf("presence has %d users before any registration", n)
	}
	if code := u.registerAt(t, kaddr, 60); code != 200 {
		t.Fatalf("REGISTER at kamailio: %d", code)
	}
	testutil.WaitFor(t, "the bridge learning the registration from kamailio", 10*time.Second, func() bool { return presenceUsers(t, b) == 1 })

	const text1 = "via Kamailio 经由"
	if _, err := fiorixSubmit(t, b, "esme1", "secret1", "8613900000009", user, pdutext.UCS2(text1)); err != nil {
		t.Fatalf("submit 1: %v", err)
	}
	testutil.WaitFor(t, "MESSAGE at the UA", 15*time.Second, func() bool { return len(u.received()) == 1 })
	if got := u.received()[0]; got != text1 {
		t.Fatalf("UA got %q, want %q", got, text1)
	}
	u.mu.Lock()
	m := u.msgs[0]
	u.mu.Unlock()
	// It came through Kamailio: Kamailio's Via on top, the bridge's below,
	// and the Request-URI is the contact Kamailio looked up.
	vias := m.GetHeaders("Via")
	if len(vias) < 2 {
		t.Fatalf("MESSAGE has %d Via headers, want Kamailio's and the bridge's", len(vias))
	}
	if top := vias[0].(*sipmsg.ViaHeader); net.JoinHostPort(top.Host, strconv.Itoa(top.Port)) != kaddr {
		t.Fatalf("top Via %s:%d, want kamailio at %s", top.Host, top.Port, kaddr)
	}
	if m.Recipient.Port != u.port {
		t.Fatalf("Request-URI %s is not the UA's contact", m.Recipient.String())
	}
	if sc.texts(t)[user] != "" {
		t.Fatal("the SMSC got the message that went to IM")
	}

	if code := u.registerAt(t, kaddr, 0); code != 200 {
		t.Fatalf("unREGISTER at kamailio: %d", code)
	}
	testutil.WaitFor(t, "the bridge learning the unregistration", 10*time.Second, func() bool { return presenceUsers(t, b) == 0 })

	const text2 = "offline now, as SMS"
	if _, err := fiorixSubmit(t, b, "esme1", "secret1", "8613900000009", user, pdutext.Raw(text2)); err != nil {
		t.Fatalf("submit 2: %v", err)
	}
	testutil.WaitFor(t, "submit_sm at the SMSC", 15*time.Second, func() bool { return sc.texts(t)[user] == text2 })
	if n := len(u.received()); n != 1 {
		t.Fatalf("UA got %d messages, want only the first", n)
	}
}
