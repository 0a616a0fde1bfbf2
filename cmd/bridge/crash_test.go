package main

// A real bridge process under load from real SMPP clients, killed
// with SIGKILL at random moments and restarted; every acknowledged message
// must reach the SMSC. Also the overload and fault tests that need a whole
// process.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/smpp"
	"github.com/smsbridge/bridge/smstext"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// bridgeBinary builds cmd/bridge once per test run.
func bridgeBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bridge-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "bridge")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

var freeTCPPort = testutil.FreeTCPAddr

// proc is a bridge running as its own process.
type proc struct {
	cmd  *exec.Cmd
	smpp string
	log  *os.File
}

func startProc(t *testing.T, smppAddr string, args ...string) *proc {
	t.Helper()
	logf, err := os.CreateTemp(t.TempDir(), "bridge-*.log")
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"serve", "--smpp-listen", smppAddr, "--sip-listen", "127.0.0.1:0", "--http-listen", "", "--mcp-listen", "",
		"--country-code", "86", "--log-level", "warn"}
	if !slices.Contains(args, "--config") {
		base = append(base, "--smpp-account", "esme1:secret1")
	}
	cmd := exec.Command(bridgeBinary(t), append(base, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, smpp: smppAddr, log: logf}
	up := func() bool {
		c, err := net.DialTimeout("tcp", smppAddr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	testutil.WaitForState(t, 20*time.Second, up, func() string {
		p.kill()
		b, _ := os.ReadFile(logf.Name())
		return fmt.Sprintf("bridge did not come up on %s:\n%s", smppAddr, b)
	})
	return p
}

func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
}

func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		p.kill()
	}
}

// rssKB reads the process's resident set size.
func (p *proc) rssKB() int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}

// countingSMSC counts every text it receives.
type countingSMSC struct {
	srv   *smpp.Server
	addr  string
	mu    sync.Mutex
	texts map[string]int
	delay time.Duration
	n     atomic.Int64
	// byDest counts each recipient's texts apart ("dest|text"): one post
	// reaches many members with one text.
	byDest bool
	tls    *tls.Config // serve SMPP over TLS with it
}

// startCountingSMSC serves on addr; set runs before the first session can
// read the SMSC's settings.
func startCountingSMSC(t *testing.T, addr string, set ...func(*countingSMSC)) *countingSMSC {
	t.Helper()
	s := &countingSMSC{texts: map[string]int{}}
	for _, f := range set {
		f(s)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	s.srv = smpp.NewServer(smpp.ServerConfig{
		Auth:    func(string, string, smpp.CommandID, net.Addr) uint32 { return smpp.ESME_ROK },
		Handler: s, Window: 512, InboundWindow: 512,
	})
	ctx, cancel := context.WithCancel(context.Background())
	go s.srv.Serve(ctx, ln)
	t.Cleanup(func() { cancel(); s.srv.Close() })
	return s
}

func (s *countingSMSC) HandleSMPP(_ context.Context, _ *smpp.Session, req, resp *smpp.PDU) {
	if req.ID != smpp.SubmitSM {
		return
	}
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	txt, _ := smstext.Decode(req.DataCoding, req.ShortMessage)
	if s.byDest {
		txt = req.DestAddr + "|" + txt
	}
	s.mu.Lock()
	s.texts[txt]++
	s.mu.Unlock()
	resp.MessageID = strconv.FormatInt(s.n.Add(1), 16)
}

func (s *countingSMSC) count(text string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.texts[text]
}

// esmeLoad submits unique texts from several binds. Like a real ESME, a
// message whose response was lost (the bridge died) is submitted again
// until it is acknowledged.
type esmeLoad struct {
	mu        sync.Mutex
	acked     []string
	resubmit  map[string]bool // texts submitted more than once
	throttled atomic.Int64
	resent    atomic.Int64
	pace      time.Duration // each worker's pause between messages; 0 = none
}

func (l *esmeLoad) run(ctx context.Context, addr string, binds int, prefix string) *sync.WaitGroup {
	var wg sync.WaitGroup
	for b := range binds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := smpp.NewClient(smpp.ClientConfig{Addr: addr, SystemID: "esme1", Password: "secret1", Bind: smpp.BindTransmitter,
				Window: 32, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, RespTimeout: 3 * time.Second})
			cctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { c.Run(cctx); close(done) }()
			defer func() { cancel(); <-done }()
			var inner sync.WaitGroup
			for w := range 16 {
				inner.Add(1)
				go func() {
					defer inner.Done()
					for i := 0; ctx.Err() == nil; i++ {
						if l.pace > 0 {
							time.Sleep(l.pace)
						}
						text := fmt.Sprintf("%s-%d-%d-%d", prefix, b, w, i)
						for try := 0; ; try++ {
							if try > 0 {
								l.resent.Add(1)
								l.mu.Lock()
								if l.resubmit == nil {
									l.resubmit = map[string]bool{}
								}
								l.resubmit[text] = true
								l.mu.Unlock()
							}
							sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
							resp, err := c.Send(sctx, &smpp.PDU{ID: smpp.SubmitSM, SourceAddrTON: 1, SourceAddrNPI: 1, SourceAddr: "8613900000031",
								DestAddrTON: 1, DestAddrNPI: 1, DestAddr: "8613700000031", ShortMessage: []byte(text)})
							scancel()
							if err == nil && resp.MessageID != "" {
								l.mu.Lock()
								l.acked = append(l.acked, text)
								l.mu.Unlock()
								break
							}
							var se *smpp.StatusError
							if errors.As(err, &se) && se.Status == smpp.ESME_RTHROTTLED {
								l.throttled.Add(1)
								time.Sleep(20 * time.Millisecond)
							}
							if ctx.Err() != nil && try > 200 {
								return // give up only long after the load stopped
							}
						}
					}
				}()
			}
			inner.Wait()
		}()
	}
	return &wg
}

