package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goxmpp "github.com/xmppo/go-xmpp"

	"github.com/smsbridge/bridge/internal/prosodytest"
	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/mcp"
	"github.com/smsbridge/bridge/robot"
	"github.com/smsbridge/bridge/smpp"
	"github.com/smsbridge/bridge/smstext"
)

// phone is a handset behind the SMSC simulator: what it sends reaches the
// bridge as deliver_sm; what the bridge sends it is a submit_sm at the SMSC.
type phone struct {
	t      *testing.T
	sc     *smsc
	number string // digits, international
}

func (p phone) send(to, text string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pdu := &smpp.PDU{ID: smpp.DeliverSM, SourceAddrTON: 1, SourceAddrNPI: 1, SourceAddr: p.number,
		DestAddrTON: 0, DestAddrNPI: 1, DestAddr: to, ShortMessage: []byte(text)}
	for {
		_, err := p.sc.srv.Deliver(ctx, "bridge", pdu)
		if err == nil {
			return
		}
		if !strings.Contains(err.Error(), "not bound") || ctx.Err() != nil {
			p.t.Fatalf("deliver_sm from %s to %s: %v", p.number, to, err)
		}
		time.Sleep(20 * time.Millisecond) // the bridge binds to its SMSC after it starts
	}
}

// inbox is what the SMSC was given for this phone: "source|text" each.
func (p phone) inbox() []string {
	var out []string
	for _, pdu := range p.sc.received() {
		if pdu.DestAddr == p.number {
			text, err := smstext.Decode(pdu.DataCoding, pdu.ShortMessage)
			if err != nil {
				text = fmt.Sprintf("undecodable %x: %v", pdu.ShortMessage, err)
			}
			out = append(out, pdu.SourceAddr+"|"+text)
		}
	}
	return out
}

func (p phone) waitFor(what string, n int) []string {
	p.t.Helper()
	testutil.WaitForState(p.t, 10*time.Second, func() bool { return len(p.inbox()) >= n },
		func() string { return what + ": " + strings.Join(p.inbox(), " / ") })
	return p.inbox()
}

func waitIM(t *testing.T, u *ua, what string, n int) []string {
	t.Helper()
	testutil.WaitForState(t, 10*time.Second, func() bool { return len(u.received()) >= n },
		func() string { return what + ": " + strings.Join(u.received(), " / ") })
	return u.received()
}

