package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
)

// MinVersion is the oldest protocol version any config here accepts.
const MinVersion = tls.VersionTLS12

// Cert is a certificate and key loaded from files, reloadable.
type Cert struct {
	certFile, keyFile string
	log               *slog.Logger
	cur               atomic.Pointer[tls.Certificate]
}

// Load reads the certificate chain and key from PEM files. log may be nil.
func Load(certFile, keyFile string, log *slog.Logger) (*Cert, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cert{certFile: certFile, keyFile: keyFile, log: log}
	kp, err := loadPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	c.cur.Store(kp)
	return c, nil
}

func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tls: a certificate needs both its certificate file and its key file")
	}
	kp, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: load %s and %s: %w", certFile, keyFile, err)
	}
	if kp.Leaf == nil && len(kp.Certificate) > 0 {
		if kp.Leaf, err = x509.ParseCertificate(kp.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls: parse %s: %w", certFile, err)
		}
	}
	return &kp, nil
}

// Reload re-reads the files. On any error the certificate in use stays and
// the error is logged and returned: a half-written renewal must not take
// every TLS listener down.
func (c *Cert) Reload() error {
	kp, err := loadPair(c.certFile, c.keyFile)
	if err != nil {
		c.log.Error("certificate not reloaded: keeping the one in use", "cert", c.certFile, "err", err)
		return err
	}
	c.cur.Store(kp)
	c.log.Info("certificate reloaded", "cert", c.certFile, "subject", kp.Leaf.Subject.String(),
		"not_after", kp.Leaf.NotAfter)
	return nil
}

// Current is the certificate handshakes use now.
func (c *Cert) Current() *tls.Certificate { return c.cur.Load() }

// ServerConfig is a config for a listener that serves the current
// certificate at every handshake. nextProtos may be nil.
func (c *Cert) ServerConfig(nextProtos ...string) *tls.Config {
	return &tls.Config{
		MinVersion: MinVersion,
		NextProtos: nextProtos,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.cur.Load(), nil
		},
	}
}

// ClientConfig is a config for dialing out that verifies the peer against
// the CAs in caFile, or the system's roots when caFile is "".
func ClientConfig(caFile string) (*tls.Config, error) {
	roots, err := Roots(caFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: MinVersion, RootCAs: roots}, nil
}

// Roots reads a PEM file of CA certificates; "" gives nil, the system's.
func Roots(caFile string) (*x509.CertPool, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("tls: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: CA file %s: no PEM certificate in it", caFile)
	}
	return pool, nil
}
