package config

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Several named SMSCs, each with its options over the defaults; the
// route may name some of them.
func TestSeveralSMSCs(t *testing.T) {
	c, err := Load("t", []string{
		"--smsc", "a=smpp://ida:PwA@127.0.0.1:2776", "--smsc", "b=smpps://idb:PwB@smsc.example:3550", "--smsc-bind", "transmitter",
		"--smsc-option", "a:tps=50,window=32,weight=2,bind=transceiver", "--smsc-option", "b:weight=0,accounts=esme1+shop",
		"--sms-route", "smsc:b|a",
	}, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.SMSCs[0], c.SMSCs[1]
	if a.Name != "a" || a.TPS != 50 || a.Window != 32 || a.Weight != 2 || a.Bind != BindTransceiver || a.TLS {
		t.Fatalf("a: %+v", a)
	}
	if b.Name != "b" || b.TPS != 0 || b.Window != 256 || b.Weight != 0 || b.Bind != BindTransmitter || !b.TLS || !slices.Equal(b.Accounts, []string{"esme1", "shop"}) {
		t.Fatalf("b: %+v", b)
	}
	if c.SMSRoute.String() != "smsc:b|a" || !slices.Equal(c.SMSCNames(), []string{"a", "b"}) {
		t.Fatalf("route %v names %v", c.SMSRoute, c.SMSCNames())
	}
	var out bytes.Buffer
	c.Print(&out)
	for _, want := range []string{`- "a=smpp://ida:****@127.0.0.1:2776"`, `- "b=smpps://idb:****@smsc.example:3550"`,
		`- "a:bind=transceiver,window=32,tps=50,weight=2"`, `- "b:weight=0,accounts=esme1+shop"`, `sms_route: "smsc:b|a"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("print lacks %s:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "PwA") || strings.Contains(out.String(), "PwB") {
		t.Fatalf("print shows a password:\n%s", out.String())
	}

	// The environment separates options with ';' (their items have commas).
	c, err = Load("t", nil, env(map[string]string{"BRIDGE_SMSC": "a=smpp://x:y@h:1,b=smpp://x:y@h:2",
		"BRIDGE_SMSC_OPTION": "a:tps=5,weight=3;b:window=8"}), &bytes.Buffer{})
	if err != nil || len(c.SMSCs) != 2 || c.SMSCs[0].TPS != 5 || c.SMSCs[0].Weight != 3 || c.SMSCs[1].Window != 8 {
		t.Fatalf("env: %+v %v", c, err)
	}

	// A YAML file may give the one SMSC as a plain value, as before, or a list.
	dir := t.TempDir()
	one := filepath.Join(dir, "one.yaml")
	os.WriteFile(one, []byte("smsc: smpp://x:y@127.0.0.1:1\n"), 0o600)
	if c, err := Load("t", []string{"--config", one}, env(nil), &bytes.Buffer{}); err != nil || len(c.SMSCs) != 1 || c.SMSCs[0].Name != DefaultSMSC {
		t.Fatalf("yaml scalar: %+v %v", c, err)
	}
	many := filepath.Join(dir, "many.yaml")
	os.WriteFile(many, []byte("smsc:\n  - a=smpp://x:y@127.0.0.1:1\n  - b=smpp://x:y@127.0.0.1:2\nsmsc_option:\n  - b:tps=10\n"), 0o600)
	if c, err := Load("t", []string{"--config", many}, env(nil), &bytes.Buffer{}); err != nil || len(c.SMSCs) != 2 || c.SMSCs[1].TPS != 10 {
		t.Fatalf("yaml list: %+v %v", c, err)
	}
}

// Every problem of the SMSCs is reported at once, none with a password.
func TestSMSCErrorsReportedTogether(t *testing.T) {
	_, err := Load("t", []string{
		"--smsc", "smpp://x:Secret1@127.0.0.1:1", "--smsc", "smpp://x:Secret2@127.0.0.1:2", // two unnamed: both "default"
		"--smsc", "bad name=smpp://x:Secret3@h:1", "--smsc", "c=smpp://x:Secret4@nohostport",
		"--smsc-option", "ghost:tps=5", "--smsc-option", "default:tps=-1,window=0,weight=x,bind=receiver,colour=red",
		"--sms-route", "smsc:default|nowhere",
	}, env(nil), &bytes.Buffer{})
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"two SMSCs are named default", `SMSC name "bad name"`, "c: host:port", "--smsc-option ghost: no --smsc is named ghost",
		`tps="-1"`, `window="0"`, `weight="x"`, `bind="receiver"`, `unknown key "colour"`, "--sms-route smsc:default|nowhere: no --smsc is named nowhere"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	for _, pw := range []string{"Secret1", "Secret2", "Secret3", "Secret4"} {
		if strings.Contains(err.Error(), pw) {
			t.Errorf("error shows %s:\n%v", pw, err)
		}
	}
}
