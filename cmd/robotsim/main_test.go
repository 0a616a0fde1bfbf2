package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/bridge/robot"
)

func TestRunRejectsBadSetup(t *testing.T) {
	for name, args := range map[string][]string{
		"bad flag":        {"--nope"},
		"no secret":       {"--listen", "127.0.0.1:0"},
		"bad reply":       {"--secret", "k", "--reply", "shout"},
		"fixed, no text":  {"--secret", "k", "--reply", "fixed"},
		"extra arguments": {"--secret", "k", "extra"},
	} {
		var errOut bytes.Buffer
		if code := run(context.Background(), args, io.Discard, &errOut); code != 2 {
			t.Errorf("%s: exit %d, want 2 (%s)", name, code, errOut.String())
		}
	}
	var errOut bytes.Buffer
	if code := run(context.Background(), []string{"--secret", "k", "--listen", "256.0.0.1:1"}, io.Discard, &errOut); code != 1 {
		t.Errorf("bad listen address: exit %d", code)
	}
}

// started is robotsim run in-process on a loopback port.
type started struct {
	url   string
	lines chan accepted
}

func start(t *testing.T, args ...string) started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, append([]string{"--listen", "127.0.0.1:0"}, args...), pw, io.Discard)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		t.Fatal("no output")
	}
	addr, ok := strings.CutPrefix(sc.Text(), "listening ")
	if !ok {
		t.Fatalf("first line %q", sc.Text())
	}
	s := started{url: "http://" + addr + "/", lines: make(chan accepted, 100)}
	go func() {
		for sc.Scan() {
			var a accepted
			if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
				t.Errorf("line %q: %v", sc.Text(), err)
			}
			s.lines <- a
		}
	}()
	t.Cleanup(func() {
		cancel()
		if c := <-code; c != 0 {
			t.Errorf("exit %d", c)
		}
	})
	return s
}

// send posts p signed with secret at ts and returns the status and body.
func send(t *testing.T, url string, secret string, ts time.Time, p robot.WebhookPost, timeout time.Duration) (int, string) {
	t.Helper()
	body, _ := json.Marshal(p)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	tss := strconv.FormatInt(ts.Unix(), 10)
	req.Header.Set(robot.HeaderTimestamp, tss)
	req.Header.Set(robot.HeaderSignature, robot.Sign([]byte(secret), tss, body))
	req.Header.Set(robot.HeaderIdempotencyKey, p.ID)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEchoVerifiesAndCountsAttempts(t *testing.T) {
	s := start(t, "--secret", "k", "--fail-first", "1")
	p := robot.WebhookPost{ID: "m1", Group: "lobby", From: "+8613900000001", Nick: "ming", Text: "Hi Robot"}
	if code, _ := send(t, s.url, "wrong", time.Now(), p, 5*time.Second); code != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d", code)
	}
	if code, _ := send(t, s.url, "k", time.Now().Add(-10*time.Minute), p, 5*time.Second); code != http.StatusUnauthorized {
		t.Fatalf("stale timestamp: %d", code)
	}
	if code, _ := send(t, s.url, "k", time.Now(), p, 5*time.Second); code != http.StatusServiceUnavailable {
		t.Fatalf("--fail-first 1: first authentic request got %d", code)
	}
	code, body := send(t, s.url, "k", time.Now(), p, 5*time.Second)
	if code != http.StatusOK || strings.TrimSpace(body) != `{"text":"robot: Hi Robot"}` {
		t.Fatalf("retry: %d %s", code, body)
	}
	p2 := robot.WebhookPost{ID: "m2", Group: "lobby", Text: "no trigger word"}
	if code, body := send(t, s.url, "k", time.Now(), p2, 5*time.Second); code != http.StatusNoContent {
		t.Fatalf("no trigger: %d %s", code, body)
	}
	// Refused requests are not lines; the retry is attempt 2 of its key.
	want := []accepted{
		{ID: "m1", Group: "lobby", From: "+8613900000001", Nick: "ming", Text: "Hi Robot", Attempt: 2, Answers: 1},
		{ID: "m2", Group: "lobby", Text: "no trigger word", Attempt: 1},
	}
	for _, w := range want {
		select {
		case got := <-s.lines:
			if got != w {
				t.Fatalf("line %+v, want %+v", got, w)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no line for %s", w.ID)
		}
	}
}

func TestFixedAnswersAndDelay(t *testing.T) {
	s := start(t, "--secret", "k", "--reply", "fixed", "--text", "a", "--text", "b", "--delay", "300ms")
	p := robot.WebhookPost{ID: "m1", Group: "g", Text: "anything"}
	// A client that gives up during the delay: not accepted.
	if code, _ := send(t, s.url, "k", time.Now(), p, 100*time.Millisecond); code != 0 {
		t.Fatalf("expected a client timeout, got %d", code)
	}
	begin := time.Now()
	code, body := send(t, s.url, "k", time.Now(), p, 5*time.Second)
	if code != http.StatusOK || strings.TrimSpace(body) != `{"answers":["a","b"]}` {
		t.Fatalf("%d %s", code, body)
	}
	if d := time.Since(begin); d < 300*time.Millisecond {
		t.Fatalf("answered after %v, before --delay", d)
	}
	if got := <-s.lines; got.ID != "m1" || got.Attempt != 2 || got.Answers != 2 {
		t.Fatalf("line %+v", got)
	}
	select {
	case extra := <-s.lines:
		t.Fatalf("abandoned request was logged as accepted: %+v", extra)
	case <-time.After(100 * time.Millisecond):
	}
}
