package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fiorix/go-smpp/smpp/pdu/pdutext"

	"github.com/smsbridge/bridge/bridge"
	"github.com/smsbridge/bridge/internal/testutil"
)

// clusterRoutes are the NATS route addresses of nodes by name.
type clusterRoutes map[string]string

func newClusterRoutes(t *testing.T, names ...string) clusterRoutes {
	r := clusterRoutes{}
	for _, n := range names {
		r[n] = freeTCPPort(t)
	}
	return r
}

// flags make node name a member routed to all the others.
func (r clusterRoutes) flags(name string) []string {
	var others []string
	for n, addr := range r {
		if n != name {
			others = append(others, "nats://"+addr)
		}
	}
	return []string{"--node-name", name, "--nats-listen", "127.0.0.1:0", "--nats-cluster-listen", r[name], "--nats-routes", strings.Join(others, ",")}
}

// Three nodes share presence: a user registered at node a gets, through
// a, what is submitted at node c (over the API and by an SMPP client).
// With a killed, the next SMS for the user goes to the SMSC from c within
// the IM timeout and a margin, and an IM-only message waits until the user
// registers at b.
func TestClusterDeliversThroughOwnerNode(t *testing.T) {
	const user, pw, imTimeout = "8613800000021", "pw21", 5 * time.Second
	sc := startSMSC(t)
	routes := newClusterRoutes(t, "a", "b", "c")
	nodeFlags := func(name string) []string {
		return append(routes.flags(name), "--smsc", sc.url(), "--im-timeout", imTimeout.String())
	}

	// a is a process of its own, to be killed; b and c run in this one.
	sipA := strconv.Itoa(freeSIPPort(t))
	a := startProc(t, freeTCPPort(t), append(append([]string{"--data-dir", t.TempDir(), "--sip-listen", "127.0.0.1:" + sipA,
		"--sip-domain", testDomain}, sipUserFlag(user, pw)...), nodeFlags("a")...)...)
	t.Cleanup(a.kill)
	nodeB := startBridge(t, t.TempDir(), append(sipUserFlag(user, pw), nodeFlags("b")...)...)
	c := startBridge(t, t.TempDir(), append(append(sipUserFlag(user, pw), nodeFlags("c")...),
		"--http-listen", "127.0.0.1:0", "--api-token", "tok")...)
	api := "http://" + c.addrs.HTTP

	u := startUA(t, user, pw)
	if code := u.register(t, &running{addrs: bridge.Addrs{SIP: "127.0.0.1:" + sipA}}, 3600); code != 200 {
		t.Fatalf("REGISTER at a: %d", code)
	}
	// IM only: it waits at c until a's binding reaches c, then goes
	// through a, so the cluster's forming does not send it as SMS.
	var sent struct{ ID string }
	if code := postJSON(t, api+"/v1/messages", "tok", map[string]string{"from": "+8613900000009", "to": "+" + user,
		"text": "first, over the API at c", "route": "im"}, &sent); code != 202 {
		t.Fatalf("POST message at c: %d", code)
	}
	testutil.WaitForState(t, 40*time.Second, func() bool { return len(u.received()) == 1 }, func() string {
		b, _ := os.ReadFile(a.log.Name())
		return "the message from c never reached the user at a; a's log:\n" + string(b)
	})
	testutil.WaitFor(t, "delivered at c", 5*time.Second, func() bool { return messageState(t, api, sent.ID).State == "delivered" })
	if m := metricsText(t, api); !strings.Contains(m, "bridge_cluster_sent_total 1\n") {
		t.Fatalf("c's metrics do not count its delivery through a:\n%s", m)
	}
	if ev := messageState(t, api, sent.ID).Events; !strings.Contains(ev[len(ev)-1].Detail, "node a") {
		t.Fatalf("c's history %+v does not name node a", ev)
	}

	if _, err := fiorixSubmit(t, c, "esme1", "secret1", "8613900000009", user, pdutext.Raw("second, by SMPP at c")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the SMS from c at the user", 10*time.Second, func() bool { return len(u.received()) == 2 })
	if got := u.received()[1]; got != "second, by SMPP at c" {
		t.Fatalf("user got %q", got)
	}
	if n := len(sc.received()); n != 0 {
		t.Fatalf("the SMSC got %d messages for a user online at a", n)
	}

	a.kill()
	start := time.Now()
	if _, err := fiorixSubmit(t, c, "esme1", "secret1", "8613900000009", user, pdutext.Raw("third, a is gone")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the SMS at the SMSC with a gone", imTimeout+5*time.Second, func() bool { return len(sc.received()) == 1 })
	t.Logf("fell back to SMS %v after the submission", time.Since(start))
	if got := sc.texts(t)[user]; got != "third, a is gone" {
		t.Fatalf("SMSC got %q", got)
	}
	if n := len(u.received()); n != 2 {
		t.Fatalf("the user got %d messages with a gone", n)
	}

	// IM only, it waits at c (a's binding fails) until the user registers
	// at b, and then goes through b: c hears of it from b's announcement,
	// without waiting for the bucket, whose watcher on a's server is gone.
	if code := postJSON(t, api+"/v1/messages", "tok", map[string]string{"from": "+8613900000009", "to": "+" + user,
		"text": "fourth, waits for b", "route": "im"}, &sent); code != 202 {
		t.Fatalf("POST message at c: %d", code)
	}
	if code := u.register(t, nodeB, 3600); code != 200 {
		t.Fatalf("REGISTER at b: %d", code)
	}
	start = time.Now()
	var view struct{ Bindings []struct{ Node string } }
	testutil.WaitForState(t, 2*time.Second, func() bool {
		getJSON(t, api+"/v1/presence/%2B"+user, "tok", &view)
		for _, b := range view.Bindings {
			if b.Node == "b" {
				return true
			}
		}
		return false
	}, func() string {
		return fmt.Sprintf("c's presence of the user 2 s after the REGISTER at b: %+v", view.Bindings)
	})
	t.Logf("c saw the binding at b %v after the registration", time.Since(start))
	// The message may still be waiting for an attempt through a's binding
	// to time out (--im-timeout) before it tries b's.
	testutil.WaitFor(t, "the waiting message through b", imTimeout+10*time.Second, func() bool { return len(u.received()) == 3 })
	t.Logf("delivered through b %v after registering there", time.Since(start))
	if got := u.received()[2]; got != "fourth, waits for b" {
		t.Fatalf("user got %q", got)
	}
}

// With --cluster-ack replicated, a message acknowledged by node a
// survives a's disk: a is killed, its data directory removed, and when it
// starts again empty it takes the message back from the replicated bucket
// and delivers it once the user registers (at b, through the cluster).
func TestClusterReplicatedAckSurvivesDiskLoss(t *testing.T) {
	const user, pw = "8613800000022", "pw22"
	routes := newClusterRoutes(t, "a", "b", "c")
	nodeFlags := func(name string) []string {
		return append(routes.flags(name), "--cluster-ack", "replicated", "--im-timeout", "2s")
	}
	httpA, smppA := freeTCPPort(t), freeTCPPort(t)
	aArgs := func(dir string) []string {
		return append(append([]string{"--data-dir", dir, "--sip-domain", testDomain, "--http-listen", httpA, "--api-token", "tok"},
			sipUserFlag(user, pw)...), nodeFlags("a")...)
	}
	dirA := t.TempDir()
	a := startProc(t, smppA, aArgs(dirA)...)
	t.Cleanup(func() { a.kill() })
	nodeB := startBridge(t, t.TempDir(), append(sipUserFlag(user, pw), nodeFlags("b")...)...)
	startBridge(t, t.TempDir(), append(sipUserFlag(user, pw), nodeFlags("c")...)...)

	// Until the bucket is open (the cluster formed) a refuses: 503.
	var sent struct{ ID string }
	testutil.WaitFor(t, "a acknowledging with the cluster formed", 60*time.Second, func() bool {
		return postJSON(t, "http://"+httpA+"/v1/messages", "tok", map[string]string{"from": "+8613900000009", "to": "+" + user,
			"text": "kept by the cluster", "route": "im"}, &sent) == 202
	})

	a.kill()
	firstLog := a.log.Name()
	if err := os.RemoveAll(dirA); err != nil {
		t.Fatal(err)
	}
	// As an operator must (cluster/README.md, "A node that loses its
	// disk"): the empty node comes back only once the others have elected
	// new leaders, past JetStream's election timeout (up to 9 s).
	time.Sleep(10 * time.Second)
	a = startProc(t, smppA, aArgs(t.TempDir())...)

	u := startUA(t, user, pw)
	if code := u.register(t, nodeB, 3600); code != 200 {
		t.Fatalf("REGISTER at b: %d", code)
	}
	testutil.WaitForState(t, 90*time.Second, func() bool { return len(u.received()) >= 1 }, func() string {
		b0, _ := os.ReadFile(firstLog)
		b, _ := os.ReadFile(a.log.Name())
		return "the acknowledged message never reached the user; a's logs:\n" + string(b0) + "\n----\n" + string(b)
	})
	if got := u.received()[0]; got != "kept by the cluster" {
		t.Fatalf("user got %q", got)
	}
	time.Sleep(2 * time.Second) // a second copy would come within the IM timeout
	if n := len(u.received()); n != 1 {
		t.Fatalf("the user got %d copies", n)
	}
}

// A node of three killed (SIGKILL) under load and started again, stopped
// (SIGSTOP) for 10 s and resumed, or cut off from one other node (their
// NATS routes closed and refused, each still routed to the third) for 10 s
// and joined again: ESMEs bound to every node keep submitting
// (resubmitting what got no answer, as real ESMEs do), and every message
// any node acknowledged reaches the SMSC; the duplicates are counted by an
// SMSC that counts each text.
func TestClusterNodeKilledUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three real processes; skipped with -short")
	}
	t.Run("kill", func(t *testing.T) { clusterFault(t, "kill") })
	t.Run("stop", func(t *testing.T) { clusterFault(t, "stop") })
	t.Run("cut", func(t *testing.T) { clusterFault(t, "cut") })
}

