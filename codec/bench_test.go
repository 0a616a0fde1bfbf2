package codec

import (
	"testing"

	"github.com/smsbridge/bridge/codec/corpus"
)

// benchSessions are held-out sessions of one protocol: two sessions of
// every held-out family (the codec was not tuned on them), each a new
// stateful connection.
func benchSessions(b *testing.B, kind corpus.Kind) [][][]byte {
	b.Helper()
	var ss [][][]byte
	for _, f := range corpus.Families() {
		if !f.Tuned && f.Kind == kind {
			ss = append(ss, f.Sessions(1, 2)...)
		}
	}
	return ss
}

// benchKinds runs a benchmark on held-out SIP-C, held-out SIP, and the
// sample plus one session of GenerateSessions (the corpus of the figures
// measured before format version 3).
func benchKinds(b *testing.B, run func(b *testing.B, ss [][][]byte)) {
	for _, k := range []corpus.Kind{corpus.SIPC, corpus.SIP} {
		ss := benchSessions(b, k)
		b.Run(k.String(), func(b *testing.B) { run(b, ss) })
	}
	gen := [][][]byte{append(sample(b), GenerateSessions(3, 1)[0]...)}
	b.Run("gen", func(b *testing.B) { run(b, gen) })
}

// flat lists the messages of ss with a flag on the first of each session.
func flat(ss [][][]byte) (msgs [][]byte, first []bool, avg int) {
	n := 0
	for _, s := range ss {
		for i, m := range s {
			msgs = append(msgs, m)
			first = append(first, i == 0)
			n += len(m)
		}
	}
	return msgs, first, n / len(msgs)
}

func BenchmarkEncodeStateless(b *testing.B) {
	benchKinds(b, func(b *testing.B, ss [][][]byte) {
		msgs, _, avg := flat(ss)
		e := NewEncoder(false)
		buf := make([]byte, 0, 4096)
		for _, m := range msgs { // primed state built outside the timing
			buf, _ = e.Encode(buf[:0], m)
		}
		b.SetBytes(int64(avg))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			buf, _ = e.Encode(buf[:0], msgs[i%len(msgs)])
		}
	})
}

func BenchmarkDecodeStateless(b *testing.B) {
	benchKinds(b, func(b *testing.B, ss [][][]byte) {
		msgs, _, avg := flat(ss)
		frames := make([][]byte, len(msgs))
		for i, m := range msgs {
			frames[i], _ = Encode(nil, m)
		}
		d := NewDecoder(false)
		buf := make([]byte, 0, 4096)
		b.SetBytes(int64(avg))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			var err error
			if buf, err = d.Decode(buf[:0], frames[i%len(frames)]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkEncodeStateful(b *testing.B) {
	benchKinds(b, func(b *testing.B, ss [][][]byte) {
		msgs, first, avg := flat(ss)
		e := NewEncoder(true)
		buf := make([]byte, 0, 4096)
		for i, m := range msgs {
			if first[i] {
				e.Reset()
			}
			buf, _ = e.Encode(buf[:0], m)
		}
		b.SetBytes(int64(avg))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			j := i % len(msgs)
			if first[j] {
				e.Reset() // a new session: the stream is reset on reconnect
			}
			buf, _ = e.Encode(buf[:0], msgs[j])
		}
	})
}

func BenchmarkDecodeStateful(b *testing.B) {
	benchKinds(b, func(b *testing.B, ss [][][]byte) {
		msgs, first, avg := flat(ss)
		e := NewEncoder(true)
		frames := make([][]byte, len(msgs))
		for i, m := range msgs {
			if first[i] {
				e.Reset()
			}
			frames[i], _ = e.Encode(nil, m)
		}
		d := NewDecoder(true)
		buf := make([]byte, 0, 4096)
		b.SetBytes(int64(avg))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			j := i % len(frames)
			if first[j] {
				d.Reset()
			}
			var err error
			if buf, err = d.Decode(buf[:0], frames[j]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
