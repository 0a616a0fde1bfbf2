//go:build linux

package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPageOutCold writes three value-log files' worth of values, pages
// out the finished files and checks that their pages left the process's
// resident set while the file being written kept its pages, and that
// every value still reads back whole.
func TestPageOutCold(t *testing.T) {
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.TMPFS_MAGIC {
		t.Skip("the test directory is on tmpfs, whose pages the kernel cannot page out without swap")
	}
	db, err := open(Options{Dir: dir, PageOutInterval: -1}, knobs{vlogMaxEntries: 500})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	const n = 1400
	val := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, 4000+i%7) }
	for i := range n {
		if err := db.Put(ctx, fmt.Appendf(nil, "k/%05d", i), val(i)); err != nil {
			t.Fatal(err)
		}
	}
	readAll := func() {
		t.Helper()
		for i := range n {
			got, err := db.Get(fmt.Appendf(nil, "k/%05d", i))
			if err != nil || !bytes.Equal(got, val(i)) {
				t.Fatalf("value %d: %d bytes, err %v", i, len(got), err)
			}
		}
	}
	readAll() // every value applied to badger, its pages faulted in
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	before := residentByFile(t, real)
	if before["000001.vlog"] < 1<<20 || before["000003.vlog"] == 0 {
		t.Fatalf("before paging out, resident bytes per value-log file: %v; want 000001.vlog ≥ 1 MiB and 000003.vlog > 0", before)
	}
	err = pageOutCold(real, time.Now())
	if errors.Is(err, errNoPageOut) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	after := residentByFile(t, real)
	t.Logf("resident before %v, after %v", before, after)
	for _, f := range []string{"000001.vlog", "000002.vlog"} {
		if after[f] > before[f]/10 {
			t.Errorf("%s: %d resident bytes after paging out, %d before", f, after[f], before[f])
		}
	}
	if after["000003.vlog"] < before["000003.vlog"]/2 {
		t.Errorf("the file being written lost its pages: %d resident bytes, %d before", after["000003.vlog"], before["000003.vlog"])
	}
	readAll()
}

// residentByFile sums /proc/self/smaps's Rss of each mapped file in dir.
func residentByFile(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	cur := ""
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		switch {
		case len(f) >= 6 && strings.Contains(f[0], "-") && filepath.Dir(strings.Join(f[5:], " ")) == dir:
			cur = filepath.Base(strings.Join(f[5:], " "))
		case len(f) >= 6 && strings.Contains(f[0], "-"), len(f) == 5 && strings.Contains(f[0], "-"):
			cur = ""
		case len(f) == 3 && f[0] == "Rss:" && cur != "":
			var kb int64
			fmt.Sscan(f[1], &kb)
			out[cur] += kb << 10
		}
	}
	return out
}

func TestColdMappings(t *testing.T) {
	maps := []byte(`55d0c0a00000-55d0c0a21000 r--p 00000000 fd:01 123 /usr/bin/bridge
7f0000000000-7f0040000000 rw-s 00000000 fd:01 11 /data/store/000007.vlog
7f0040000000-7f0080000000 rw-s 00000000 fd:01 12 /data/store/000012.vlog
7f0080000000-7f0081000000 rw-s 00000000 fd:01 13 /data/store/000009.vlog (deleted)
7f0090000000-7f0091000000 rw-s 00000000 fd:01 14 /data/store/000010.sst
7f0092000000-7f0093000000 rw-s 00000000 fd:01 17 /data/store/000011.sst
7f00a0000000-7f00a1000000 rw-s 00000000 fd:01 15 /data/other/000099.vlog
7f00b0000000-7f00b1000000 rw-p 00000000 00:00 0
7f00c0000000-7f00c1000000 rw-s 00000000 fd:01 16 /data/store/my log.vlog
7f00d0000000-7f00d1000000 rw-s 00000000 fd:01 18 /data/store/00003.mem
`)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	mtimes := map[string]time.Time{
		"/data/store/000010.sst": now.Add(-coldTableAge),
		"/data/store/000011.sst": now.Add(-coldTableAge + time.Second),
	}
	got := coldMappings(maps, "/data/store", now, func(p string) (time.Time, bool) {
		m, ok := mtimes[p]
		return m, ok
	})
	want := []mapping{
		{0x7f0090000000, 0x7f0091000000, "/data/store/000010.sst"},
		{0x7f0000000000, 0x7f0040000000, "/data/store/000007.vlog"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}
