package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestCodecStatsFamilies: `bridge codec stats` prints the family table of
// the evaluation corpus, tuned and held-out families marked, the totals of
// each split and the targets.
func TestCodecStatsFamilies(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runCodec([]string{"stats"}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	s := out.String()
	for _, want := range []string{"sipc-pc3-chat", "sip-kamailio-baresip", "long stream", "SIP-C held-out families", "SIP held-out families",
		"SIP-C tuned families", "SIP-C held-out: stateless", "SIP held-out: stateless", "ns per message"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "sip-kamailio-baresip") && !strings.Contains(l, "held-out") {
			t.Errorf("held-out family not marked: %q", l)
		}
		if strings.Contains(l, "sipc-pc3-chat") && !strings.Contains(l, " tuned") {
			t.Errorf("tuned family not marked: %q", l)
		}
	}
}