// A group with members on SMS and SIP: created and joined by SMS keywords
// and imc-style commands, posts reach IM members in IM and phones as SMS
// from the group's number ("[group] nick: text"), a reply to the access
// number alone goes to the group last heard from, STOP silences a number,
// an offline IM member with a number gets SMS, a non-member is told so,
// and the group outlives a restart.
func TestGroupAcrossSMSAndSIP(t *testing.T) {
	sc := startSMSC(t)
	dir := t.TempDir()
	args := []string{"--http-listen", "127.0.0.1:0", "--api-token", "tok", "--smsc", sc.url(), "--group-number", "1065800"}
	b := startBridge(t, dir, args...)
	api := "http://" + b.addrs.HTTP
	for _, u := range []map[string]string{{"name": "alice", "password": "alicepw"}, {"name": "bob", "password": "bobpw", "msisdn": "+8613800000002"}} {
		if code := postJSON(t, api+"/v1/users", "tok", u, nil); code != 201 {
			t.Fatalf("create %s: %d", u["name"], code)
		}
	}
	carol := phone{t, sc, "8613900000003"}
	dave := phone{t, sc, "8613900000004"}
	eve := phone{t, sc, "8613900000005"}

	carol.send("1065800", "#create hikers")
	got := carol.waitFor("carol's #create answer", 1)
	m := regexp.MustCompile(`^8610658000001\|\[hikers\] Group hikers created; its number is (\d+)\.`).FindStringSubmatch(got[0])
	if m == nil {
		t.Fatalf("answer to #create: %q", got[0])
	}
	number := m[1] // 8610658000001
	if number != "8610658000001" {
		t.Fatalf("the first group's number is %s", number)
	}

	alice := startUA(t, "alice", "alicepw")
	if code := alice.register(t, b, 300); code != 200 {
		t.Fatalf("REGISTER alice: %d", code)
	}
	bob := startUA(t, "bob", "bobpw")
	if code := bob.register(t, b, 300); code != 200 {
		t.Fatalf("REGISTER bob: %d", code)
	}
	if code := alice.message(t, b, "1065800", "join HIKERS"); code != 202 && code != 200 {
		t.Fatalf("alice's JOIN: %d", code)
	}
	if got := waitIM(t, alice, "alice's welcome", 1); !strings.Contains(got[0], "Welcome to hikers") {
		t.Fatalf("alice got %q", got[0])
	}
	if code := bob.message(t, b, number, "#join"); code != 202 && code != 200 {
		t.Fatalf("bob's #join: %d", code)
	}
	waitIM(t, bob, "bob's welcome", 1)
	dave.send("1065800", "/JOIN hikers")
	if got := dave.waitFor("dave's welcome", 1); !strings.HasPrefix(got[0], number+"|[hikers] Welcome to hikers (4 members)") {
		t.Fatalf("dave got %q", got)
	}
	dave.send(number, "NICK dave")
	dave.waitFor("dave's nick answer", 2)

	// carol posts by SMS to the group's number.
	carol.send(number, "summit at noon?")
	if got := waitIM(t, alice, "the post at alice", 2); got[1] != "~0003: summit at noon?" || !strings.Contains(alice.fromOf(1), number) {
		t.Fatalf("alice got %q from %q", got[1], alice.fromOf(1))
	}
	if got := waitIM(t, bob, "the post at bob (online: IM, not SMS)", 2); got[1] != "~0003: summit at noon?" {
		t.Fatalf("bob got %q", got[1])
	}
	if got := dave.waitFor("the post at dave", 3); got[2] != number+"|[hikers] ~0003: summit at noon?" {
		t.Fatalf("dave got %q", got[2])
	}

	// dave answers the access number alone: it goes to hikers.
	dave.send("1065800", "count me in")
	if got := waitIM(t, alice, "dave's reply at alice", 3); got[2] != "dave: count me in" {
		t.Fatalf("alice got %q", got[2])
	}
	if got := carol.waitFor("dave's reply at carol", 2); got[1] != number+"|[hikers] dave: count me in" {
		t.Fatalf("carol got %q", got)
	}

	// STOP: dave hears nothing more from groups; bob offline gets SMS.
	dave.send(number, "stop")
	if got := dave.waitFor("STOP confirmed", 4); !strings.Contains(got[3], "no more group messages") {
		t.Fatalf("dave got %q", got[3])
	}
	if code := bob.register(t, b, 0); code != 200 {
		t.Fatalf("unREGISTER bob: %d", code)
	}
	if code := alice.message(t, b, number, "bring water"); code != 202 && code != 200 {
		t.Fatalf("alice's post: %d", code)
	}
	bobPhone := phone{t, sc, "8613800000002"}
	if got := bobPhone.waitFor("alice's post at offline bob, as SMS", 1); got[0] != number+"|[hikers] alice: bring water" {
		t.Fatalf("bob's phone got %q", got)
	}
	carol.waitFor("alice's post at carol", 3)
	time.Sleep(300 * time.Millisecond) // a copy to dave would have reached the SMSC with carol's
	if got := dave.inbox(); len(got) != 4 {
		t.Fatalf("dave (STOP) got %q", got[4:])
	}

	// eve is not a member.
	eve.send(number, "hello?")
	if got := eve.waitFor("eve's answer", 1); !strings.Contains(got[0], "not a member of hikers") {
		t.Fatalf("eve got %q", got)
	}

	// eve creates bikers, then joins hikers: she is in two groups, and the
	// one she last heard from is hikers.
	eve.send("1065800", "#create bikers")
	eve.waitFor("eve's #create", 2)
	eve.send("1065800", "JOIN hikers")
	eve.waitFor("eve's welcome to hikers", 3)

	// After a restart the group, its members, the STOP and each member's
	// last group are still there.
	b.stop()
	b = startBridge(t, dir, args...)
	eve.send("1065800", "a reply to the access number")
	testutil.WaitForState(t, 10*time.Second, func() bool {
		return slices.Contains(carol.inbox(), number+"|[hikers] ~0005: a reply to the access number")
	}, func() string {
		return "eve's reply at carol: " + strings.Join(carol.inbox(), " / ") + "; eve: " + strings.Join(eve.inbox(), " / ")
	})
	carol.send(number, "still here")
	if got := bobPhone.waitFor("the post after the restart", 3); got[2] != number+"|[hikers] ~0003: still here" {
		t.Fatalf("bob's phone got %q", got)
	}
	time.Sleep(300 * time.Millisecond)
	if got := dave.inbox(); len(got) != 4 {
		t.Fatalf("dave (STOP) got %q after the restart", got[4:])
	}
}

