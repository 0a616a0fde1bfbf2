package codec

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/smsbridge/bridge/codec/corpus"
)

func sample(t testing.TB) [][]byte {
	t.Helper()
	msgs, err := ReadCorpus(filepath.Join("testdata", "sipc-sample"))
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 25 {
		t.Fatalf("sample corpus has %d messages, want 25", len(msgs))
	}
	return msgs
}

// roundTrip checks msgs in both modes (stateful as one session) and
// returns the total frame sizes.
func roundTrip(t testing.TB, msgs [][]byte) (stateless, stateful int) {
	t.Helper()
	se, sd := NewEncoder(false), NewDecoder(false)
	fe, fd := NewEncoder(true), NewDecoder(true)
	for i, m := range msgs {
		f, err := se.Encode(nil, m)
		if err != nil {
			t.Fatalf("msg %d: stateless encode: %v", i, err)
		}
		stateless += len(f)
		got, err := sd.Decode(nil, f)
		if err != nil || !bytes.Equal(got, m) {
			t.Fatalf("msg %d: stateless round trip: err %v\n got %q\nwant %q", i, err, got, m)
		}
		f, err = fe.Encode(nil, m)
		if err != nil {
			t.Fatalf("msg %d: stateful encode: %v", i, err)
		}
		stateful += len(f)
		got, err = fd.Decode(nil, f)
		if err != nil || !bytes.Equal(got, m) {
			t.Fatalf("msg %d: stateful round trip: err %v\n got %q\nwant %q", i, err, got, m)
		}
	}
	return stateless, stateful
}

func TestRoundTripSample(t *testing.T) {
	roundTrip(t, sample(t))
	// The shared copy, when present, must be the same corpus.
	shared := filepath.Join("..", "..", "shared", "corpus", "sipc-sample")
	if _, err := os.Stat(shared); err != nil {
		t.Skipf("shared corpus %s absent; testdata copy checked", shared)
	}
	msgs, err := ReadCorpus(shared)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, msgs)
}

func TestRoundTripGenerated(t *testing.T) {
	for _, s := range GenerateSessions(7, 20) {
		roundTrip(t, s)
	}
}

func TestRoundTripOddInputs(t *testing.T) {
	odd := []string{
		"",
		"\r\n\r\n",
		"garbage without separator",
		"R fetion.com.cn SIP-C/2.0\nF: 1\n\n", // LF only
		"R fetion.com.cn SIP-C/2.0\r\nI: -17 \r\nQ: 1 R\r\n\r\n", // negative call id
		"R fetion.com.cn SIP-C/2.0\r\nI: 007\r\nQ: 01 R\r\nL: 5\r\n\r\nab",
		"M  fetion.com.cn  SIP-C/2.0 \r\nF:  123\r\nF:123\r\nK: a\r\nK: a\r\nT: sip:1@fetion.com.cn;p=\r\n\r\n",
		"SIP-C/2.0 200 OK \r\nI: 1  \r\nQ: 1 ZZ\r\nD: Fri, 16 Apr 2009 14:38:02 GMT\r\nD: Thu, 16 Apr 2009 14:38:02 GMT\r\n\r\n",
		"SIP-C/2.0 999 Whatever\r\nXI: 423938116E2545249677DC98F65E6559\r\nXI: 423938116e2545249677DC98F65E6559\r\n\r\n",
		"SIP-C/2.0 200 Okay\r\nL: 3\r\nL: 3\r\nContent-Length: 3\r\n\r\nabc",
		"SIP/2.0 42 X\r\nX-Custom: \x01\x02\x03\x04\x05\xff\r\n\r\n\x01sip:12@fetion.com.cn;p=0\x05\x05",
		"BN 678345136 SIP-C/2.0\r\n: empty name\r\nnocolon\r\n\r\n<a uri=\"sip:0012@fetion.com.cn;p=01\"/>12345678901234567890 1234567890 0123456789",
		"FOO bar SIP-C/9.9\r\nQ: 18446744073709551615 M\r\nI: 99999999999999999999\r\n\r\n",
		"R fetion.com.cn SIP-C/2.0\r\nD: Thu, 31 Feb 2009 14:38:02 GMT\r\nD: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n",
		"I sip:678345136@fetion.com.cn;p=5017 SIP-C/2.0\r\nT: tel:13800138000\r\nF: sip:1@fetion.com.cn\r\nT: tel:0138\r\n\r\n",
		"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\r\nMax-Forwards: 70\r\nCall-ID: a84b4c76e66710@pc33.example.com\r\nCSeq: 314159 INVITE\r\nContent-Length: 0\r\n\r\n",
		strings.Repeat("K: x\r\n", 200) + "\r\n",
		// A literal line after a never-repeating (hex) value: both ends must
		// put it in the dynamic table (found by FuzzRoundTrip).
		"\r\n0: 00000000000000000000000000000000\r\n0\r\n\r\n",
	}
	var msgs [][]byte
	for _, s := range odd {
		msgs = append(msgs, []byte(s))
	}
	roundTrip(t, msgs)
}

