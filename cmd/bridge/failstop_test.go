package main

import (
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
)

// startOnDir starts a bridge process on data directory dir with HTTP on,
// and waits until /readyz answers 200; it returns the process and the
// /readyz URL.
func startOnDir(t *testing.T, dir string) (*proc, string) {
	t.Helper()
	httpAddr := freeTCPPort(t)
	p := startProc(t, freeTCPPort(t), "--data-dir", dir, "--http-listen", httpAddr, "--log-level", "info")
	url := "http://" + httpAddr + "/readyz"
	testutil.WaitForState(t, 10*time.Second, func() bool { code, _ := getStatus(url); return code == 200 },
		func() string { return "bridge never ready" })
	return p, url
}

func getStatus(url string) (int, string) {
	c := http.Client{Timeout: time.Second}
	res, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// waitExit waits up to limit for p to exit and returns its exit code and
// how long that took.
func waitExit(t *testing.T, p *proc, limit time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), time.Since(start)
		}
		return 0, time.Since(start)
	case <-time.After(limit):
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-done
		b, _ := os.ReadFile(p.log.Name())
		t.Fatalf("bridge still running %v later:\n%s", limit, tail(b, 3000))
		return 0, 0
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// TestStoreRemovedFailStops: a bridge process whose data directory is
// removed under it says why on /readyz (503) and in its log, and exits
// non-zero by itself; sent SIGTERM right after the removal, before it has
// looked, it exits within 10 s, non-zero, with the reason.
func TestStoreRemovedFailStops(t *testing.T) {
	t.Run("by itself", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		p, url := startOnDir(t, dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		var body string
		testutil.WaitForState(t, 5*time.Second, func() bool {
			var code int
			code, body = getStatus(url)
			return code == 503 && strings.Contains(body, "data directory")
		}, func() string { return "/readyz never said why: last " + body })
		code, took := waitExit(t, p, 10*time.Second)
		log, _ := os.ReadFile(p.log.Name())
		if code == 0 || !strings.Contains(string(log), "store failed") || !strings.Contains(string(log), "no such file or directory") {
			t.Fatalf("exit code %d after %v; log:\n%s", code, took, tail(log, 3000))
		}
	})
	t.Run("SIGTERM", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "data")
		p, _ := startOnDir(t, dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		code, took := waitExit(t, p, 10*time.Second)
		log, _ := os.ReadFile(p.log.Name())
		if code == 0 || !strings.Contains(string(log), "data directory") {
			t.Fatalf("exit code %d after %v; log:\n%s", code, took, tail(log, 3000))
		}
		t.Logf("exited %v after SIGTERM, code %d", took.Round(time.Millisecond), code)
	})
}