// Groups over the HTTP API: created with an owner, members added, a post
// from a member and a robot's answer reach the others, errors are 4xx with
// a reason, and a destroyed group is gone.
func TestGroupOverAPI(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--api-token", "tok", "--smsc", sc.url())
	api := "http://" + b.addrs.HTTP
	alice := registeredUser(t, b, "alice", "alicepw")
	dave := phone{t, sc, "8613900000004"}

	var g struct {
		Name   string
		Number string
		Size   int
	}
	if code := postJSON(t, api+"/v1/groups", "tok", map[string]any{"name": "Chess", "owner": "+8613900000004", "limit": 3}, &g); code != 201 || g.Name != "chess" || g.Number != "+8610658000001" {
		t.Fatalf("create chess: %d %+v", code, g)
	}
	var e struct{ Error string }
	if code := postJSON(t, api+"/v1/groups", "tok", map[string]any{"name": "chess", "owner": "+8613900000004"}, &e); code != 409 || !strings.Contains(e.Error, "exists") {
		t.Fatalf("create chess again: %d %q", code, e.Error)
	}
	if code := postJSON(t, api+"/v1/groups", "tok", map[string]any{"name": "a b", "owner": "+8613900000004"}, &e); code != 400 {
		t.Fatalf("a bad name: %d %q", code, e.Error)
	}
	if code := postJSON(t, api+"/v1/groups/chess/members", "tok", map[string]string{"address": "sip:alice@" + testDomain}, &g); code != 200 || g.Size != 2 {
		t.Fatalf("add alice: %d %+v", code, g)
	}
	var id struct{ ID string }
	if code := postJSON(t, api+"/v1/groups/chess/messages", "tok", map[string]string{"from": "+8613900000004", "text": "e4"}, &id); code != 202 || id.ID == "" {
		t.Fatalf("dave's post: %d %+v", code, id)
	}
	if got := waitIM(t, alice, "dave's post at alice", 1); got[0] != "~0004: e4" {
		t.Fatalf("alice got %q", got)
	}
	if code := postJSON(t, api+"/v1/groups/chess/messages", "tok", map[string]string{"robot": "coach", "text": "good opening"}, &id); code != 202 {
		t.Fatalf("the robot's post: %d", code)
	}
	if got := waitIM(t, alice, "the robot's post at alice", 2); got[1] != "coach: good opening" {
		t.Fatalf("alice got %q", got)
	}
	if got := dave.waitFor("the robot's post at dave", 1); got[0] != "8610658000001|[chess] coach: good opening" {
		t.Fatalf("dave got %q", got)
	}
	if code := postJSON(t, api+"/v1/groups/chess/messages", "tok", map[string]string{"from": "+8613900000009", "text": "let me in"}, &e); code != 403 {
		t.Fatalf("a non-member's post: %d %q", code, e.Error)
	}
	if code := postJSON(t, api+"/v1/groups/nosuch/messages", "tok", map[string]string{"from": "+8613900000004", "text": "x"}, &e); code != 404 {
		t.Fatalf("a post to no group: %d", code)
	}
	// The member limit (3) and a flood from one member.
	if code := postJSON(t, api+"/v1/groups/chess/members", "tok", map[string]string{"address": "+8613900000007"}, &g); code != 200 || g.Size != 3 {
		t.Fatalf("the third member: %d %+v", code, g)
	}
	if code := postJSON(t, api+"/v1/groups/chess/members", "tok", map[string]string{"address": "+8613900000008"}, &e); code != 409 || !strings.Contains(e.Error, "full") {
		t.Fatalf("a fourth member of a group limited to 3: %d %q", code, e.Error)
	}
	taken, throttled := 0, 0
	for i := range 10 {
		switch code := postJSON(t, api+"/v1/groups/chess/messages", "tok", map[string]string{"from": "+8613900000004", "text": fmt.Sprint("flood ", i)}, &e); code {
		case 202:
			taken++
		case 429:
			throttled++
		default:
			t.Fatalf("flood post %d: %d %q", i, code, e.Error)
		}
	}
	if taken < 4 || throttled == 0 {
		t.Fatalf("a flood of 10 posts: %d taken, %d throttled; want the burst of 5 taken, the rest 429", taken, throttled)
	}
	waitIM(t, alice, "the flood's taken posts at alice", 2+taken)
	req, _ := http.NewRequest("DELETE", api+"/v1/groups/chess", nil)
	req.Header.Set("Authorization", "Bearer tok")
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 204 {
		t.Fatalf("DELETE chess: %v %v", err, res)
	}
	res.Body.Close()
	if code := getJSON(t, api+"/v1/groups/chess", "tok", nil); code != 404 {
		t.Fatalf("chess after DELETE: %d", code)
	}
}

