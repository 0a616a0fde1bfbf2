package sip

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// sha256Only gives carol a SHA-256 credential and an MD5 one that is not
// her password's: only a SHA-256 answer can pass.
func sha256Only(c *Config) {
	c.HA1 = func(u string) (string, bool) {
		if u == "carol" {
			return strings.Repeat("0", 32), true
		}
		return testHA1(u)
	}
	c.HA1SHA256 = func(u string) (string, bool) {
		if pw, ok := testPasswords[u]; ok && u == "carol" {
			return sha256hex(u + ":" + testDomain + ":" + pw), true
		}
		return "", false
	}
}

// TestRegisterSHA256Digest: a user with a SHA-256 credential is challenged
// with SHA-256 first and MD5 second (RFC 8760 §2.4); sipgo's client takes
// SHA-256 and registers; a user without one is offered MD5 only.
func TestRegisterSHA256Digest(t *testing.T) {
	b := startBridge(t, sha256Only)
	ua := newTestUA(t, 200, "OK")
	first, final := ua.do(t, registerReq(t, b.srv, "carol", ua.contact("carol"), 600), "carol", testPasswords["carol"])
	var algs []string
	for _, h := range first.GetHeaders("WWW-Authenticate") {
		c := h.Value()
		i := strings.Index(c, "algorithm=")
		if i < 0 {
			t.Fatalf("challenge without algorithm: %q", c)
		}
		alg, _, _ := strings.Cut(c[i+len("algorithm="):], ",")
		algs = append(algs, alg)
	}
	if strings.Join(algs, " ") != "SHA-256 MD5" {
		t.Fatalf("challenge algorithms %v, want SHA-256 then MD5", algs)
	}
	if final.StatusCode != 200 {
		t.Fatalf("REGISTER answering SHA-256: %d, want 200", final.StatusCode)
	}
	if n := len(b.pres.Bindings("sip:carol@" + testDomain)); n != 1 {
		t.Fatalf("carol has %d bindings, want 1", n)
	}

	const md5User = "8613900000009"
	first, final = ua.do(t, registerReq(t, b.srv, md5User, ua.contact(md5User), 600), md5User, testPasswords[md5User])
	if hs := first.GetHeaders("WWW-Authenticate"); len(hs) != 1 || !strings.Contains(hs[0].Value(), "algorithm=MD5") {
		t.Fatalf("challenge to an MD5-only user: %v", hs)
	}
	if final.StatusCode != 200 {
		t.Fatalf("MD5 REGISTER: %d", final.StatusCode)
	}
}

// TestSippMD5BesideSHA256: an old client (sipp knows MD5 only) still
// registers when SHA-256 is offered first: the SHA-256 credential here is
// wrong, so only its MD5 answer can pass.
func TestSippMD5BesideSHA256(t *testing.T) {
	scen := needSipp(t)
	const user = "8613800000001"
	b := startBridge(t, func(c *Config) {
		c.HA1SHA256 = func(u string) (string, bool) { return strings.Repeat("1", 64), u == user }
	})
	dir := t.TempDir()
	inf := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(inf, []byte(fmt.Sprintf("SEQUENTIAL\n%s;%s;%s;%d\n", user, testDomain, testPasswords[user], freeUDPPort(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	uac := startSipp(t, dir, b.srv.Addr(), "-sf", filepath.Join(scen, "register.xml"),
		"-inf", inf, "-au", user, "-ap", testPasswords[user], "-i", "127.0.0.1", "-p", strconv.Itoa(freeUDPPort(t)),
		"-m", "1", "-timeout", "20s", "-timeout_error", "-trace_err", "-nostdin")
	uac.wait(t, "register UAC offered SHA-256 and MD5")
	if n := len(b.pres.Bindings("+" + user)); n != 1 {
		t.Fatalf("%s has %d bindings after sipp's REGISTER, want 1", user, n)
	}
}
