package codec

import (
	"bytes"
	"testing"

	"github.com/smsbridge/bridge/codec/corpus"
)

// evaluation measures the corpus evaluation sets (the family table of
// `bridge codec stats`).
func evaluation(t testing.TB, dict bool) []FamilyRow {
	t.Helper()
	var rows []FamilyRow
	for _, s := range corpus.Evaluation() {
		rows = append(rows, MeasureFamily(FamilySessions{Name: s.Name, Protocol: s.Kind.String(), Tuned: s.Tuned, Extra: s.Extra, Sessions: s.Sessions}, dict))
	}
	return rows
}

// TestHeldOutTargets asserts the targets on the families the codec was
// not tuned on (corpus.Families, Tuned false): SIP-C stateless at least
// 5:1 and stateful at least 1.5x smaller than a DEFLATE stream, RFC 3261
// SIP at least 3:1 and 1.5x; every message round-trips in both modes.
func TestHeldOutTargets(t *testing.T) {
	rows := evaluation(t, false) // the per-message DEFLATE+dict baseline is not a target, and the slowest part
	var tab bytes.Buffer
	if err := WriteFamilyTable(&tab, rows); err != nil {
		t.Fatal(err)
	}
	t.Logf("families (seed %d, %d sessions each):\n%s", corpus.EvalSeed, corpus.EvalSessions, tab.String())
	lines, ok := CheckTargets(rows)
	for _, l := range lines {
		t.Log(l)
	}
	if !ok {
		t.Error("held-out targets not met")
	}
}
