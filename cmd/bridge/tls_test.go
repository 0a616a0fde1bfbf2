package main

// TLS on the real binary: HTTPS with curl, certificate reload on SIGHUP,
// SMPP over TLS both ways.

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	fsmpp "github.com/fiorix/go-smpp/smpp"
	"github.com/fiorix/go-smpp/smpp/pdu/pdufield"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutext"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/internal/tlsconf/tlstest"
)

// tlsFiles is a CA and the bridge's certificate at fixed paths, which
// renew overwrites as an operator's renewal would.
type tlsFiles struct {
	ca        *tlstest.CA
	cert, key string
}

func newTLSFiles(t *testing.T) *tlsFiles {
	t.Helper()
	f := &tlsFiles{ca: tlstest.NewCA(t)}
	dir := t.TempDir()
	f.cert, f.key = filepath.Join(dir, "bridge.pem"), filepath.Join(dir, "bridge-key.pem")
	f.renew(t, "bridge-first")
	return f
}

// renew writes a new certificate named cn, for 127.0.0.1 and localhost.
func (f *tlsFiles) renew(t *testing.T, cn string) {
	t.Helper()
	l := f.ca.Issue(cn, "127.0.0.1", "localhost")
	copyFile(t, l.CertFile, f.cert)
	copyFile(t, l.KeyFile, f.key)
}

func (f *tlsFiles) args() []string { return []string{"--tls-cert", f.cert, "--tls-key", f.key} }

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// servedCN is the common name of the certificate addr presents, verified
// against the CA; "" when the handshake fails.
func (f *tlsFiles) servedCN(addr string) string {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, f.ca.ClientConfig("127.0.0.1"))
	if err != nil {
		return ""
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

func needCommand(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed", name)
	}
}

