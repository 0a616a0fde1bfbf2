package robot_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/bridge/robot"
)

// server is a robot server on loopback whose handler a test scripts; it
// checks every request the way a vendor would and keeps what it saw.
type server struct {
	*httptest.Server
	t      *testing.T
	secret []byte
	mu     sync.Mutex
	seen   []seenReq
	handle func(n int, p robot.WebhookPost, w http.ResponseWriter, r *http.Request)
}

type seenReq struct {
	post   robot.WebhookPost
	header http.Header
	body   []byte
	at     time.Time
}

func newServer(t *testing.T, secret string, handle func(n int, p robot.WebhookPost, w http.ResponseWriter, r *http.Request)) *server {
	s := &server{t: t, secret: []byte(secret), handle: handle}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := robot.Verify(s.secret, r.Header.Get(robot.HeaderTimestamp), r.Header.Get(robot.HeaderSignature), body, time.Now(), time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var p robot.WebhookPost
		if err := json.Unmarshal(body, &p); err != nil {
			t.Errorf("body %q: %v", body, err)
		}
		s.mu.Lock()
		s.seen = append(s.seen, seenReq{p, r.Header.Clone(), body, time.Now()})
		n := len(s.seen)
		s.mu.Unlock()
		s.handle(n, p, w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) requests() []seenReq {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenReq(nil), s.seen...)
}

func newWebhook(t *testing.T, cfg robot.WebhookConfig) *robot.Webhook {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "vendor"
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	w, err := robot.NewWebhook(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		w.Close(ctx)
	})
	return w
}