func (l *esmeLoad) ackedTexts() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.acked...)
}

func TestCrashLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test starts real processes; skipped with -short")
	}
	sc := startCountingSMSC(t, "127.0.0.1:0")
	dir := t.TempDir()
	addr := freeTCPPort(t)
	args := []string{"--data-dir", dir, "--smsc", "smpp://bridge:pw@" + sc.addr, "--dedup-window", "10m"}
	p := startProc(t, addr, args...)
	defer func() { p.stop() }()

	ctx, stopLoad := context.WithCancel(context.Background())
	load := &esmeLoad{}
	wg := load.run(ctx, addr, 2, "crash")
	// Each process is killed at a random point of a load it is taking:
	// once a random number of messages more has been acknowledged.
	acknowledged := func(more int) func() bool {
		target := len(load.ackedTexts()) + more
		return func() bool { return len(load.ackedTexts()) >= target }
	}
	const kills = 4
	for k := range kills {
		testutil.WaitFor(t, "acknowledgements before a kill", 30*time.Second, acknowledged(100+rand.IntN(900)))
		p.kill()
		t.Logf("kill %d: %d acknowledged so far", k+1, len(load.ackedTexts()))
		p = startProc(t, addr, args...)
	}
	testutil.WaitFor(t, "acknowledgements after the last restart", 30*time.Second, acknowledged(500))
	stopLoad()
	wg.Wait()

	acked := load.ackedTexts()
	if len(acked) < 100 {
		t.Fatalf("only %d messages acknowledged: the load did not run", len(acked))
	}
	dups := waitAllReached(t, sc, acked)
	resubDups := 0
	for _, txt := range acked {
		if n := sc.count(txt); n > 1 && load.resubmit[txt] {
			resubDups += n - 1
		}
	}
	t.Logf("crash test: %d kills, %d acknowledged, %d resubmitted by the ESMEs, 0 lost, %d duplicates at the SMSC (%d of them of resubmitted messages)",
		kills, len(acked), load.resent.Load(), dups, resubDups)
}

// waitAllReached waits until every acknowledged text has reached the SMSC,
// failing the test after a minute, and returns the copies beyond one.
func waitAllReached(t *testing.T, sc *countingSMSC, acked []string) (dups int) {
	t.Helper()
	var lost []string
	testutil.WaitForState(t, 60*time.Second, func() bool {
		lost = lost[:0]
		for _, txt := range acked {
			if sc.count(txt) == 0 {
				lost = append(lost, txt)
			}
		}
		return len(lost) == 0
	}, func() string {
		return fmt.Sprintf("%d acknowledged messages never reached the SMSC, e.g. %q", len(lost), lost[:min(5, len(lost))])
	})
	for _, txt := range acked {
		if n := sc.count(txt); n > 1 {
			dups += n - 1
		}
	}
	return dups
}

