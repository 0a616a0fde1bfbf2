package api

import (
	"bufio"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/smsbridge/bridge/msg"
)

type example struct {
	line   int
	expect int
	script string
}

// readmeExamples takes every ```sh block of README.md whose first line is
// "# expect CODE".
func readmeExamples(t *testing.T) []example {
	t.Helper()
	f, err := os.Open("README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []example
	var cur *example
	expect := regexp.MustCompile(`^# expect (\d{3})$`)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case cur == nil && l == "```sh":
			cur = &example{line: n}
		case cur != nil && l == "```":
			if cur.expect != 0 {
				out = append(out, *cur)
			}
			cur = nil
		case cur != nil && cur.expect == 0 && cur.script == "":
			m := expect.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("README.md:%d: a sh block must start with \"# expect CODE\"", n)
			}
			cur.expect, _ = strconv.Atoi(m[1])
		case cur != nil:
			cur.script += l + "\n"
		}
	}
	return out
}

// TestREADMECurlExamples runs the README's examples in order with the real
// curl against a real server; curl's -w appends the status to check.
func TestREADMECurlExamples(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("BRIDGE_REQUIRE_INTEROP") == "1" {
			t.Fatal("curl not found and BRIDGE_REQUIRE_INTEROP=1")
		}
		t.Skip("curl not installed; the README examples are not run")
	}
	exs := readmeExamples(t)
	if len(exs) < 15 {
		t.Fatalf("only %d examples found in README.md", len(exs))
	}
	e := startEnv(t, func(c *Config, _ *msg.Stager) { c.LogLevel = new(slog.LevelVar) })
	// The partner-site contacts example names alice at site shop, which the
	// test environment's reference site knows.
	for _, ex := range exs {
		// A shell function wraps curl so the examples stay as a reader
		// types them.
		script := "curl() { '" + curl + "' -w '\\nHTTP_STATUS=%{http_code}\\n' \"$@\"; }\n" + ex.script
		cmd := exec.Command("sh", "-c", script)
		cmd.Env = append(os.Environ(), "BRIDGE="+e.base, "TOKEN="+testToken)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("README.md:%d: %v\n%s", ex.line, err, out)
			continue
		}
		got := regexp.MustCompile(`HTTP_STATUS=(\d+)`).FindAllStringSubmatch(string(out), -1)
		if len(got) != 1 || got[0][1] != strconv.Itoa(ex.expect) {
			t.Errorf("README.md:%d: want status %d, got %v\n%s", ex.line, ex.expect, got, out)
		}
		if ex.expect >= 400 && !strings.Contains(string(out), `"error"`) {
			t.Errorf("README.md:%d: error answer is not JSON: %s", ex.line, out)
		}
	}
}
