package smstext

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
)

// TestReassemblyMemoryUnderFirstParts: 40,000 first parts of different
// 255-part messages hold no more than the caps say (README: MaxPending
// messages of about 300 bytes each plus MaxBytes of bodies), and every
// message closed at a cap is handed out, none forgotten.
func TestReassemblyMemoryUnderFirstParts(t *testing.T) {
	const attack, body = 40000, 134
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := NewReassembler(ReassemblyConfig{Partial: true}, nil)
	out := 0
	b := make([]byte, body)
	for i := range attack {
		k := Key{Source: fmt.Sprintf("86139%08d", i), Dest: "8613800000001", Ref: uint16(i)}
		for {
			_, err := r.Add(k, 255, 1, 4, b)
			if errors.Is(err, ErrBusy) {
				out += len(r.Expire()) // what the gateway does on Notify
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	out += len(r.Expire())
	runtime.GC()
	runtime.ReadMemStats(&after)
	s := r.Stats()
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d first parts: %d pending, %d closed early and handed out; heap %d KiB (%d bytes per pending message)",
		attack, s.Pending, out, heap/1024, heap/int64(max(s.Pending, 1)))
	if s.Pending+out != attack || s.Evicted != out {
		t.Errorf("pending %d + handed out %d != %d first parts (evicted %d)", s.Pending, out, attack, s.Evicted)
	}
	if limit := int64(10000*400 + 16<<20); heap > limit {
		t.Errorf("heap %d bytes, bound %d", heap, limit)
	}
	runtime.KeepAlive(r)
}
