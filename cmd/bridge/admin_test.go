package main

// `bridge admin` against a real bridge process: ESMEs bound with the
// fiorix and gosmpp clients, the SMSC simulator, the log the process
// writes; the commands are the same binary, run as an operator would.

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	fsmpp "github.com/fiorix/go-smpp/smpp"
	"github.com/linxGnu/gosmpp"

	"github.com/smsbridge/bridge/api"
	"github.com/smsbridge/bridge/internal/testutil"
)

const adminToken = "adm1n-t0ken"

// adminProc is a bridge process with its API on loopback.
type adminProc struct {
	*proc
	api string // http://HOST:PORT
}

func startAdminProc(t *testing.T, args ...string) *adminProc {
	t.Helper()
	httpAddr := freeTCPPort(t)
	p := startProc(t, freeTCPPort(t), append([]string{"--http-listen", httpAddr, "--api-token", adminToken,
		"--data-dir", t.TempDir(), "--smpp-account", "esme2:secret2", "--log-level", "info"}, args...)...)
	t.Cleanup(p.stop)
	return &adminProc{proc: p, api: "http://" + httpAddr}
}

// admin runs `bridge admin ARGS...` against a's API with the token in the
// environment, unless env says otherwise (KEY=VALUE pairs).
func (a *adminProc) admin(t *testing.T, stdin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bridgeBinary(t), append(append([]string{"admin"}, args...), "--url", a.api)...)
	cmd.Env = append(append(os.Environ(), "BRIDGE_API_TOKEN="+adminToken), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("bridge admin %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// ok runs a command that must succeed and returns what it printed.
func (a *adminProc) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := a.admin(t, "", nil, args...)
	if code != 0 {
		t.Fatalf("bridge admin %v: exit %d\n%s%s", args, code, out, errOut)
	}
	return out
}

// jsonOf runs a command with --json and decodes what it printed into v.
func (a *adminProc) jsonOf(t *testing.T, v any, args ...string) {
	t.Helper()
	out := a.ok(t, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("bridge admin %v --json: %v\n%s", args, err, out)
	}
}

// send posts a message through the API and returns its id.
func (a *adminProc) send(t *testing.T, to string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", a.api+"/v1/messages", strings.NewReader(`{"from":"+8613800000001","to":"`+to+`","text":"hi"}`))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct{ ID string }
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != 202 || body.ID == "" {
		t.Fatalf("send: %d %v %+v", res.StatusCode, err, body)
	}
	return body.ID
}

// line reports whether out has a line matching the pattern, columns
// separated by any run of spaces.
func line(out, pattern string) bool {
	return regexp.MustCompile(`(?m)^` + strings.ReplaceAll(pattern, " ", ` +`) + `\s*$`).MatchString(out)
}

// Binds by two client libraries show up with their system_id, bind type
// and address; the SMSC's bind shows up, then down with the reason; a
// message for an offline IM user is counted as held.
func TestAdminBindsSMSCAndQueues(t *testing.T) {
	sc := startSMSC(t)
	a := startAdminProc(t, "--smsc", sc.url())

	if out := a.ok(t, "binds"); !strings.Contains(out, "no SMPP session is bound") {
		t.Fatalf("binds before any: %s", out)
	}
	trx := &fsmpp.Transceiver{Addr: a.smpp, User: "esme1", Passwd: "secret1", RespTimeout: 5 * time.Second}
	if st := <-trx.Bind(); st.Error() != nil {
		t.Fatalf("fiorix bind: %v", st.Error())
	}
	defer trx.Close()
	// The dialer notes the address gosmpp binds from, which the bridge must report.
	var local string
	dial := func(addr string) (net.Conn, error) {
		c, err := gosmpp.NonTLSDialer(addr)
		if err == nil {
			local = c.LocalAddr().String()
		}
		return c, err
	}
	tx, err := gosmpp.NewSession(gosmpp.TXConnector(dial, gosmpp.Auth{SMSC: a.smpp, SystemID: "esme2", Password: "secret2"}),
		gosmpp.Settings{ReadTimeout: 10 * time.Second, EnquireLink: 5 * time.Second}, 5*time.Second)
	if err != nil {
		t.Fatalf("gosmpp bind: %v", err)
	}
	defer tx.Close()

	var l api.BindList
	a.jsonOf(t, &l, "binds")
	if len(l.Binds) != 2 {
		t.Fatalf("binds: %+v", l)
	}
	byID := map[string]api.BindView{}
	for _, b := range l.Binds {
		byID[b.SystemID] = b
	}
	if b := byID["esme1"]; b.Bind != "transceiver" || !strings.HasPrefix(b.Remote, "127.0.0.1:") || b.Window != 256 || time.Since(b.Since) > time.Minute {
		t.Fatalf("esme1: %+v", b)
	}
	if b := byID["esme2"]; b.Bind != "transmitter" || b.Remote != local {
		t.Fatalf("esme2: %+v, want a transmitter from %s", b, local)
	}
	out := a.ok(t, "binds")
	if !line(out, `SYSTEM_ID BIND REMOTE SINCE WINDOW INBOUND`) ||
		!line(out, `esme1 transceiver 127\.0\.0\.1:\d+ \S+Z \(\d+s ago\) 0/256 0/256`) ||
		!line(out, `esme2 transmitter `+regexp.QuoteMeta(byID["esme2"].Remote)+` .* 0/256 0/256`) {
		t.Fatalf("binds table:\n%s", out)
	}

	testutil.WaitFor(t, "the SMSC bind", 10*time.Second, func() bool { return strings.Contains(a.ok(t, "smsc"), "up since") })
	out = a.ok(t, "smsc")
	if !line(out, `SMSC `+regexp.QuoteMeta(sc.addr)) || !line(out, `SYSTEM_ID bridge`) || !line(out, `BIND transceiver`) || !line(out, `WINDOW 0/256`) {
		t.Fatalf("smsc while up:\n%s", out)
	}
	sc.srv.Close()
	// First the session's end, then each rebind's failure.
	testutil.WaitFor(t, "the SMSC bind down", 10*time.Second, func() bool { return strings.Contains(a.ok(t, "smsc"), "refused") })
	out = a.ok(t, "smsc")
	if !line(out, `STATE down since .*`) || !line(out, `LAST ERROR .*connection refused`) {
		t.Fatalf("smsc while down:\n%s", out)
	}

	id := a.send(t, "sip:nobody@"+testDomain)
	var q api.QueueView
	testutil.WaitFor(t, "the message held", 10*time.Second, func() bool {
		a.jsonOf(t, &q, "queues")
		for _, w := range q.Waiting {
			if w.State == "held" && w.Route == "im" && w.Count == 1 {
				return q.Pending == 1
			}
		}
		return false
	})
	out = a.ok(t, "queues")
	if !line(out, `held im 1`) || !line(out, `retry sms 0`) || !line(out, `pending 1 of 100000 .*`) {
		t.Fatalf("queues:\n%s", out)
	}
	out = a.ok(t, "message", id)
	if !line(out, `ID `+id) || !line(out, `TO sip:nobody@`+testDomain) || !line(out, `STATE accepted`) || !strings.Contains(out, "HISTORY") {
		t.Fatalf("message:\n%s", out)
	}
}

// An account added through `admin accounts add` binds at once; one a
// route targets cannot be deleted, and says why; once the routes no
// longer name it, it goes.
func TestAdminAccountsAndRoutes(t *testing.T) {
	sc := startSMSC(t)
	a := startAdminProc(t, "--smsc", sc.url())
	if out, errOut, code := a.admin(t, "pw3\n", nil, "accounts", "add", "esme3", "--tps", "50", "--sources", "+8613,+8615"); code != 0 || out != "account esme3 added\n" {
		t.Fatalf("accounts add: exit %d %s%s", code, out, errOut)
	}
	if out := a.ok(t, "accounts"); !line(out, `esme3 8613,8615 50 default api \S+`) {
		t.Fatalf("accounts:\n%s", out)
	}
	tx := &fsmpp.Transmitter{Addr: a.smpp, User: "esme3", Passwd: "pw3", RespTimeout: 5 * time.Second}
	if st := <-tx.Bind(); st.Error() != nil {
		t.Fatalf("bind as the added account: %v", st.Error())
	}
	tx.Close()

	out := a.ok(t, "routes", "set", "default=smsc", "cm=esme:esme3@+86138")
	if !line(out, `default smsc \(any\)`) || !line(out, `cm esme:esme3 \+86138`) {
		t.Fatalf("routes set:\n%s", out)
	}
	var rt api.RouteTable
	a.jsonOf(t, &rt, "routes")
	if len(rt.Routes) != 2 || rt.Routes[1].Target != "esme:esme3" {
		t.Fatalf("routes: %+v", rt)
	}
	out, errOut, code := a.admin(t, "", nil, "accounts", "delete", "esme3")
	if code != 1 || out != "" || !strings.Contains(errOut, "409 Conflict") || !strings.Contains(errOut, "target of route cm") {
		t.Fatalf("deleting a routed account: exit %d %q %q", code, out, errOut)
	}
	if out, errOut, code := a.admin(t, `{"routes":[{"name":"default","target":"smsc"}]}`, nil, "routes", "set", "--file", "-"); code != 0 || !line(out, `default smsc \(any\)`) || strings.Contains(out, "esme3") {
		t.Fatalf("routes set --file -: exit %d\n%s%s", code, out, errOut)
	}
	if out := a.ok(t, "accounts", "delete", "esme3"); out != "account esme3 deleted\n" {
		t.Fatalf("accounts delete: %q", out)
	}
	if out := a.ok(t, "accounts"); strings.Contains(out, "esme3") {
		t.Fatalf("deleted account still listed:\n%s", out)
	}
	tx = &fsmpp.Transmitter{Addr: a.smpp, User: "esme3", Passwd: "pw3", RespTimeout: 5 * time.Second}
	if st := <-tx.Bind(); st.Error() == nil {
		t.Fatal("a deleted account still binds")
	}
	tx.Close()
}

// The level set through `admin log-level` is the running process's: a
// message's debug line appears only once it is debug.
func TestAdminLogLevel(t *testing.T) {
	a := startAdminProc(t)
	if out := a.ok(t, "log-level"); out != "info\n" {
		t.Fatalf("log-level: %q", out)
	}
	quiet := a.send(t, "+8613800000002")
	if out := a.ok(t, "log-level", "debug"); out != "debug\n" {
		t.Fatalf("log-level debug: %q", out)
	}
	loud := a.send(t, "+8613800000003")
	logged := func() string { b, _ := os.ReadFile(a.log.Name()); return string(b) }
	testutil.WaitForState(t, 10*time.Second, func() bool { return strings.Contains(logged(), "level=DEBUG msg=route part=router id="+loud) },
		func() string { return "no debug line of " + loud + " in the log:\n" + logged() })
	if strings.Contains(logged(), "id="+quiet) {
		t.Fatalf("the message sent at info has a debug line:\n%s", logged())
	}
	if !strings.Contains(logged(), `msg="log level set through the API" part=http from=info to=debug`) {
		t.Fatalf("the change is not logged:\n%s", logged())
	}
	if out := a.ok(t, "log-level", "--json"); out != `{"level":"debug"}`+"\n" {
		t.Fatalf("log-level --json: %q", out)
	}
}

// A refusal prints the server's reason and exits 1; a command line the
// command cannot run exits 2.
func TestAdminErrors(t *testing.T) {
	a := startAdminProc(t)
	for _, c := range []struct {
		env      []string
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"BRIDGE_API_TOKEN=wrong"}, []string{"binds"}, 1, "bridge admin binds: 401 Unauthorized: missing or wrong bearer token\n"},
		{nil, []string{"queues", "--token", "wrong"}, 1, "401 Unauthorized: missing or wrong bearer token\n"},
		{[]string{"BRIDGE_API_TOKEN="}, []string{"smsc"}, 1, "missing or wrong bearer token (give --token or set BRIDGE_API_TOKEN)"},
		{nil, []string{"log-level", "verbose"}, 1, `400 Bad Request: level "verbose": want debug, info, warn or error`},
		{nil, []string{"message", "1lhamslcn0hk00000001"}, 1, "404 Not Found: no message 1lhamslcn0hk00000001"},
		{nil, []string{"smsc"}, 0, ""},
		{nil, []string{"accounts", "delete", "ghost"}, 1, `404 Not Found: not found: account "ghost"`},
		{nil, []string{"accounts", "add", "esme9"}, 2, "no password"},
		{nil, []string{"routes", "set", "nonsense"}, 2, `route "nonsense": want NAME=TARGET[@PREFIX]`},
		{nil, []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{nil, []string{"binds", "--nope"}, 2, "flag provided but not defined: -nope"},
	} {
		out, errOut, code := a.admin(t, "", c.env, c.args...)
		if code != c.code || !strings.Contains(errOut, c.inStderr) {
			t.Errorf("bridge admin %v: exit %d, stderr %q, stdout %q; want exit %d and %q", c.args, code, errOut, out, c.code, c.inStderr)
		}
		if c.code == 0 && errOut != "" {
			t.Errorf("bridge admin %v: stderr %q", c.args, errOut)
		}
	}
	// Nobody listening: the transport's error, exit 1.
	cmd := exec.Command(bridgeBinary(t), "admin", "binds", "--url", "http://"+freeTCPPort(t))
	if out, err := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "connection refused") {
		t.Fatalf("no bridge there: %v %s", err, out)
	}
}

// Over HTTPS the bridge's certificate is checked against --ca; without it
// the system's roots refuse a private CA.
func TestAdminOverHTTPS(t *testing.T) {
	f := newTLSFiles(t)
	httpAddr := freeTCPPort(t)
	p := startProc(t, freeTCPPort(t), append(f.args(), "--http-listen", httpAddr, "--http-tls",
		"--api-token", adminToken, "--data-dir", t.TempDir())...)
	defer p.stop()
	url := "https://localhost:" + httpAddr[strings.LastIndexByte(httpAddr, ':')+1:]
	run := func(extra ...string) (string, int) {
		cmd := exec.Command(bridgeBinary(t), append([]string{"admin", "log-level", "--url", url, "--token", adminToken}, extra...)...)
		out, _ := cmd.CombinedOutput()
		return string(out), cmd.ProcessState.ExitCode()
	}
	if out, code := run("--ca", f.ca.File); code != 0 || out != "warn\n" {
		t.Fatalf("with --ca: exit %d %q", code, out)
	}
	if out, code := run(); code != 1 || !strings.Contains(out, "certificate") {
		t.Fatalf("without --ca: exit %d %q", code, out)
	}
}
