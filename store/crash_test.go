package store

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
)

const crashEnv = "STORE_CRASH_CHILD_DIR"

// TestCrashChild is the child process of TestCrashLosesNothingAcknowledged:
// it accepts messages from many goroutines until killed, printing each ID
// only after Accept returned (i.e. after it would have been acknowledged).
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashLosesNothingAcknowledged")
	}
	db, err := Open(Options{Dir: dir})
	if err != nil {
		fmt.Println("open error:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				m := newMsg(g*1_000_000 + i)
				if err := accept(db, context.Background(), m); err != nil {
					fmt.Println("accept error:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "acked %s\n", m.ID) // unbuffered: in the pipe before the next Accept
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

func TestCrashLosesNothingAcknowledged(t *testing.T) {
	if os.Getenv(crashEnv) != "" {
		t.Skip("in child")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		line := sc.Text()
		id, ok := strings.CutPrefix(line, "acked ")
		if !ok {
			t.Logf("child: %s", line)
			continue
		}
		if validID(id) { // a torn last line is not an acknowledgement
			acked = append(acked, id)
		}
		if len(acked) == 3000 && !killed {
			cmd.Process.Signal(syscall.SIGKILL) // mid-way: writers are waiting on commits
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child ended before it was killed: %v (%d acked)", err, len(acked))
	}
	db := openT(t, Options{Dir: dir})
	unfinished := map[string]bool{}
	if err := db.Unfinished(func(r Record) error { unfinished[r.Msg.ID] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	for _, id := range acked {
		if _, err := db.Message(id); err != nil {
			t.Fatalf("acknowledged %s lost after crash: %v", id, err)
		}
		if !unfinished[id] {
			t.Fatalf("acknowledged %s missing from Unfinished", id)
		}
	}
	t.Logf("%d acknowledged before SIGKILL, all present; %d records on disk", len(acked), len(unfinished))
}
