// Command robotsim is an external robot server of the kind a robot vendor
// runs behind a Webhook robot (package robot): it checks each request's
// signature and timestamp (robot.Verify, 401 when wrong), answers, and
// writes each post it accepted as one JSON line on stdout, so tests can
// count deliveries and duplicates.
//
//	robotsim --listen 127.0.0.1:0 --secret s3cret --reply echo --trigger robot
//	robotsim --secret s3cret --reply fixed --text "We are open 9-18." --text "Mon-Fri."
//	robotsim --secret s3cret --fail-first 2 --delay 500ms
//
// The first stdout line is "listening HOST:PORT".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/smsbridge/bridge/robot"
)

type textFlags []string

func (t *textFlags) String() string     { return strings.Join(*t, " | ") }
func (t *textFlags) Set(v string) error { *t = append(*t, v); return nil }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is what the flags say.
type config struct {
	secret    []byte
	reply     string // echo, fixed or none
	trigger   string
	texts     []string
	failFirst int
	delay     time.Duration
	skew      time.Duration
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("robotsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8099", "listen address (port 0: any free port)")
	secret := fs.String("secret", "", "secret shared with the bridge (required)")
	reply := fs.String("reply", "echo", `"echo": answer "robot: TEXT" to posts containing --trigger; "fixed": answer the --text(s) to every post; "none": never answer`)
	trigger := fs.String("trigger", "robot", `echo only posts containing this word, any case ("" = every post)`)
	var texts textFlags
	fs.Var(&texts, "text", "answer of --reply fixed (repeatable: several answers)")
	failFirst := fs.Int("fail-first", 0, "answer 503 to the first N authentic requests")
	delay := fs.Duration("delay", 0, "wait this long before answering each request")
	skew := fs.Duration("skew", robot.DefaultSkew, "accepted clock difference of X-Robot-Timestamp")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	cfg := config{secret: []byte(*secret), reply: *reply, trigger: strings.ToLower(*trigger),
		texts: texts, failFirst: *failFirst, delay: *delay, skew: *skew}
	switch {
	case *secret == "":
		log.Error("config: --secret is required")
		return 2
	case cfg.reply != "echo" && cfg.reply != "fixed" && cfg.reply != "none":
		log.Error("config: --reply wants echo, fixed or none", "reply", cfg.reply)
		return 2
	case cfg.reply == "fixed" && len(texts) == 0:
		log.Error("config: --reply fixed needs --text")
		return 2
	case fs.NArg() > 0:
		log.Error("config: unexpected arguments", "args", fs.Args())
		return 2
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	out := &lines{w: stdout}
	out.printf("listening %s\n", ln.Addr())
	srv := &http.Server{Handler: newSim(cfg, out, log), ReadHeaderTimeout: 5 * time.Second}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("robot server listening", "addr", ln.Addr().String(), "reply", cfg.reply)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", "err", err)
		return 1
	}
	// Serve returns as Shutdown starts; let requests in flight finish.
	<-stopped
	return 0
}

// lines serializes stdout so concurrent requests never interleave a line.
type lines struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lines) printf(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, a...)
}

// accepted is the stdout line of one accepted post.
type accepted struct {
	ID      string `json:"id"`
	Group   string `json:"group"`
	From    string `json:"from"`
	Nick    string `json:"nick"`
	Text    string `json:"text"`
	Attempt int    `json:"attempt"` // authentic requests seen with this Idempotency-Key
	Answers int    `json:"answers"`
}

// maxKeys bounds the attempt counts kept; past it they start over.
const maxKeys = 100_000

type sim struct {
	cfg      config
	out      *lines
	log      *slog.Logger
	mu       sync.Mutex
	requests int            // authentic requests so far, for --fail-first
	attempts map[string]int // by Idempotency-Key
}

func newSim(cfg config, out *lines, log *slog.Logger) http.Handler {
	s := &sim{cfg: cfg, out: out, log: log, attempts: make(map[string]int)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /", s.post)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	return mux
}

func (s *sim) post(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 256<<10))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if err := robot.Verify(s.cfg.secret, r.Header.Get(robot.HeaderTimestamp),
		r.Header.Get(robot.HeaderSignature), body, time.Now(), s.cfg.skew); err != nil {
		s.log.Warn("request refused", "remote", r.RemoteAddr, "err", err)
		http.Error(w, "bad signature or timestamp", http.StatusUnauthorized)
		return
	}
	var p robot.WebhookPost
	if err := json.Unmarshal(body, &p); err != nil {
		http.Error(w, "bad json: "+err.Error(), http.StatusBadRequest)
		return
	}
	key := r.Header.Get(robot.HeaderIdempotencyKey)
	s.mu.Lock()
	s.requests++
	fail := s.requests <= s.cfg.failFirst
	if len(s.attempts) >= maxKeys {
		clear(s.attempts)
	}
	s.attempts[key]++
	attempt := s.attempts[key]
	s.mu.Unlock()
	if s.cfg.delay > 0 {
		t := time.NewTimer(s.cfg.delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			s.log.Warn("client gave up while delayed", "id", p.ID, "attempt", attempt)
			return
		}
	}
	if fail {
		s.log.Info("failing on purpose", "id", p.ID, "attempt", attempt)
		http.Error(w, "failing on purpose", http.StatusServiceUnavailable)
		return
	}
	var ans robot.WebhookAnswer
	switch {
	case s.cfg.reply == "echo" && strings.Contains(strings.ToLower(p.Text), s.cfg.trigger):
		ans.Text = "robot: " + p.Text
	case s.cfg.reply == "fixed" && len(s.cfg.texts) == 1:
		ans.Text = s.cfg.texts[0]
	case s.cfg.reply == "fixed":
		ans.Answers = s.cfg.texts
	}
	n := len(ans.Answers)
	if ans.Text != "" {
		n = 1
	}
	line, _ := json.Marshal(accepted{ID: p.ID, Group: p.Group, From: p.From, Nick: p.Nick,
		Text: p.Text, Attempt: attempt, Answers: n})
	s.out.printf("%s\n", line)
	if n == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(ans)
}