func clusterFault(t *testing.T, fault string) {
	const user, pw = "8613800000031", "pw31"
	sc := startCountingSMSC(t, "127.0.0.1:0")
	names := []string{"a", "b", "c"}
	routes := newClusterRoutes(t, names...)
	addrs, dirs, sips, proxies := map[string]string{}, map[string]string{}, map[string]string{}, map[string]*routeProxy{}
	for _, n := range names {
		addrs[n], dirs[n], sips[n] = freeTCPPort(t), t.TempDir(), "127.0.0.1:"+strconv.Itoa(freeSIPPort(t))
		if fault == "cut" {
			// Every route to n passes its proxy: n advertises it and the
			// others dial it, so a cut can close and refuse them.
			proxies[n] = startRouteProxy(t, routes[n])
		}
	}
	args := func(name string) []string {
		flags := routes.flags(name)
		if fault == "cut" {
			var others []string
			for _, o := range names {
				if o != name {
					others = append(others, "nats://"+proxies[o].addr())
				}
			}
			flags = []string{"--node-name", name, "--nats-listen", "127.0.0.1:0", "--nats-cluster-listen", routes[name],
				"--nats-cluster-advertise", proxies[name].addr(), "--nats-routes", strings.Join(others, ",")}
		}
		return append(append(flags, "--data-dir", dirs[name], "--smsc", "smpp://bridge:pw@"+sc.addr, "--dedup-window", "10m",
			"--cluster-ack", "replicated", "--sip-listen", sips[name], "--sip-domain", testDomain, "--im-timeout", "3s"),
			sipUserFlag(user, pw)...)
	}
	procs := map[string]*proc{}
	for _, n := range names {
		procs[n] = startProc(t, addrs[n], args(n)...)
	}
	t.Cleanup(func() {
		for _, p := range procs {
			p.stop()
		}
	})

	ctx, stopLoad := context.WithCancel(context.Background())
	loads := map[string]*esmeLoad{}
	var wgs []*sync.WaitGroup
	for _, n := range names {
		// Paced: the suite runs other packages beside this test.
		loads[n] = &esmeLoad{pace: 20 * time.Millisecond}
		wgs = append(wgs, loads[n].run(ctx, addrs[n], 1, "node-"+n))
	}
	total := func() int {
		s := 0
		for _, l := range loads {
			s += len(l.ackedTexts())
		}
		return s
	}
	// The load starts once the cluster formed (each node refuses until
	// its replicated bucket is open).
	testutil.WaitFor(t, "acknowledgements from all three nodes", 90*time.Second, func() bool {
		return len(loads["a"].ackedTexts()) > 200 && len(loads["b"].ackedTexts()) > 200 && len(loads["c"].ackedTexts()) > 200
	})
	b0, c0 := len(loads["b"].ackedTexts()), len(loads["c"].ackedTexts())
	var u *ua
	var extra []string // texts sent to the SMSC besides the loads'
	switch fault {
	case "stop":
		procs["a"].cmd.Process.Signal(syscall.SIGSTOP)
		t.Logf("a stopped with %d acknowledged in all", total())
		time.Sleep(10 * time.Second) // the fault itself: a stays stopped that long
		if len(loads["b"].ackedTexts()) < b0+200 || len(loads["c"].ackedTexts()) < c0+200 {
			t.Errorf("b and c acknowledged %d and %d while a was stopped", len(loads["b"].ackedTexts())-b0, len(loads["c"].ackedTexts())-c0)
		}
		procs["a"].cmd.Process.Signal(syscall.SIGCONT)
	case "kill":
		procs["a"].kill()
		t.Logf("a killed with %d acknowledged in all", total())
		testutil.WaitFor(t, "b and c acknowledging with a gone", 30*time.Second, func() bool {
			return len(loads["b"].ackedTexts()) > b0+200 && len(loads["c"].ackedTexts()) > c0+200
		})
		procs["a"] = startProc(t, addrs["a"], args("a")...)
	case "cut":
		u, extra = clusterCut(t, proxies, procs, loads, sips, user, pw, sc)
	}
	after := len(loads["a"].ackedTexts())
	testutil.WaitForState(t, 60*time.Second, func() bool { return len(loads["a"].ackedTexts()) > after+200 }, func() string {
		b, _ := os.ReadFile(procs["a"].log.Name())
		return fmt.Sprintf("a acknowledged %d more after it came back; its log:\n%s", len(loads["a"].ackedTexts())-after, b[max(0, len(b)-6000):])
	})
	if fault == "cut" {
		// Joined again, b delivers through a's binding as before the cut,
		// once their routes are up again.
		testutil.WaitFor(t, "a route between a and b again", 20*time.Second, func() bool {
			return proxies["a"].peers()["b"]+proxies["b"].peers()["a"] > 0
		})
		time.Sleep(time.Second) // their interest in each other's subjects follows the route
		// b's replicated write may still find no leader for a moment after
		// the routes heal: it refuses with a system error, and an ESME sends
		// again, as this one does.
		var err error
		testutil.WaitForState(t, 20*time.Second, func() bool {
			_, err = fiorixSubmit(t, &running{addrs: bridge.Addrs{SMPP: addrs["b"]}}, "esme1", "secret1", "8613900000009", user,
				pdutext.Raw("after the cut, through a"))
			return err == nil
		}, func() string { return fmt.Sprintf("submit at b after the cut: %v", err) })
		testutil.WaitForState(t, 15*time.Second, func() bool { return slices.Contains(u.received(), "after the cut, through a") }, func() string {
			lb, _ := os.ReadFile(procs["b"].log.Name())
			la, _ := os.ReadFile(procs["a"].log.Name())
			return fmt.Sprintf("the SMS from b never reached the user at a after the cut (at the SMSC: %d; routes a %v, b %v, c %v); b's log:\n%s\na's log:\n%s",
				sc.count("after the cut, through a"), proxies["a"].peers(), proxies["b"].peers(), proxies["c"].peers(), lb[max(0, len(lb)-4000):], la[max(0, len(la)-4000):])
		})
	}
	stopLoad()
	for _, wg := range wgs {
		wg.Wait()
	}

	var acked []string
	for _, l := range loads {
		acked = append(acked, l.ackedTexts()...)
	}
	dups := waitAllReached(t, sc, append(acked, extra...))
	t.Logf("%s: %d acknowledged by three nodes, 0 lost, %d duplicates at the SMSC (%.3f%%)", t.Name(), len(acked), dups, 100*float64(dups)/float64(len(acked)))
}

