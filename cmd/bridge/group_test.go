package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
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
	if _, err := p.sc.srv.Deliver(ctx, "bridge", pdu); err != nil {
		p.t.Fatalf("deliver_sm from %s to %s: %v", p.number, to, err)
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

	// After a restart the group, its members and the STOP are still there.
	b.stop()
	b = startBridge(t, dir, args...)
	carol.send(number, "still here")
	if got := bobPhone.waitFor("the post after the restart", 2); got[1] != number+"|[hikers] ~0003: still here" {
		t.Fatalf("bob's phone got %q", got)
	}
	time.Sleep(300 * time.Millisecond)
	if got := dave.inbox(); len(got) != 4 {
		t.Fatalf("dave (STOP) got %q after the restart", got[4:])
	}
}
