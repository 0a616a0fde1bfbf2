// Package prosodytest starts a real Prosody XMPP server for tests: its own
// configuration, data, log and pid file in the test's temporary directory,
// client (c2s) and component (XEP-0114) listeners on free loopback ports,
// STARTTLS with a certificate generated here, and the test's users.
//
// Prosody is a Debian package (prosody); without it Start skips the test,
// or fails it when BRIDGE_REQUIRE_INTEROP=1.
//
// Client is a go-xmpp user, so that the two ends of a test are not the same
// library. It logs in with PLAIN inside verified TLS: go-xmpp's SCRAM fails
// against Prosody 0.12 (its gs2 header differs between first and final
// message).
package prosodytest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Options configures a Server; the zero value serves example.test with the
// component sms.example.test and no users.
type Options struct {
	VHosts          []string          // virtual hosts (default example.test)
	ComponentDomain string            // XEP-0114 component domain (default sms.example.test)
	ComponentSecret string            // component secret (default random)
	Users           map[string]string // "user@vhost" → password, registered before the start
	// HostConfig holds extra Lua settings for a vhost, written under its
	// VirtualHost line (e.g. another authentication provider).
	HostConfig  map[string]string
	PluginPaths []string // folders of extra modules (e.g. the repository's prosody/)
}

// Server is one running Prosody. Its addresses and data survive Restart.
type Server struct {
	C2SAddr         string // client listener, host:port, STARTTLS required
	ComponentAddr   string // component listener, host:port
	ComponentDomain string
	Secret          string
	VHosts          []string
	CertPEM         []byte // the self-signed certificate of every vhost: trust it as a root
	Dir             string // config, data, certificates, log and pid file

	opts                      Options
	cfgPath, logPath, outPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// How long Prosody may take to start or to stop before the test fails or
// the process is killed.
const (
	startTimeout = 20 * time.Second
	stopTimeout  = 5 * time.Second
)

// Start starts Prosody for t and stops it when t ends; on failure the tail
// of Prosody's log goes to the test log. It returns once both listeners
// accept connections.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	for _, tool := range []string{"prosody", "prosodyctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("BRIDGE_REQUIRE_INTEROP") == "1" {
				t.Fatalf("%s not on PATH and BRIDGE_REQUIRE_INTEROP=1 (install Debian package prosody)", tool)
			}
			t.Skipf("%s not on PATH (Debian package prosody); set BRIDGE_REQUIRE_INTEROP=1 to make this fatal", tool)
		}
	}
	s := &Server{
		opts:            opts,
		ComponentDomain: opts.ComponentDomain,
		Secret:          opts.ComponentSecret,
		VHosts:          slices.Clone(opts.VHosts),
		Dir:             t.TempDir(),
	}
	if len(s.VHosts) == 0 {
		s.VHosts = []string{"example.test"}
	}
	if s.ComponentDomain == "" {
		s.ComponentDomain = "sms.example.test"
	}
	if s.Secret == "" {
		var b [16]byte
		rand.Read(b[:])
		s.Secret = hex.EncodeToString(b[:])
	}
	s.cfgPath = filepath.Join(s.Dir, "prosody.cfg.lua")
	s.logPath = filepath.Join(s.Dir, "prosody.log")
	s.outPath = filepath.Join(s.Dir, "prosody.out")
	for _, d := range []string{"data", "certs"} {
		if err := os.Mkdir(filepath.Join(s.Dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.writeCert(); err != nil {
		t.Fatalf("prosodytest: certificate: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prosody log tail (%s):\n%s", s.logPath, s.LogTail(60))
		}
		s.Stop()
	})

	// A free port found here may be taken before Prosody binds it; then
	// Prosody says so in its log and the start is tried on new ports.
	var err error
	for try := 0; try < 3; try++ {
		if err = s.choosePorts(); err != nil {
			break
		}
		if err = s.writeConfig(); err != nil {
			break
		}
		if try == 0 {
			if err = s.register(opts.Users); err != nil {
				break
			}
		}
		if err = s.start(); err == nil || !errors.Is(err, errPortTaken) {
			break
		}
		s.Stop()
	}
	if err != nil {
		t.Fatalf("prosodytest: %v\nprosody log tail:\n%s", err, s.LogTail(60))
	}
	return s
}

// Restart kills Prosody and starts it again on the same ports with the same
// data, as after a crash: connections drop without a closing stream.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.kill(syscall.SIGKILL)
	if err := s.start(); err != nil {
		t.Fatalf("prosodytest: restart: %v\nprosody log tail:\n%s", err, s.LogTail(60))
	}
}

// Stop ends Prosody (SIGTERM, then SIGKILL if it lingers). It may be called
// more than once.
func (s *Server) Stop() { s.kill(syscall.SIGTERM) }

// CertPool is a pool holding CertPEM, for a client's tls.Config RootCAs.
func (s *Server) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(s.CertPEM)
	return p
}

// LogTail returns the last n lines of Prosody's log and its own output.
func (s *Server) LogTail(n int) string {
	var b strings.Builder
	for _, p := range []string{s.outPath, s.logPath} {
		data, err := os.ReadFile(p)
		if err != nil || len(data) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "--- %s\n%s\n", filepath.Base(p), strings.Join(lines, "\n"))
	}
	return b.String()
}

var errPortTaken = errors.New("a listening port was taken")

