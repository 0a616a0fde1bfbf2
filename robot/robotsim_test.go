package robot_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/bridge/robot"
)

// The webhook tests below run cmd/robotsim as its own process, as a robot
// vendor would; it is built once per test binary.
var simBin struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if simBin.dir != "" {
		os.RemoveAll(simBin.dir)
	}
	os.Exit(code)
}

func robotsimPath(t *testing.T) string {
	t.Helper()
	simBin.once.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			simBin.err = err
			return
		}
		if simBin.dir, err = os.MkdirTemp("", "robotsim"); err != nil {
			simBin.err = err
			return
		}
		simBin.path = filepath.Join(simBin.dir, "robotsim")
		out, err := exec.Command(goBin, "build", "-o", simBin.path, "../cmd/robotsim").CombinedOutput()
		if err != nil {
			simBin.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if simBin.err != nil {
		t.Fatal(simBin.err)
	}
	return simBin.path
}

// simLine is one post robotsim accepted (its stdout).
type simLine struct {
	ID      string `json:"id"`
	Group   string `json:"group"`
	Text    string `json:"text"`
	Attempt int    `json:"attempt"`
	Answers int    `json:"answers"`
}

type sim struct {
	url   string
	mu    sync.Mutex
	lines []simLine
}

func (s *sim) accepted() []simLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]simLine(nil), s.lines...)
}

// startSim runs robotsim on a free loopback port until the test ends.
func startSim(t *testing.T, args ...string) *sim {
	t.Helper()
	cmd := exec.Command(robotsimPath(t), append([]string{"--listen", "127.0.0.1:0"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		cmd.Process.Kill()
		t.Fatalf("robotsim printed no address: %v\n%s", cmd.Wait(), stderr.String())
	}
	addr, ok := strings.CutPrefix(sc.Text(), "listening ")
	if !ok {
		t.Fatalf("first line %q", sc.Text())
	}
	s := &sim{url: "http://" + addr + "/robot"}
	go func() {
		for sc.Scan() {
			var l simLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				t.Errorf("robotsim stdout line %q: %v", sc.Text(), err)
				continue
			}
			s.mu.Lock()
			s.lines = append(s.lines, l)
			s.mu.Unlock()
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("robotsim: %v\n%s", err, stderr.String())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Errorf("robotsim did not stop on SIGINT")
		}
		if t.Failed() {
			t.Logf("robotsim stderr:\n%s", stderr.String())
		}
	})
	return s
}

