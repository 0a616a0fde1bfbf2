package main

import (
	"encoding/pem"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smsbridge/bridge/login"
	"github.com/smsbridge/bridge/login/partnersite"
)

// startPartnerTLS runs the reference partner site over HTTPS and returns
// its base URL and a PEM file of the certificate it serves.
func startPartnerTLS(t *testing.T, serverID string) (base, caFile string) {
	t.Helper()
	h, err := partnersite.NewHandler(partnersite.Config{SiteID: "shop", ServerID: serverID, ServerSecret: "s3cret", Realm: testDomain,
		Users: []partnersite.User{{Name: "alice", Password: "wonderland", Display: "Alice", Contacts: []login.Contact{{User: "bob", Display: "Bob"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "partner-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv.URL, caFile
}

// Partner sites are reached over verified HTTPS: an http:// URL stops the
// start unless the lab flag is set; a site whose certificate --partner-ca
// vouches for logs users in; without it the login fails.
func TestPartnerSitesOverHTTPS(t *testing.T) {
	cmd := exec.Command(bridgeBinary(t), "config", "print", "--partner-site", "shop,http://127.0.0.1:9/verify,bridge-1,s3cret")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--lab-allow-http-partners") {
		t.Fatalf("an http:// partner URL was not refused: %v\n%s", err, out)
	}
	if out, err := exec.Command(bridgeBinary(t), "config", "print", "--lab-allow-http-partners",
		"--partner-site", "shop,http://127.0.0.1:9/verify,bridge-1,s3cret").CombinedOutput(); err != nil {
		t.Fatalf("with the lab flag: %v\n%s", err, out)
	}

	site, ca := startPartnerTLS(t, "bridge-1")
	args := []string{"--http-listen", "127.0.0.1:0", "--api-token", "tok",
		"--partner-site", "shop," + site + "/verify,bridge-1,s3cret," + site + "/contacts"}
	login := map[string]string{"user": "alice#shop", "password": "wonderland"}

	b := startBridge(t, t.TempDir(), append(args, "--partner-ca", ca)...)
	var res struct {
		User string `json:"user"`
	}
	if code := postJSON(t, "http://"+b.addrs.HTTP+"/v1/login", "tok", login, &res); code != 200 || res.User != "alice~shop" {
		t.Fatalf("partner login over https: %d %+v", code, res)
	}

	unverified := startBridge(t, t.TempDir(), args...)
	if code := postJSON(t, "http://"+unverified.addrs.HTTP+"/v1/login", "tok", login, nil); code == 200 {
		t.Fatal("logged in through a partner site whose certificate no trusted CA signed")
	}
}
