package main

import (
	"bytes"
	"testing"
)

func TestFindGroupToken(t *testing.T) {
	tok := Token{Route: Group, Seq: 12345, SentUs: 987654321}
	body := Text(tok, GSM7)
	for _, text := range []string{
		"~0001: " + body,               // an IM copy: "nick: text"
		"[bench-000] ~0001: " + body,   // an SMS copy: "[group] nick: text"
		"[bench-000] alice_b: " + body, // a chosen nick
	} {
		got, ok := FindGroupToken(text)
		if !ok || got != tok {
			t.Errorf("FindGroupToken(%q) = %+v, %v", text, got, ok)
		}
		if got, ok := findToken(text); !ok || got != tok {
			t.Errorf("findToken(%q) = %+v, %v", text, got, ok)
		}
	}
	other := Token{Route: SMSToIM, Seq: 7, SentUs: 9}
	for _, text := range []string{
		"~0001: " + Text(other, GSM7), // only a group copy has a prefix
		body,                          // a token at the start is ParseToken's
		"~0001: no token here",
		string(bytes.Repeat([]byte("x"), maxGroupPrefix+1)) + body, // too far in
	} {
		if got, ok := FindGroupToken(text); ok {
			t.Errorf("FindGroupToken(%q) = %+v, want none", text, got)
		}
	}
	if got, ok := findToken(Text(other, GSM7)); !ok || got != other {
		t.Errorf("findToken of another route's text: %+v, %v", got, ok)
	}
}

func TestGroupPlan(t *testing.T) {
	online := []string{userName(0), userName(1), userName(2), userName(3)}
	p, err := newGroupPlan(2, 5, online)
	if err != nil {
		t.Fatal(err)
	}
	if p.nIM != 2 || p.nSMS != 3 || groupUsers(2, 5) != 4 {
		t.Fatalf("plan %+v", p)
	}
	seen := map[string]bool{}
	for g := range 2 {
		for j := range 5 {
			a := p.addrs[g][j]
			if seen[a] {
				t.Fatalf("%s is a member twice", a)
			}
			seen[a] = true
			if gg, jj, ok := p.member(a); !ok || gg != g || jj != j {
				t.Errorf("member(%s) = %d,%d,%v want %d,%d", a, gg, jj, ok, g, j)
			}
			want := AtSMS
			if j < 2 {
				want = AtSIP
			}
			if p.sink(j) != want {
				t.Errorf("sink of member %d: %v", j, p.sink(j))
			}
		}
	}
	if p.apiAddress(1, 0, "bench.test") != "sip:"+userName(2)+"@bench.test" || p.apiAddress(0, 4, "x") != "+"+groupSMSNumber(2) {
		t.Errorf("api addresses %q %q", p.apiAddress(1, 0, "bench.test"), p.apiAddress(0, 4, "x"))
	}
	if _, err := newGroupPlan(2, 6, online); err == nil {
		t.Error("6 IM members from 4 users online")
	}
	if _, err := newGroupPlan(1, 1, online); err == nil {
		t.Error("a group of one")
	}
}

