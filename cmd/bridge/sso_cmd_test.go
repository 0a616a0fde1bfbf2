package main

import (
	"bytes"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smsbridge/bridge/login"
)

// `bridge sso verify` twice on one ticket with one --seen file: the second
// fails with exit 1, "replayed".
func TestSSOVerifySeenTwice(t *testing.T) {
	key := [32]byte{0x42}
	is, err := login.NewIssuer([]login.Service{{ID: "wiki", KeyID: "k1", Key: key}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := is.Issue("alice~shop@"+testDomain, "wiki")
	if err != nil {
		t.Fatal(err)
	}
	seen := filepath.Join(t.TempDir(), "seen")
	args := []string{"sso", "verify", "--key-id", "k1", "--key", hex.EncodeToString(key[:]), "--service", "wiki", "--seen", seen, tk}
	var out, errb bytes.Buffer
	if rc := run(args, nil, &out, &errb); rc != 0 || !strings.Contains(out.String(), "alice~shop@") {
		t.Fatalf("first verify: rc %d out %q err %q", rc, out.String(), errb.String())
	}
	out.Reset()
	errb.Reset()
	if rc := run(args, nil, &out, &errb); rc != 1 || out.Len() != 0 || !strings.Contains(errb.String(), "replayed") {
		t.Fatalf("second verify: rc %d out %q err %q", rc, out.String(), errb.String())
	}
}
