package config

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
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
	if c.SMPPListen != ":2775" || c.SIPListen != ":5060" || c.HTTPListen != ":8080" || c.DataDir != "./data" || c.CountryCode != "86" || len(c.SMSCs) != 0 || c.OpenRegistration {
		t.Fatalf("defaults: %+v", c)
	}
	if c.DefaultValidity != 48*time.Hour || c.Retention != 24*time.Hour {
		t.Fatalf("validity %v, retention %v", c.DefaultValidity, c.Retention)
	}
	// Identical texts are separate messages unless suppression by content
	// is asked for; a client's Idempotency-Key holds for the retention.
	if c.DedupWindow != 0 || c.IdempotencyWindow != 24*time.Hour {
		t.Fatalf("dedup window %v, idempotency window %v", c.DedupWindow, c.IdempotencyWindow)
	}
	if c, err := Load("t", []string{"--retention", "1h"}, env(nil), &bytes.Buffer{}); err != nil || c.IdempotencyWindow != time.Hour {
		t.Fatalf("the idempotency window follows the retention: %v %v", c, err)
	}
	if _, err := Load("t", []string{"--retention", "1h", "--idempotency-window", "2h"}, env(nil), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "--idempotency-window") {
		t.Fatalf("retention shorter than the idempotency window: %v", err)
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
		"--smsc":               {"--smsc", "http://x"},
		"--smpp-listen":        {"--smpp-listen", "nocolon"},
		"--country-code":       {"--country-code", "abc"},
		"--sip-user":           {"--sip-user", "alice:notahash"},
		"--sms-route":          {"--sms-route", "carrier-pigeon"},
		"--log-level":          {"--log-level", "loud"},
		"--default-validity":   {"--default-validity", "0s"},
		"--retention":          {"--retention", "1m", "--dedup-window", "2m"}, // shorter than the dedup window
		"--idempotency-window": {"--idempotency-window", "-1s"},
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
	for _, shown := range []string{"default=smpp://carrier:****@127.0.0.1:2776", "esme:****", "smpp_listen: \":2775\""} {
		if !strings.Contains(s, shown) {
			t.Fatalf("%q missing:\n%s", shown, s)
		}
	}
}

func TestParseSMSC(t *testing.T) {
	s, err := ParseSMSC("smpp://carrier:pw@127.0.0.1:2776")
	if err != nil || !reflect.DeepEqual(s, SMSC{Addr: "127.0.0.1:2776", SystemID: "carrier", Password: "pw"}) {
		t.Fatalf("%+v %v", s, err)
	}
	s, err = ParseSMSC("smpps://carrier:pw@smsc.example:3550")
	if err != nil || !reflect.DeepEqual(s, SMSC{Addr: "smsc.example:3550", SystemID: "carrier", Password: "pw", TLS: true}) {
		t.Fatalf("%+v %v", s, err)
	}
}

func TestHA1(t *testing.T) {
	// RFC 2617 §3.5 example: Mufasa:testrealm@host.com:Circle Of Life
	if got := HA1("Mufasa", "testrealm@host.com", "Circle Of Life"); got != "939e7578ed9e3c518a452acee763bce9" {
		t.Fatalf("HA1 = %s", got)
	}
}

// Every bad value is reported at once, whichever source gave it.
func TestEveryErrorReported(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("workers: lots\nsmpp_account:\n  - nopassword\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load("t", []string{"--config", file, "--dedup-window", "-5m", "--smpp-listen", ":99999", "--sms-alphabet", "klingon",
		"--outbound-proxy", "notauri"},
		env(map[string]string{"BRIDGE_IM_TIMEOUT": "soon"}), &bytes.Buffer{})
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	for _, want := range []string{"--workers", "--smpp-account", "--dedup-window", "--smpp-listen", "--sms-alphabet", "BRIDGE_IM_TIMEOUT",
		`--outbound-proxy: "notauri": want a SIP URI`, `"-5m": must not be negative`, `":99999": port must be 0-65535`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s:\n%v", want, err)
		}
	}
}

// An outbound proxy is a SIP URI with a host, or HOST:PORT; nothing else.
func TestOutboundProxy(t *testing.T) {
	for _, good := range []string{"sip:127.0.0.1:5080", "sip:kamailio", "sips:proxy.example.com;transport=tls", "sip:[::1]:5060",
		"sip:[::1]", "127.0.0.1:5080", "proxy.example.com:5060", "sip:edge@10.0.0.1:5060"} {
		if c, err := Load("t", []string{"--outbound-proxy", good}, env(nil), &bytes.Buffer{}); err != nil || c.OutboundProxy != good {
			t.Errorf("%q refused: %v", good, err)
		}
	}
	for _, bad := range []string{"notauri", "http://proxy:80", "sip:", "sip::5060", "proxy.example.com:0", "sip:host:99999", "sip:a b", "10.0.0.1:", "sip:h\r\n"} {
		if _, err := Load("t", []string{"--outbound-proxy", bad}, env(nil), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "--outbound-proxy") {
			t.Errorf("%q accepted or error not naming the flag: %v", bad, err)
		}
	}
}

