package partnersite_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/smsbridge/bridge/login"
	"github.com/smsbridge/bridge/login/partnersite"
)

var now = time.Unix(1_700_000_000, 0)

func start(t *testing.T) *httptest.Server {
	t.Helper()
	h, err := partnersite.NewHandler(partnersite.Config{
		SiteID: "shop", ServerID: "bridge-1", ServerSecret: "sec",
		Users: []partnersite.User{{Name: "alice", Password: "pw"}},
		Now:   func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func do(t *testing.T, srv *httptest.Server, method, uri, serverID, secret string, body []byte) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+uri, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if serverID != "" {
		req.Header.Set(login.HeaderServerID, serverID)
		req.Header.Set(login.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		req.Header.Set(login.HeaderSignature, login.Sign(secret, method, uri, serverID, now.Unix(), body))
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestServerChecksBridgeFirst(t *testing.T) {
	srv := start(t)
	good, _ := json.Marshal(login.VerifyRequest{ServerID: "bridge-1", User: "alice", Password: "pw"})
	if code, m := do(t, srv, "POST", "/verify", "bridge-1", "sec", good); code != 200 || m["allow"] != true {
		t.Fatalf("good request: %d %v", code, m)
	}
	if code, _ := do(t, srv, "POST", "/verify", "", "", good); code != http.StatusForbidden {
		t.Errorf("no headers: %d", code)
	}
	if code, _ := do(t, srv, "POST", "/verify", "bridge-2", "sec", good); code != http.StatusForbidden {
		t.Errorf("other server id: %d", code)
	}
	if code, _ := do(t, srv, "POST", "/verify", "bridge-1", "wrong", good); code != http.StatusUnauthorized {
		t.Errorf("wrong secret: %d", code)
	}
	mismatch, _ := json.Marshal(login.VerifyRequest{ServerID: "bridge-2", User: "alice", Password: "pw"})
	if code, _ := do(t, srv, "POST", "/verify", "bridge-1", "sec", mismatch); code != http.StatusForbidden {
		t.Errorf("body server id differs: %d", code)
	}
	both, _ := json.Marshal(login.VerifyRequest{ServerID: "bridge-1", User: "alice", Password: "pw", Digest: &login.DigestParams{}})
	if code, _ := do(t, srv, "POST", "/verify", "bridge-1", "sec", both); code != http.StatusBadRequest {
		t.Errorf("password and digest: %d", code)
	}
	if code, m := do(t, srv, "POST", "/verify", "bridge-1", "sec", []byte(`{"server_id":"bridge-1","user":"alice","password":"x"}`)); code != 200 || m["allow"] != false {
		t.Errorf("wrong password: %d %v", code, m)
	}
	if code, _ := do(t, srv, "GET", "/contacts?user=alice", "bridge-1", "sec", nil); code != 200 {
		t.Errorf("contacts: %d", code)
	}
	// signature covers the query: asking for another user with alice's signature fails
	req, _ := http.NewRequest("GET", srv.URL+"/contacts?user=mallory", nil)
	req.Header.Set(login.HeaderServerID, "bridge-1")
	req.Header.Set(login.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(login.HeaderSignature, login.Sign("sec", "GET", "/contacts?user=alice", "bridge-1", now.Unix(), nil))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("moved signature: %d", resp.StatusCode)
	}
}

func TestLoadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "site.json")
	os.WriteFile(p, []byte(`{"site_id":"shop","server_id":"bridge-1","server_secret":"s","users":[{"name":"alice","password":"pw","contacts":[{"user":"bob"}]}],"posts":[{"id":"1","title":"t","published":1}]}`), 0o600)
	c, err := partnersite.LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.SiteID != "shop" || len(c.Users) != 1 || c.Users[0].Contacts[0].User != "bob" || len(c.Posts) != 1 {
		t.Fatalf("%+v", c)
	}
	if _, err := partnersite.LoadFile(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Fatal("missing file accepted")
	}
	if _, err := partnersite.NewHandler(partnersite.Config{}); err == nil {
		t.Fatal("config without server id accepted")
	}
}