// clusterCut cuts the routes between a and b for 10 s, each still routed
// to c, with a SIP user registered at a: c goes on acknowledging, an SMS
// submitted at b for the user goes to the SMSC (b cannot reach a, so the
// usual rules apply); then the routes are restored. It returns the user
// and the texts it sent to the SMSC.
func clusterCut(t *testing.T, proxies map[string]*routeProxy, procs map[string]*proc, loads map[string]*esmeLoad,
	sips map[string]string, user, pw string, sc *countingSMSC) (*ua, []string) {
	testutil.WaitForState(t, 20*time.Second, func() bool {
		return proxies["a"].peers()["b"]+proxies["b"].peers()["a"] > 0 && proxies["a"].peers()["c"]+proxies["c"].peers()["a"] > 0 &&
			proxies["b"].peers()["c"]+proxies["c"].peers()["b"] > 0
	}, func() string {
		return fmt.Sprintf("routes through the proxies: a %v, b %v, c %v", proxies["a"].peers(), proxies["b"].peers(), proxies["c"].peers())
	})
	u := startUA(t, user, pw)
	if code := u.register(t, &running{addrs: bridge.Addrs{SIP: sips["a"]}}, 3600); code != 200 {
		t.Fatalf("REGISTER at a: %d", code)
	}
	time.Sleep(time.Second) // the binding reaches b (announced within milliseconds)

	proxies["a"].setCut("b", true)
	proxies["b"].setCut("a", true)
	c0 := len(loads["c"].ackedTexts())
	t.Logf("a and b cut off from each other with %d, %d, %d acknowledged", len(loads["a"].ackedTexts()), len(loads["b"].ackedTexts()), c0)
	const during = "during the cut, from b"
	if _, err := fiorixSubmit(t, &running{addrs: bridge.Addrs{SMPP: procs["b"].smpp}}, "esme1", "secret1", "8613900000009", user,
		pdutext.Raw(during)); err != nil {
		t.Logf("submit at b during the cut: %v", err) // b's replicated write may have no leader to reach
	} else {
		testutil.WaitFor(t, "the SMS submitted at b during the cut at the SMSC", 20*time.Second, func() bool { return sc.count(during) > 0 })
	}
	time.Sleep(10 * time.Second) // the fault itself
	ab := []int{len(loads["a"].ackedTexts()), len(loads["b"].ackedTexts())}
	if len(loads["c"].ackedTexts()) < c0+200 {
		t.Errorf("c acknowledged %d while a and b were cut off from each other", len(loads["c"].ackedTexts())-c0)
	}
	proxies["a"].setCut("b", false)
	proxies["b"].setCut("a", false)
	t.Logf("routes restored; during the cut a, b, c acknowledged up to %d, %d, %d", ab[0], ab[1], len(loads["c"].ackedTexts()))
	if slices.Contains(u.received(), during) {
		t.Errorf("the user at a got %q, submitted at b while b could not reach a", during)
	}
	var extra []string
	if sc.count(during) > 0 {
		extra = append(extra, during)
	}
	return u, extra
}