func closeNow(t *testing.T, w *robot.Webhook) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// The request is what README.md promises: the body's fields, the headers,
// and a signature the robot side verifies; the answer formats all work.
func TestWebhookRequestAndAnswers(t *testing.T) {
	srv := newServer(t, "s3cret", func(n int, p robot.WebhookPost, w http.ResponseWriter, _ *http.Request) {
		switch p.Text {
		case "one":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"text":"answer one"}`)
		case "two":
			io.WriteString(w, `{"answers":["first","","second"]}`)
		case "both":
			io.WriteString(w, `{"text":"t","answers":["a"],"extra":1}`)
		case "none":
			w.WriteHeader(http.StatusNoContent)
		case "empty":
			w.WriteHeader(http.StatusOK)
		case "bad":
			io.WriteString(w, `not json`)
		case "many":
			b, _ := json.Marshal(robot.WebhookAnswer{Answers: strings.Split("1 2 3 4 5 6 7 8 9 10", " ")})
			w.Write(b)
		case "long":
			b, _ := json.Marshal(robot.WebhookAnswer{Text: strings.Repeat("é", robot.MaxAnswerBytes)})
			w.Write(b)
		}
	})
	var a answers
	wh := newWebhook(t, robot.WebhookConfig{URL: srv.URL + "/hook?k=1", Secret: []byte("s3cret"), Answer: a.answer})
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("CST", 8*3600))
	texts := []string{"one", "two", "both", "none", "empty", "bad", "many", "long"}
	for i, text := range texts {
		wh.Offer(robot.Post{ID: fmt.Sprint("id-", i), Group: "shop", From: "+8613900000001", Nick: "小明", Text: text, At: at})
	}
	wh.Offer(robot.Post{ID: "robots-own", Group: "shop", Text: "one", Robot: "vendor"})
	closeNow(t, wh)

	reqs := srv.requests()
	if len(reqs) != len(texts) {
		t.Fatalf("%d requests, want %d (a robot's post must not be sent)", len(reqs), len(texts))
	}
	for i, r := range reqs {
		want := robot.WebhookPost{ID: fmt.Sprint("id-", i), Group: "shop", From: "+8613900000001", Nick: "小明", Text: texts[i], At: at.UTC()}
		if r.post != want {
			t.Errorf("request %d (in Offer order, one worker): %+v, want %+v", i, r.post, want)
		}
		if got := r.header.Get("Idempotency-Key"); got != want.ID {
			t.Errorf("Idempotency-Key %q", got)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		if !strings.HasPrefix(r.header.Get("X-Robot-Signature"), "sha256=") {
			t.Errorf("signature header %q", r.header.Get("X-Robot-Signature"))
		}
	}
	var raw map[string]any
	json.Unmarshal(reqs[0].body, &raw)
	if fmt.Sprint(len(raw)) != "6" || raw["at"] != "2026-03-01T04:00:00.123456789Z" {
		t.Errorf("body %s: want exactly id, group, from, nick, text, at (UTC)", reqs[0].body)
	}

	var got []string
	for _, p := range a.list() {
		if p.Group != "shop" || p.Robot != "vendor" {
			t.Fatalf("answer posted as %+v", p)
		}
		got = append(got, p.Text)
	}
	long := strings.Repeat("é", robot.MaxAnswerBytes/2) // cut at a rune boundary
	want := append([]string{"answer one", "first", "second", "t", "a"}, append(strings.Split("1 2 3 4 5 6 7 8", " "), long)...)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("answers\n%q\nwant\n%q", got, want)
	}
	st := wh.Stats()
	if st.Offered != 8 || st.Delivered != 8 || st.Answered != uint64(len(want)) || st.AnswerFailed != 1+2 || st.Failed != 0 {
		t.Fatalf("stats %+v (AnswerFailed: 1 bad body + 2 beyond the limit)", st)
	}
}

// 5xx, 429 and network errors are retried with the same body and key; 4xx
// other than 429 and redirects are final.
func TestWebhookRetryPolicy(t *testing.T) {
	srv := newServer(t, "k", func(n int, p robot.WebhookPost, w http.ResponseWriter, _ *http.Request) {
		switch {
		case p.ID == "flaky" && n == 1:
			http.Error(w, "down", http.StatusServiceUnavailable)
		case p.ID == "flaky" && n == 2:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		case p.ID == "flaky":
			io.WriteString(w, `{"text":"finally"}`)
		case p.ID == "bad":
			http.Error(w, "no such group", http.StatusBadRequest)
		case p.ID == "moved":
			w.Header().Set("Location", "http://example.invalid/")
			w.WriteHeader(http.StatusFound)
		}
	})
	var a answers
	wh := newWebhook(t, robot.WebhookConfig{URL: srv.URL, Secret: []byte("k"), Answer: a.answer,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 2 * time.Second})
	start := time.Now()
	wh.Offer(robot.Post{ID: "flaky", Group: "g", Text: "x"})
	wh.Offer(robot.Post{ID: "bad", Group: "g", Text: "x"})
	wh.Offer(robot.Post{ID: "moved", Group: "g", Text: "x"})
	closeNow(t, wh)
	reqs := srv.requests()
	if len(reqs) != 5 {
		t.Fatalf("%d requests, want 3 for flaky + 1 + 1", len(reqs))
	}
	for _, r := range reqs[:3] {
		if string(r.body) != string(reqs[0].body) || r.header.Get("Idempotency-Key") != "flaky" {
			t.Fatalf("retry differs: %s %v", r.body, r.header)
		}
	}
	if gap := reqs[2].at.Sub(reqs[1].at); gap < 900*time.Millisecond {
		t.Errorf("Retry-After: 1 not honoured: retried after %v", gap)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
	st := wh.Stats()
	if st.Delivered != 1 || st.Retried != 2 || st.Failed != 2 || st.Expired != 0 || st.Answered != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A robot server that never recovers costs MaxAttempts attempts, then the
// post is given up; one that is unreachable likewise.
func TestWebhookGivesUp(t *testing.T) {
	srv := newServer(t, "k", func(_ int, _ robot.WebhookPost, w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	})
	wh := newWebhook(t, robot.WebhookConfig{URL: srv.URL, Secret: []byte("k"), Answer: (&answers{}).answer,
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, MaxAttempts: 4})
	wh.Offer(robot.Post{ID: "x", Group: "g"})
	closeNow(t, wh)
	if n := len(srv.requests()); n != 4 {
		t.Fatalf("%d attempts, want 4", n)
	}
	if st := wh.Stats(); st.Expired != 1 || st.Retried != 3 || st.Delivered != 0 {
		t.Fatalf("stats %+v", st)
	}

	// Nobody listens here any more.
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	wh = newWebhook(t, robot.WebhookConfig{URL: url, Secret: []byte("k"), Answer: (&answers{}).answer,
		MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, MaxAttempts: 3})
	wh.Offer(robot.Post{ID: "y", Group: "g"})
	closeNow(t, wh)
	if st := wh.Stats(); st.Expired != 1 || st.Retried != 2 {
		t.Fatalf("unreachable: %+v", st)
	}
}

// MaxAge: a post whose next retry would come too late is given up at once
// instead of holding back the queue.
func TestWebhookMaxAge(t *testing.T) {
	srv := newServer(t, "k", func(_ int, _ robot.WebhookPost, w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "60")
		http.Error(w, "later", http.StatusTooManyRequests)
	})
	wh := newWebhook(t, robot.WebhookConfig{URL: srv.URL, Secret: []byte("k"), Answer: (&answers{}).answer,
		MaxBackoff: time.Minute, MaxAttempts: 100, MaxAge: 2 * time.Second})
	start := time.Now()
	wh.Offer(robot.Post{ID: "x", Group: "g"})
	closeNow(t, wh)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("gave up after %v", d)
	}
	if st := wh.Stats(); st.Expired != 1 || len(srv.requests()) != 1 {
		t.Fatalf("stats %+v, %d requests", st, len(srv.requests()))
	}
}

// Close with a deadline cancels the request in flight and abandons the
// queue; every queued post is accounted for.
func TestWebhookCloseDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := newServer(t, "k", func(_ int, _ robot.WebhookPost, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	wh := newWebhook(t, robot.WebhookConfig{URL: srv.URL, Secret: []byte("k"), Answer: (&answers{}).answer, Timeout: time.Minute})
	for i := range 10 {
		wh.Offer(robot.Post{ID: fmt.Sprint(i), Group: "g"})
	}
	eventually(t, 5*time.Second, "first request", func() bool { return len(srv.requests()) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := wh.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v", err)
	}
	st := wh.Stats()
	if st.Queued != 10 || st.Expired != 10 || st.Delivered != 0 {
		t.Fatalf("stats %+v", st)
	}
	wh.Offer(robot.Post{ID: "late", Group: "g"})
	if st := wh.Stats(); st.Dropped != 1 || st.Offered != 11 {
		t.Fatalf("Offer after Close: %+v", st)
	}
}

// Several workers deliver concurrently.
func TestWebhookWorkers(t *testing.T) {
	var mu sync.Mutex
	inFlight, most := 0, 0
	srv := newServer(t, "k", func(_ int, _ robot.WebhookPost, _ http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		inFlight--
		mu.Unlock()
	})
	wh := newWebhook(t, robot.WebhookConfig{URL: srv.URL, Secret: []byte("k"), Answer: (&answers{}).answer, Workers: 4})
	for i := range 12 {
		wh.Offer(robot.Post{ID: fmt.Sprint(i), Group: "g"})
	}
	closeNow(t, wh)
	if st := wh.Stats(); st.Delivered != 12 {
		t.Fatalf("stats %+v", st)
	}
	if most != 4 {
		t.Fatalf("at most %d requests at once, want 4", most)
	}
}

func TestNewWebhookRefusesBadConfig(t *testing.T) {
	a := (&answers{}).answer
	for name, cfg := range map[string]robot.WebhookConfig{
		"no name":   {URL: "http://x/", Secret: []byte("k"), Answer: a},
		"bad url":   {Name: "r", URL: "ftp://x/", Secret: []byte("k"), Answer: a},
		"no host":   {Name: "r", URL: "http:///path", Secret: []byte("k"), Answer: a},
		"no secret": {Name: "r", URL: "http://x/", Answer: a},
		"no answer": {Name: "r", URL: "http://x/", Secret: []byte("k")},
		"bad name":  {Name: "r\n", URL: "http://x/", Secret: []byte("k"), Answer: a},
	} {
		if _, err := robot.NewWebhook(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A server that takes the post but does not finish its answer within the
// attempt's timeout: the post counts as delivered (no retry, which would
// duplicate it) and the answer as lost.
func TestWebhookAnswerCutOff(t *testing.T) {
	srv := newServer(t, "k", func(_ int, _ robot.WebhookPost, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		io.WriteString(w, `{"text":"par`)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	var a answers
	wh := newWebhook(t, robot.WebhookConfig{URL: srv.URL, Secret: []byte("k"), Answer: a.answer, Timeout: 200 * time.Millisecond})
	wh.Offer(robot.Post{ID: "x", Group: "g"})
	closeNow(t, wh)
	if st := wh.Stats(); st.Delivered != 1 || st.AnswerFailed != 1 || st.Retried != 0 || len(a.list()) != 0 {
		t.Fatalf("stats %+v, answers %v", st, a.list())
	}
}