// Offered load far beyond what a slow SMSC takes: the bridge throttles
// (ESME_RTHROTTLED) at its queue depth, its memory stays bounded while its
// queue turns over many times, and everything it acknowledged is delivered
// once the SMSC catches up.
func TestOverloadThrottlesAndLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real process; skipped with -short")
	}
	// with window 16 upstream: ~8k msg/s at best
	sc := startCountingSMSC(t, "127.0.0.1:0", func(s *countingSMSC) { s.delay = 2 * time.Millisecond })
	addr := freeTCPPort(t)
	p := startProc(t, addr, "--data-dir", t.TempDir(), "--smsc", "smpp://bridge:pw@"+sc.addr,
		"--queue-depth", "2000", "--smpp-window", "16", "--dedup-window", "0")
	defer p.stop()
	ctx, stopLoad := context.WithCancel(context.Background())
	load := &esmeLoad{}
	wg := load.run(ctx, addr, 4, "flood")
	// Overloaded until the full queue (2,000) has been acknowledged and
	// delivered 25 times over, sampling the bridge's memory all along.
	const turnover = 25 * 2000
	peak := 0
	testutil.WaitForState(t, 120*time.Second, func() bool {
		peak = max(peak, p.rssKB())
		return load.throttled.Load() > 0 && len(load.ackedTexts()) >= turnover
	}, func() string {
		return fmt.Sprintf("overload: %d acknowledged, %d throttled", len(load.ackedTexts()), load.throttled.Load())
	})
	stopLoad()
	wg.Wait()
	acked := load.ackedTexts()
	missing := 0
	testutil.WaitForState(t, 60*time.Second, func() bool {
		missing = 0
		for _, txt := range acked {
			if sc.count(txt) == 0 {
				missing++
			}
		}
		return missing == 0
	}, func() string { return fmt.Sprintf("%d acknowledged messages lost", missing) })
	t.Logf("overload: %d acknowledged, %d throttled, peak RSS %d MB, %d lost", len(acked), load.throttled.Load(), peak/1024, missing)
	if load.throttled.Load() == 0 {
		t.Fatal("no ESME_RTHROTTLED under overload")
	}
	if missing > 0 {
		t.Fatalf("%d acknowledged messages lost", missing)
	}
	const rssBound = 512 << 10 // KB
	if peak > rssBound {
		t.Fatalf("peak RSS %d MB above the %d MB bound", peak/1024, rssBound>>10)
	}
}

// The SMSC goes away; messages are still accepted (stored) and flow when it
// comes back on the same address.
func TestSMSCOutageAndReturn(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real process; skipped with -short")
	}
	smscAddr := freeTCPPort(t)
	sc := startCountingSMSC(t, smscAddr)
	addr := freeTCPPort(t)
	p := startProc(t, addr, "--data-dir", t.TempDir(), "--smsc", "smpp://bridge:pw@"+smscAddr)
	defer p.stop()
	sc.srv.Close() // outage
	c := smpp.NewClient(smpp.ClientConfig{Addr: addr, SystemID: "esme1", Password: "secret1"})
	cctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Run(cctx)
	for i := range 20 {
		ctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.Send(ctx, &smpp.PDU{ID: smpp.SubmitSM, SourceAddrTON: 1, SourceAddrNPI: 1, SourceAddr: "8613900000032",
			DestAddrTON: 1, DestAddrNPI: 1, DestAddr: "8613700000032", ShortMessage: []byte("during outage " + strconv.Itoa(i))})
		scancel()
		if err != nil {
			t.Fatalf("submit %d during the SMSC outage: %v (must be stored and acknowledged)", i, err)
		}
	}
	sc2 := startCountingSMSC(t, smscAddr) // back
	testutil.WaitFor(t, "all 20 at the returned SMSC", 60*time.Second, func() bool {
		for i := range 20 {
			if sc2.count("during outage "+strconv.Itoa(i)) == 0 {
				return false
			}
		}
		return true
	})
}

// SIGHUP re-reads the configuration file: a new SMPP account can bind
// without a restart; a broken file keeps the running configuration.
func TestSIGHUPReloadsAccounts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real process; skipped with -short")
	}
	cfgFile := filepath.Join(t.TempDir(), "bridge.yaml")
	write := func(s string) {
		if err := os.WriteFile(cfgFile, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("smpp_account:\n  - old:oldpw\n")
	addr := freeTCPPort(t)
	p := startProc(t, addr, "--data-dir", t.TempDir(), "--config", cfgFile)
	defer p.stop()
	bind := func(id, pw string) error {
		c := smpp.NewClient(smpp.ClientConfig{Addr: addr, SystemID: id, Password: pw})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return c.Probe(ctx)
	}
	if err := bind("new", "newpw"); err == nil {
		t.Fatal("unknown account bound before the reload")
	}
	write("smpp_account:\n  - old:oldpw\n  - new:newpw\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	logged := func() string { b, _ := os.ReadFile(p.log.Name()); return string(b) }
	testutil.WaitForState(t, 10*time.Second, func() bool { return bind("new", "newpw") == nil }, func() string {
		return "the new account cannot bind after SIGHUP; bridge log:\n" + logged()
	})
	write("smpp_account: [unterminated\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, "the broken file refused", 10*time.Second, func() bool { return strings.Contains(logged(), "reload refused") })
	if err := bind("new", "newpw"); err != nil {
		t.Fatalf("a broken file replaced the running configuration: %v", err)
	}
}