// TestRoundTripVersion4Items: SIP messages full of what version 4 codes
// as items (tokens, UUIDs, hex runs and numbers, at the start, middle and
// end of values and bodies, at and around the length limits) round-trip,
// stateless and stateful, in frames of version 4.
func TestRoundTripVersion4Items(t *testing.T) {
	long := strings.Repeat("aZ3kQ9", 40)
	odd := []string{
		"REGISTER sip:lab.example SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK.3qeNQv4gqqBWx6t1\r\nFrom: <sip:a@b>;tag=zpewXmrtYCThaWYH\r\nCall-ID: 5b7600e7-a673-4e4a-a44f-aea9f9ef6a9b\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n",
		"SIP/2.0 200 OK\r\nCall-ID: 5B7600E7-A673-4E4A-A44F-AEA9F9EF6A9B\r\nX-A: 5b7600e7-A673-4e4a-a44f-aea9f9ef6a9b\r\nX-B: 12345678-1234-1234-1234-123456789012\r\nX-C: 5b7600e7-a673-4e4a-a44f-aea9f9ef6a9bc\r\nX-D: 5b7600e7-a673-4e4a-a44f-aea9f9ef6a9\r\n\r\n",
		"OPTIONS sip:x SIP/2.0\r\nX-Tok: " + long + "\r\nX-Tok2: " + long + "Q\r\nX-8: aB3dE5gH\r\nX-7: aB3dE5g\r\nX-Mix: ABCdefGHI\r\nX-Words: Unauthorized sendrecv\r\n\r\n",
		"MESSAGE sip:x SIP/2.0\r\nX-End: abc aB3dE5gH12\rX\r\nX-Num: 1234567\r\nX-Hex: deadbeefcafe\r\nX-Nonce: axWU2GsVk6y7DEHA/3GqtdrICeGD/Ib0\r\nX-Cr: tok3nABCdefg\r\r\n\r\n" +
			"body aB3dE5gH12 5b7600e7-a673-4e4a-a44f-aea9f9ef6a9b deadbeefcafe0123 " + long,
		"SIP/2.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"x\", nonce=\"snSPWmMfmJOR4859784f4f473242\"\r\nTo: <sip:e@l>;tag=b35d81054a38cf8a51fa0b9369236467.12a835ff\r\n\r\n",
	}
	var msgs [][]byte
	for _, s := range odd {
		msgs = append(msgs, []byte(s))
		f, _ := Encode(nil, []byte(s))
		if f[0] != headerV4|profSIP {
			t.Errorf("frame header %#x, want %#x", f[0], headerV4|profSIP)
		}
	}
	roundTrip(t, msgs)
}

