package testutil

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/smsbridge/bridge/msg"
)

func TestStager(t *testing.T) {
	ctx := context.Background()
	var s Stager
	stage := func(to msg.Address) (msg.Ack, error) {
		return s.Stage(ctx, &msg.Message{To: to, Text: "x"})
	}
	if ack, err := stage("+1"); err != nil || ack.Done() != nil || ack.Settle(ctx) != nil {
		t.Fatalf("first Stage: %v, %v", ack, err)
	}

	s.RefuseTo("+2", msg.ErrNoRoute)
	if _, err := stage("+2"); !errors.Is(err, msg.ErrNoRoute) {
		t.Fatalf("Stage to a refused recipient: %v", err)
	}
	if _, err := stage("+3"); err != nil {
		t.Fatalf("Stage to another recipient: %v", err)
	}
	s.RefuseTo("+2", nil)

	s.Refuse(msg.ErrOverloaded)
	if _, err := stage("+1"); !errors.Is(err, msg.ErrOverloaded) {
		t.Fatalf("Stage while refusing: %v", err)
	}
	s.Refuse(nil)

	s.FailSettle(true)
	ack, err := stage("+2")
	if err != nil || ack.Done() == nil || !errors.Is(ack.Settle(ctx), msg.ErrNotStored) {
		t.Fatalf("Stage with a failing commit: %v, %v", ack, err)
	}
	<-ack.Done()
	s.FailSettle(false)

	got := s.All()
	want := []msg.Address{"+1", "+3", "+2"}
	if len(got) != len(want) {
		t.Fatalf("kept %+v", got)
	}
	for i, m := range got {
		if m.To != want[i] || m.ID != fmt.Sprintf("m%d", i+1) {
			t.Errorf("message %d: %+v, want to %s as m%d", i, m, want[i], i+1)
		}
	}
}