// A receipt finds the node that holds the ESME's bind: the ESME submits at
// a, binds again at b only, and the SMSC's receipt, which comes to a (a's
// own SMSC bind), reaches the ESME through b.
func TestClusterReceiptThroughOwnerOfBind(t *testing.T) {
	scA, scB := startSMSC(t), startSMSC(t)
	routes := newClusterRoutes(t, "a", "b")
	a := startBridge(t, t.TempDir(), append(routes.flags("a"), "--smsc", scA.url(), "--http-listen", "127.0.0.1:0", "--api-token", "tok")...)
	b := startBridge(t, t.TempDir(), append(routes.flags("b"), "--smsc", scB.url())...)

	e := bindFiorix(t, a, "esme1", "secret1")
	sm := e.submitForReceipt(t, "8613900000031", "8613700000031", pdutext.Raw("receipt, wherever I am"))
	testutil.WaitFor(t, "the SMS at a's SMSC", 10*time.Second, func() bool { return len(scA.received()) == 1 })
	e.tx.Close()
	e = bindFiorix(t, b, "esme1", "secret1")
	// b's interest in the account's subject reaches a over the route.
	time.Sleep(500 * time.Millisecond)

	scA.deliverReceipt(t, scA.submittedIDs()[0], "8613700000031", "DELIVRD")
	testutil.WaitFor(t, "the receipt at the ESME bound to b", 15*time.Second, func() bool { return len(e.delivered()) == 1 })
	checkReceipt(t, e.delivered()[0], sm.RespID(), "DELIVRD")
	// a counts the receipt once b's answer is back, which may be just after
	// the ESME had it.
	testutil.WaitFor(t, "a's metrics counting the receipt it forwarded", 5*time.Second, func() bool {
		return strings.Contains(metricsText(t, "http://"+a.addrs.HTTP), "bridge_esme_receipts_forwarded_total 1\n")
	})
}

