package main

import "testing"

func TestProcs(t *testing.T) {
	for _, c := range []struct {
		configured int
		env        string
		avail      int
		want       int
	}{
		{0, "", 2, 4},   // default: two more than the CPUs
		{0, "", 16, 18}, // the margin is for the two compactors, not a multiple
		{0, "3", 3, 3},  // the operator's GOMAXPROCS, already applied by the runtime, stands
		{6, "3", 3, 6},  // --procs wins over the environment
		{1, "", 2, 1},   // and may go below the CPU count
	} {
		if got := procs(c.configured, c.env, c.avail); got != c.want {
			t.Errorf("procs(%d, %q, %d) = %d, want %d", c.configured, c.env, c.avail, got, c.want)
		}
	}
}
