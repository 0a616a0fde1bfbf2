package codec

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/smsbridge/bridge/codec/corpus"
)

// Training of the version 3 priming data (dict3/): it reads the tuned
// corpus families only, never a held-out one. The sessions come from
// trainSeed, not from the seed the family table reports on.
const (
	trainSeed     = 1000
	trainSessions = 40
	dictBudget    = 12 << 10 // bytes of dictionary per profile
	coverK        = 96       // segment length
	coverD        = 8        // d-mer length
	protoBudget   = 64 << 10 // bytes of prototype messages per profile
	maxProtos     = 240
)

// trainingSessions returns the tuned sessions of a profile (and, for
// SIP-C, the shared sample, which is real traffic).
func trainingSessions(t testing.TB, prof int) [][][]byte {
	var ss [][][]byte
	for _, f := range corpus.Families() {
		if !f.Tuned || (f.Kind == corpus.SIP) != (prof == profSIP) {
			continue
		}
		ss = append(ss, f.Sessions(trainSeed, trainSessions)...)
	}
	if prof == profSIPC {
		ss = append(ss, sample(t))
	}
	return ss
}

// TestTrainV3 rewrites dict3/ when CODEC_TRAIN=1. The output is part of
// the wire format: retraining needs a new format version.
func TestTrainV3(t *testing.T) {
	if os.Getenv("CODEC_TRAIN") != "1" {
		t.Skip("set CODEC_TRAIN=1 to retrain dict3/ (changes the wire format)")
	}
	for prof, name := range []string{"sipc", "sip"} {
		ss := trainingSessions(t, prof)
		// The text the coder sends through LZ, per message.
		var samples [][]byte
		c := &coder3{}
		c.init(true, false)
		var cur []byte
		c.collect = func(b []byte, _ int) { cur = append(cur, b...) }
		var rc rcEncoder
		for _, s := range ss {
			for _, m := range s {
				cur = cur[:0]
				c.beginFrame(prof, false)
				rc.init(nil)
				c.encodeMessage(&rc, m)
				if len(cur) > 0 {
					samples = append(samples, bytes.Clone(cur))
				}
			}
		}
		dict := cover(samples, dictBudget, coverK, coverD)
		protos := prototypes(ss, prof)
		var pb []byte
		for _, m := range protos {
			pb = AppendFrame(pb, m)
		}
		if err := os.WriteFile(filepath.Join("dict3", name+".dict"), dict, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("dict3", name+".proto"), pb, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d sessions, %d samples, dictionary %d bytes, %d prototypes (%d bytes)", name, len(ss), len(samples), len(dict), len(protos), len(pb))
	}
}

// cover picks dictionary segments in the manner of COVER (Liao et al.,
// zstd's dictionary builder): the samples are cut into epochs, and in
// each epoch the k-byte segment whose distinct d-mers occur in the most
// samples wins; its d-mers then count no more. The best segments go last,
// where matches are nearest.
func cover(samples [][]byte, budget, k, d int) []byte {
	freq := map[string]int{}
	for _, s := range samples {
		seen := map[string]bool{}
		for i := 0; i+d <= len(s); i++ {
			m := string(s[i : i+d])
			if !seen[m] {
				seen[m] = true
				freq[m]++
			}
		}
	}
	all := bytes.Join(samples, nil)
	type seg struct {
		b     []byte
		score int
	}
	var segs []seg
	epochs := max(budget/k, 1)
	size := len(all) / epochs
	for e := 0; e < epochs && size >= k; e++ {
		part := all[e*size : (e+1)*size]
		best, bestScore := -1, 0
		for i := 0; i+k <= len(part); i += 4 {
			score, seen := 0, map[string]bool{}
			for j := i; j+d <= i+k; j++ {
				m := string(part[j : j+d])
				if !seen[m] {
					seen[m] = true
					score += freq[m]
				}
			}
			if score > bestScore {
				best, bestScore = i, score
			}
		}
		if best < 0 || bestScore < 2 {
			continue
		}
		b := part[best : best+k]
		for j := 0; j+d <= len(b); j++ {
			delete(freq, string(b[j:j+d]))
		}
		segs = append(segs, seg{b, bestScore})
	}
	sort.SliceStable(segs, func(i, j int) bool { return segs[i].score < segs[j].score })
	var out []byte
	for _, s := range segs {
		out = append(out, s.b...)
	}
	if len(out) > budget {
		out = out[len(out)-budget:]
	}
	return out
}

// shape is a message's start line kind and method or status, and its
// header names in order.
func shape(m []byte) string {
	head, _, _ := bytes.Cut(m, crlfcrlf)
	lines := strings.Split(string(head), "\r\n")
	f := strings.Fields(lines[0])
	var sb strings.Builder
	if len(f) > 1 && (strings.HasPrefix(f[0], "SIP")) {
		sb.WriteString(f[0] + " " + f[1])
	} else if len(f) > 0 {
		sb.WriteString(f[0])
	}
	for _, l := range lines[1:] {
		n, _, _ := strings.Cut(l, ":")
		sb.WriteString("|" + n)
	}
	return sb.String()
}

// prototypes picks the shortest message of each frequent shape, the most
// frequent shapes last (they leave their predictions in the models).
func prototypes(ss [][][]byte, prof int) [][]byte {
	count := map[string]int{}
	short := map[string][]byte{}
	for _, s := range ss {
		for _, m := range s {
			if pickProfile(m) != prof {
				continue
			}
			k := shape(m)
			count[k]++
			if b, ok := short[k]; !ok || len(m) < len(b) {
				short[k] = m
			}
		}
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if count[keys[i]] != count[keys[j]] {
			return count[keys[i]] > count[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var out [][]byte
	text := 0
	for _, k := range keys {
		if len(out) == maxProtos || count[k] < 2 {
			break
		}
		m := short[k]
		if text+len(m) > protoBudget {
			continue
		}
		text += len(m)
		out = append(out, m)
	}
	// Most frequent last.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// TestPrimingHasNoHeldOutText: the priming data (dict3/) holds none of
// the text only held-out families use, nor messages of their header
// shapes that no tuned family has (group messages: SO).
func TestPrimingHasNoHeldOutText(t *testing.T) {
	for _, b := range [][]byte{dictSIPC, dictSIP, protoSIPC, protoSIP} {
		for _, s := range corpus.HeldOutText() {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("priming data contains held-out text %q", s)
			}
		}
		if bytes.Contains(b, []byte("\r\nSO: ")) || bytes.Contains(b, []byte("PGPresenceChanged")) {
			t.Errorf("priming data contains group traffic, which only held-out families have")
		}
	}
}
