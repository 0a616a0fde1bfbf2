// Package prosodytest starts a real Prosody XMPP server for tests: its own
// configuration, data, log and pid file in the test's temporary directory,
// client (c2s) and component (XEP-0114) listeners on free loopback ports,
// STARTTLS with a certificate generated here, and the test's users.
//
// Prosody is a Debian package (prosody); without it Start skips the test,
// or fails it when BRIDGE_REQUIRE_INTEROP=1. Launch starts one outside a
// test (the load tester's), in a temporary directory Close removes.
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
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
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
	// Quiet logs from level info up instead of debug: a load test's
	// Prosody would spend more on logging every stanza at debug than on
	// routing it. (Info still has the lines the start is recognized by.)
	Quiet bool
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
	ownDir                    bool // made by Launch: Close removes it

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
// accept connections. Without prosody it skips t (fails it when
// BRIDGE_REQUIRE_INTEROP=1).
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("BRIDGE_REQUIRE_INTEROP") == "1" {
			t.Fatalf("%v and BRIDGE_REQUIRE_INTEROP=1 (install Debian package prosody)", err)
		}
		t.Skipf("%v (Debian package prosody); set BRIDGE_REQUIRE_INTEROP=1 to make this fatal", err)
	}
	s, err := launch(opts, t.TempDir())
	if err != nil {
		t.Fatalf("prosodytest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("prosody log tail (%s):\n%s", s.logPath, s.LogTail(60))
		}
		s.Stop()
	})
	return s
}

// Available says why Prosody cannot be started here, or nil.
func Available() error {
	if _, err := exec.LookPath("prosody"); err != nil {
		return errors.New("prosody not on PATH")
	}
	return nil
}

// Launch starts Prosody outside a test (the load tester uses it) in a
// temporary directory of its own, which Close removes. It returns once
// both listeners accept connections.
func Launch(opts Options) (*Server, error) {
	if err := Available(); err != nil {
		return nil, fmt.Errorf("prosodytest: %w (Debian package prosody)", err)
	}
	dir, err := os.MkdirTemp("", "prosody-")
	if err != nil {
		return nil, err
	}
	s, err := launch(opts, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("prosodytest: %w", err)
	}
	s.ownDir = true
	return s, nil
}

// Close stops Prosody and removes the directory Launch made.
func (s *Server) Close() {
	s.Stop()
	if s.ownDir {
		os.RemoveAll(s.Dir)
	}
}

// launch writes the configuration, certificate and accounts into dir and
// starts Prosody. On error it has stopped whatever it started; the error
// carries the tail of Prosody's log.
func launch(opts Options, dir string) (*Server, error) {
	s := &Server{
		opts:            opts,
		ComponentDomain: opts.ComponentDomain,
		Secret:          opts.ComponentSecret,
		VHosts:          slices.Clone(opts.VHosts),
		Dir:             dir,
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
			return nil, err
		}
	}
	if err := s.writeCert(); err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	if err := s.register(opts.Users); err != nil {
		return nil, err
	}
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
		if err = s.start(); err == nil || !errors.Is(err, errPortTaken) {
			break
		}
		s.Stop()
	}
	if err != nil {
		tail := s.LogTail(60)
		s.Stop()
		return nil, fmt.Errorf("%w\nprosody log tail:\n%s", err, tail)
	}
	return s, nil
}

// PID is the running Prosody's process id (0 when it is not running), for
// reading its CPU use from /proc.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
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

// register writes the users' accounts into Prosody's data directory before
// the server runs, as prosodyctl register would (internal_hashed: SCRAM-SHA-1
// keys, hex, in Prosody's Lua serialization) but without starting a Lua
// process per user, which a load test with hundreds of users would wait
// seconds for. Users sharing a password share its salt, so the key
// derivation runs once per password.
func (s *Server) register(users map[string]string) error {
	type keys struct{ salt, stored, server string }
	byPass := map[string]keys{}
	for jid, pass := range users {
		user, host, ok := strings.Cut(jid, "@")
		if !ok || user == "" || !slices.Contains(s.VHosts, host) {
			return fmt.Errorf("user %q: want user@vhost with a vhost of %v", jid, s.VHosts)
		}
		if user != strings.ToLower(user) {
			return fmt.Errorf("user %q: Prosody keeps localparts in lower case", jid)
		}
		k, ok := byPass[pass]
		if !ok {
			var b [16]byte
			rand.Read(b[:])
			k.salt = hex.EncodeToString(b[:])
			stored, server, err := scramSHA1Keys(pass, k.salt, iterations)
			if err != nil {
				return fmt.Errorf("user %q: %w", jid, err)
			}
			k.stored, k.server = hex.EncodeToString(stored), hex.EncodeToString(server)
			byPass[pass] = k
		}
		dir := filepath.Join(s.Dir, "data", storeEncode(host), "accounts")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		rec := fmt.Sprintf("return {\n\t[\"iteration_count\"] = %d;\n\t[\"salt\"] = %s;\n\t[\"stored_key\"] = %s;\n\t[\"server_key\"] = %s;\n};\n",
			iterations, luaString(k.salt), luaString(k.stored), luaString(k.server))
		if err := os.WriteFile(filepath.Join(dir, storeEncode(user)+".dat"), []byte(rec), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// iterations is Prosody's default PBKDF2 iteration count for new accounts.
const iterations = 10000

// scramSHA1Keys derives SCRAM-SHA-1's StoredKey and ServerKey (RFC 5802)
// from a password, as Prosody's internal_hashed stores them.
func scramSHA1Keys(pass, salt string, iter int) (stored, server []byte, err error) {
	salted, err := pbkdf2.Key(sha1.New, pass, []byte(salt), iter, sha1.Size)
	if err != nil {
		return nil, nil, err
	}
	mac := func(msg string) []byte {
		h := hmac.New(sha1.New, salted)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	ck := sha1.Sum(mac("Client Key"))
	return ck[:], mac("Server Key"), nil
}

// storeEncode is Prosody's file name encoding of hosts and users
// (util.datamanager): every byte but ASCII letters and digits as %xx.
func storeEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02x", c)
	}
	return b.String()
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
	level := "debug"
	if s.opts.Quiet {
		level = "info"
	}
	fmt.Fprintf(&b, "log = { %s = %s }\n", level, q(s.logPath))
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
-- With Nagle on, a ping written right after a message waits for the
-- client's delayed ACK: tens of milliseconds on every delivery.
network_settings = { nagle = false }
-- Lua 5.4's generational collector: the default incremental one took
-- Prosody from about 50% to 75-100% of a core at 1,800 messages/s.
gc = { mode = "generational" }
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
