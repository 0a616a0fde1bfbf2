package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := Load("t", nil, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.SMPPListen != ":2775" || c.SIPListen != ":5060" || c.HTTPListen != ":8080" || c.DataDir != "./data" || c.CountryCode != "86" || c.SMSC != "" || c.OpenRegistration {
		t.Fatalf("defaults: %+v", c)
	}
	if c.DefaultValidity != 48*time.Hour || c.Retention != 24*time.Hour {
		t.Fatalf("validity %v, retention %v", c.DefaultValidity, c.Retention)
	}
}

// Precedence: flag > env > file > default, for scalars and lists.
func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "bridge.yaml")
	yaml := "smpp_listen: \":3000\"\nsip_domain: file.example\ncountry_code: 44\nsmpp_account:\n  - a:pw1\n  - b:pw2\nopen_registration: true\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load("t", []string{"--config", file, "--sip-domain", "flag.example"},
		env(map[string]string{"BRIDGE_COUNTRY_CODE": "1", "BRIDGE_SIP_DOMAIN": "env.example"}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.SMPPListen != ":3000" || c.SIPDomain != "flag.example" || c.CountryCode != "1" || !c.OpenRegistration {
		t.Fatalf("precedence wrong: %+v", c)
	}
	if got := c.Accounts(); got["a"] != "pw1" || got["b"] != "pw2" || len(got) != 2 {
		t.Fatalf("accounts from file: %v", got)
	}
	c, err = Load("t", []string{"--smpp-account", "x:y", "--smpp-account", "z:w"}, env(map[string]string{"BRIDGE_SMPP_ACCOUNT": "e:f"}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Accounts(); len(got) != 2 || got["x"] != "y" || got["z"] != "w" {
		t.Fatalf("repeated flag should replace env: %v", got)
	}
	c, err = Load("t", nil, env(map[string]string{"BRIDGE_SMPP_ACCOUNT": "e:f, g:h"}), &bytes.Buffer{})
	if err != nil || len(c.Accounts()) != 2 {
		t.Fatalf("env list: %v %v", c.Accounts(), err)
	}
}

func TestValidationNamesTheSetting(t *testing.T) {
	cases := map[string][]string{
		"--smsc":             {"--smsc", "http://x"},
		"--smpp-listen":      {"--smpp-listen", "nocolon"},
		"--country-code":     {"--country-code", "abc"},
		"--sip-user":         {"--sip-user", "alice:notahash"},
		"--sms-route":        {"--sms-route", "carrier-pigeon"},
		"--log-level":        {"--log-level", "loud"},
		"--default-validity": {"--default-validity", "0s"},
		"--retention":        {"--retention", "1m"}, // shorter than the 2m dedup window
	}
	for want, args := range cases {
		_, err := Load("t", args, env(nil), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: error %v should name %s", args, err, want)
		}
	}
	_, err := Load("t", []string{"--workers", "many"}, env(nil), &bytes.Buffer{})
	if err == nil {
		t.Error("non-numeric --workers accepted")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	os.WriteFile(file, []byte("no_such_setting: 1\n"), 0o600)
	if _, err := Load("t", []string{"--config", file}, env(nil), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "no_such_setting") {
		t.Errorf("unknown YAML key: %v", err)
	}
}

func TestPrintMasksSecrets(t *testing.T) {
	c, err := Load("t", []string{"--smsc", "smpp://carrier:s3cret@127.0.0.1:2776", "--smpp-account", "esme:topsecr",
		"--sip-user", "alice:" + HA1("alice", "localhost", "pw")}, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	c.Print(&out)
	s := out.String()
	for _, secret := range []string{"s3cret", "topsecr", HA1("alice", "localhost", "pw")} {
		if strings.Contains(s, secret) {
			t.Fatalf("secret %q printed:\n%s", secret, s)
		}
	}
	for _, shown := range []string{"smpp://carrier:****@127.0.0.1:2776", "esme:****", "smpp_listen: \":2775\""} {
		if !strings.Contains(s, shown) {
			t.Fatalf("%q missing:\n%s", shown, s)
		}
	}
}

func TestParseSMSC(t *testing.T) {
	addr, id, pw, err := ParseSMSC("smpp://carrier:pw@127.0.0.1:2776")
	if err != nil || addr != "127.0.0.1:2776" || id != "carrier" || pw != "pw" {
		t.Fatalf("%q %q %q %v", addr, id, pw, err)
	}
}

func TestHA1(t *testing.T) {
	// RFC 2617 §3.5 example: Mufasa:testrealm@host.com:Circle Of Life
	if got := HA1("Mufasa", "testrealm@host.com", "Circle Of Life"); got != "939e7578ed9e3c518a452acee763bce9" {
		t.Fatalf("HA1 = %s", got)
	}
}