// startRobotsim builds and runs cmd/robotsim, the external robot server,
// on a free port; it returns its URL and a func counting the posts it
// accepted (its stdout lines after the first).
func startRobotsim(t *testing.T, args ...string) (url string, accepted func() []string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "robotsim")
	if out, err := exec.Command("go", "build", "-o", bin, "../robotsim").CombinedOutput(); err != nil {
		t.Fatalf("go build robotsim: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, append([]string{"--listen", "127.0.0.1:0"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		t.Fatal("robotsim printed no address")
	}
	addr, ok := strings.CutPrefix(sc.Text(), "listening ")
	if !ok {
		t.Fatalf("robotsim's first line: %q", sc.Text())
	}
	var mu sync.Mutex
	var lines []string
	go func() {
		for sc.Scan() {
			mu.Lock()
			lines = append(lines, sc.Text())
			mu.Unlock()
		}
	}()
	return "http://" + addr + "/robot", func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(lines)
	}
}

// A group with a webhook robot (robotsim, a separate process checking the
// signature) and a keyword robot from YAML: their answers reach every
// member, robots never see robots' answers, and a robot with a wrong secret
// is refused by the robot server without delaying the group.
func TestGroupRobots(t *testing.T) {
	sc := startSMSC(t)
	simURL, accepted := startRobotsim(t, "--secret", "s3cret", "--reply", "echo", "--trigger", "robot")
	rules := filepath.Join(t.TempDir(), "robots.yaml")
	os.WriteFile(rules, []byte("robots:\n  - name: faq\n    rules:\n      - match: \"(?i)opening hours\"\n        answer: \"We are open 9-18.\"\n"), 0o600)
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--api-token", "tok", "--smsc", sc.url(),
		"--group-robots", rules, "--robot-webhook", "echo:s3cret@"+simURL, "--robot-webhook", "liar:wrong@"+simURL)
	api := "http://" + b.addrs.HTTP
	alice := registeredUser(t, b, "alice", "alicepw")
	dave := phone{t, sc, "8613900000004"}
	if code := postJSON(t, api+"/v1/groups", "tok", map[string]any{"name": "lab", "owner": "+8613900000004", "robots": []string{"echo", "faq", "liar"}}, nil); code != 201 {
		t.Fatalf("create lab: %d", code)
	}
	if code := postJSON(t, api+"/v1/groups/lab/members", "tok", map[string]string{"address": "sip:alice@" + testDomain}, nil); code != 200 {
		t.Fatalf("add alice: %d", code)
	}
	dave.send("8610658000001", "hello robot")
	got := waitIM(t, alice, "dave's post and the echo robot's answer at alice", 2)
	if got[0] != "~0004: hello robot" || got[1] != "echo: robot: hello robot" {
		t.Fatalf("alice got %q", got)
	}
	if got := dave.waitFor("the echo robot's answer at dave", 1); got[0] != "8610658000001|[lab] echo: robot: hello robot" {
		t.Fatalf("dave got %q", got)
	}
	if code := alice.message(t, b, "8610658000001", "what are the opening hours?"); code != 202 && code != 200 {
		t.Fatalf("alice's post: %d", code)
	}
	// The answer follows the question, but SMS (and the bridge) keep no
	// order between two messages to one phone.
	if got := dave.waitFor("the faq robot's answer at dave", 3); !slices.Contains(got, "8610658000001|[lab] alice: what are the opening hours?") ||
		!slices.Contains(got, "8610658000001|[lab] faq: We are open 9-18.") {
		t.Fatalf("dave got %q", got)
	}
	// The two posts reached robotsim once each, from echo only: liar's
	// requests fail its signature check, and no robot's answer is offered.
	testutil.WaitFor(t, "both posts at the robot server", 10*time.Second, func() bool { return len(accepted()) >= 2 })
	time.Sleep(300 * time.Millisecond)
	if lines := accepted(); len(lines) != 2 || !strings.Contains(lines[0], `"hello robot"`) || !strings.Contains(lines[1], "opening hours") {
		t.Fatalf("robotsim accepted %q", lines)
	}
}

