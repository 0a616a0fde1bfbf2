package main

import "golang.org/x/sys/unix"

// probeCPUs are the CPUs the bench may run on.
func probeCPUs() []int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil
	}
	var cpus []int
	for c := 0; c < 1024 && len(cpus) < set.Count(); c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus
}

// probeOn runs work on CPU c alone and returns the thread CPU time it
// took, in µs: time the thread waited for the CPU does not count. The
// calling goroutine is locked to its thread (SpeedProbe.run).
func probeOn(c int, work func()) (float64, bool) {
	var one unix.CPUSet
	one.Set(c)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		return 0, false
	}
	var t0, t1 unix.Timespec
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &t0) != nil {
		return 0, false
	}
	work()
	if unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &t1) != nil {
		return 0, false
	}
	return float64(t1.Nano()-t0.Nano()) / 1e3, true
}
