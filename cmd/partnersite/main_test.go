package main

import (
	"bytes"
	"testing"
)

func TestRunRejectsBadSetup(t *testing.T) {
	for name, args := range map[string][]string{
		"bad flag":     {"--nope"},
		"bad user":     {"--user", "nopassword"},
		"no server id": {"--listen", "127.0.0.1:0", "--server-secret", "s"},
	} {
		var errOut bytes.Buffer
		if code := run(args, &errOut); code != 2 {
			t.Errorf("%s: exit %d, want 2 (%s)", name, code, errOut.String())
		}
	}
	var errOut bytes.Buffer
	if code := run([]string{"--config", "/nonexistent.json"}, &errOut); code != 1 {
		t.Errorf("missing config: exit %d", code)
	}
}
