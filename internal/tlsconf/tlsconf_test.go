package tlsconf_test

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"testing"

	"github.com/smsbridge/bridge/internal/tlsconf"
	"github.com/smsbridge/bridge/internal/tlsconf/tlstest"
)

// handshake dials ln with the CA's roots and returns the CN the server
// presented.
func handshake(t *testing.T, addr string, ca *tlstest.CA) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, ca.ClientConfig("127.0.0.1"))
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// A reload swaps the certificate for the next handshake on the same
// listener; a bad file keeps the old certificate.
func TestReloadSwapsWithoutRelisten(t *testing.T) {
	ca := tlstest.NewCA(t)
	first := ca.Issue("first", "127.0.0.1")
	second := ca.Issue("second", "127.0.0.1")
	cert, err := tlsconf.Load(first.CertFile, first.KeyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln := serveTLS(t, cert)
	if cn := handshake(t, ln.Addr().String(), ca); cn != "first" {
		t.Fatalf("served %q, want first", cn)
	}
	// The renewal lands where the first one was.
	copyFile(t, second.CertFile, first.CertFile)
	copyFile(t, second.KeyFile, first.KeyFile)
	if err := cert.Reload(); err != nil {
		t.Fatal(err)
	}
	if cn := handshake(t, ln.Addr().String(), ca); cn != "second" {
		t.Fatalf("after reload served %q, want second", cn)
	}
	// A broken file: the error comes back, the certificate stays.
	if err := os.WriteFile(first.CertFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cert.Reload(); err == nil {
		t.Fatal("reload of a broken certificate succeeded")
	}
	if cn := handshake(t, ln.Addr().String(), ca); cn != "second" {
		t.Fatalf("after a failed reload served %q, want second", cn)
	}
}

func TestMinimumTLS12(t *testing.T) {
	ca := tlstest.NewCA(t)
	l := ca.Issue("srv", "127.0.0.1")
	cert, err := tlsconf.Load(l.CertFile, l.KeyFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln := serveTLS(t, cert)
	cc := ca.ClientConfig("127.0.0.1")
	cc.MinVersion, cc.MaxVersion = tls.VersionTLS11, tls.VersionTLS11
	if c, err := tls.Dial("tcp", ln.Addr().String(), cc); err == nil {
		c.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
}

func TestLoadErrors(t *testing.T) {
	ca := tlstest.NewCA(t)
	l := ca.Issue("srv", "127.0.0.1")
	if _, err := tlsconf.Load(l.CertFile, "", nil); err == nil {
		t.Error("a certificate without its key loaded")
	}
	if _, err := tlsconf.Load(l.CertFile, l.CertFile, nil); err == nil {
		t.Error("a certificate as its own key loaded")
	}
	if _, err := tlsconf.Roots(l.KeyFile); err == nil {
		t.Error("a key file read as CAs")
	}
	if _, err := tlsconf.Roots(ca.File); err != nil {
		t.Error(err)
	}
}

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

// serveTLS listens on loopback with cert's server config and completes the
// handshake of every connection, until the test ends.
func serveTLS(t *testing.T, cert *tlsconf.Cert) net.Listener {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cert.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	return ln
}