// Values arrive parsed and typed.
func TestTypedValues(t *testing.T) {
	key := strings.Repeat("ab", 32)
	c, err := Load("t", []string{
		"--smsc", "smpp://carrier:pw@127.0.0.1:2776", "--smsc-bind", "transmitter",
		"--partner-site", "shop,https://127.0.0.1:9/verify,bridge1,s3cret,https://127.0.0.1:9/contacts",
		"--social-site", "weibo:" + strings.Repeat("01", 16),
		"--sso-service", "wiki:k1:" + key + ":5m",
		"--log-level", "debug", "--log-format", "json", "--sms-receipts", "always",
	}, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.SMSCs) != 1 || c.SMSCs[0].SystemID != "carrier" || c.SMSCs[0].Name != DefaultSMSC || c.SMSCs[0].Bind != BindTransmitter ||
		c.SMSCs[0].Weight != 1 || c.SMSCs[0].Window != 256 || !c.SMSRoute.SMSC || len(c.SMSRoute.SMSCs) != 0 {
		t.Fatalf("smscs %+v route %+v (an SMSC is the default route)", c.SMSCs, c.SMSRoute)
	}
	if len(c.PartnerSites) != 1 || c.PartnerSites[0] != (PartnerSite{ID: "shop", VerifyURL: "https://127.0.0.1:9/verify", ServerID: "bridge1", ServerSecret: "s3cret", ContactsURL: "https://127.0.0.1:9/contacts"}) {
		t.Fatalf("partner sites %+v", c.PartnerSites)
	}
	if len(c.SocialSites) != 1 || len(c.SocialSites[0].Key) != 16 {
		t.Fatalf("social sites %+v", c.SocialSites)
	}
	if len(c.SSOServices) != 1 || c.SSOServices[0].TTL != 5*time.Minute || c.SSOServices[0].Key[0] != 0xab {
		t.Fatalf("sso services %+v", c.SSOServices)
	}
	if c.LogLevel != slog.LevelDebug || c.LogFormat != LogJSON || c.SMSReceipts != ReceiptsAlways {
		t.Fatalf("log %v %v receipts %v", c.LogLevel, c.LogFormat, c.SMSReceipts)
	}
	c, err = Load("t", []string{"--smsc", "smpp://carrier:pw@127.0.0.1:2776", "--sms-route", "esme:rx"}, env(nil), &bytes.Buffer{})
	if err != nil || c.SMSRoute.String() != "esme:rx" || c.SMSRoute.SMSC {
		t.Fatalf("explicit route %+v %v", c.SMSRoute, err)
	}
	var out bytes.Buffer
	c2, _ := Load("t", []string{"--api-token", "tok3n", "--partner-site", "shop,https://x/v,b,s3cret"}, env(nil), &bytes.Buffer{})
	c2.Print(&out)
	if s := out.String(); strings.Contains(s, "tok3n") || strings.Contains(s, "s3cret") || !strings.Contains(s, "shop,https://x/v,b,****") {
		t.Fatalf("secrets in print:\n%s", s)
	}
}

