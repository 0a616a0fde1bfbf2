package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs the whole bench for a few seconds against a spawned bridge
// at a modest rate with every route and alphabet, and checks what a CI run
// can check without timing: nothing lost, things delivered on every route,
// and report files that parse.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a bridge")
	}
	out := t.TempDir()
	rep, progress := runBench(t,
		"--out", out,
		"--rate", "400", "--duration", "3s", "--warmup", "500ms", "--ceiling-duration", "1s",
		"--users", "20", "--online", "0.5", "--binds", "2", "--window", "16", "--sip-window", "16",
		"--mix", "sms-im:1,sms-sms:1,im-sms:1,im-im:1", "--alphabet", "gsm7:2,ucs2:1,long:1")
	b := rep.Phase("bridge")
	if b == nil || rep.Phase("ceiling") == nil {
		t.Fatalf("phases: %+v", rep.Phases)
	}
	if rep.Lost != 0 {
		t.Fatalf("lost %d messages (samples %v)\n%s", rep.Lost, b.LostSamples, b.BridgeLogTail)
	}
	for _, r := range routeNames[:IMToIM+1] { // the mix's
		if b.Routes[r].Delivered == 0 {
			t.Errorf("route %s: nothing delivered: %+v", r, b.Routes[r])
		}
	}
	if b.TotalDelivered == 0 || b.TotalAcked == 0 || b.Bridge == nil || b.Bridge.RSSPeakMB <= 0 {
		t.Errorf("implausible bridge phase: %+v", b)
	}
	if !strings.Contains(progress.String(), "[bridge]") {
		t.Errorf("no progress lines:\n%s", progress.String())
	}
	if cpus := len(probeCPUs()); cpus > 0 {
		// On a busy box a pinned probe may wait past a second for its CPU;
		// most seconds must have a figure for every CPU all the same.
		full, measured := 0, 0
		for _, s := range b.Series {
			if !s.Measured {
				continue
			}
			measured++
			if len(s.ProbeUs) != cpus {
				t.Fatalf("second %.0f: speed probe %v, want %d figures", s.T, s.ProbeUs, cpus)
			}
			if slices.Min(s.ProbeUs) > 0 {
				full++
			}
		}
		if measured == 0 || 2*full < measured {
			t.Errorf("the speed probe measured every CPU in %d of %d seconds", full, measured)
		}
	}

	var back Report
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	if got := back.Phase("bridge"); got == nil || got.TotalDelivered != b.TotalDelivered {
		t.Errorf("report.json does not round-trip the bridge phase")
	}
	csv, err := os.ReadFile(filepath.Join(out, "timeseries.csv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(csv)), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "phase,t,accepted,delivered,p50_ms,p99_ms,throttled") ||
		(len(probeCPUs()) > 0 && !strings.Contains(lines[0], ",probe_us_cpu0")) {
		t.Errorf("timeseries.csv: %q", lines)
	}
	for _, l := range lines[1:] {
		if n := strings.Count(l, ","); n != strings.Count(lines[0], ",") {
			t.Errorf("csv row %q has %d commas", l, n)
		}
	}
	svg, err := os.ReadFile(filepath.Join(out, "chart.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if err := xmlWellFormed(svg); err != nil || !bytes.Contains(svg, []byte("<polyline")) {
		t.Errorf("chart.svg: %v", err)
	}
}

func xmlWellFormed(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// runBench runs the bench with args against a bridge built for the test
// (in a temporary --out unless args give one) and returns its report and
// progress lines.
func runBench(t *testing.T, args ...string) (*Report, *bytes.Buffer) {
	t.Helper()
	ctx, bin := builtBridge(t)
	o, err := ParseFlags(append([]string{"--bridge-bin", bin, "--out", t.TempDir()}, args...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	rep, err := Run(ctx, o, &progress, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("run: %v\n%s", err, progress.String())
	}
	return rep, &progress
}

// builtBridge builds cmd/bridge for a test that spawns it, with a context
// bounding the test's run (ended when the test ends).
func builtBridge(t *testing.T) (context.Context, string) {
	t.Helper()
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	bin, err := BuildBridge(ctx, root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return ctx, bin
}

// TestSmokeCluster drives three spawned nodes of one cluster: ESME binds
// and SIP users spread over them, so most IM deliveries cross nodes.
// Nothing may be lost or fall back to SMS, and the bridge's figures must
// be the three processes'.
func TestSmokeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns three bridges")
	}
	rep, progress := runBench(t, "--nodes", "3", "--no-ceiling",
		"--rate", "300", "--duration", "3s", "--warmup", "500ms",
		"--users", "30", "--binds", "3", "--window", "16", "--sip-window", "16",
		"--mix", "sms-im:2,im-im:1,sms-sms:1")
	b := rep.Phase("bridge")
	if rep.Lost != 0 || b.Elsewhere != 0 {
		t.Fatalf("lost %d, fell back to SMS %d\n%s", rep.Lost, b.Elsewhere, b.BridgeLogTail)
	}
	for _, r := range []string{"sms-im", "im-im", "sms-sms"} {
		if b.Routes[r].Delivered == 0 {
			t.Errorf("route %s: nothing delivered: %+v", r, b.Routes[r])
		}
	}
	if b.Bridge == nil || len(b.Bridge.PIDs) != 3 || b.Bridge.CPUPerDeliveredUs <= 0 {
		t.Errorf("bridge figures are not the three nodes': %+v", b.Bridge)
	}
	if !strings.Contains(progress.String(), "bridge 3 pid") || !strings.Contains(progress.String(), "presence shared by the 3 nodes") {
		t.Errorf("progress does not show the cluster:\n%s", progress.String())
	}
}

// TestSmokeClusterKill kills one of three nodes under SMS→SMS load and
// starts it again: nothing acknowledged may be lost, and the bench must
// keep watching the restarted process rather than report the bridge gone.
func TestSmokeClusterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns three bridges")
	}
	rep, progress := runBench(t, "--nodes", "3", "--no-ceiling",
		"--kill-node", "2", "--kill-at", "1500ms", "--restart-after", "1s",
		"--rate", "300", "--duration", "4s", "--warmup", "500ms", "--binds", "3", "--window", "16",
		"--mix", "sms-sms:1", "--bridge-arg=--dedup-window=10m")
	b := rep.Phase("bridge")
	if rep.Lost != 0 {
		t.Fatalf("lost %d\n%s", rep.Lost, b.BridgeLogTail)
	}
	if !strings.Contains(progress.String(), "node 2 killed") || !strings.Contains(progress.String(), "node 2 restarted") {
		t.Fatalf("the node was not killed and restarted:\n%s", progress.String())
	}
	if b.Bridge == nil || b.Bridge.Exited || b.Routes["sms-sms"].Delivered == 0 {
		t.Errorf("bridge phase: %+v, sms-sms %+v", b.Bridge, b.Routes["sms-sms"])
	}
}
