package codec

import (
	"runtime"
	"testing"

	"github.com/smsbridge/bridge/codec/corpus"
)

// connectionHeap measures the live heap of one stateful Encoder+Decoder
// pair (what the handset link keeps per TCP connection) after a held-out
// session with the largest bodies (a v4 login with its contact list) and
// a generated one went through it, so every buffer has its steady size.
func connectionHeap(t testing.TB) uint64 {
	t.Helper()
	const n = 40
	var msgs [][]byte
	for _, f := range corpus.Families() {
		if f.Name == "sipc-pc3-presence" || f.Name == "sip-kamailio-baresip" {
			msgs = append(msgs, f.Sessions(corpus.EvalSeed, 1)[0]...)
		}
	}
	msgs = append(msgs, GenerateSessions(11, 1)[0]...)
	for prof := range nProfiles {
		getPrimed(prof, useTokens(prof, true)) // shared by all connections: not theirs
	}
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
// per-connection budget of the handset link, 128 KiB.
func TestConnectionMemory(t *testing.T) {
	per := connectionHeap(t)
	t.Logf("heap per stateful Encoder+Decoder pair: %d bytes (%.1f KiB)", per, float64(per)/1024)
	if per > 128<<10 {
		t.Errorf("heap per connection %d bytes, budget 128 KiB", per)
	}
}
