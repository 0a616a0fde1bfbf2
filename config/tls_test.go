package config

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smsbridge/bridge/internal/tlsconf/tlstest"
)

func TestTLSSettings(t *testing.T) {
	ca := tlstest.NewCA(t)
	leaf := ca.Issue("bridge", "127.0.0.1")
	missing := filepath.Join(t.TempDir(), "missing.pem")
	refused := map[string][]string{
		"--tls-key":                 {"--tls-cert", leaf.CertFile},
		"--tls-cert":                {"--tls-cert", missing, "--tls-key", leaf.KeyFile},
		"--http-tls":                {"--http-tls"},
		"--smpp-tls-listen":         {"--smpp-tls-listen", "127.0.0.1:0"},
		"--sip-tls-listen":          {"--sip-tls-listen", "127.0.0.1:0"},
		"--smsc-ca":                 {"--smsc", "smpp://a:b@127.0.0.1:1", "--smsc-ca", ca.File},
		"--partner-ca":              {"--partner-ca", missing},
		"--lab-allow-http-partners": {"--partner-site", "shop,http://127.0.0.1:9/v,b,s"},
	}
	for want, args := range refused {
		if _, err := Load("t", args, env(nil), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: error %v should name %s", args, err, want)
		}
	}
	c, err := Load("t", []string{"--tls-cert", leaf.CertFile, "--tls-key", leaf.KeyFile, "--http-tls",
		"--smpp-tls-listen", "127.0.0.1:0", "--sip-tls-listen", "127.0.0.1:0",
		"--smsc", "smpps://a:b@127.0.0.1:1", "--smsc-ca", ca.File, "--partner-ca", ca.File,
		"--partner-site", "shop,https://127.0.0.1:9/v,b,s"}, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !c.HTTPTLS || len(c.SMSCs) != 1 || !c.SMSCs[0].TLS || c.SMPPTLSListen == "" || c.SIPTLSListen == "" {
		t.Fatalf("%+v", c)
	}
	var out bytes.Buffer
	c.Print(&out)
	if !strings.Contains(out.String(), "smsc:\n  - \"default=smpps://a:****@127.0.0.1:1\"") {
		t.Fatalf("print:\n%s", out.String())
	}
	// The lab flag, from the environment, admits a plain partner URL.
	if _, err := Load("t", []string{"--partner-site", "shop,http://127.0.0.1:9/v,b,s"},
		env(map[string]string{"BRIDGE_LAB_ALLOW_HTTP_PARTNERS": "true"}), &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
}
