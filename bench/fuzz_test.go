package main

import (
	"strings"
	"testing"
)

func FuzzParseToken(f *testing.F) {
	f.Add("#a1.2# hello")
	f.Add("#dzzzzzzzzzzzzz.1#")
	f.Fuzz(func(t *testing.T, s string) {
		tok, ok := ParseToken(s)
		if !ok {
			return
		}
		back, ok := ParseToken(tok.String())
		if !ok || back != tok {
			t.Fatalf("%q -> %+v does not round-trip (%+v)", s, tok, back)
		}
		if tok.Route >= numRoutes {
			t.Fatalf("route %d out of range", tok.Route)
		}
	})
}

func FuzzParseStatCPU(f *testing.F) {
	f.Add("1 (bridge) S 0 1 1 0 -1 4194560 100 0 0 0 12 7 0 0 20 0 8 0")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseStatCPU(s)
		if err == nil && v < 0 {
			t.Fatalf("negative cpu %v", v)
		}
	})
}

func FuzzParseStatusRSS(f *testing.F) {
	f.Add("Name:\tbridge\nVmRSS:\t  81234 kB\n")
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseStatusRSS(s)
		if err == nil && (v%1024 != 0 || !strings.Contains(s, "VmRSS:")) {
			t.Fatalf("rss %d from %q", v, s)
		}
	})
}

func FuzzDigestParam(f *testing.F) {
	f.Add(`Digest realm="x", nonce="abc", qop="auth"`, "nonce")
	f.Fuzz(func(t *testing.T, v, name string) {
		p, ok := digestParam(v, name)
		if ok && (p == "" || strings.Contains(p, ",")) {
			t.Fatalf("param %q of %q", p, v)
		}
	})
}

func FuzzWeights(f *testing.F) {
	f.Add("sms-im:1,im-im:0.5")
	f.Fuzz(func(t *testing.T, spec string) {
		w, err := Weights(spec, routeNames[:])
		if err != nil {
			return
		}
		var s float64
		for _, v := range w {
			if v < 0 || v != v {
				t.Fatalf("weight %v from %q", v, spec)
			}
			s += v
		}
		if s < 0.999 || s > 1.001 {
			t.Fatalf("weights %v of %q sum to %v", w, spec, s)
		}
	})
}

func FuzzFindGroupToken(f *testing.F) {
	f.Add("[bench-000] ~0001: #g1.2# hello")
	f.Add("~0001: #a1.2#")
	f.Fuzz(func(t *testing.T, s string) {
		tok, ok := FindGroupToken(s)
		if !ok {
			return
		}
		if tok.Route != Group {
			t.Fatalf("%q: route %v", s, tok.Route)
		}
		if back, ok := ParseToken(tok.String()); !ok || back != tok {
			t.Fatalf("%q -> %+v does not round-trip", s, tok)
		}
	})
}
