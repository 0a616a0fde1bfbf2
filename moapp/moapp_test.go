package moapp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/hmacsig"
	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/msg"
)

func TestTableLongestPrefixThenKeyword(t *testing.T) {
	tab, err := NewTable([]App{
		{Name: "10690", Number: "+8610690", URL: "u"},
		{Name: "1069012", Number: "+861069012", URL: "u"},
		{Name: "10690/STOP", Number: "+8610690", Keyword: "STOP", URL: "u"},
		{Name: "106/weather", Number: "+86106", Keyword: "weather", URL: "u"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ to, text, want string }{
		{"+8610690555", "hello", "10690"},
		{"+8610690555", "  stop now", "10690/STOP"},
		{"+8610690555", "STOPPED", "10690"},
		{"+86106901234", "stop", "1069012"}, // the longer prefix wins over a keyword
		{"+8610690", "", "10690"},
		{"+861061", "Weather\tBeijing", "106/weather"},
		{"+861061", "news", ""},
		{"+8613800000001", "stop", ""},
	} {
		got, ok := tab.AppFor(&msg.Message{To: msg.Address(c.to), Text: c.text})
		if got != c.want || ok != (c.want != "") {
			t.Errorf("%s %q: %q %v, want %q", c.to, c.text, got, ok, c.want)
		}
	}
	if _, err := NewTable([]App{{Name: "a", Number: "+86106", Keyword: "x", URL: "u"}, {Name: "b", Number: "+86106", Keyword: "X", URL: "u"}}); err == nil {
		t.Error("two routes for the same messages accepted")
	}
}

func TestReplyText(t *testing.T) {
	for _, c := range []struct {
		ct, body, want string
		bad            bool
	}{
		{"application/json", `{"reply":" Sunny, 25°C "}`, "Sunny, 25°C", false},
		{"application/json; charset=utf-8", `{"other":1}`, "", false},
		{"application/problem+json", `{"reply":"x"}`, "x", false},
		{"text/plain; charset=utf-8", "thanks\n", "thanks", false},
		{"", "no type", "no type", false},
		{"text/plain", " \n", "", false},
		{"application/json", `{"reply":`, "", true},
		{"text/html", "<p>hi</p>", "", true},
		{"text/plain", "\xff\xfe", "", true},
		{"text/plain", strings.Repeat("x", MaxReply+1), "", true},
	} {
		got, err := replyText(c.ct, []byte(c.body))
		if got != c.want || (err != nil) != c.bad {
			t.Errorf("%s %q: %q %v", c.ct, c.body, got, err)
		}
	}
}

// app is an application that checks every request's signature and
// answers with code and body.
type app struct {
	mu     sync.Mutex
	code   int
	ct     string
	answer string
	bodies []string
	bad    []string
}

func (a *app) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := hmacsig.Verify([]byte("k"), r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), body, time.Now(), 0); err != nil {
		a.bad = append(a.bad, err.Error())
	}
	if r.Header.Get(HeaderIdempotencyKey) != "id1" || r.Header.Get("Content-Type") != "application/json" {
		a.bad = append(a.bad, "headers "+r.Header.Get(HeaderIdempotencyKey))
	}
	a.bodies = append(a.bodies, string(body))
	if a.ct != "" {
		w.Header().Set("Content-Type", a.ct)
	}
	w.WriteHeader(a.code)
	io.WriteString(w, a.answer)
}

func TestSendAppRepliesTheWayTheMessageCame(t *testing.T) {
	a := &app{code: 503}
	srv := httptest.NewServer(a)
	defer srv.Close()
	tab, err := NewTable([]App{{Name: "10690", Number: "+8610690", URL: srv.URL + "/mo", Secret: []byte("k")}})
	if err != nil {
		t.Fatal(err)
	}
	var st testutil.Stager
	s, err := New(Config{Table: tab, Replies: &st})
	if err != nil {
		t.Fatal(err)
	}
	m := &msg.Message{ID: "id1", From: "+8613800000001", To: "+8610690001", Text: "weather",
		Accepted: time.Date(2026, 3, 1, 4, 0, 0, 0, time.UTC), Origin: msg.Origin{Kind: msg.FromESME, Account: "esme1"}}
	ctx := context.Background()
	if err := s.SendApp(ctx, m, "10690"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("503 taken: %v", err)
	}
	a.mu.Lock()
	a.code, a.ct, a.answer = 200, "application/json", `{"reply":"Sunny"}`
	a.mu.Unlock()
	if err := s.SendApp(ctx, m, "10690"); err != nil {
		t.Fatal(err)
	}
	want := `{"id":"id1","from":"+8613800000001","to":"+8610690001","text":"weather","received_at":"2026-03-01T04:00:00Z","origin":"esme"}`
	if len(a.bodies) != 2 || a.bodies[1] != want || len(a.bad) > 0 {
		t.Fatalf("bodies %q, bad %q", a.bodies, a.bad)
	}
	got := st.All()
	if len(got) != 1 || got[0].From != m.To || got[0].To != m.From || got[0].Text != "Sunny" || got[0].Route != "esme:esme1" ||
		got[0].Origin.Kind != msg.FromApp || got[0].IdempotencyKey != "reply id1" {
		t.Fatalf("reply %+v", got)
	}

	// A reply that cannot be stored fails the attempt; one that can never
	// be delivered does not.
	st.Refuse(msg.ErrOverloaded)
	if err := s.SendApp(ctx, m, "10690"); !errors.Is(err, msg.ErrOverloaded) {
		t.Fatalf("reply not stored, attempt %v", err)
	}
	st.Refuse(msg.ErrNoRoute)
	if err := s.SendApp(ctx, m, "10690"); err != nil {
		t.Fatalf("reply without a route: %v", err)
	}
	// A message from the SMSC is answered upstream; 204 is no reply.
	st.Refuse(nil)
	m.Origin = msg.Origin{Kind: msg.FromSMSC, Account: "carrier"}
	if err := s.SendApp(ctx, m, "10690"); err != nil {
		t.Fatal(err)
	}
	if got := st.All(); len(got) != 2 || got[1].Route != "smsc" {
		t.Fatalf("replies %+v", got)
	}
	a.mu.Lock()
	a.code = 204
	a.mu.Unlock()
	if err := s.SendApp(ctx, m, "10690"); err != nil || len(st.All()) != 2 {
		t.Fatalf("204: %v, replies %d", err, len(st.All()))
	}
}