// Every other member's copy makes a post delivered, at the last one; a
// duplicate, the poster's own copy and another group's member are told
// apart; the census counts the copies never delivered, not the posts.
func TestGroupTracker(t *testing.T) {
	p, err := newGroupPlan(2, 4, []string{userName(0), userName(1), userName(2), userName(3)})
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTracker()
	tr.group = newGroupTracker(p)
	post := func(g, poster int) Token {
		tok := tr.Next(Group)
		tr.group.add(tok.Seq, g, poster)
		tr.Acked(tok)
		return tok
	}
	a := post(0, 2) // poster: the first SMS member
	tr.GroupDelivered(a, AtSIP, p.addrs[0][0])
	tr.GroupDelivered(a, AtSIP, p.addrs[0][0]) // again
	tr.GroupDelivered(a, AtSMS, p.addrs[0][2]) // the poster's own
	tr.GroupDelivered(a, AtSMS, p.addrs[1][3]) // another group's
	tr.GroupDelivered(a, AtSIP, "nobody")
	tr.GroupDelivered(a, AtSMS, p.addrs[0][1]) // an IM member by SMS
	if tr.Outstanding() != 1 || tr.all.Count() != 0 {
		t.Fatalf("after 2 of 3 copies: outstanding %d, latencies %d", tr.Outstanding(), tr.all.Count())
	}
	tr.GroupDelivered(a, AtSMS, p.addrs[0][3])
	if tr.Outstanding() != 0 || tr.all.Count() != 1 || tr.route[Group].Count() != 1 {
		t.Fatalf("after the last copy: outstanding %d, latencies %d", tr.Outstanding(), tr.all.Count())
	}
	if tr.delivered[Group].Load() != 3 || tr.dups[Group].Load() != 1 || tr.group.wrong.Load() != 3 || tr.elsewhere[Group].Load() != 1 {
		t.Errorf("delivered %d dups %d wrong %d elsewhere %d", tr.delivered[Group].Load(), tr.dups[Group].Load(),
			tr.group.wrong.Load(), tr.elsewhere[Group].Load())
	}
	if tr.group.copies[AtSIP].Load() != 1 || tr.group.copies[AtSMS].Load() != 2 {
		t.Errorf("copies by sink: %d SIP %d SMS", tr.group.copies[AtSIP].Load(), tr.group.copies[AtSMS].Load())
	}

	b := post(1, 3)
	tr.GroupDelivered(b, AtSIP, p.addrs[1][1])
	refused := tr.Next(Group) // refused: none of its copies is expected
	tr.group.add(refused.Seq, 1, 2)
	tr.Refused(refused, true)
	tr.GroupDelivered(refused, AtSIP, p.addrs[1][0]) // staged before the refusal
	tr.GroupDelivered(Token{Route: Group, Seq: 999}, AtSIP, p.addrs[1][1])
	if tr.unknown[Group].Load() != 1 {
		t.Errorf("a token never handed out: unknown %d", tr.unknown[Group].Load())
	}
	f := tr.Census()
	if f.Lost != 2 || f.LostByRoute[Group] != 2 || len(f.LostSamples) != 1 || f.LostSamples[0] != b.Seq {
		t.Errorf("census: lost %d (%d by route), samples %v; want 2 copies of post %d", f.Lost, f.LostByRoute[Group], f.LostSamples, b.Seq)
	}
	if _, _, n := tr.lostCopies(); n != 1 {
		t.Errorf("copies of refused posts: %d", n)
	}
}

// TestGroupSmoke runs the group route for a few seconds against a spawned
// bridge: groups created over the API, posts as SMS MO, every copy at its
// member's IM UA or the SMSC, nothing lost.
func TestGroupSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a bridge")
	}
	rep, progress := runBench(t, "--mix", "group:1", "--groups", "3", "--group-size", "6",
		"--rate", "50", "--duration", "2s", "--warmup", "500ms", "--users", "4", "--window", "8")
	b := rep.Phase("bridge")
	if b == nil || rep.Phase("ceiling") != nil || rep.CeilingNote == "" {
		t.Fatalf("phases %+v, ceiling note %q", rep.Phases, rep.CeilingNote)
	}
	g := b.Group
	if g == nil || g.PostsAcked == 0 || g.IMCopies == 0 || g.SMSCopies == 0 {
		t.Fatalf("group figures %+v\n%s", g, progress.String())
	}
	if rep.Lost != 0 || g.CopiesLost != 0 || g.Wrong != 0 || b.Duplicates != 0 || b.Elsewhere != 0 {
		t.Fatalf("lost %d (copies %d), wrong %d, duplicates %d, elsewhere %d\n%s", rep.Lost, g.CopiesLost, g.Wrong, b.Duplicates, b.Elsewhere, b.BridgeLogTail)
	}
	if g.IMCopies+g.SMSCopies != g.CopiesExpected || g.PostToLastMember.P50Ms <= 0 {
		t.Errorf("copies %d IM + %d SMS, expected %d; latency %+v", g.IMCopies, g.SMSCopies, g.CopiesExpected, g.PostToLastMember)
	}
}
