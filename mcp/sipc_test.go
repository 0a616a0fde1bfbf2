package mcp

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func samples(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob("testdata/sipc/*.sipc")
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	out := make(map[string][]byte)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// Every real sample parses, and re-rendering gives back the same message
// apart from trimmed header values.
func TestParseSamples(t *testing.T) {
	for name, b := range samples(t) {
		m, err := Parse(b)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		m2, err := Parse(m.AppendTo(nil))
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Errorf("%s: re-render differs: %v\n%q\n%q", name, err, m, m2)
		}
	}
	m, err := Parse(samples(t)["016.sipc"])
	if err != nil {
		t.Fatal(err)
	}
	if m.Method != "M" || m.Target != "fetion.com.cn" || m.Get("I") != "17" || m.Get("t") != "sip:678345136@fetion.com.cn;p=5017" ||
		m.Get("C") != "text/html-fragment" || len(m.Body) != 57 {
		t.Fatalf("016 parsed wrong: %+v", m)
	}
	if n, meth, err := m.CSeq(); n != 2 || meth != "M" || err != nil {
		t.Fatalf("CSeq = %d %q %v", n, meth, err)
	}
	r, err := Parse(samples(t)["021.sipc"])
	if err != nil || r.Code != 280 || r.Reason != "Send SMS OK" || !r.IsResponse() {
		t.Fatalf("021: %+v %v", r, err)
	}
}

func TestParseLongNames(t *testing.T) {
	m, err := Parse([]byte("MESSAGE sip:a@b SIP/2.0\r\nCall-ID: 9\r\nCSeq: 1 MESSAGE\r\nTo: tel:+8613800000001\r\nContent-Length: 2\r\n\r\nhi"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Get("I") != "9" || m.Get("T") != "tel:+8613800000001" || m.Get("Q") != "1 MESSAGE" || string(m.Body) != "hi" {
		t.Fatalf("long names not mapped: %+v", m)
	}
}

func TestParseRejects(t *testing.T) {
	bad := map[string]string{
		"no blank line":        "M x SIP-C/2.0\r\nI: 1\r\n",
		"bare LF":              "M x SIP-C/2.0\nI: 1\r\n\r\n",
		"LF inside header":     "M x SIP-C/2.0\r\nI: 1\nQ: 1 M\r\n\r\n",
		"bad version":          "M x SIP-C/3.0\r\n\r\n",
		"two spaces":           "M  x SIP-C/2.0\r\n\r\n",
		"four parts":           "M x y SIP-C/2.0\r\n\r\n",
		"lower-case junk":      "M<x x SIP-C/2.0\r\n\r\n",
		"status 2 digits":      "SIP-C/2.0 20 OK\r\n\r\n",
		"status 700":           "SIP-C/2.0 700 X\r\n\r\n",
		"header no colon":      "M x SIP-C/2.0\r\nI 1\r\n\r\n",
		"header space name":    "M x SIP-C/2.0\r\nI x: 1\r\n\r\n",
		"empty header name":    "M x SIP-C/2.0\r\n: 1\r\n\r\n",
		"control in value":     "M x SIP-C/2.0\r\nI: 1\x00\r\n\r\n",
		"body without L":       "M x SIP-C/2.0\r\nI: 1\r\n\r\nab",
		"L too big":            "M x SIP-C/2.0\r\nL: 3\r\n\r\nab",
		"L too small":          "M x SIP-C/2.0\r\nL: 1\r\n\r\nab",
		"L negative":           "M x SIP-C/2.0\r\nL: -2\r\n\r\nab",
		"L plus":               "M x SIP-C/2.0\r\nL: +2\r\n\r\nab",
		"L twice":              "M x SIP-C/2.0\r\nL: 2\r\nContent-Length: 2\r\n\r\nab",
		"L not number":         "M x SIP-C/2.0\r\nL: two\r\n\r\nab",
		"empty":                "",
		"start line only CRLF": "\r\n\r\n",
	}
	for name, in := range bad {
		if m, err := Parse([]byte(in)); err == nil || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: accepted (%+v, %v)", name, m, err)
		}
	}
}

func TestSetBody(t *testing.T) {
	m := &Message{Method: "M", Target: "x"}
	m.Add("I", "1")
	m.Add("L", "99")
	m.SetBody([]byte("héllo"))
	got := m.String()
	want := "M x SIP-C/2.0\r\nI: 1\r\nL: 6\r\n\r\nhéllo"
	if got != want {
		t.Fatalf("got %q want %q", got, want)
	}
	m.SetBody(nil)
	if bytes.Contains(m.AppendTo(nil), []byte("L:")) {
		t.Fatalf("empty body kept L: %q", m.String())
	}
}

func TestSniff(t *testing.T) {
	i, q := sniff([]byte("M x SIP-C/2.0\nI: 42 \r\nbroken line\r\nQ: 3 M\r\n\r\nI: 7"))
	if i != "42" || q != "3 M" {
		t.Fatalf("sniff = %q %q", i, q)
	}
}

// FuzzParse: Parse never panics; whatever it accepts re-renders to a
// message that parses to the same thing.
func FuzzParse(f *testing.F) {
	for _, b := range samples(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		out := m.AppendTo(nil)
		m2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-rendered message rejected: %v\n%q", err, out)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip differs:\n%#v\n%#v", m, m2)
		}
		sniff(b)
	})
}