// target checks ours against a baseline by a factor and logs the row.
func target(t *testing.T, what string, ours, base int, factor float64) {
	t.Helper()
	got := float64(base) / float64(ours)
	t.Logf("%s: %d bytes vs %d baseline = %.2fx (target %.1fx)", what, ours, base, got, factor)
	if got < factor {
		t.Errorf("%s: %.2fx smaller than the baseline, target %.1fx", what, got, factor)
	}
}

// TestCompressionTargets measures ours against the DEFLATE baselines on the
// sample corpus and on sessions of GenerateSessions (the generator format
// version 2 was tuned with), and asserts the targets set then: stateless
// >= 1.3x smaller than DEFLATE with a preset dictionary, stateful >= 1.5x
// smaller than a DEFLATE stream. The held-out targets are TestHeldOutTargets.
func TestCompressionTargets(t *testing.T) {
	msgs := sample(t)
	rep := StatsMessages(msgs)
	if !rep.RoundtripOK {
		t.Fatalf("sample round trip failed: %v", rep.Failures)
	}
	t.Logf("sample: %+v", rep)
	target(t, "sample stateless vs DEFLATE+dict", rep.Stateless, rep.DeflateDict, 1.3)
	target(t, "sample stateful vs DEFLATE stream", rep.Stateful, rep.DeflateStream, 1.5)

	// Generated corpus: one connection per session, as on a handset link.
	var raw, sl, sf int
	var b DeflateSizes
	n := 0
	for _, s := range GenerateSessions(1, 50) {
		r := StatsMessagesNoTiming(s)
		if !r.RoundtripOK {
			t.Fatalf("generated round trip failed: %v", r.Failures)
		}
		n += r.Messages
		raw, sl, sf = raw+r.Raw, sl+r.Stateless, sf+r.Stateful
		b.PerMessage, b.Dict, b.Stream, b.StreamDict = b.PerMessage+r.Deflate, b.Dict+r.DeflateDict, b.Stream+r.DeflateStream, b.StreamDict+r.DeflateStreamDict
	}
	t.Logf("generated, 50 sessions, %d messages: raw %d deflate %d dict %d stream %d stream+dict %d stateless %d stateful %d",
		n, raw, b.PerMessage, b.Dict, b.Stream, b.StreamDict, sl, sf)
	target(t, "generated stateless vs DEFLATE+dict", sl, b.Dict, 1.3)
	target(t, "generated stateful vs DEFLATE stream", sf, b.Stream, 1.5)

	// One long stream of 3000 messages: reported, not a target (the DEFLATE
	// stream's 32 KiB window is then full of the same session).
	long := StatsMessagesNoTiming(GenerateCorpus(1, 3000))
	t.Logf("generated, one stream of 3000: raw %d stream %d stateful %d (%.2fx); dict %d stateless %d (%.2fx)",
		long.Raw, long.DeflateStream, long.Stateful, float64(long.DeflateStream)/float64(long.Stateful),
		long.DeflateDict, long.Stateless, float64(long.DeflateDict)/float64(long.Stateless))
}

