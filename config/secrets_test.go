package config

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// secretExamples lists every option marked secret: a valid value, the part
// of it that is the secret, and a malformed value carrying the same secret
// ("" when every value is valid).
var secretExamples = map[string]struct{ value, secret, malformed string }{
	"smsc":          {"smpp://carrier:Sm5cPw@127.0.0.1:2776", "Sm5cPw", "smpp://carrier:Sm5cPw@nohostport"},
	"smpp-account":  {"esme9:AcctPw", "AcctPw", "esme9:AcctPwFarTooLong"},
	"sip-user":      {"alice:" + HA1("alice", "localhost", "pw"), HA1("alice", "localhost", "pw"), "alice:NotAnHA1Secret"},
	"api-token":     {"TokenXyz123", "TokenXyz123", ""},
	"api-client":    {"shop:send+read:5:ClientTokenAbc123", "ClientTokenAbc123", "shop:send+fly:5:ClientTokenAbc123"},
	"xmpp-secret":   {"XmppSecret9", "XmppSecret9", ""},
	"dlr-secret":    {"DlrSecret77", "DlrSecret77", ""},
	"robot-webhook": {"bot:HookSecret@http://127.0.0.1:9/x", "HookSecret", "bot:HookSecret@ftp://127.0.0.1/x"},
	"mo-app":        {"10690/Hi=MoAppSecret@https://127.0.0.1:9/mo", "MoAppSecret", "10690:MoAppSecret@https://127.0.0.1:9/mo"},
	"fusion-key":    {strings.Repeat("ab12", 16), strings.Repeat("ab12", 16), "FusionSecretNotHex"},
	"partner-site":  {"shop,https://127.0.0.1/v,srv,PartnerSecret", "PartnerSecret", "shop,PartnerSecret"},
	"social-site":   {"soc:" + strings.Repeat("cd34", 8), strings.Repeat("cd34", 8), "soc:SocialSecretNotHex"},
	"sso-service":   {"svc:k1:" + strings.Repeat("ef56", 16), strings.Repeat("ef56", 16), "svc:k1:SsoSecretNotHex"},
}

// TestEverySecretMasked: the options marked secret are exactly those
// listed above, and each one's secret, given as a flag, an environment
// variable or a YAML key, is absent from `config print` (which shows the
// setting), and from the error a malformed value of it gets.
func TestEverySecretMasked(t *testing.T) {
	var marked, listed []string
	for _, o := range options {
		if o.secret {
			marked = append(marked, o.name)
		}
	}
	for name := range secretExamples {
		listed = append(listed, name)
	}
	sort.Strings(marked)
	sort.Strings(listed)
	if strings.Join(marked, " ") != strings.Join(listed, " ") {
		t.Fatalf("options marked secret %v, the test lists %v: a new secret needs an example here", marked, listed)
	}
	for _, o := range options {
		ex, ok := secretExamples[o.name]
		if !ok {
			continue
		}
		yamlVal := yamlName(o.name) + ": " + quoteYAML(ex.value)
		if o.list {
			yamlVal = yamlName(o.name) + ": [" + quoteYAML(ex.value) + "]"
		}
		file := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(file, []byte(yamlVal+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for source, load := range map[string]func(v string) (*Config, error){
			"flag": func(v string) (*Config, error) {
				return Load("t", []string{"--" + o.name, v}, env(nil), &bytes.Buffer{})
			},
			"env": func(v string) (*Config, error) {
				return Load("t", nil, env(map[string]string{EnvName(o.name): v}), &bytes.Buffer{})
			},
			"yaml": func(v string) (*Config, error) {
				if v != ex.value {
					f := filepath.Join(t.TempDir(), "bad.yaml")
					os.WriteFile(f, []byte(strings.Replace(yamlVal, quoteYAML(ex.value), quoteYAML(v), 1)+"\n"), 0o600)
					return Load("t", []string{"--config", f}, env(nil), &bytes.Buffer{})
				}
				return Load("t", []string{"--config", file}, env(nil), &bytes.Buffer{})
			},
		} {
			c, err := load(ex.value)
			if err != nil {
				t.Fatalf("%s from %s: %v", o.name, source, err)
			}
			var out bytes.Buffer
			if err := c.Print(&out); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(out.String(), ex.secret) {
				t.Errorf("%s from %s: config print shows the secret:\n%s", o.name, source, out.String())
			}
			if !strings.Contains(out.String(), yamlName(o.name)+":") {
				t.Errorf("%s from %s: config print leaves the setting out", o.name, source)
			}
			if ex.malformed == "" {
				continue
			}
			if _, err := load(ex.malformed); err == nil {
				t.Errorf("%s from %s: malformed %q accepted", o.name, source, ex.malformed)
			} else if strings.Contains(err.Error(), ex.secret) {
				t.Errorf("%s from %s: the error shows the secret: %v", o.name, source, err)
			}
		}
	}
}

func quoteYAML(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
