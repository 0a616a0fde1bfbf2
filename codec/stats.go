package codec

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// StatsReport is what `bridge codec stats DIR` prints. The first five
// fields are a contract with tooling outside the repository.
type StatsReport struct {
	Messages    int  `json:"messages"`
	Raw         int  `json:"raw"`
	Stateless   int  `json:"stateless"`
	Stateful    int  `json:"stateful"`
	RoundtripOK bool `json:"roundtrip_ok"`

	Failures []string `json:"failures,omitempty"`

	Deflate           int `json:"deflate"`             // per-message DEFLATE
	DeflateDict       int `json:"deflate_dict"`        // per-message DEFLATE with preset dictionary
	DeflateStream     int `json:"deflate_stream"`      // one DEFLATE stream (stateful)
	DeflateStreamDict int `json:"deflate_stream_dict"` // the same stream primed with the dictionary

	RatioStateless         float64 `json:"ratio_stateless"`            // raw / stateless
	RatioStateful          float64 `json:"ratio_stateful"`             // raw / stateful
	StatelessVsDeflateDict float64 `json:"stateless_vs_deflate_dict"`  // deflate_dict / stateless
	StatefulVsStream       float64 `json:"stateful_vs_deflate_stream"` // deflate_stream / stateful

	EncodeStatelessNs float64 `json:"encode_stateless_ns_per_msg"`
	DecodeStatelessNs float64 `json:"decode_stateless_ns_per_msg"`
	EncodeStatefulNs  float64 `json:"encode_stateful_ns_per_msg"`
	DecodeStatefulNs  float64 `json:"decode_stateful_ns_per_msg"`
}

// ReadCorpus reads every regular file of dir in file-name order, byte-exact.
func ReadCorpus(dir string) ([][]byte, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("codec: read corpus: %w", err)
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	msgs := make([][]byte, 0, len(names))
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("codec: read corpus: %w", err)
		}
		msgs = append(msgs, b)
	}
	return msgs, nil
}

// Stats reads the corpus in dir (one message per file, file-name order =
// session order) and measures it with StatsMessages.
func Stats(dir string) (StatsReport, error) {
	msgs, err := ReadCorpus(dir)
	if err != nil {
		return StatsReport{}, err
	}
	return StatsMessages(msgs), nil
}

// StatsMessages encodes every message in both modes (stateful as one
// session), decodes, compares, and measures sizes, baselines and speed.
func StatsMessages(msgs [][]byte) StatsReport { return statsMessages(msgs, true) }

// StatsMessagesNoTiming is StatsMessages without the speed measurement.
func StatsMessagesNoTiming(msgs [][]byte) StatsReport { return statsMessages(msgs, false) }

func statsMessages(msgs [][]byte, timing bool) StatsReport {
	rep := StatsReport{Messages: len(msgs), RoundtripOK: true}
	fail := func(format string, a ...any) {
		rep.RoundtripOK = false
		if len(rep.Failures) < 20 {
			rep.Failures = append(rep.Failures, fmt.Sprintf(format, a...))
		}
	}
	se, sd := NewEncoder(false), NewDecoder(false)
	fe, fd := NewEncoder(true), NewDecoder(true)
	stateless := make([][]byte, len(msgs))
	stateful := make([][]byte, len(msgs))
	var out []byte
	for i, m := range msgs {
		rep.Raw += len(m)
		f, err := se.Encode(nil, m)
		if err != nil {
			fail("message %d: stateless encode: %v", i, err)
			continue
		}
		stateless[i] = f
		rep.Stateless += len(f)
		if out, err = sd.Decode(out[:0], f); err != nil || !bytes.Equal(out, m) {
			fail("message %d: stateless round trip differs (err %v)", i, err)
		}
		f, err = fe.Encode(nil, m)
		if err != nil {
			fail("message %d: stateful encode: %v", i, err)
			continue
		}
		stateful[i] = f
		rep.Stateful += len(f)
		if out, err = fd.Decode(out[:0], f); err != nil || !bytes.Equal(out, m) {
			fail("message %d: stateful round trip differs (err %v)", i, err)
		}
	}
	b := Baselines(msgs)
	rep.Deflate, rep.DeflateDict, rep.DeflateStream, rep.DeflateStreamDict = b.PerMessage, b.Dict, b.Stream, b.StreamDict
	ratio := func(a, b int) float64 {
		if b == 0 {
			return 0
		}
		return float64(int(float64(a)/float64(b)*1000+0.5)) / 1000
	}
	rep.RatioStateless, rep.RatioStateful = ratio(rep.Raw, rep.Stateless), ratio(rep.Raw, rep.Stateful)
	rep.StatelessVsDeflateDict, rep.StatefulVsStream = ratio(rep.DeflateDict, rep.Stateless), ratio(rep.DeflateStream, rep.Stateful)
	if timing && rep.RoundtripOK && len(msgs) > 0 {
		rep.EncodeStatelessNs, rep.DecodeStatelessNs, rep.EncodeStatefulNs, rep.DecodeStatefulNs = timeCodec(msgs, stateless, stateful)
	}
	return rep
}

// timeMessages encodes msgs in both modes (stateful as one session) and
// times encoding and decoding them.
func timeMessages(msgs [][]byte) (encSL, decSL, encSF, decSF float64) {
	se, fe := NewEncoder(false), NewEncoder(true)
	stateless := make([][]byte, len(msgs))
	stateful := make([][]byte, len(msgs))
	for i, m := range msgs {
		stateless[i], _ = se.Encode(nil, m)
		stateful[i], _ = fe.Encode(nil, m)
	}
	return timeCodec(msgs, stateless, stateful)
}

// timeCodec measures average ns per message over whole passes of the
// session (at least ~50ms each), stateful passes starting from Reset.
func timeCodec(msgs, stateless, stateful [][]byte) (encSL, decSL, encSF, decSF float64) {
	measure := func(pass func()) float64 {
		runs := 0
		start := time.Now()
		for time.Since(start) < 50*time.Millisecond || runs < 2 {
			pass()
			runs++
		}
		return float64(int(float64(time.Since(start).Nanoseconds()) / float64(runs*len(msgs))))
	}
	var buf []byte
	e, d := NewEncoder(false), NewDecoder(false)
	encSL = measure(func() {
		for _, m := range msgs {
			buf, _ = e.Encode(buf[:0], m)
		}
	})
	decSL = measure(func() {
		for _, f := range stateless {
			buf, _ = d.Decode(buf[:0], f)
		}
	})
	fe, fd := NewEncoder(true), NewDecoder(true)
	encSF = measure(func() {
		fe.Reset()
		for _, m := range msgs {
			buf, _ = fe.Encode(buf[:0], m)
		}
	})
	decSF = measure(func() {
		fd.Reset()
		for _, f := range stateful {
			buf, _ = fd.Decode(buf[:0], f)
		}
	})
	return encSL, decSL, encSF, decSF
}
