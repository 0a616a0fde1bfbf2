package robot_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/bridge/robot"
)

func TestHelpAnswersOnlyHelpRequests(t *testing.T) {
	var a answers
	h, err := robot.NewHelp(robot.HelpConfig{Text: "Ask me: hours, price.", Answer: a.answer,
		Options: robot.Options{Logger: quiet()}})
	if err != nil {
		t.Fatal(err)
	}
	if h.Name() != "help" {
		t.Fatalf("default name %q", h.Name())
	}
	yes := []string{"?", "help", " HELP ", "/help", "/Help\n", "\thElP"}
	no := []string{"help me", "??", "/ help", "", "helpdesk", "? ?"}
	for i, s := range append(append([]string{}, no...), yes...) {
		h.Offer(robot.Post{ID: fmt.Sprint("m", i), Group: "g1", Text: s})
	}
	// A robot's own post is never answered, even a help request.
	h.Offer(robot.Post{ID: "r1", Group: "g1", Text: "help", Robot: "faq"})
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := a.list()
	if len(got) != len(yes) {
		t.Fatalf("answered %d posts, want %d: %+v", len(got), len(yes), got)
	}
	for _, p := range got {
		if p != (posted{"g1", "help", "Ask me: hours, price."}) {
			t.Fatalf("answer %+v", p)
		}
	}
	st := h.Stats()
	if st.Offered != uint64(len(yes)+len(no)) || st.Queued != uint64(len(yes)) || st.Answered != uint64(len(yes)) || st.Dropped != 0 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := robot.NewHelp(robot.HelpConfig{Answer: a.answer}); err == nil {
		t.Fatal("help without text accepted")
	}
	if _, err := robot.NewHelp(robot.HelpConfig{Text: "x"}); err == nil {
		t.Fatal("help without Answerer accepted")
	}
}

func TestKeywordFirstMatchingRuleAnswers(t *testing.T) {
	cfgs, err := robot.LoadKeywords(strings.NewReader(faqYAML))
	if err != nil {
		t.Fatal(err)
	}
	var a answers
	k, err := robot.NewKeyword(cfgs[0], a.answer, robot.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	k.Offer(robot.Post{ID: "1", Group: "shop", Text: "What are your Opening Hours?"})
	k.Offer(robot.Post{ID: "2", Group: "shop", Text: "the price please"}) // ^price does not match
	k.Offer(robot.Post{ID: "3", Group: "shop", Text: "Price and opening hours?"})
	k.Offer(robot.Post{ID: "4", Group: "shop", Text: "PRICE?"})
	if err := k.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []posted{
		{"shop", "faq", "We are open 9-18, Mon-Fri."},
		{"shop", "faq", "We are open 9-18, Mon-Fri."}, // rule 0 wins over rule 1
		{"shop", "faq", "See https://example.com/prices"},
	}
	if got := a.list(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("answers %+v, want %+v", got, want)
	}
	if _, err := robot.NewKeyword(robot.KeywordConfig{Name: "k", Rules: []robot.KeywordRule{{Match: "(", Answer: "x"}}}, a.answer, robot.Options{}); err == nil ||
		!strings.Contains(err.Error(), `robot "k": rules[0]: bad match`) {
		t.Fatalf("bad regexp: %v", err)
	}
}

// The Answerer runs on the robot's worker, never on the caller of Offer, and
// the answers waiting for it are bounded: beyond the queue, Offer drops.
func TestBuiltinAnswersAsyncAndBounded(t *testing.T) {
	a := answers{gate: make(chan struct{}), in: make(chan struct{}, 100)}
	const queue = 4
	h, err := robot.NewHelp(robot.HelpConfig{Text: "hi", Answer: a.answer,
		Options: robot.Options{QueueSize: queue, Logger: quiet()}})
	if err != nil {
		t.Fatal(err)
	}
	h.Offer(robot.Post{ID: "first", Group: "g", Text: "?"})
	select {
	case <-a.in: // the worker holds "first" in a blocked Answerer
	case <-time.After(5 * time.Second):
		t.Fatal("Answerer never called")
	}
	start := time.Now()
	for i := range queue + 10 {
		h.Offer(robot.Post{ID: fmt.Sprint(i), Group: "g", Text: "?"})
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Offer took %v with a blocked Answerer", d)
	}
	st := h.Stats()
	if st.Queued != 1+queue || st.Dropped != 10 {
		t.Fatalf("with the Answerer blocked: %+v, want %d queued, 10 dropped", st, 1+queue)
	}
	close(a.gate)
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := h.Stats(); st.Answered != 1+queue || len(a.list()) != 1+queue {
		t.Fatalf("after release: %+v, %d answers", st, len(a.list()))
	}
	h.Offer(robot.Post{ID: "late", Group: "g", Text: "?"})
	if st := h.Stats(); st.Dropped != 11 {
		t.Fatalf("Offer after Close: %+v", st)
	}
}

// Close gives up at its context's end: the blocked answer is cancelled and
// the queued ones are abandoned and counted.
func TestBuiltinCloseDeadline(t *testing.T) {
	a := answers{gate: make(chan struct{}), in: make(chan struct{}, 100)}
	h, err := robot.NewHelp(robot.HelpConfig{Text: "hi", Answer: a.answer,
		Options: robot.Options{Logger: quiet(), AnswerTimeout: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		h.Offer(robot.Post{ID: fmt.Sprint(i), Group: "g", Text: "help"})
	}
	<-a.in
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := h.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v", err)
	}
	st := h.Stats()
	if st.AnswerFailed != 1 || st.Expired != 4 || st.Answered != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBuiltinAnswererError(t *testing.T) {
	a := answers{err: errors.New("group gone")}
	h, err := robot.NewHelp(robot.HelpConfig{Text: "hi", Answer: a.answer, Options: robot.Options{Logger: quiet()}})
	if err != nil {
		t.Fatal(err)
	}
	h.Offer(robot.Post{ID: "1", Group: "g", Text: "?"})
	h.Close(context.Background())
	if st := h.Stats(); st.AnswerFailed != 1 || st.Answered != 0 {
		t.Fatalf("stats %+v", st)
	}
}
