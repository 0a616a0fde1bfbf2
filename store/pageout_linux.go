package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// errNoPageOut is a kernel without MADV_PAGEOUT (before Linux 5.4).
var errNoPageOut = errors.New("store: the kernel cannot page out mapped files (MADV_PAGEOUT)")

// coldTableAge: a table file unchanged this long is paged out. Compaction
// reads the newest tables again soon; older ones wait for a rare lookup.
const coldTableAge = time.Minute

// pageOutCold asks the kernel to drop from this process's memory the pages
// of badger's files in dir that are done with: the value-log files badger
// has finished writing and the tables unchanged for coldTableAge. Badger
// maps every one of its files for as long as it exists, so without this
// every record written stays in the process's resident set until the
// kernel runs short of memory, and that set grows with the records of the
// retention period. Finished value-log files were synced when badger
// closed them; reading a file again faults its pages back in. The
// value-log file being written, the highest-numbered, keeps its pages.
//
// MADV_PAGEOUT never changes a mapping's contents, so a range badger
// unmapped or moved since /proc/self/maps was read is harmless.
func pageOutCold(dir string, now time.Time) error {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return fmt.Errorf("store: page out: %w", err)
	}
	for _, r := range coldMappings(maps, dir, now, modTime) {
		_, _, e := unix.Syscall(unix.SYS_MADVISE, r.start, r.end-r.start, unix.MADV_PAGEOUT)
		switch e {
		case 0:
		case unix.EINVAL:
			return errNoPageOut
		case unix.ENOMEM: // unmapped since the maps were read
		default:
			return fmt.Errorf("store: page out %d bytes at %#x: %w", r.end-r.start, r.start, e)
		}
	}
	return nil
}

func modTime(path string) (time.Time, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}, false
	}
	return fi.ModTime(), true
}

// mapping is one mapped range of a badger file.
type mapping struct {
	start, end uintptr
	path       string
}

// coldMappings returns the mappings listed in maps (the text of
// /proc/self/maps) of dir's value-log files but the highest-numbered and
// of its tables that mtime says are unchanged for coldTableAge.
func coldMappings(maps []byte, dir string, now time.Time, mtime func(string) (time.Time, bool)) []mapping {
	var (
		out    []mapping
		vlogs  []mapping
		newest uint64
	)
	sc := bufio.NewScanner(bytes.NewReader(maps))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		// "start-end perms offset dev inode path"; the path may hold spaces.
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			continue
		}
		path := strings.Join(f[5:], " ")
		if filepath.Dir(path) != dir {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			continue
		}
		m := mapping{start: uintptr(start), end: uintptr(end), path: path}
		// A removed file's path ends in " (deleted)" and matches neither.
		switch name := filepath.Base(path); {
		case strings.HasSuffix(name, ".vlog"):
			n, err := strconv.ParseUint(strings.TrimSuffix(name, ".vlog"), 10, 64)
			if err != nil {
				continue
			}
			newest = max(newest, n)
			vlogs = append(vlogs, m)
		case strings.HasSuffix(name, ".sst"):
			if t, ok := mtime(path); ok && now.Sub(t) >= coldTableAge {
				out = append(out, m)
			}
		}
	}
	last := fmt.Sprintf("%06d.vlog", newest)
	for _, m := range vlogs {
		if filepath.Base(m.path) != last {
			out = append(out, m)
		}
	}
	return out
}