// --http-tls serves the API as HTTPS that curl verifies against the CA;
// plain HTTP to the port gets no answer; SIGHUP swaps the certificate on
// the same listener, and a broken renewal keeps the one in use.
func TestHTTPSWithCurlAndReload(t *testing.T) {
	needCommand(t, "curl")
	f := newTLSFiles(t)
	httpAddr := freeTCPPort(t)
	p := startProc(t, freeTCPPort(t), append(f.args(), "--http-listen", httpAddr, "--http-tls",
		"--api-token", "tok", "--data-dir", t.TempDir())...)
	defer p.stop()
	port := httpAddr[strings.LastIndexByte(httpAddr, ':')+1:]
	url := "https://localhost:" + port

	out, err := exec.Command("curl", "-sS", "--max-time", "5", "--cacert", f.ca.File, url+"/healthz").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("curl over https: %v: %s", err, out)
	}
	out, err = exec.Command("curl", "-sS", "--max-time", "5", "--cacert", f.ca.File, "-o", "/dev/null", "-w", "%{http_code}",
		"-H", "Authorization: Bearer tok", "-H", "Content-Type: application/json",
		"-d", `{"from":"+8613800000001","to":"+8613800000002","text":"over https"}`, url+"/v1/messages").CombinedOutput()
	if err != nil || string(out) != "202" {
		t.Fatalf("authorized request over https: %v: %s", err, out)
	}
	// Without the CA curl refuses the certificate; plain HTTP gets nothing.
	if out, err := exec.Command("curl", "-sS", "--max-time", "5", url+"/healthz").CombinedOutput(); err == nil {
		t.Fatalf("curl trusted an unknown CA: %s", out)
	}
	if out, err := exec.Command("curl", "-sS", "--max-time", "5", "http://"+httpAddr+"/healthz").CombinedOutput(); err == nil {
		t.Fatalf("plain HTTP to the TLS port answered: %s", out)
	}

	// The healthcheck command trusts a private CA only when given it.
	var stdout, stderr strings.Builder
	if code := run([]string{"health", "--ca", f.ca.File, url + "/readyz"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("bridge health --ca over https: %d %s", code, stderr.String())
	}
	if code := run([]string{"health", url + "/readyz"}, nil, &stdout, &stderr); code != 1 {
		t.Fatalf("bridge health without the CA: %d, want 1", code)
	}

	if cn := f.servedCN(httpAddr); cn != "bridge-first" {
		t.Fatalf("served %q", cn)
	}
	f.renew(t, "bridge-second")
	p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, "the renewed certificate", 10*time.Second, func() bool { return f.servedCN(httpAddr) == "bridge-second" })
	if err := os.WriteFile(f.cert, []byte("-----BEGIN CERTIFICATE-----\nbroken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(500 * time.Millisecond)
	if cn := f.servedCN(httpAddr); cn != "bridge-second" {
		t.Fatalf("after a broken renewal served %q, want the one in use", cn)
	}
	if out, err := exec.Command("curl", "-sS", "--max-time", "5", "--cacert", f.ca.File, url+"/healthz").CombinedOutput(); err != nil {
		t.Fatalf("curl after a broken renewal: %v: %s", err, out)
	}
	if log, _ := os.ReadFile(p.log.Name()); !strings.Contains(string(log), "--tls-cert") {
		t.Errorf("the refused renewal is not logged:\n%s", log)
	}
}

// SMPP over TLS end to end: an independent client (fiorix/go-smpp) binds
// to --smpp-tls-listen and submits; the bridge sends the SMS on over its
// smpps:// bind to an SMSC that speaks only TLS; openssl completes a
// handshake with the listener; a plain bind there fails.
func TestSMPPOverTLS(t *testing.T) {
	f := newTLSFiles(t)
	smsc := startCountingSMSC(t, "127.0.0.1:0", func(s *countingSMSC) {
		s.tls = f.ca.Issue("smsc", "127.0.0.1").ServerConfig(t)
	})
	tlsAddr := freeTCPPort(t)
	p := startProc(t, freeTCPPort(t), append(f.args(), "--smpp-tls-listen", tlsAddr,
		"--smsc", "smpps://bridge:x@"+smsc.addr, "--smsc-ca", f.ca.File, "--data-dir", t.TempDir())...)
	defer p.stop()

	submit := func(conf *tls.Config, text string) error {
		tx := &fsmpp.Transmitter{Addr: tlsAddr, User: "esme1", Passwd: "secret1", RespTimeout: 5 * time.Second, TLS: conf}
		defer tx.Close()
		select {
		case st := <-tx.Bind():
			if st.Error() != nil {
				return fmt.Errorf("bind: %w", st.Error())
			}
		case <-time.After(5 * time.Second):
			return errors.New("bind timed out")
		}
		_, err := tx.Submit(&fsmpp.ShortMessage{Src: "8613900000009", Dst: "8613800000077", Text: pdutext.Raw(text),
			Register: pdufield.NoDeliveryReceipt, SourceAddrTON: 1, SourceAddrNPI: 1, DestAddrTON: 1, DestAddrNPI: 1})
		return err
	}
	if err := submit(f.ca.ClientConfig("127.0.0.1"), "over tls both ways"); err != nil {
		t.Fatalf("fiorix over TLS: %v", err)
	}
	testutil.WaitFor(t, "the SMS at the TLS SMSC", 15*time.Second, func() bool { return smsc.count("over tls both ways") == 1 })

	// Without TLS the listener never answers a bind.
	tx := &fsmpp.Transmitter{Addr: tlsAddr, User: "esme1", Passwd: "secret1", RespTimeout: 2 * time.Second}
	select {
	case st := <-tx.Bind():
		if st.Error() == nil && st.Status() == fsmpp.Connected {
			t.Error("a plain bind to the TLS listener succeeded")
		}
	case <-time.After(3 * time.Second):
	}
	tx.Close()

	needCommand(t, "openssl")
	cmd := exec.Command("openssl", "s_client", "-connect", tlsAddr, "-CAfile", f.ca.File, "-verify_return_error",
		"-verify_ip", "127.0.0.1", "-brief")
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Verification: OK") {
		t.Fatalf("openssl s_client: %v\n%s", err, out)
	}
}
