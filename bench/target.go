package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/smsbridge/bridge/config"
)

// Bridge is a bridge the bench spawned as a child process.
type Bridge struct {
	mu       sync.Mutex // cmd and done, which Restart replaces
	cmd      *exec.Cmd
	down     atomic.Bool // killed on purpose and not restarted yet
	SMPPAddr string
	SIPAddr  string
	HTTPAddr string // the API, when SpawnOptions.APIToken asked for it
	APIToken string
	dataDir  string
	done     chan error
	stderr   *tailBuffer
}

// BuildBridge compiles ./cmd/bridge of the module at root into dir.
func BuildBridge(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "bridge")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/bridge")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/bridge: %w\n%s", err, out)
	}
	return bin, nil
}

// ModuleRoot finds the directory of the enclosing go.mod.
func ModuleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside a Go module: run the bench from the bridge repository or pass --bridge-bin")
	}
	return filepath.Dir(mod), nil
}

// freeTCPPort returns a loopback port free for TCP (and, with udp, UDP too)
// right now. Another process may take it before the bridge binds; the
// caller retries the spawn on failure.
func freeTCPPort(udp bool) (int, error) {
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		if udp {
			pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				ln.Close()
				continue
			}
			pc.Close()
		}
		ln.Close()
		return port, nil
	}
	return 0, errors.New("no free port")
}

// SpawnOptions configures a spawned bridge.
type SpawnOptions struct {
	Bin      string
	DataDir  string
	Domain   string
	SMSCAddr string
	Users    []string // SIP users; all share Password
	Password string
	Extra    []string // more flags, appended last
	Log      *slog.Logger
	// APIToken, if set, opens the HTTP API on a loopback port with this
	// token (the XMPP routes provision users through it).
	APIToken string
	// XMPPServer, if set, attaches the bridge as the XMPPDomain component
	// of the XMPP server at this address.
	XMPPServer, XMPPDomain, XMPPSecret string
	// Groups gives the bridge group chat on groupAccess with the post rate
	// limits lifted far above any load, so that the fan-out is measured
	// and not the policy (each post still passes the token buckets).
	Groups bool
}

// groupAccess is the access number of the spawned bridge's groups; with
// country code 86 the first group is +8610658000001.
const groupAccess = "1065800"

// Spawn starts the bridge and waits until its SMPP port answers.
func Spawn(ctx context.Context, o SpawnOptions) (*Bridge, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		b, err := spawnOnce(ctx, o)
		if err == nil {
			return b, nil
		}
		lastErr = err
		o.Log.Warn("bridge start failed, retrying", "attempt", attempt+1, "err", err)
	}
	return nil, lastErr
}

func spawnOnce(ctx context.Context, o SpawnOptions) (*Bridge, error) {
	smppPort, err := freeTCPPort(false)
	if err != nil {
		return nil, err
	}
	sipPort, err := freeTCPPort(true)
	if err != nil {
		return nil, err
	}
	b := &Bridge{
		SMPPAddr: "127.0.0.1:" + strconv.Itoa(smppPort),
		SIPAddr:  "127.0.0.1:" + strconv.Itoa(sipPort),
		APIToken: o.APIToken,
		dataDir:  o.DataDir,
		done:     make(chan error, 1),
		stderr:   &tailBuffer{max: 16 << 10},
	}
	if o.APIToken != "" {
		httpPort, err := freeTCPPort(false)
		if err != nil {
			return nil, err
		}
		b.HTTPAddr = "127.0.0.1:" + strconv.Itoa(httpPort)
	}
	args := []string{"serve",
		"--smpp-listen", b.SMPPAddr, "--sip-listen", b.SIPAddr,
		"--http-listen", b.HTTPAddr, "--mcp-listen", "",
		"--data-dir", o.DataDir, "--sip-domain", o.Domain,
		"--smsc", "smpp://bridge:bridgepw@" + o.SMSCAddr,
		"--smpp-account", "bench:benchpw",
		"--log-level", "warn",
	}
	// The secrets go in the environment, where other users' ps does not
	// show them.
	env := os.Environ()
	if o.APIToken != "" {
		env = append(env, "BRIDGE_API_TOKEN="+o.APIToken)
	}
	if o.XMPPServer != "" {
		args = append(args, "--xmpp-server", o.XMPPServer, "--xmpp-domain", o.XMPPDomain)
		env = append(env, "BRIDGE_XMPP_SECRET="+o.XMPPSecret)
	}
	if o.Groups {
		args = append(args, "--group-number", groupAccess, "--group-member-rate", "1000000", "--group-rate", "1000000")
	}
	for _, u := range o.Users {
		args = append(args, "--sip-user", u+":"+config.HA1(u, o.Domain, o.Password))
	}
	args = append(args, o.Extra...)
	b.cmd = exec.Command(o.Bin, args...)
	b.cmd.Env = env
	if err := b.start(); err != nil {
		return nil, err
	}
	if err := b.awaitListening(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// start starts b.cmd; b.mu is held or b not shared yet.
func (b *Bridge) start() error {
	b.cmd.Stdout = io.Discard
	b.cmd.Stderr = b.stderr
	if err := b.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", b.cmd.Path, err)
	}
	cmd, done := b.cmd, b.done
	go func() { done <- cmd.Wait() }()
	return nil
}

// awaitListening waits until the bridge's SMPP port answers.
func (b *Bridge) awaitListening(ctx context.Context) error {
	b.mu.Lock()
	done := b.done
	b.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-done:
			return fmt.Errorf("bridge exited at start (%v): %s", err, b.stderr.String())
		case <-ctx.Done():
			b.Stop()
			return ctx.Err()
		default:
		}
		if c, err := net.DialTimeout("tcp", b.SMPPAddr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			b.Stop()
			return fmt.Errorf("bridge did not listen on %s within 30s: %s", b.SMPPAddr, b.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PID is the bridge's process id (the current one's, after Restart).
func (b *Bridge) PID() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cmd.Process.Pid
}

// Down says the bridge was killed on purpose and not restarted yet.
func (b *Bridge) Down() bool { return b.down.Load() }

// Kill kills the bridge with SIGKILL, as a crash would, and waits for it.
func (b *Bridge) Kill() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.down.Store(true)
	_ = b.cmd.Process.Kill()
	err := <-b.done
	b.done <- err
}

// Restart starts a killed bridge again with the same flags, data
// directory and ports, and waits until it listens.
func (b *Bridge) Restart(ctx context.Context) error {
	b.mu.Lock()
	old := b.cmd
	b.cmd = exec.Command(old.Path, old.Args[1:]...)
	b.cmd.Env = old.Env
	b.done = make(chan error, 1)
	err := b.start()
	b.mu.Unlock()
	if err != nil {
		return err
	}
	if err := b.awaitListening(ctx); err != nil {
		return err
	}
	b.down.Store(false)
	return nil
}

// Stderr is the tail of what the bridge logged.
func (b *Bridge) Stderr() string { return b.stderr.String() }

// Stop asks the bridge to shut down (SIGTERM) and kills it after 20 s.
func (b *Bridge) Stop() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case err := <-b.done: // exited already
		b.done <- err
		return nil
	default:
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-b.done:
		b.done <- err
		return nil
	case <-time.After(20 * time.Second):
		_ = b.cmd.Process.Kill()
		return errors.New("bridge did not stop within 20s; killed")
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