// An SMSC may send a receipt on any bind of the account: one that comes
// to b for a message a sent is settled at a, and its ESME gets it.
func TestClusterSMSCReceiptOnAnotherNodesBind(t *testing.T) {
	scA, scB := startSMSC(t), startSMSC(t)
	routes := newClusterRoutes(t, "a", "b")
	a := startBridge(t, t.TempDir(), append(routes.flags("a"), "--smsc", scA.url())...)
	b := startBridge(t, t.TempDir(), append(routes.flags("b"), "--smsc", scB.url(), "--http-listen", "127.0.0.1:0", "--api-token", "tok")...)

	e := bindFiorix(t, a, "esme1", "secret1")
	sm := e.submitForReceipt(t, "8613900000032", "8613700000032", pdutext.Raw("receipt, whichever bind"))
	testutil.WaitFor(t, "the SMS at a's SMSC", 10*time.Second, func() bool { return len(scA.received()) == 1 })
	// The SMSC the two nodes share, as two simulators: the receipt for
	// what a submitted comes on b's bind.
	scB.deliverReceipt(t, scA.submittedIDs()[0], "8613700000032", "DELIVRD")
	testutil.WaitFor(t, "the receipt at the ESME bound to a", 15*time.Second, func() bool { return len(e.delivered()) == 1 })
	checkReceipt(t, e.delivered()[0], sm.RespID(), "DELIVRD")
	testutil.WaitFor(t, "b's metrics counting the receipt a settled", 5*time.Second, func() bool {
		return strings.Contains(metricsText(t, "http://"+b.addrs.HTTP), "bridge_smsc_receipts_matched_elsewhere_total 1\n")
	})
}
