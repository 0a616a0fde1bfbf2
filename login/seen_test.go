package login_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/bridge/login"
	"github.com/smsbridge/bridge/login/ssoticket"
)

// TestMain lets the test binary play `bridge sso verify` in a process of
// its own, so replay memory is tested across processes.
func TestMain(m *testing.M) {
	if os.Getenv("LOGIN_TEST_SSO_CLI") == "1" {
		os.Exit(login.RunSSOCLI(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// cliProcess runs `sso verify args...` as a separate process.
func cliProcess(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "LOGIN_TEST_SSO_CLI=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errb.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errb.String()
	}
	t.Fatal(err)
	return -1, "", ""
}

func TestSSOCLISeenFile(t *testing.T) {
	is := newIssuer(t, nil) // the CLI verifies against time.Now
	ticket := func() (string, ssoticket.Claims) {
		tk, c, err := is.IssueClaims("alice~shop@"+domain, "", "wiki")
		if err != nil {
			t.Fatal(err)
		}
		return tk, c
	}
	keyHex := hex.EncodeToString(wikiKey[:])
	seen := filepath.Join(t.TempDir(), "seen")
	verify := func(tk string, extra ...string) []string {
		return append(append([]string{"verify", "--key-id", "wiki-2025", "--key", keyHex, "--service", "wiki"}, extra...), tk)
	}
	tk, claims := ticket()

	// Without --seen there is no replay check (the documented default).
	for range 2 {
		if code, _, errOut := runCLI("", verify(tk)...); code != 0 {
			t.Fatalf("no --seen: exit %d %s", code, errOut)
		}
	}
	if _, err := os.Stat(seen); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("seen file written without --seen")
	}
	// With it: once, then "replayed" — in this process and in a new one.
	if code, out, errOut := runCLI("", verify(tk, "--seen", seen)...); code != 0 || !strings.Contains(out, claims.ID) {
		t.Fatalf("first verify: exit %d out %q err %q", code, out, errOut)
	}
	if code, out, errOut := runCLI("", verify(tk, "--seen", seen)...); code != 1 || out != "" || !strings.Contains(errOut, "replayed") {
		t.Fatalf("second verify: exit %d out %q err %q", code, out, errOut)
	}
	if code, out, errOut := cliProcess(t, verify(tk, "--seen", seen)...); code != 1 || out != "" || !strings.Contains(errOut, "replayed") {
		t.Fatalf("second verify by another process: exit %d out %q err %q", code, out, errOut)
	}
	// A ticket that fails is not remembered: once the service is right it passes.
	tk2, c2 := ticket()
	if code, _, _ := runCLI("", verify(tk2, "--seen", seen, "--service", "mail")...); code != 1 {
		t.Fatal("wrong service passed")
	}
	if code, _, errOut := cliProcess(t, verify(tk2, "--seen", seen)...); code != 0 {
		t.Fatalf("other ticket in a new process: %d %s", code, errOut)
	}
	data, _ := os.ReadFile(seen)
	if !strings.HasPrefix(string(data), "# bridge sso seen v1\n") || !strings.Contains(string(data), claims.ID+" ") || !strings.Contains(string(data), c2.ID+" ") {
		t.Fatalf("seen file %q", data)
	}

	// Concurrent verifier processes: of 6 with one ticket exactly one
	// passes; 6 with one ticket each all pass and all are remembered.
	race, _ := ticket()
	distinct := make([]string, 6)
	ids := make([]string, 6)
	for i := range distinct {
		var c ssoticket.Claims
		distinct[i], c = ticket()
		ids[i] = c.ID
	}
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			tk := race
			if i >= 6 {
				tk = distinct[i-6]
			}
			code, _, errOut := cliProcess(t, verify(tk, "--seen", seen)...)
			if i >= 6 && code != 0 {
				t.Errorf("distinct ticket %d: exit %d %s", i-6, code, errOut)
			}
			if i < 6 && code == 1 && !strings.Contains(errOut, "replayed") {
				t.Errorf("racing verify: %s", errOut)
			}
			mu.Lock()
			if i < 6 {
				codes[code]++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[0] != 1 || codes[1] != 5 {
		t.Fatalf("racing verifies of one ticket: exit codes %v, want one 0 and five 1", codes)
	}
	data, _ = os.ReadFile(seen)
	for _, id := range append(ids, claims.ID, c2.ID) {
		if !strings.Contains(string(data), id+" ") {
			t.Fatalf("id %s lost from the seen file:\n%s", id, data)
		}
	}
	for _, tk := range distinct {
		if code, _, errOut := runCLI("", verify(tk, "--seen", seen)...); code != 1 || !strings.Contains(errOut, "replayed") {
			t.Fatalf("replay of a concurrently verified ticket: %d %s", code, errOut)
		}
	}

	// A file that does not parse fails every check rather than forgetting.
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, []byte("not a seen file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tk3, _ := ticket()
	if code, _, errOut := runCLI("", verify(tk3, "--seen", bad)...); code != 1 || !strings.Contains(errOut, "malformed seen file") {
		t.Fatalf("corrupt seen file: %d %s", code, errOut)
	}
	// The help says what the default is.
	if code, _, errOut := runCLI("", "verify", "--help"); code != 2 || !strings.Contains(errOut, "-seen") || !strings.Contains(errOut, "no replay check") {
		t.Fatalf("help: %d %s", code, errOut)
	}
}

func TestSeenFileExpiry(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	f := login.SeenFile{Path: filepath.Join(t.TempDir(), "seen"), Now: func() time.Time { return now }}
	if r, err := f.Seen("a", now.Add(time.Minute)); r || err != nil {
		t.Fatal(r, err)
	}
	if r, err := f.Seen("a", now.Add(time.Minute)); !r || err != nil {
		t.Fatal("not remembered", r, err)
	}
	now = now.Add(time.Minute)
	if r, err := f.Seen("b", now.Add(time.Minute)); r || err != nil {
		t.Fatal(r, err)
	}
	data, _ := os.ReadFile(f.Path)
	if string(data) != "# bridge sso seen v1\nb 1700000120\n" {
		t.Fatalf("expired id kept: %q", data)
	}
	if _, err := f.Seen("bad id", now); err == nil {
		t.Fatal("id that would break the format accepted")
	}
	// Works as the Verifier's replay cache.
	v := ssoticket.Verifier{Keys: map[string][32]byte{"wiki-2025": wikiKey}, Service: "wiki", Replay: login.SeenFile{Path: f.Path}}
	is := newIssuer(t, nil)
	tk, _ := is.Issue("alice", "wiki")
	if _, err := v.Verify(tk); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(tk); !errors.Is(err, ssoticket.ErrReplayed) {
		t.Fatalf("replay: %v", err)
	}
}
