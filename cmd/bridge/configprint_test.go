package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigPrintMasksToken: `bridge config print` shows the API token's
// setting but never the token, given as a flag, in BRIDGE_API_TOKEN or in
// the YAML file (config's TestEverySecretMasked covers every secret).
func TestConfigPrintMasksToken(t *testing.T) {
	yaml := filepath.Join(t.TempDir(), "bridge.yaml")
	if err := os.WriteFile(yaml, []byte("api_token: [YamlTok3n]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args   []string
		env    string
		secret string
	}{
		{[]string{"config", "print", "--api-token", "FlagTok3n"}, "", "FlagTok3n"},
		{[]string{"config", "print"}, "EnvTok3n", "EnvTok3n"},
		{[]string{"config", "print", "--config", yaml}, "", "YamlTok3n"},
	} {
		t.Setenv("BRIDGE_API_TOKEN", tc.env)
		var stdout, stderr bytes.Buffer
		if code := run(tc.args, nil, &stdout, &stderr); code != 0 {
			t.Fatalf("%v: exit %d: %s", tc.args, code, stderr.String())
		}
		if out := stdout.String(); strings.Contains(out+stderr.String(), tc.secret) || !strings.Contains(out, "api_token:\n  - \"****\"") {
			t.Fatalf("%v (env %q) printed:\n%s", tc.args, tc.env, out)
		}
	}
}
