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
	"time"

	"github.com/smsbridge/bridge/msg"
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
	// Short checkpoints and small segments: the kill finds seals and
	// checkpoints in progress too.
	db, err := open(Options{Dir: dir, CheckpointInterval: 20 * time.Millisecond}, knobs{segBytes: 64 << 10})
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
				if i%2 == 1 {
					continue
				}
				if err := db.Transition(context.Background(), m.ID, Event{State: msg.Delivered}, true); err != nil {
					fmt.Println("transition error:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "final %s\n", m.ID)
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
	final := map[string]bool{}
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		line := sc.Text()
		if id, ok := strings.CutPrefix(line, "final "); ok {
			if validID(id) {
				final[id] = true
			}
			continue
		}
		id, ok := strings.CutPrefix(line, "acked ")
		if !ok {
			t.Logf("child: %s", line)
			continue
		}
		if validID(id) { // a torn last line is not an acknowledgement
			acked = append(acked, id)
		}
		if len(acked) == 6000 && !killed {
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
		r, err := db.Message(id)
		switch {
		case err != nil:
			t.Fatalf("acknowledged %s lost after crash: %v", id, err)
		case final[id] && r.State != msg.Delivered:
			t.Fatalf("%s was acknowledged delivered, is %v after crash", id, r.State)
		case !r.State.Final() && !unfinished[id]:
			t.Fatalf("acknowledged %s missing from Unfinished", id)
		}
	}
	t.Logf("%d acknowledged before SIGKILL (%d of them delivered), all present; %d unfinished on disk", len(acked), len(final), len(unfinished))
}
