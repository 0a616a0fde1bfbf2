package codec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func readFrames(t *testing.T, name string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(bytes.NewReader(b))
	var out [][]byte
	for {
		f, err := ReadFrame(r, MaxMessageSize)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, f)
	}
}

// readSeed reads a []byte fuzz corpus file.
func readSeed(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	_, lit, ok := strings.Cut(strings.TrimSpace(string(b)), "[]byte(")
	if !ok || !strings.HasSuffix(lit, ")") {
		t.Fatalf("%s: not a []byte fuzz seed", name)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return []byte(s)
}

// TestDecodesVersion2Frames: frames written by the version 2 encoder still
// decode to their messages, stateless and stateful: testdata/frames-v2
// (the sample and a generated session, written before version 3) and the
// FuzzDecode seeds it wrote (even: stateless, odd: one stateful session).
func TestDecodesVersion2Frames(t *testing.T) {
	msgs := readFrames(t, filepath.Join("testdata", "frames-v2", "messages"))
	for _, mode := range []string{"stateless", "stateful"} {
		frames := readFrames(t, filepath.Join("testdata", "frames-v2", mode))
		if len(frames) != len(msgs) {
			t.Fatalf("%s: %d frames for %d messages", mode, len(frames), len(msgs))
		}
		d := NewDecoder(mode == "stateful")
		for i, f := range frames {
			if v2 := f[0]&versionMask == formatV2<<2 && f[0]&magicMask == magic || f[0]&statefulMask == statefulMark; !v2 {
				t.Fatalf("%s frame %d is not a version 2 frame (%#x)", mode, i, f[0])
			}
			got, err := d.Decode(nil, f)
			if err != nil || !bytes.Equal(got, msgs[i]) {
				t.Fatalf("%s frame %d: err %v\n got %q\nwant %q", mode, i, err, got, msgs[i])
			}
		}
	}
	sl, sf := NewDecoder(false), NewDecoder(true)
	for i, m := range sample(t) {
		for k, d := range []*Decoder{sl, sf} {
			name := filepath.Join("testdata", "fuzz", "FuzzDecode", fmt.Sprintf("seed-%03d", 2*i+k))
			got, err := d.Decode(nil, readSeed(t, name))
			if err != nil || !bytes.Equal(got, m) {
				t.Fatalf("%s: err %v\n got %q\nwant %q", name, err, got, m)
			}
		}
	}
}

// TestDecodesVersion3Frames: frames written by the version 3 encoder
// still decode to their messages, stateless and stateful:
// testdata/frames-v3 (the sample, two SIP sessions of tuned families and
// a generated session, written before version 4).
func TestDecodesVersion3Frames(t *testing.T) {
	msgs := readFrames(t, filepath.Join("testdata", "frames-v3", "messages"))
	for _, mode := range []string{"stateless", "stateful"} {
		frames := readFrames(t, filepath.Join("testdata", "frames-v3", mode))
		if len(frames) != len(msgs) {
			t.Fatalf("%s: %d frames for %d messages", mode, len(frames), len(msgs))
		}
		d := NewDecoder(mode == "stateful")
		for i, f := range frames {
			if v3 := f[0]&versionMask == formatV3<<2 && f[0]&magicMask == magic || f[0]&statefulMask == statefulMarkV3; !v3 {
				t.Fatalf("%s frame %d is not a version 3 frame (%#x)", mode, i, f[0])
			}
			got, err := d.Decode(nil, f)
			if err != nil || !bytes.Equal(got, msgs[i]) {
				t.Fatalf("%s frame %d: err %v\n got %q\nwant %q", mode, i, err, got, msgs[i])
			}
		}
	}
}

// TestVersionsDoNotMix: a stateful session keeps the version of its first
// frame; a frame of another version is a state mismatch.
func TestVersionsDoNotMix(t *testing.T) {
	v2 := readFrames(t, filepath.Join("testdata", "frames-v2", "stateful"))
	v3 := readFrames(t, filepath.Join("testdata", "frames-v3", "stateful"))
	m := sample(t)[0]
	v4, err := NewEncoder(true).Encode(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name          string
		first, second []byte
	}{
		{"version 2 frame in a version 4 session", v4, v2[1]},
		{"version 3 frame in a version 4 session", v4, v3[1]},
		{"version 4 frame in a version 2 session", v2[0], v4},
		{"version 4 frame in a version 3 session", v3[0], v4},
		{"version 2 frame in a version 3 session", v3[0], v2[1]},
	} {
		d := NewDecoder(true)
		if _, err := d.Decode(nil, c.first); err != nil {
			t.Fatalf("%s: first frame: %v", c.name, err)
		}
		if _, err := d.Decode(nil, c.second); !errors.Is(err, ErrStateMismatch) {
			t.Errorf("%s: %v, want ErrStateMismatch", c.name, err)
		}
	}
}
