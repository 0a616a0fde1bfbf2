package main

import (
	"os/exec"
	"strings"
	"testing"
)

// curlCode runs curl and returns the HTTP status it saw.
func curlCode(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("curl", append([]string{"-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %v: %v: %s", args, err, out)
	}
	return string(out)
}

// API clients from the command line, seen by curl: a sending client sends
// and reads its message but cannot provision; a provisioning client
// provisions but cannot send; a user logs in with no token at all, and
// one address's logins past --api-logins-per-minute get 429; wrong
// tokens past --api-auth-failures-per-minute lock that address out.
func TestAPIClientsWithCurl(t *testing.T) {
	needCommand(t, "curl")
	const (
		shopTok = "shop-token-0123456789"
		crmTok  = "crm-token-01234567890"
	)
	args := append([]string{"--http-listen", "127.0.0.1:0",
		"--api-client", "shop:send+read:0:" + shopTok, "--api-client", "crm:provision:0:" + crmTok,
		"--api-logins-per-minute", "2", "--api-auth-failures-per-minute", "2"},
		sipUserFlag("8613800000031", "pw31")...)
	b := startBridge(t, t.TempDir(), args...)
	base := "http://" + b.addrs.HTTP
	bearer := func(tok string) []string { return []string{"-H", "Authorization: Bearer " + tok} }
	js := []string{"-H", "Content-Type: application/json"}
	send := append(append(bearer(shopTok), js...), "-d", `{"from":"+8613800000001","to":"+8613800000002","text":"from shop"}`, base+"/v1/messages")

	out, err := exec.Command("curl", append([]string{"-sS", "--max-time", "5"}, send...)...).CombinedOutput()
	id, ok := strings.CutPrefix(strings.TrimSpace(string(out)), `{"id":"`)
	if err != nil || !ok {
		t.Fatalf("shop sends: %v %s", err, out)
	}
	id, _, _ = strings.Cut(id, `"`)
	for _, c := range []struct {
		name, want string
		args       []string
	}{
		{"shop reads its message", "200", append(bearer(shopTok), base+"/v1/messages/"+id)},
		{"crm cannot read messages", "403", append(bearer(crmTok), base+"/v1/messages/"+id)},
		{"shop cannot list users", "403", append(bearer(shopTok), base+"/v1/users")},
		{"crm lists users", "200", append(bearer(crmTok), base+"/v1/users")},
		{"crm cannot send", "403", append(append(bearer(crmTok), js...), "-d", `{"from":"+8613800000001","to":"+8613800000002","text":"x"}`, base+"/v1/messages")},
		{"login without a token", "200", append(js, "-d", `{"user":"8613800000031","password":"pw31"}`, base+"/v1/login")},
		{"wrong password, no token", "403", append(js, "-d", `{"user":"8613800000031","password":"guess"}`, base+"/v1/login")},
		{"third login a minute", "429", append(js, "-d", `{"user":"8613800000031","password":"pw31"}`, base+"/v1/login")},
		{"wrong token", "401", append(bearer("guess-one"), base+"/v1/users")},
		{"another wrong token", "401", append(bearer("guess-two"), base+"/v1/users")},
		{"right token after two wrong ones", "429", append(bearer(crmTok), base+"/v1/users")},
	} {
		if got := curlCode(t, c.args...); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}
