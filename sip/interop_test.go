package sip

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/msg"
)

// freeUDPPort asks the kernel for a free UDP port on loopback. The socket
// is closed before sipp binds it, so another process could take it in
// between; on loopback in a test that is acceptable.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

type sippRun struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan error
	dir  string
}

func startSipp(t *testing.T, dir string, args ...string) *sippRun {
	t.Helper()
	r := &sippRun{done: make(chan error, 1), dir: dir}
	r.cmd = exec.Command("sipp", args...)
	r.cmd.Dir = dir // sipp writes its *_errors.log here
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start sipp: %v", err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(func() {
		if r.cmd.ProcessState == nil {
			r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// wait fails the test unless sipp exits 0 (all calls successful).
func (r *sippRun) wait(t *testing.T, what string) {
	t.Helper()
	var err error
	select {
	case err = <-r.done:
	case <-time.After(40 * time.Second):
		r.cmd.Process.Kill()
		err = <-r.done
		err = fmt.Errorf("did not finish: %w", err)
	}
	if err != nil {
		logs, _ := filepath.Glob(filepath.Join(r.dir, "*_errors.log"))
		var extra bytes.Buffer
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			fmt.Fprintf(&extra, "--- %s\n%s\n", filepath.Base(l), b)
		}
		t.Fatalf("sipp %s failed: %v\n%s\n%s", what, err, lastBytes(r.out.Bytes(), 4000), extra.String())
	}
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// needSipp skips (or fails, under BRIDGE_REQUIRE_INTEROP=1) without sipp,
// and returns the directory of the sipp scenarios.
func needSipp(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("sipp"); err != nil {
		if os.Getenv("BRIDGE_REQUIRE_INTEROP") == "1" {
			t.Fatal("sipp not on PATH and BRIDGE_REQUIRE_INTEROP=1 (install Debian package sip-tester)")
		}
		t.Skip("sipp not on PATH (Debian package sip-tester); set BRIDGE_REQUIRE_INTEROP=1 to make this fatal")
	}
	scen, err := filepath.Abs("testdata/sipp")
	if err != nil {
		t.Fatal(err)
	}
	return scen
}

// TestSippInterop registers a sipp UAC with digest auth and delivers an IM
// from the router to a sipp UAS at the registered contact.
func TestSippInterop(t *testing.T) {
	scen := needSipp(t)
	b := startBridge(t, nil)
	const user = "8613800000001"
	dir := t.TempDir()
	uasPort, uacPort := freeUDPPort(t), freeUDPPort(t)

	uas := startSipp(t, dir, "-sf", filepath.Join(scen, "uas.xml"),
		"-i", "127.0.0.1", "-p", strconv.Itoa(uasPort),
		"-m", "1", "-timeout", "30s", "-timeout_error", "-trace_err", "-nostdin")

	inf := filepath.Join(dir, "users.csv")
	csv := fmt.Sprintf("SEQUENTIAL\n%s;%s;%s;%d\n", user, testDomain, testPasswords[user], uasPort)
	if err := os.WriteFile(inf, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	uac := startSipp(t, dir, b.srv.Addr(), "-sf", filepath.Join(scen, "register.xml"),
		"-inf", inf, "-au", user, "-ap", testPasswords[user], "-i", "127.0.0.1", "-p", strconv.Itoa(uacPort),
		"-m", "1", "-timeout", "20s", "-timeout_error", "-trace_err", "-nostdin")
	uac.wait(t, "register UAC")

	bs := b.pres.Bindings("+" + user)
	want := fmt.Sprintf("sip:%s@127.0.0.1:%d", user, uasPort)
	if len(bs) != 1 || bs[0].Contact != want {
		t.Fatalf("bindings after sipp REGISTER = %+v, want contact %s", bs, want)
	}

	m := &msg.Message{From: "+8613900000009", To: "+" + user, Text: "hello sipp, from the bridge"}
	if err := msg.Accept(context.Background(), b.rt, m); err != nil {
		t.Fatalf("Submit: %v", err)
	}
	uas.wait(t, "MESSAGE UAS")

	testutil.WaitForState(t, 10*time.Second, func() bool { return b.rt.Stats().IMDelivered.Load() == 1 },
		func() string {
			return fmt.Sprintf("router did not record the delivery to sipp (IMFailed=%d)", b.rt.Stats().IMFailed.Load())
		})

	// The other direction: sipp sends a MESSAGE (digest-authenticated) and
	// gets 202 once the bridge stored it.
	minf := filepath.Join(dir, "message.csv")
	if err := os.WriteFile(minf, []byte(fmt.Sprintf("SEQUENTIAL\n%s;%s;%s\n", user, testDomain, "8613900000009")), 0o644); err != nil {
		t.Fatal(err)
	}
	accepted := b.rt.Stats().Accepted.Load()
	sender := startSipp(t, dir, b.srv.Addr(), "-sf", filepath.Join(scen, "message.xml"),
		"-inf", minf, "-au", user, "-ap", testPasswords[user], "-i", "127.0.0.1", "-p", strconv.Itoa(freeUDPPort(t)),
		"-m", "1", "-timeout", "20s", "-timeout_error", "-trace_err", "-nostdin")
	sender.wait(t, "MESSAGE UAC")
	if got := b.rt.Stats().Accepted.Load(); got != accepted+1 {
		t.Fatalf("accepted %d messages from sipp, want 1", got-accepted)
	}
}