func TestStateMismatchDetected(t *testing.T) {
	msgs := sample(t)
	e, d := NewEncoder(true), NewDecoder(true)
	var frames [][]byte
	for _, m := range msgs {
		f, err := e.Encode(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, f)
	}
	// Lost frame: decoding frame 1 after frame 0 was skipped must fail.
	if _, err := d.Decode(nil, frames[1]); !errors.Is(err, ErrStateMismatch) {
		t.Fatalf("skipped frame: err %v, want ErrStateMismatch", err)
	}
	// Once failed, the decoder refuses everything until Reset.
	if _, err := d.Decode(nil, frames[0]); !errors.Is(err, ErrStateMismatch) {
		t.Fatalf("after failure: err %v, want ErrStateMismatch", err)
	}
	d.Reset()
	for i, f := range frames {
		got, err := d.Decode(nil, f)
		if err != nil || !bytes.Equal(got, msgs[i]) {
			t.Fatalf("after Reset, frame %d: err %v", i, err)
		}
	}
	// Every single-byte corruption of every frame is reported (by the
	// check, the stream or the token parser), never decoded silently.
	for i := range frames {
		for j := range frames[i] {
			e2, d2 := NewEncoder(true), NewDecoder(true)
			for k := 0; k < i; k++ {
				f, _ := e2.Encode(nil, msgs[k])
				if _, err := d2.Decode(nil, f); err != nil {
					t.Fatal(err)
				}
			}
			bad := bytes.Clone(frames[i])
			bad[j] ^= 0x5A
			got, err := d2.Decode(nil, bad)
			if err == nil && !bytes.Equal(got, msgs[i]) {
				t.Fatalf("frame %d byte %d corrupted: decoded silently to %q", i, j, got)
			}
		}
	}
	// Duplicated frame.
	e.Reset()
	d.Reset()
	f0, _ := e.Encode(nil, msgs[0])
	if _, err := d.Decode(nil, f0); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Decode(nil, f0); !errors.Is(err, ErrStateMismatch) {
		t.Fatalf("duplicated frame: err %v, want ErrStateMismatch", err)
	}
}

func TestModeAndGarbage(t *testing.T) {
	m := sample(t)[0]
	sf, _ := NewEncoder(true).Encode(nil, m)
	sl, _ := Encode(nil, m)
	if _, err := Decode(nil, sf); !errors.Is(err, ErrMode) {
		t.Errorf("stateful frame to stateless decoder: %v, want ErrMode", err)
	}
	if _, err := NewDecoder(true).Decode(nil, sl); !errors.Is(err, ErrMode) {
		t.Errorf("stateless frame to stateful decoder: %v, want ErrMode", err)
	}
	// Not frames, other modes, unknown versions and profiles, and version 2
	// headers without a token stream.
	for _, g := range [][]byte{nil, {0}, {0xFF, 1, 2}, []byte("R fetion.com.cn SIP-C/2.0"), {0xB4, 1, 2}, {0xA0, 1},
		{headerV4 | 2, 0x80}, {headerV4 | 3}, {headerV3 | 2, 0x80}, {headerV3 | 3}, {headerByte}, {headerByte, 1},
		{headerByte | flagCoded, 1, 0, 0xFF}} {
		if _, err := Decode(nil, g); err == nil {
			t.Errorf("garbage %x decoded without error", g)
		}
	}
	if _, err := Decode(nil, []byte{0xB4, 1, 2}); !errors.Is(err, ErrVersion) {
		t.Errorf("version 1 frame: %v, want ErrVersion", err)
	}
	// A stateful first frame naming a profile that does not exist.
	var rc rcEncoder
	rc.init([]byte{statefulMarkV3, 0})
	rc.direct(0, checkRCBits)
	rc.direct(nProfiles, profileBits)
	if _, err := NewDecoder(true).Decode(nil, rc.finish()); !errors.Is(err, ErrStateMismatch) {
		t.Errorf("stateful frame of profile %d: %v, want ErrStateMismatch", nProfiles, err)
	}
	// Truncations of a valid frame do not decode to the original.
	for i := 0; i < len(sl)-1; i++ {
		if got, err := Decode(nil, sl[:i]); err == nil && bytes.Equal(got, m) {
			t.Errorf("truncated frame %d decoded to the original", i)
		}
	}
}

func TestFramesOverTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	msgs := sample(t)
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		e := NewEncoder(true)
		var buf []byte
		for _, m := range msgs {
			f, err := e.Encode(nil, m)
			if err != nil {
				done <- err
				return
			}
			buf = AppendFrame(buf, f)
		}
		_, err = c.Write(buf)
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	d := NewDecoder(true)
	for i, m := range msgs {
		f, err := ReadFrame(r, 64<<10)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		got, err := d.Decode(nil, f)
		if err != nil || !bytes.Equal(got, m) {
			t.Fatalf("frame %d: err %v", i, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFrame(r, 64<<10); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
	// Limits and truncation.
	big := AppendFrame(nil, make([]byte, 100))
	if _, err := ReadFrame(bufio.NewReader(bytes.NewReader(big)), 99); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversized frame: %v", err)
	}
	if _, err := ReadFrame(bufio.NewReader(bytes.NewReader(big[:50])), 1000); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated frame: %v", err)
	}
}

func TestCLI(t *testing.T) {
	dir := filepath.Join("testdata", "sipc-sample")
	var out, errb bytes.Buffer
	if code := RunCLI([]string{"stats", dir}, nil, &out, &errb); code != 0 {
		t.Fatalf("stats exit %d: %s", code, errb.String())
	}
	var rep map[string]any
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("stats output %q: %v", out.String(), err)
	}
	for _, k := range []string{"messages", "raw", "stateless", "stateful", "roundtrip_ok"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("stats output lacks %q", k)
		}
	}
	if rep["messages"] != float64(25) || rep["raw"] != float64(6007) || rep["roundtrip_ok"] != true {
		t.Errorf("stats: %v", rep)
	}
	if s := rep["stateless"].(float64); s <= 0 || s >= 6007 {
		t.Errorf("stateless size %v", s)
	}

	msg := sample(t)[5]
	for _, mode := range [][]string{nil, {"--stateful"}} {
		out.Reset()
		if code := RunCLI(append([]string{"encode"}, mode...), bytes.NewReader(msg), &out, &errb); code != 0 {
			t.Fatalf("encode %v exit %d: %s", mode, code, errb.String())
		}
		frame := bytes.Clone(out.Bytes())
		out.Reset()
		if code := RunCLI(append([]string{"decode"}, mode...), bytes.NewReader(frame), &out, &errb); code != 0 {
			t.Fatalf("decode %v exit %d: %s", mode, code, errb.String())
		}
		if !bytes.Equal(out.Bytes(), msg) {
			t.Fatalf("CLI round trip %v differs", mode)
		}
	}
	if code := RunCLI([]string{"decode"}, strings.NewReader("not a frame"), io.Discard, io.Discard); code != 1 {
		t.Errorf("decode garbage exit %d, want 1", code)
	}
	for _, args := range [][]string{nil, {"stats"}, {"stats", "a", "b"}, {"encode", "--bogus"}, {"frobnicate"}} {
		if code := RunCLI(args, strings.NewReader(""), io.Discard, io.Discard); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code := RunCLI([]string{"stats", filepath.Join(t.TempDir(), "missing")}, nil, io.Discard, io.Discard); code != 1 {
		t.Errorf("stats on a missing dir: exit %d, want 1", code)
	}
	// Without a DIR, stats measures the families it is given.
	fams := func() []FamilySessions {
		return []FamilySessions{{Name: "the-sample", Protocol: "SIP-C", Sessions: [][][]byte{sample(t)}}}
	}
	out.Reset()
	if code := RunCLIFamilies([]string{"stats"}, nil, &out, &errb, fams); code != 0 {
		t.Fatalf("stats families: exit %d: %s", code, errb.String())
	}
	if s := out.String(); !strings.Contains(s, "the-sample") || !strings.Contains(s, "SIP-C held-out families") || !strings.Contains(s, "SIP: no held-out family") {
		t.Errorf("stats families output:\n%s", s)
	}
}

