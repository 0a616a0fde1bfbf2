package main

import (
	"context"
	"strings"
	"testing"
	"time"

	fsmpp "github.com/fiorix/go-smpp/smpp"
	"github.com/fiorix/go-smpp/smpp/pdu/pdufield"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutext"
	"github.com/smsbridge/bridge/internal/testutil"
)

// startSim runs the command on a loopback port until the test ends.
func startSim(t *testing.T, args ...string) (string, *testutil.SyncBuffer) {
	t.Helper()
	logs := &testutil.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	up := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"--listen", "127.0.0.1:0"}, args...), logs, func(a string) { up <- a })
	}()
	var addr string
	select {
	case addr = <-up:
	case err := <-done:
		cancel()
		t.Fatalf("smscsim exited: %v\n%s", err, logs)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("smscsim did not start")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run returned %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("smscsim did not stop")
		}
	})
	return addr, logs
}

func submit(t *testing.T, addr, user, pass, dst string, text pdutext.Codec) (string, error) {
	t.Helper()
	tx := &fsmpp.Transmitter{Addr: addr, User: user, Passwd: pass, RespTimeout: 5 * time.Second}
	conn := tx.Bind()
	defer tx.Close()
	select {
	case st := <-conn:
		if st.Error() != nil {
			return "", st.Error()
		}
	case <-time.After(10 * time.Second):
		t.Fatal("bind timed out")
	}
	sm, err := tx.Submit(&fsmpp.ShortMessage{Src: "8613900000009", Dst: dst, Text: text, Register: pdufield.NoDeliveryReceipt,
		SourceAddrTON: 1, SourceAddrNPI: 1, DestAddrTON: 1, DestAddrNPI: 1})
	if err != nil {
		return "", err
	}
	return sm.RespID(), nil
}

func TestSubmitIsAnsweredAndLogged(t *testing.T) {
	addr, logs := startSim(t, "--system-id", "bridge", "--password", "pw", "--log-level", "debug")
	id, err := submit(t, addr, "bridge", "pw", "8613800000077", pdutext.UCS2("短信 hello"))
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	if id == "" {
		t.Fatal("no message id")
	}
	out := logs.String()
	for _, want := range []string{"msg=message", "pdu=submit_sm", "dst=8613800000077", "message_id=" + id, `text="短信 hello"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestTextOnlyAtDebug(t *testing.T) {
	addr, logs := startSim(t, "--system-id", "bridge")
	if _, err := submit(t, addr, "bridge", "anything", "8613800000078", pdutext.Raw("secret words")); err != nil {
		t.Fatalf("submit with any password: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, "dst=8613800000078") || strings.Contains(out, "secret words") {
		t.Fatalf("info log should name the destination and not the text:\n%s", out)
	}
}

func TestBindRefused(t *testing.T) {
	addr, _ := startSim(t, "--system-id", "bridge", "--password", "pw")
	if _, err := submit(t, addr, "bridge", "wrong", "1", pdutext.Raw("x")); err == nil || !strings.Contains(strings.ToLower(err.Error()), "password") {
		t.Fatalf("wrong password: %v", err)
	}
	if _, err := submit(t, addr, "other", "pw", "1", pdutext.Raw("x")); err == nil || !strings.Contains(strings.ToLower(err.Error()), "system id") {
		t.Fatalf("wrong system id: %v", err)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"--system-id", ""}, {"--log-level", "loud"}, {"--log-format", "xml"}, {"extra"}, {"--listen", "nonsense"}} {
		if err := run(context.Background(), args, &testutil.SyncBuffer{}, nil); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}