// A 500-member group's posts, the bridge killed with SIGKILL while it fans
// them out: after a restart every member has every post its poster was told
// was taken (202), duplicates are what was in flight at the kill, and a post
// sent again under its Idempotency-Key makes no second copy. Members are
// phones: every copy is counted at the SMSC, an independent count of what
// each member got.
func TestGroupFanOutSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test starts real processes; skipped with -short")
	}
	sc := startCountingSMSC(t, "127.0.0.1:0", func(s *countingSMSC) { s.byDest = true })
	dir := t.TempDir()
	addr, httpAddr := freeTCPPort(t), freeTCPPort(t)
	args := []string{"--data-dir", dir, "--smsc", "smpp://bridge:pw@" + sc.addr, "--http-listen", httpAddr, "--api-token", "tok",
		"--group-number", "1065800"}
	p := startProc(t, addr, args...)
	defer func() { p.stop() }()
	api := "http://" + httpAddr
	testutil.WaitFor(t, "the HTTP API", 10*time.Second, func() bool { return getJSON(t, api+"/v1/groups", "tok", nil) == 200 })

	const members = 500
	owner := "+8613700000000"
	if code := postJSON(t, api+"/v1/groups", "tok", map[string]any{"name": "big", "owner": owner, "limit": members}, nil); code != 201 {
		t.Fatalf("create big: %d", code)
	}
	var phones []string
	for i := 1; i < members; i++ {
		n := fmt.Sprintf("+86137%08d", i)
		phones = append(phones, n[1:])
		if code := postJSON(t, api+"/v1/groups/big/members", "tok", map[string]string{"address": n}, nil); code != 200 {
			t.Fatalf("add member %d: %d", i, code)
		}
	}

	// The poster sends each post until it is taken, under one key each,
	// as a client that lost an answer to a dead bridge does.
	post := func(i int) bool {
		body, _ := json.Marshal(map[string]string{"from": owner, "text": fmt.Sprintf("post %d", i)})
		req, _ := http.NewRequest("POST", api+"/v1/groups/big/messages", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok")
		req.Header.Set("Idempotency-Key", fmt.Sprintf("big-post-%d", i))
		res, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 202
	}
	const posts = 10
	var acked []int
	killed := false
	for i := 0; i < posts; i++ {
		for !post(i) {
			time.Sleep(100 * time.Millisecond)
		}
		acked = append(acked, i)
		if i == 3 && !killed {
			// Killed while post 3's copies go out.
			testutil.WaitFor(t, "post 3 on its way", 10*time.Second, func() bool { return sc.n.Load() > 3*(members-1)+50 })
			p.kill()
			killed = true
			t.Logf("killed with %d copies at the SMSC", sc.n.Load())
			p = startProc(t, addr, args...)
			testutil.WaitFor(t, "the HTTP API after the restart", 10*time.Second, func() bool { return getJSON(t, api+"/v1/groups", "tok", nil) == 200 })
			i-- // the client sends post 3 again: its answer may have been lost
			acked = acked[:len(acked)-1]
		}
	}
	missing := 0
	testutil.WaitForState(t, 60*time.Second, func() bool {
		missing = 0
		for _, i := range acked {
			for _, ph := range phones {
				if sc.count(fmt.Sprintf("%s|[big] ~0000: post %d", ph, i)) == 0 {
					missing++
				}
			}
		}
		return missing == 0
	}, func() string { return fmt.Sprintf("%d member copies of acknowledged posts missing", missing) })
	total, dups := 0, 0
	perPost := map[int]int{}
	for _, i := range acked {
		for _, ph := range phones {
			n := sc.count(fmt.Sprintf("%s|[big] ~0000: post %d", ph, i))
			total += n
			dups += n - 1
			perPost[i] += n - 1
		}
	}
	t.Logf("duplicates by post: %v", perPost)
	t.Logf("%d posts to %d members: %d copies at the SMSC, %d duplicates (%.3f%%)", len(acked), members-1, total, dups, 100*float64(dups)/float64(total))
	// At-least-once: a copy the SMSC took whose delivery was not yet on
	// disk at the kill goes again after the restart. That is what was in
	// flight, never more than one fan-out.
	if dups >= members {
		t.Fatalf("%d duplicates of %d copies: more than one fan-out's worth", dups, total)
	}
	// Every post sent again under its key, after the restart, adds nothing.
	before := sc.n.Load()
	for _, i := range acked {
		// 429s (the poster's rate limit) until taken
		testutil.WaitFor(t, fmt.Sprintf("post %d sent again taken", i), 20*time.Second, func() bool { return post(i) })
	}
	time.Sleep(500 * time.Millisecond)
	if after := sc.n.Load(); after != before {
		t.Fatalf("posts sent again under their keys made %d more copies", after-before)
	}
}

