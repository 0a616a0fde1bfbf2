package codec

import (
	"bytes"
	"fmt"
	"io"
	"text/tabwriter"
)

// FamilySessions is one family of an evaluation corpus: sessions (each
// one handset link, both directions, in order), the protocol, and whether
// the codec was tuned on it.
type FamilySessions struct {
	Name     string
	Protocol string // "SIP-C" or "SIP"
	Tuned    bool
	Extra    bool // reported on its own line, outside the totals (the long stream, the sample)
	Sessions [][][]byte
}

// FamilyRow is the measurement of one family (or a sum of families).
type FamilyRow struct {
	Name          string
	Protocol      string
	Tuned         bool
	Extra         bool
	Sessions      int
	Messages      int
	Raw           int
	Stateless     int
	Stateful      int
	DeflateDict   int // per message with the preset dictionary
	DeflateStream int // one stream per session
	RoundtripOK   bool
	Failures      []string
}

// RatioStateless is raw / stateless.
func (r FamilyRow) RatioStateless() float64 { return div(r.Raw, r.Stateless) }

// RatioStateful is raw / stateful.
func (r FamilyRow) RatioStateful() float64 { return div(r.Raw, r.Stateful) }

// StatefulVsStream is how many times smaller stateful is than the DEFLATE stream.
func (r FamilyRow) StatefulVsStream() float64 { return div(r.DeflateStream, r.Stateful) }

// StatelessVsDict is how many times smaller stateless is than DEFLATE+dict.
func (r FamilyRow) StatelessVsDict() float64 { return div(r.DeflateDict, r.Stateless) }

func div(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func (r *FamilyRow) add(o FamilyRow) {
	r.Sessions += o.Sessions
	r.Messages += o.Messages
	r.Raw += o.Raw
	r.Stateless += o.Stateless
	r.Stateful += o.Stateful
	r.DeflateDict += o.DeflateDict
	r.DeflateStream += o.DeflateStream
	r.RoundtripOK = r.RoundtripOK && o.RoundtripOK
	r.Failures = append(r.Failures, o.Failures...)
}

// MeasureFamily encodes and decodes every session of f in both modes (a
// new stateful connection per session) and measures it against the
// DEFLATE stream and, with dict, DEFLATE with a preset dictionary.
func MeasureFamily(f FamilySessions, dict bool) FamilyRow {
	row := FamilyRow{Name: f.Name, Protocol: f.Protocol, Tuned: f.Tuned, Extra: f.Extra, RoundtripOK: true}
	se, sd := NewEncoder(false), NewDecoder(false)
	fe, fd := NewEncoder(true), NewDecoder(true)
	var frame, out []byte
	for i, s := range f.Sessions {
		fe.Reset()
		fd.Reset()
		r := FamilyRow{Sessions: 1, Messages: len(s), RoundtripOK: true}
		fail := func(j int, what string, err error) {
			r.RoundtripOK = false
			if len(row.Failures) < 10 {
				row.Failures = append(row.Failures, fmt.Sprintf("%s session %d message %d: %s round trip differs (err %v)", f.Name, i, j, what, err))
			}
		}
		for j, m := range s {
			r.Raw += len(m)
			var err error
			if frame, err = se.Encode(frame[:0], m); err == nil {
				r.Stateless += len(frame)
				out, err = sd.Decode(out[:0], frame)
			}
			if err != nil || !bytes.Equal(out, m) {
				fail(j, "stateless", err)
			}
			if frame, err = fe.Encode(frame[:0], m); err == nil {
				r.Stateful += len(frame)
				out, err = fd.Decode(out[:0], frame)
			}
			if err != nil || !bytes.Equal(out, m) {
				fail(j, "stateful", err)
			}
		}
		if dict {
			b := Baselines(s)
			r.DeflateDict, r.DeflateStream = b.Dict, b.Stream
		} else {
			r.DeflateStream = StreamBaseline(s)
		}
		row.add(r)
	}
	return row
}

// Totals sums the rows that are not Extra by protocol and split, in the
// order SIP-C tuned, SIP-C held-out, SIP tuned, SIP held-out.
func Totals(rows []FamilyRow) []FamilyRow {
	var out []FamilyRow
	for _, p := range []string{"SIP-C", "SIP"} {
		for _, tuned := range []bool{true, false} {
			t := FamilyRow{Protocol: p, Tuned: tuned, RoundtripOK: true, Name: p + " " + split(tuned) + " families"}
			n := 0
			for _, r := range rows {
				if r.Protocol == p && r.Tuned == tuned && !r.Extra {
					t.add(r)
					n++
				}
			}
			if n > 0 {
				out = append(out, t)
			}
		}
	}
	return out
}

func split(tuned bool) string {
	if tuned {
		return "tuned"
	}
	return "held-out"
}

// Target is a compression target on the held-out families of a protocol.
type Target struct {
	Protocol  string
	Stateless float64 // raw / stateless at least
	VsStream  float64 // stateful at least this many times smaller than the DEFLATE stream
}

// Targets are the targets of format version 3 (README).
var Targets = []Target{{"SIP-C", 5, 1.5}, {"SIP", 3, 1.5}}

// CheckTargets returns one line per target and whether all hold; a round
// trip failure anywhere fails them.
func CheckTargets(rows []FamilyRow) (lines []string, ok bool) {
	ok = true
	for _, r := range rows {
		if !r.RoundtripOK {
			ok = false
			lines = append(lines, fmt.Sprintf("%s: round trip failed: %v", r.Name, r.Failures[:min(3, len(r.Failures))]))
		}
	}
	tot := Totals(rows)
	for _, t := range Targets {
		var h *FamilyRow
		for i := range tot {
			if tot[i].Protocol == t.Protocol && !tot[i].Tuned {
				h = &tot[i]
			}
		}
		if h == nil {
			ok = false
			lines = append(lines, fmt.Sprintf("%s: no held-out family", t.Protocol))
			continue
		}
		sl, sf := h.RatioStateless(), h.StatefulVsStream()
		good := sl >= t.Stateless && sf >= t.VsStream
		ok = ok && good
		lines = append(lines, fmt.Sprintf("%s held-out: stateless %.2f:1 (target %.1f:1), stateful %.2fx the DEFLATE stream (target %.1fx): %s",
			t.Protocol, sl, t.Stateless, sf, t.VsStream, map[bool]string{true: "met", false: "NOT MET"}[good]))
	}
	return lines, ok
}

// WriteFamilyTable prints rows, then their totals, as an aligned table.
func WriteFamilyTable(w io.Writer, rows []FamilyRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "family\tsplit\tsessions\tmsgs\traw B\tstateless B\traw/stateless\tvs DEFLATE+dict\tstateful B\traw/stateful\tvs DEFLATE stream\t")
	line := func(r FamilyRow) {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%.2f:1\t%.2fx\t%d\t%.2f:1\t%.2fx\t\n", r.Name, split(r.Tuned), r.Sessions, r.Messages, r.Raw,
			r.Stateless, r.RatioStateless(), r.StatelessVsDict(), r.Stateful, r.RatioStateful(), r.StatefulVsStream())
	}
	for _, r := range rows {
		if !r.Extra {
			line(r)
		}
	}
	for _, r := range Totals(rows) {
		line(r)
	}
	for _, r := range rows {
		if r.Extra {
			line(r)
		}
	}
	return tw.Flush()
}