// Signed posts are accepted by a separate robot server; 503s are retried
// and each post is accepted exactly once, under the same Idempotency-Key on
// every attempt; the echo answers reach the Answerer.
func TestRobotsimRetriesThenDeliversOnce(t *testing.T) {
	s := startSim(t, "--secret", "s3cret", "--reply", "echo", "--trigger", "robot", "--fail-first", "3")
	var a answers
	wh := newWebhook(t, robot.WebhookConfig{Name: "echo", URL: s.url, Secret: []byte("s3cret"), Answer: a.answer,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	posts := []robot.Post{
		{ID: "m1", Group: "lobby", From: "+8613900000001", Nick: "ming", Text: "hello robot", At: time.Now()},
		{ID: "m2", Group: "lobby", From: "sip:alice@example.com", Nick: "alice", Text: "just chatting", At: time.Now()},
		{ID: "m3", Group: "lobby", From: "+8613900000002", Nick: "hong", Text: "ROBOT, hours?", At: time.Now()},
	}
	for _, p := range posts {
		wh.Offer(p)
	}
	closeNow(t, wh)
	eventually(t, 5*time.Second, "3 accepted lines", func() bool { return len(s.accepted()) >= 3 })

	lines := s.accepted()
	want := []simLine{
		{ID: "m1", Group: "lobby", Text: "hello robot", Attempt: 4, Answers: 1}, // 3 × 503, then accepted
		{ID: "m2", Group: "lobby", Text: "just chatting", Attempt: 1, Answers: 0},
		{ID: "m3", Group: "lobby", Text: "ROBOT, hours?", Attempt: 1, Answers: 1},
	}
	if fmt.Sprint(lines) != fmt.Sprint(want) {
		t.Fatalf("robotsim accepted\n%+v\nwant (each once, in order)\n%+v", lines, want)
	}
	wantAnswers := []posted{{"lobby", "echo", "robot: hello robot"}, {"lobby", "echo", "robot: ROBOT, hours?"}}
	if got := a.list(); fmt.Sprint(got) != fmt.Sprint(wantAnswers) {
		t.Fatalf("answers %+v, want %+v", got, wantAnswers)
	}
	st := wh.Stats()
	if st.Delivered != 3 || st.Retried != 3 || st.Failed != 0 || st.Expired != 0 || st.Answered != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// Several answers in one response are posted in order.
func TestRobotsimFixedAnswers(t *testing.T) {
	s := startSim(t, "--secret", "k", "--reply", "fixed", "--text", "We are open 9-18.", "--text", "Mon-Fri.")
	var a answers
	wh := newWebhook(t, robot.WebhookConfig{Name: "hours", URL: s.url, Secret: []byte("k"), Answer: a.answer})
	wh.Offer(robot.Post{ID: "p1", Group: "shop", Text: "when are you open?"})
	closeNow(t, wh)
	want := []posted{{"shop", "hours", "We are open 9-18."}, {"shop", "hours", "Mon-Fri."}}
	if got := a.list(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("answers %+v, want %+v", got, want)
	}
	eventually(t, 5*time.Second, "accepted line", func() bool { return len(s.accepted()) == 1 })
}

// A robot with the wrong secret is refused (401): final, counted as
// failed, never retried, and robotsim accepts nothing.
func TestRobotsimWrongSecret(t *testing.T) {
	s := startSim(t, "--secret", "right")
	var a answers
	wh := newWebhook(t, robot.WebhookConfig{URL: s.url, Secret: []byte("wrong"), Answer: a.answer, MinBackoff: time.Millisecond})
	wh.Offer(robot.Post{ID: "x1", Group: "g", Text: "robot?"})
	wh.Offer(robot.Post{ID: "x2", Group: "g", Text: "robot!"})
	closeNow(t, wh)
	st := wh.Stats()
	if st.Failed != 2 || st.Retried != 0 || st.Delivered != 0 || len(a.list()) != 0 {
		t.Fatalf("stats %+v, answers %v", st, a.list())
	}
	time.Sleep(100 * time.Millisecond)
	if l := s.accepted(); len(l) != 0 {
		t.Fatalf("robotsim accepted %+v", l)
	}
}

// A stalled robot server: the attempt times out after the default 3 s, and
// meanwhile 10,000 Offers return at once, the queue holding no more than
// its bound and every other post dropped and counted.
func TestRobotsimStalledNeverBlocksOffer(t *testing.T) {
	s := startSim(t, "--secret", "k", "--delay", "20s")
	wh := newWebhook(t, robot.WebhookConfig{URL: s.url, Secret: []byte("k"), Answer: (&answers{}).answer, MaxAttempts: 1})
	start := time.Now()
	wh.Offer(robot.Post{ID: "first", Group: "g", Text: "robot"})
	for i := range 10_000 {
		wh.Offer(robot.Post{ID: fmt.Sprint("p", i), Group: "g", Text: "robot"})
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("10,000 Offers took %v", d)
	}
	st := wh.Stats()
	if st.Offered != 10_001 || st.Queued > 1024+1 || st.Queued+st.Dropped != st.Offered || st.Dropped < 10_001-1025 {
		t.Fatalf("stats %+v: want at most 1025 queued (1024 + one in flight), the rest dropped", st)
	}
	eventually(t, 10*time.Second, "the first attempt to time out", func() bool { return wh.Stats().Expired >= 1 })
	if d := time.Since(start); d < 2900*time.Millisecond || d > 7*time.Second {
		t.Fatalf("first attempt given up after %v, want about 3 s", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	wh.Close(ctx)
	st = wh.Stats()
	if st.Expired != st.Queued || st.Delivered != 0 {
		t.Fatalf("after Close: %+v, want every queued post expired", st)
	}
	if l := s.accepted(); len(l) != 0 {
		t.Fatalf("robotsim accepted %+v", l)
	}
}
