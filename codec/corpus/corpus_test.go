package corpus

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// TestFamiliesSplit: both protocols have tuned and held-out families, and
// every family yields sessions.
func TestFamiliesSplit(t *testing.T) {
	seen := map[Kind]map[bool]int{SIPC: {}, SIP: {}}
	names := map[string]bool{}
	for _, f := range Families() {
		if names[f.Name] {
			t.Errorf("family %s twice", f.Name)
		}
		names[f.Name] = true
		seen[f.Kind][f.Tuned]++
		ss := f.Sessions(EvalSeed, 2)
		if len(ss) != 2 || len(ss[0]) < 10 {
			t.Errorf("%s: %d sessions, first of %d messages", f.Name, len(ss), len(ss[0]))
		}
	}
	for k, m := range seen {
		if m[true] == 0 || m[false] == 0 {
			t.Errorf("%s: %d tuned, %d held-out families", k, m[true], m[false])
		}
	}
}

// TestDeterministic: a family makes the same bytes from the same seed,
// other bytes from another.
func TestDeterministic(t *testing.T) {
	for _, f := range Families() {
		a, b, c := f.Sessions(3, 1)[0], f.Sessions(3, 1)[0], f.Sessions(4, 1)[0]
		if !bytes.Equal(bytes.Join(a, nil), bytes.Join(b, nil)) {
			t.Errorf("%s: two sessions from one seed differ", f.Name)
		}
		if !strings.HasPrefix(f.Name, "sip-kamailio") && bytes.Equal(bytes.Join(a, nil), bytes.Join(c, nil)) {
			t.Errorf("%s: sessions from two seeds are equal", f.Name)
		}
	}
	if !bytes.Equal(bytes.Join(LongStream(1, 200), nil), bytes.Join(LongStream(1, 200), nil)) {
		t.Error("long stream not deterministic")
	}
}

// TestMessagesWellFormed: every SIP message parses with sipgo's parser;
// every SIP-C message has a start line, "Name: value" headers, and a
// body as long as its L header says.
func TestMessagesWellFormed(t *testing.T) {
	p := sip.NewParser()
	for _, f := range Families() {
		for si, s := range f.Sessions(EvalSeed, 3) {
			for mi, m := range s {
				head, body, ok := bytes.Cut(m, []byte("\r\n\r\n"))
				if !ok {
					t.Fatalf("%s session %d message %d: no header end", f.Name, si, mi)
				}
				if f.Kind == SIP {
					if _, err := p.ParseSIP(m); err != nil {
						t.Fatalf("%s session %d message %d: %v\n%s", f.Name, si, mi, err, m)
					}
					continue
				}
				lines := strings.Split(string(head), "\r\n")
				if !strings.Contains(lines[0], "SIP-C/") {
					t.Fatalf("%s session %d message %d: start line %q", f.Name, si, mi, lines[0])
				}
				for _, l := range lines[1:] {
					name, val, ok := strings.Cut(l, ": ")
					if !ok || name == "" {
						t.Fatalf("%s session %d message %d: header %q", f.Name, si, mi, l)
					}
					if name == "L" {
						if n, err := strconv.Atoi(val); err != nil || n != len(body) {
							t.Fatalf("%s session %d message %d: L %q, body %d bytes", f.Name, si, mi, val, len(body))
						}
					}
				}
			}
		}
	}
}

// TestTraceFormat: the trace format round-trips and rejects damage.
func TestTraceFormat(t *testing.T) {
	var b []byte
	b = AppendTrace(b, 7, []byte("a\r\n\r\n"))
	b = AppendTrace(b, 3, []byte("b"))
	b = AppendTrace(b, 7, []byte("#1 2\n"))
	ss, err := ParseTrace(b)
	if err != nil || len(ss) != 2 || len(ss[0]) != 2 || string(ss[0][1]) != "#1 2\n" || string(ss[1][0]) != "b" {
		t.Fatalf("parse: %v %q", err, ss)
	}
	for _, bad := range []string{"x", "#1\n", "#1 5\nabc", "#a 1\nb\n", "#1 1\nbc"} {
		if _, err := ParseTrace([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	for _, name := range []string{"kamailio-sipgo", "kamailio-baresip"} {
		ss, err := Trace(name)
		if err != nil || len(ss) < EvalSessions {
			t.Errorf("trace %s: %d sessions, %v", name, len(ss), err)
		}
	}
}