// A group reached from XMPP and the handset link: an XMPP user joins by a
// command to the access number's JID and posts by replying to the group's;
// a handset joins with a keyword sent as M to the group's number; a phone's
// post reaches both, each in its own network.
func TestGroupFromXMPPAndHandset(t *testing.T) {
	srv, xargs := startXMPP(t, prosodytest.Options{Users: map[string]string{"erin@" + xmppHost: "er1n"}})
	sc := startSMSC(t)
	args := append(xargs, "--http-listen", "127.0.0.1:0", "--api-token", "tok", "--smsc", sc.url(), "--mcp-listen", "127.0.0.1:0")
	b := startBridge(t, t.TempDir(), append(args, sipUserFlag("8613800000040", "hpw")...)...)
	api := "http://" + b.addrs.HTTP
	carol := phone{t, sc, "8613900000003"}
	carol.send("1065800", "#create hikers")
	carol.waitFor("carol's #create answer", 1)
	group := "+8610658000001@" + xmppGateway

	erin := srv.Login(t, "erin@"+xmppHost, "er1n", "phone")
	erin.RequestSubscription(xmppGateway)
	waitOnline(t, api, "xmpp:erin@"+xmppHost, "xmpp")
	erin.SendOrg(`<message to='+861065800@` + xmppGateway + `' type='chat' id='j1'><body>#join hikers</body></message>`)
	erin.WaitChat(t, "erin's welcome from the group's JID", func(ch goxmpp.Chat) bool {
		return ch.Remote == group && strings.HasPrefix(ch.Text, "Welcome to hikers")
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := registeredHandset(ctx, t, b, "8613800000040", "hpw")
	if code, err := h.SendMessage(ctx, "tel:+8610658000001", "JOIN hikers", false); err != nil || code != 200 && code != 280 {
		t.Fatalf("the handset's JOIN: %d, %v", code, err)
	}
	next := func(what string) mcp.Incoming {
		t.Helper()
		select {
		case in := <-h.Messages():
			return in
		case <-ctx.Done():
			t.Fatalf("no %s at the handset", what)
		}
		return mcp.Incoming{}
	}
	if in := next("welcome"); !strings.HasPrefix(in.Text, "Welcome to hikers (3 members)") {
		t.Fatalf("the handset got %q", in.Text)
	}

	carol.send("8610658000001", "summit at noon?")
	erin.WaitChat(t, "carol's post in XMPP", func(ch goxmpp.Chat) bool { return ch.Remote == group && ch.Text == "~0003: summit at noon?" })
	if in := next("carol's post"); in.Text != "~0003: summit at noon?" {
		t.Fatalf("the handset got %q", in.Text)
	}
	erin.SendOrg(`<message to='` + group + `' type='chat' id='p1'><body>on my way</body></message>`)
	if got := carol.waitFor("erin's post at carol", 2); got[1] != "8610658000001|[hikers] erin: on my way" {
		t.Fatalf("carol got %q", got)
	}
	if in := next("erin's post"); in.Text != "erin: on my way" {
		t.Fatalf("the handset got %q", in.Text)
	}
}

// registeredUser creates a directory user over the API and registers a SIP
// UA as them.
func registeredUser(t *testing.T, b *running, name, password string) *ua {
	t.Helper()
	if code := postJSON(t, "http://"+b.addrs.HTTP+"/v1/users", "tok", map[string]string{"name": name, "password": password}, nil); code != 201 {
		t.Fatalf("create %s: %d", name, code)
	}
	u := startUA(t, name, password)
	if code := u.register(t, b, 300); code != 200 {
		t.Fatalf("REGISTER %s: %d", name, code)
	}
	return u
}

// registeredHandset dials the MCP link and registers as user; it is closed
// when the test ends.
func registeredHandset(ctx context.Context, t *testing.T, b *running, user, password string) *mcp.Handset {
	t.Helper()
	h, err := mcp.Dial(ctx, b.addrs.MCP, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	if err := h.Register(ctx, user, password, testDomain, 600); err != nil {
		t.Fatalf("handset REGISTER %s: %v", user, err)
	}
	return h
}

// A robot posts later with its own credential, no API token: signed with
// its webhook secret, as itself, to a group it serves; anything else is
// refused.
func TestGroupRobotOwnCredential(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--api-token", "tok", "--smsc", sc.url(),
		"--robot-webhook", "echo:s3cret@http://127.0.0.1:9/robot", "--robot-webhook", "other:0ther@http://127.0.0.1:9/robot")
	api := "http://" + b.addrs.HTTP
	alice := registeredUser(t, b, "alice", "alicepw")
	if code := postJSON(t, api+"/v1/groups", "tok", map[string]any{"name": "lab", "owner": "sip:alice@" + testDomain, "robots": []string{"echo"}}, nil); code != 201 {
		t.Fatalf("create lab: %d", code)
	}
	signed := func(name, secret string, body map[string]string) int {
		t.Helper()
		raw, _ := json.Marshal(body)
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		req, _ := http.NewRequest("POST", api+"/v1/groups/lab/messages", bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Robot-Name", name)
		req.Header.Set("X-Robot-Timestamp", ts)
		req.Header.Set("X-Robot-Signature", robot.Sign([]byte(secret), ts, raw))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := signed("echo", "s3cret", map[string]string{"robot": "echo", "text": "later answer"}); code != 202 {
		t.Fatalf("echo's own signed post: %d", code)
	}
	if got := waitIM(t, alice, "echo's later answer", 1); got[0] != "echo: later answer" {
		t.Fatalf("alice got %q", got)
	}
	for name, tc := range map[string]struct {
		robot, secret string
		body          map[string]string
		want          int
	}{
		"wrong secret":     {"echo", "guess", map[string]string{"robot": "echo", "text": "x"}, 401},
		"unknown robot":    {"nobody", "s3cret", map[string]string{"robot": "nobody", "text": "x"}, 401},
		"as another robot": {"echo", "s3cret", map[string]string{"robot": "other", "text": "x"}, 403},
		"as a member":      {"echo", "s3cret", map[string]string{"from": "sip:alice@" + testDomain, "text": "x"}, 403},
		"not its group":    {"other", "0ther", map[string]string{"robot": "other", "text": "x"}, 403},
	} {
		if code := signed(tc.robot, tc.secret, tc.body); code != tc.want {
			t.Errorf("%s: %d, want %d", name, code, tc.want)
		}
	}
}