// TestWriteCorpusAndSeeds writes the generated corpus (CODEC_DUMP_CORPUS=DIR)
// for `bridge codec stats DIR`, and the fuzz seed files of the current
// format (CODEC_WRITE_SEEDS=1): seed-2xx, next to the version 3 frames
// (FuzzDecode seed-3xx) and the version 2 seeds (seed-0xx, seed-100),
// which stay as they are (TestDecodesVersion2Frames reads them). Without
// either variable it does nothing.
func TestWriteCorpusAndSeeds(t *testing.T) {
	if dir := os.Getenv("CODEC_DUMP_CORPUS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, m := range GenerateSessions(1, 1)[0] {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%05d.sipc", i+1)), m, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if os.Getenv("CODEC_WRITE_SEEDS") == "" {
		return
	}
	write := func(name string, i int, b []byte) {
		p := filepath.Join("testdata", "fuzz", name, fmt.Sprintf("seed-%03d", 200+i))
		if err := os.WriteFile(p, []byte("go test fuzz v1\n[]byte("+strconv.Quote(string(b))+")\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The sample (SIP-C) and the first messages of a captured SIP trace:
	// both profiles, both modes.
	msgs := sample(t)
	trace, err := corpus.Trace("kamailio-baresip")
	if err != nil {
		t.Fatal(err)
	}
	msgs = append(msgs, trace[0][:12]...)
	e := NewEncoder(true)
	for i, m := range msgs {
		write("FuzzRoundTrip", i, m)
		f, _ := Encode(nil, m)
		write("FuzzDecode", 2*i, f)
		if i == len(sample(t)) {
			e.Reset() // the SIP messages are a session of their own
		}
		f, _ = e.Encode(nil, m)
		write("FuzzDecode", 2*i+1, f)
	}
}

// TestStatelessFramesIndependent: a stateless frame depends on its message
// only, not on what the encoder (or the decoder) handled before, since
// pooled encoders and decoders are reused across links.
func TestStatelessFramesIndependent(t *testing.T) {
	msgs := sample(t)
	trace, err := corpus.Trace("kamailio-baresip")
	if err != nil {
		t.Fatal(err)
	}
	msgs = append(msgs, trace[0][:8]...)
	msgs = append(msgs, []byte("<1"), []byte("x"), []byte(""), []byte("SIP/2.0 200 OK\r\n\r\n"))
	fresh := make([][]byte, len(msgs))
	for i, m := range msgs {
		fresh[i], _ = NewEncoder(false).Encode(nil, m)
	}
	for i, a := range msgs {
		e, d := NewEncoder(false), NewDecoder(false)
		fa, _ := e.Encode(nil, a)
		if _, err := d.Decode(nil, fa); err != nil {
			t.Fatal(err)
		}
		for j, b := range msgs {
			f, _ := e.Encode(nil, b)
			if !bytes.Equal(f, fresh[j]) {
				t.Fatalf("message %d after message %d: frame %x, from a new encoder %x", j, i, f, fresh[j])
			}
			if got, err := d.Decode(nil, f); err != nil || !bytes.Equal(got, b) {
				t.Fatalf("message %d after message %d: decoded %q, %v", j, i, got, err)
			}
		}
	}
}

// TestHeaderSplitters: the header line and name splitters find what
// bytes.Cut and bytes.Index find, stray CRs and colons included.
func TestHeaderSplitters(t *testing.T) {
	for _, s := range []string{"", "\r", "\n", "\r\n", "a\rb\r\nc", "\r\r\n", "abc", "a\r", "x\r\ny\r\nz",
		":", ": ", "a:b: c", "a::  b", "a:", "Via: SIP/2.0/UDP a:5060", "::", "a:\r\n: "} {
		b := []byte(s)
		l, r, ok := cutCRLF(b)
		wl, wr, wok := bytes.Cut(b, []byte("\r\n"))
		if !bytes.Equal(l, wl) || !bytes.Equal(r, wr) || ok != wok {
			t.Errorf("cutCRLF(%q) = %q, %q, %v; want %q, %q, %v", s, l, r, ok, wl, wr, wok)
		}
		if got, want := indexColonSP(b), bytes.Index(b, []byte(": ")); got != want {
			t.Errorf("indexColonSP(%q) = %d, want %d", s, got, want)
		}
	}
}
