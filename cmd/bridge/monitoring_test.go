package main

// monitoring/ against a running bridge: every metric its dashboard, alert
// rules and their tests name is one the bridge exports, and promtool
// accepts the rules, passes their tests and finds nothing to say about the
// bridge's /metrics.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// exportedNames are the metric and sample names of a scrape: each
// family's name (# TYPE) and each sample's (a histogram's _bucket, _sum
// and _count).
func exportedNames(scrape string) map[string]bool {
	names := map[string]bool{}
	for _, l := range strings.Split(scrape, "\n") {
		switch {
		case strings.HasPrefix(l, "# TYPE "):
			names[strings.Fields(l)[2]] = true
		case l != "" && !strings.HasPrefix(l, "#"):
			names[l[:strings.IndexAny(l, "{ ")]] = true
		}
	}
	return names
}

var metricRef = regexp.MustCompile(`\bbridge_[a-z0-9_]+\b`)

// dashboardExprs are the PromQL expressions of a Grafana dashboard: every
// panel target's expr and the template variables' queries.
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && (k == "expr" || k == "definition" || k == "query") {
					out = append(out, s)
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	return out
}

// ruleExprs are the expressions of a Prometheus rules file.
func ruleExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Rules []struct {
				Alert, Record, Expr string
			}
		}
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []string
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			out = append(out, r.Expr)
		}
	}
	return out
}

func TestMonitoringMatchesMetrics(t *testing.T) {
	// With an SMSC, so the bind's gauge is there; one request first, so the
	// HTTP counters have a series.
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--smsc", sc.url())
	base := "http://" + b.addrs.HTTP
	if res, err := http.Get(base + "/healthz"); err != nil {
		t.Fatal(err)
	} else {
		res.Body.Close()
	}
	scrape := metricsText(t, base)
	exported := exportedNames(scrape)
	dir := filepath.Join(repoRoot(t), "monitoring")
	dashboard, rules, ruleTests := filepath.Join(dir, "grafana-dashboard.json"), filepath.Join(dir, "alerts.yml"), filepath.Join(dir, "alerts_test.yml")

	t.Run("names", func(t *testing.T) {
		tests, err := os.ReadFile(ruleTests)
		if err != nil {
			t.Fatal(err)
		}
		// least: fewer names than this is a file that lost its expressions.
		for _, f := range []struct {
			file  string
			exprs []string
			least int
		}{{dashboard, dashboardExprs(t, dashboard), 20}, {rules, ruleExprs(t, rules), 10}, {ruleTests, []string{string(tests)}, 1}} {
			file := f.file
			var refs []string
			for _, e := range f.exprs {
				refs = append(refs, metricRef.FindAllString(e, -1)...)
			}
			slices.Sort(refs)
			refs = slices.Compact(refs)
			if len(refs) < f.least {
				t.Errorf("%s names only %v", file, refs)
			}
			for _, r := range refs {
				if !exported[r] {
					t.Errorf("%s names %s, which the bridge does not export", file, r)
				}
			}
		}
	})

	t.Run("promtool", func(t *testing.T) {
		promtool := requireInterop(t, "promtool")
		if out, err := exec.Command(promtool, "check", "rules", rules).CombinedOutput(); err != nil {
			t.Errorf("promtool check rules: %v\n%s", err, out)
		}
		// The rules fire when they should and not before.
		test := exec.Command(promtool, "test", "rules", filepath.Base(ruleTests))
		test.Dir = dir
		if out, err := test.CombinedOutput(); err != nil {
			t.Errorf("promtool test rules: %v\n%s", err, out)
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(scrape)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		// Lint findings exit non-zero too: the scrape must have none.
		if err := cmd.Run(); err != nil || out.Len() > 0 {
			t.Errorf("promtool check metrics: %v\n%s", err, out.String())
		}
	})
}
