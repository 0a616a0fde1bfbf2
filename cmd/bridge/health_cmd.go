package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// defaultHealthURL is a bridge's readiness on its default HTTP address.
const defaultHealthURL = "http://127.0.0.1:8080/readyz"

// runHealth is `bridge health [--ca FILE] [URL]`: exit 0 when URL (a
// bridge's /readyz or /healthz) answers 200, else 1 with the answer. The
// image has no shell or curl, so a container healthcheck runs the binary
// itself; --ca trusts a private CA for an HTTPS API (--http-tls).
func runHealth(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ca := fs.String("ca", "", "PEM file of the CA the bridge's HTTPS certificate chains to (default: the system's)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: bridge health [--ca FILE] [URL]   (default "+defaultHealthURL+")")
	}
	if err := fs.Parse(args); err != nil || fs.NArg() > 1 {
		fs.Usage()
		return 2
	}
	url := defaultHealthURL
	if fs.NArg() == 1 {
		url = fs.Arg(0)
	}
	c := http.Client{Timeout: 3 * time.Second}
	if *ca != "" {
		pem, err := os.ReadFile(*ca)
		if err != nil {
			fmt.Fprintln(stderr, "bridge health:", err)
			return 2
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			fmt.Fprintf(stderr, "bridge health: %s holds no PEM certificate\n", *ca)
			return 2
		}
		c.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	res, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(stderr, "bridge health:", err)
		return 1
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	if res.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "bridge health: %s: %d %s\n", url, res.StatusCode, strings.TrimSpace(string(body)))
		return 1
	}
	fmt.Fprint(stdout, string(body))
	return 0
}