// start runs Prosody in the foreground of its own process group and waits
// until its log reports both listeners active and they accept connections.
func (s *Server) start() error {
	out, err := os.OpenFile(s.outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	logStart := fileSize(s.logPath)
	cmd := exec.Command("prosody", "-F", "--config", s.cfgPath)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start prosody: %w", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	want := []string{
		"Activated service 'c2s' on [127.0.0.1]:" + port(s.C2SAddr) + "\n",
		"Activated service 'component' on [127.0.0.1]:" + port(s.ComponentAddr) + "\n",
	}
	deadline := time.Now().Add(startTimeout)
	for pause := time.Millisecond; ; pause = min(2*pause, 50*time.Millisecond) {
		select {
		case <-done:
			return fmt.Errorf("prosody exited at start: %v", cmd.ProcessState)
		default:
		}
		log := logSince(s.logPath, logStart)
		if strings.Contains(log, "Failed to open server port") {
			return errPortTaken
		}
		if containsAll(log, want) && accepts(s.C2SAddr) && accepts(s.ComponentAddr) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("prosody not listening on %s and %s after %v", s.C2SAddr, s.ComponentAddr, startTimeout)
		}
		time.Sleep(pause)
	}
}

// kill signals the running Prosody and waits for it to exit, escalating to
// SIGKILL after stopTimeout.
func (s *Server) kill(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(stopTimeout):
		cmd.Process.Kill()
		<-done
	}
}

func (s *Server) choosePorts() error {
	var ports [2]string
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("free port: %w", err)
		}
		ports[i] = l.Addr().String()
		l.Close()
	}
	s.C2SAddr, s.ComponentAddr = ports[0], ports[1]
	return nil
}

// register creates the users with prosodyctl before the server runs.
func (s *Server) register(users map[string]string) error {
	for jid, pass := range users {
		user, host, ok := strings.Cut(jid, "@")
		if !ok || user == "" || !slices.Contains(s.VHosts, host) {
			return fmt.Errorf("user %q: want user@vhost with a vhost of %v", jid, s.VHosts)
		}
		cmd := exec.Command("prosodyctl", "--config", s.cfgPath, "register", user, host, pass)
		cmd.Dir = s.Dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("prosodyctl register %s: %v: %s", jid, err, out)
		}
	}
	return nil
}

// writeCert writes a self-signed certificate for every vhost (and the
// component domain), which clients trust as its own root.
func (s *Server) writeCert() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: s.VHosts[0], Organization: []string{"prosodytest"}},
		DNSNames:              append(slices.Clone(s.VHosts), s.ComponentDomain),
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	s.CertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := os.WriteFile(filepath.Join(s.Dir, "certs", "cert.pem"), s.CertPEM, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.Dir, "certs", "key.pem"), keyPEM, 0o600)
}

// writeConfig writes a minimal configuration: c2s with STARTTLS required and
// internal_hashed accounts, one component listener, no s2s, no HTTP, and
// everything kept inside Dir.
func (s *Server) writeConfig() error {
	var b bytes.Buffer
	q := luaString
	// Prosody run as root switches to the prosody user, which could not
	// read the test's private temporary directory; stay root instead.
	if os.Geteuid() == 0 {
		b.WriteString("run_as_root = true\n")
	}
	fmt.Fprintf(&b, "data_path = %s\n", q(filepath.Join(s.Dir, "data")))
	fmt.Fprintf(&b, "pidfile = %s\n", q(filepath.Join(s.Dir, "prosody.pid")))
	fmt.Fprintf(&b, "log = { debug = %s }\n", q(s.logPath))
	fmt.Fprintf(&b, "certificates = %s\n", q(filepath.Join(s.Dir, "certs")))
	fmt.Fprintf(&b, "ssl = { certificate = %s; key = %s }\n",
		q(filepath.Join(s.Dir, "certs", "cert.pem")), q(filepath.Join(s.Dir, "certs", "key.pem")))
	b.WriteString("plugin_paths = {")
	for _, p := range s.opts.PluginPaths {
		fmt.Fprintf(&b, " %s;", q(p))
	}
	b.WriteString(" }\n")
	b.WriteString(`modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping"; "posix" }
modules_disabled = { "s2s" }
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = true
interfaces = { "127.0.0.1" }
c2s_interfaces = { "127.0.0.1" }
component_interfaces = { "127.0.0.1" }
s2s_ports = { }
c2s_direct_tls_ports = { }
legacy_ssl_ports = { }
`)
	fmt.Fprintf(&b, "c2s_ports = { %s }\n", port(s.C2SAddr))
	fmt.Fprintf(&b, "component_ports = { %s }\n", port(s.ComponentAddr))
	for _, h := range s.VHosts {
		fmt.Fprintf(&b, "VirtualHost %s\n", q(h))
		if extra := s.opts.HostConfig[h]; extra != "" {
			fmt.Fprintf(&b, "%s\n", extra)
		}
	}
	fmt.Fprintf(&b, "Component %s\n\tcomponent_secret = %s\n", q(s.ComponentDomain), q(s.Secret))
	return os.WriteFile(s.cfgPath, b.Bytes(), 0o600)
}

// luaString quotes s as a Lua string literal.
func luaString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\x00", `\0`).Replace(s) + `"`
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func accepts(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logSince returns what was appended to the log at p after offset.
func logSince(p string, offset int64) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.Seek(offset, 0); err != nil {
		return ""
	}
	var b bytes.Buffer
	b.ReadFrom(f)
	return b.String()
}
