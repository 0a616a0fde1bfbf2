package main

import (
	"bytes"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

// The version lines come from the build information, whichever fields the
// build stamped.
func TestVersionFromBuildInfo(t *testing.T) {
	// ParseBuildInfo reads no "go" line: GoVersion is set below.
	bi, err := debug.ParseBuildInfo("path\tgithub.com/smsbridge/bridge/cmd/bridge\n" +
		"mod\tgithub.com/smsbridge/bridge\tv1.4.0\t\n" +
		"build\tvcs=git\nbuild\tvcs.revision=0123456789abcdef0123456789abcdef01234567\n" +
		"build\tvcs.time=2026-12-01T10:00:00Z\nbuild\tvcs.modified=true\n")
	if err != nil {
		t.Fatal(err)
	}
	bi.GoVersion = "go1.26.1"
	var out bytes.Buffer
	printVersion(&out, fromBuildInfo(bi))
	want := "bridge v1.4.0\nrevision 0123456789abcdef0123456789abcdef01234567\ntime 2026-12-01T10:00:00Z\nmodified true\ngo go1.26.1\n"
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
	bi, err = debug.ParseBuildInfo("path\tgithub.com/smsbridge/bridge/cmd/bridge\nmod\tgithub.com/smsbridge/bridge\t(devel)\t\n")
	if err != nil {
		t.Fatal(err)
	}
	bi.GoVersion = "go1.26.1"
	out.Reset()
	printVersion(&out, fromBuildInfo(bi))
	if out.String() != "bridge (devel)\ngo go1.26.1\n" {
		t.Fatalf("without VCS stamps: %q", out.String())
	}
}

// bridge version and bridge --version print the same, and what they print
// of a built binary agrees with what the go tool reads from it.
func TestVersionCommand(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		var out, errb bytes.Buffer
		if rc := run(args, nil, &out, &errb); rc != 0 || !strings.HasPrefix(out.String(), "bridge ") ||
			!strings.Contains(out.String(), "\ngo "+runtime.Version()+"\n") || strings.Contains(out.String(), "dev\n") {
			t.Fatalf("bridge %v: rc %d out %q err %q", args, rc, out.String(), errb.String())
		}
	}
	bin := bridgeBinary(t)
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", bin, err)
	}
	meta, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, l := range strings.Split(string(meta), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 3 && f[0] == "mod":
			if lines[0] != "bridge "+f[2] {
				t.Errorf("first line %q, module version %q", lines[0], f[2])
			}
		case len(f) == 2 && f[0] == "build" && strings.HasPrefix(f[1], "vcs."):
			k, v, _ := strings.Cut(strings.TrimPrefix(f[1], "vcs."), "=")
			if !slices.Contains(lines, k+" "+v) {
				t.Errorf("%s --version lacks %q:\n%s", bin, k+" "+v, out)
			}
		}
	}
	if !slices.Contains(lines, "go "+runtime.Version()) {
		t.Errorf("%s --version lacks the Go version:\n%s", bin, out)
	}
}
