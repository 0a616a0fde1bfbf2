package codec

import (
	"runtime"
	"testing"
)

// connectionHeap measures the live heap of one stateful Encoder+Decoder
// pair (what the handset link keeps per TCP connection) after a whole
// generated session went through it, so every buffer has its steady size.
func connectionHeap(t testing.TB) uint64 {
	t.Helper()
	const n = 40
	msgs := GenerateSessions(11, 1)[0]
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	encs := make([]*Encoder, n)
	decs := make([]*Decoder, n)
	var frame, out []byte
	for i := range encs {
		e, d := NewEncoder(true), NewDecoder(true)
		for _, m := range msgs {
			var err error
			frame, _ = e.Encode(frame[:0], m)
			if out, err = d.Decode(out[:0], frame); err != nil {
				t.Fatal(err)
			}
		}
		encs[i], decs[i] = e, d
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(encs)
	runtime.KeepAlive(decs)
	return (after.HeapAlloc - before.HeapAlloc) / n
}

// TestConnectionMemory: a stateful Encoder+Decoder pair stays within the
// per-connection budget of the handset link (about 100 KB).
func TestConnectionMemory(t *testing.T) {
	per := connectionHeap(t)
	t.Logf("heap per stateful Encoder+Decoder pair: %d bytes (%.1f KiB)", per, float64(per)/1024)
	if per > 110<<10 {
		t.Errorf("heap per connection %d bytes, budget ~100 KiB", per)
	}
}
