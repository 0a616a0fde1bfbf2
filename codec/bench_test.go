package codec

import "testing"

// benchCorpus is one generated session plus the sample: realistic sizes.
func benchCorpus(b *testing.B) ([][]byte, int) {
	msgs := append(sample(b), GenerateSessions(3, 1)[0]...)
	n := 0
	for _, m := range msgs {
		n += len(m)
	}
	return msgs, n / len(msgs)
}

func BenchmarkEncodeStateless(b *testing.B) {
	msgs, avg := benchCorpus(b)
	e := NewEncoder(false)
	buf := make([]byte, 0, 4096)
	b.SetBytes(int64(avg))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf, _ = e.Encode(buf[:0], msgs[i%len(msgs)])
	}
}

func BenchmarkDecodeStateless(b *testing.B) {
	msgs, avg := benchCorpus(b)
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
}

func BenchmarkEncodeStateful(b *testing.B) {
	msgs, avg := benchCorpus(b)
	e := NewEncoder(true)
	buf := make([]byte, 0, 4096)
	b.SetBytes(int64(avg))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%len(msgs) == 0 {
			e.Reset() // a new session: the stream is reset on reconnect
		}
		buf, _ = e.Encode(buf[:0], msgs[i%len(msgs)])
	}
}

func BenchmarkDecodeStateful(b *testing.B) {
	msgs, avg := benchCorpus(b)
	e := NewEncoder(true)
	frames := make([][]byte, len(msgs))
	for i, m := range msgs {
		frames[i], _ = e.Encode(nil, m)
	}
	d := NewDecoder(true)
	buf := make([]byte, 0, 4096)
	b.SetBytes(int64(avg))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%len(frames) == 0 {
			d.Reset()
		}
		var err error
		if buf, err = d.Decode(buf[:0], frames[i%len(frames)]); err != nil {
			b.Fatal(err)
		}
	}
}
