package main

// Duplicates: identical texts are separate messages unless suppression by
// content is asked for; an HTTP Idempotency-Key always makes copies one
// message, across a restart too.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
)

// send POSTs a message with token and, if key is set, an Idempotency-Key.
func send(t *testing.T, api, token, key, from, to, text string) (int, string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"from": from, "to": to, "text": text})
	req, _ := http.NewRequest("POST", api+"/v1/messages", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var v struct{ ID, Error string }
	json.NewDecoder(res.Body).Decode(&v)
	if res.StatusCode != 202 {
		return res.StatusCode, v.Error
	}
	return res.StatusCode, v.ID
}

// countTo is how many PDUs the SMSC got for dest.
func (s *smsc) countTo(dest string) int {
	n := 0
	for _, p := range s.received() {
		if p.DestAddr == dest {
			n++
		}
	}
	return n
}

func TestIdenticalTextsAreSeparateMessages(t *testing.T) {
	sc := startSMSC(t)
	dir := t.TempDir()
	args := []string{"--http-listen", "127.0.0.1:0", "--api-token", "tok", "--api-token", "other", "--smsc", sc.url()}
	b := startBridge(t, dir, args...)
	api := "http://" + b.addrs.HTTP

	// Three "yes" replies from one client to one number are three messages.
	ids := map[string]bool{}
	for range 3 {
		code, id := send(t, api, "tok", "", "+8613900000091", "+8613700000091", "yes")
		if code != 202 {
			t.Fatalf("POST: %d %s", code, id)
		}
		ids[id] = true
	}
	if len(ids) != 3 {
		t.Fatalf("three identical texts got %d ids, want 3", len(ids))
	}
	testutil.WaitFor(t, "three SMS", 10*time.Second, func() bool { return sc.countTo("8613700000091") == 3 })

	// One Idempotency-Key is one message, whatever the copies say; another
	// client's same key is its own.
	_, first := send(t, api, "tok", "order-42", "+8613900000092", "+8613700000092", "your code is 1234")
	if code, id := send(t, api, "tok", "order-42", "+8613900000092", "+8613700000092", "your code is 1234"); code != 202 || id != first {
		t.Fatalf("resent with its key: %d %q, want the first id %s", code, id, first)
	}
	if code, id := send(t, api, "other", "order-42", "+8613900000092", "+8613700000092", "your code is 1234"); code != 202 || id == first {
		t.Fatalf("another client's key: %d %q, want a message of its own", code, id)
	}
	testutil.WaitFor(t, "two SMS", 10*time.Second, func() bool { return sc.countTo("8613700000092") == 2 })

	if code, msg := send(t, api, "tok", "has space", "+8613900000092", "+8613700000092", "x"); code != 400 {
		t.Fatalf("a key with a space: %d %s", code, msg)
	}

	// After a restart the key still names the first message.
	b.stop()
	b = startBridge(t, dir, args...)
	api = "http://" + b.addrs.HTTP
	if code, id := send(t, api, "tok", "order-42", "+8613900000092", "+8613700000092", "your code is 1234"); code != 202 || id != first {
		t.Fatalf("resent after a restart: %d %q, want the first id %s", code, id, first)
	}
	time.Sleep(500 * time.Millisecond) // a second delivery would have reached the SMSC by now
	if n := sc.countTo("8613700000092"); n != 2 {
		t.Fatalf("the SMSC got %d messages for the key's number, want 2 (one per client)", n)
	}
}

// Suppression by content stays available as an option.
func TestDedupWindowOption(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--api-token", "tok", "--smsc", sc.url(), "--dedup-window", "1m")
	api := "http://" + b.addrs.HTTP
	_, first := send(t, api, "tok", "", "+8613900000093", "+8613700000093", "yes")
	for range 2 {
		if code, id := send(t, api, "tok", "", "+8613900000093", "+8613700000093", "yes"); code != 202 || id != first {
			t.Fatalf("copy within the window: %d %q, want %s", code, id, first)
		}
	}
	testutil.WaitFor(t, "one SMS", 10*time.Second, func() bool { return sc.countTo("8613700000093") == 1 })
	time.Sleep(300 * time.Millisecond)
	if n := sc.countTo("8613700000093"); n != 1 {
		t.Fatalf("the SMSC got %d, want 1", n)
	}
}
