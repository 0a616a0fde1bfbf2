package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// buildInfo is what the Go toolchain stamped into the binary: the module
// version (v1.2.3, a pseudo-version, or "(devel)" for a build from a work
// tree), the commit, its time, whether the tree had uncommitted changes,
// and the Go version.
type buildInfo struct {
	Version, Revision, Time, Go string
	Modified                    bool
	HasModified                 bool // vcs.modified was stamped at all
}

func readBuildInfo() buildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return buildInfo{Version: "unknown"}
	}
	return fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) buildInfo {
	v := buildInfo{Version: bi.Main.Version, Go: bi.GoVersion}
	if v.Version == "" {
		v.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.HasModified, v.Modified = true, s.Value == "true"
		}
	}
	return v
}

// printVersion writes the first line "bridge VERSION", then one "key
// value" line per field the build carries (a test binary or a build
// without VCS information has no revision).
func printVersion(w io.Writer, v buildInfo) {
	fmt.Fprintln(w, "bridge", v.Version)
	if v.Revision != "" {
		fmt.Fprintln(w, "revision", v.Revision)
	}
	if v.Time != "" {
		fmt.Fprintln(w, "time", v.Time)
	}
	if v.HasModified {
		fmt.Fprintln(w, "modified", v.Modified)
	}
	if v.Go != "" {
		fmt.Fprintln(w, "go", v.Go)
	}
}