// Clustering is off by default; its settings come from flags, the
// environment and YAML like the others and are checked together.
func TestClusterSettings(t *testing.T) {
	c, err := Load("t", nil, env(nil), &bytes.Buffer{})
	if err != nil || c.Clustered() || c.NATSListen != "" || c.NATSURL != "" || len(c.NATSRoutes) != 0 || c.ClusterReplicas != 0 {
		t.Fatalf("clustered by default: %+v %v", c, err)
	}
	if c.ClusterAck != AckLocal {
		t.Fatalf("--cluster-ack default %q, want local", c.ClusterAck)
	}
	if _, err := Load("t", []string{"--cluster-ack", "replicated"}, env(nil), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "needs a cluster") {
		t.Fatalf("--cluster-ack replicated without a cluster: %v", err)
	}
	c, err = Load("t", []string{"--nats-listen", "127.0.0.1:4222", "--nats-cluster-listen", ":6222", "--node-name", "n1", "--cluster-replicas", "3"},
		env(map[string]string{"BRIDGE_NATS_ROUTES": "nats://10.0.0.2:6222, nats://10.0.0.3:6222"}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !c.Clustered() || c.NodeName != "n1" || c.ClusterReplicas != 3 || len(c.NATSRoutes) != 2 || c.NATSRoutes[1] != "nats://10.0.0.3:6222" {
		t.Fatalf("cluster settings: %+v", c)
	}
	var out bytes.Buffer
	c.Print(&out)
	if !strings.Contains(out.String(), `nats_routes: "nats://10.0.0.2:6222,nats://10.0.0.3:6222"`) {
		t.Fatalf("printed:\n%s", out.String())
	}
	for _, bad := range [][]string{
		{"--nats-url", "nats://10.0.0.1:4222", "--nats-listen", ":4222"},
		{"--nats-routes", "nats://10.0.0.2:6222"},
		{"--nats-listen", ":4222", "--nats-routes", "http://10.0.0.2:6222"},
		{"--nats-url", "10.0.0.1:4222"},
		{"--nats-listen", ":4222", "--cluster-replicas", "6"},
	} {
		if _, err := Load("t", bad, env(nil), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "nats") && !strings.Contains(err.Error(), "replicas") {
			t.Fatalf("%v: %v", bad, err)
		}
	}
}

// Application routes: each prefix gets its E.164 number; every bad route,
// duplicate and plain http:// URL is reported at once; secrets are masked.
func TestMOApps(t *testing.T) {
	c, err := Load("t", []string{"--mo-app", "10690=k1@https://app.example/mo", "--mo-app", "+4420/weather=k2@https://w.example/mo?x=1",
		"--mo-app", "10690/Stop=k3@http://127.0.0.1:9/stop", "--lab-allow-http-partners"}, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	want := []MOApp{
		{Prefix: "10690", Number: "+8610690", Secret: "k1", URL: "https://app.example/mo"},
		{Prefix: "+4420", Number: "+4420", Keyword: "weather", Secret: "k2", URL: "https://w.example/mo?x=1"},
		{Prefix: "10690", Number: "+8610690", Keyword: "Stop", Secret: "k3", URL: "http://127.0.0.1:9/stop"},
	}
	if len(c.MOApps) != len(want) {
		t.Fatalf("apps %+v", c.MOApps)
	}
	for i := range want {
		if c.MOApps[i] != want[i] {
			t.Errorf("app %d: %+v, want %+v", i, c.MOApps[i], want[i])
		}
	}
	var out bytes.Buffer
	c.Print(&out)
	if s := out.String(); strings.Contains(s, "k1@") || !strings.Contains(s, `"10690=****@https://app.example/mo"`) {
		t.Errorf("printed:\n%s", s)
	}

	_, err = Load("t", []string{
		"--mo-app", "10690=k1@https://a.example/mo",
		"--mo-app", "+8610690=k2@https://b.example/mo", // the same number as dialled
		"--mo-app", "10691/HELP=k3@https://a.example/mo",
		"--mo-app", "10691/help=k4@https://b.example/mo", // keywords ignore case
		"--mo-app", "10692=k5@http://a.example/mo", // http:// without the lab flag
		"--mo-app", "10693=k6@ftp://a.example/mo",
		"--mo-app", "1069x=k7@https://a.example/mo",
		"--mo-app", "10694=@https://a.example/mo",
		"--mo-app", "10695:s3cret@https://a.example/mo",
		"--mo-app", "10696/two words=k8@https://a.example/mo",
	}, env(nil), &bytes.Buffer{})
	if err == nil {
		t.Fatal("bad application routes accepted")
	}
	for _, w := range []string{
		"--mo-app +8610690: the same number prefix (+8610690) and keyword as 10690",
		"--mo-app 10691/help: the same number prefix (+8610691) and keyword as 10691/HELP",
		`--mo-app 10692: "http://a.example/mo": applications are reached over https://`,
		`--mo-app: 10693: "ftp://a.example/mo": want an https:// URL`,
		"--mo-app: 1069x: the prefix must be 1 to 15 digits",
		"--mo-app: 10694: want PREFIX[/KEYWORD]=SECRET@URL",
		"--mo-app: want PREFIX[/KEYWORD]=SECRET@URL",
		"--mo-app: 10696/two words: the keyword must be one word",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not say %q:\n%v", w, err)
		}
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a secret in the error:\n%v", err)
	}
}

// The pool's cap may not be under what always runs; equal is one fixed pool.
func TestWorkersMax(t *testing.T) {
	if _, err := Load("t", []string{"--workers", "1024", "--workers-max", "512"}, env(nil), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "--workers-max 512: want at least --workers (1024)") {
		t.Errorf("--workers-max under --workers: %v", err)
	}
	c, err := Load("t", []string{"--workers", "1024", "--workers-max", "1024"}, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatalf("a fixed pool of 1024 refused: %v", err)
	}
	if c.Workers != 1024 || c.WorkersMax != 1024 {
		t.Errorf("a fixed pool of 1024: workers %d, at most %d", c.Workers, c.WorkersMax)
	}
}
