package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smsbridge/bridge/smpp"
)

// groupPlan is the group route's cast: groups of size members each, the
// first nIM of every group bench SIP users (registered, so their copies go
// by IM), the other nSMS numbers whose copies reach the bench's SMSC. No
// address is a member of two groups, so a copy's recipient tells its group
// and its place in it.
type groupPlan struct {
	groups, size, nIM, nSMS int
	addrs                   [][]string     // by group and member: a SIP user name or a number (digits)
	index                   map[string]int // address → group×size + member
	numbers                 []string       // the groups' numbers (digits), from the bridge at setup
}

// groupUsers is how many registered IM users a plan of groups×size needs.
func groupUsers(groups, size int) int { return groups * (size / 2) }

// groupSMSNumber is the k-th SMS member of the bench groups (86136…, apart
// from the SMS routes' 86137… and the IM users' 86139…).
func groupSMSNumber(k int) string { return fmt.Sprintf("86136%08d", k) }

func groupName(g int) string { return fmt.Sprintf("bench-%03d", g) }

// newGroupPlan lays out groups of size members over the online IM users.
func newGroupPlan(groups, size int, online []string) (*groupPlan, error) {
	if groups < 1 || size < 2 {
		return nil, fmt.Errorf("group route: %d groups of %d: want at least 1 group of 2", groups, size)
	}
	p := &groupPlan{groups: groups, size: size, nIM: size / 2, nSMS: size - size/2,
		addrs: make([][]string, groups), index: make(map[string]int, groups*size), numbers: make([]string, groups)}
	if len(online) < groupUsers(groups, size) {
		return nil, fmt.Errorf("group route: %d groups of %d need %d IM users online, have %d", groups, size, groupUsers(groups, size), len(online))
	}
	for g := range groups {
		p.addrs[g] = make([]string, size)
		for j := range size {
			a := groupSMSNumber(g*p.nSMS + j - p.nIM)
			if j < p.nIM {
				a = online[g*p.nIM+j]
			}
			p.addrs[g][j] = a
			p.index[a] = g*size + j
		}
	}
	return p, nil
}

// member finds the group and place of a copy's recipient.
func (p *groupPlan) member(addr string) (g, j int, ok bool) {
	i, ok := p.index[addr]
	return i / p.size, i % p.size, ok
}

// sink is where member j's copies are meant to arrive.
func (p *groupPlan) sink(j int) Sink {
	if j < p.nIM {
		return AtSIP
	}
	return AtSMS
}

// apiAddress is how member j of group g is added over the API.
func (p *groupPlan) apiAddress(g, j int, domain string) string {
	if j < p.nIM {
		return "sip:" + p.addrs[g][j] + "@" + domain
	}
	return "+" + p.addrs[g][j]
}

// setupGroups creates the plan's groups over the bridge's HTTP API, as an
// operator would: each is created with its first SMS member as owner, then
// the others are added. It records each group's number.
func setupGroups(ctx context.Context, api *apiClient, p *groupPlan, domain string, progress io.Writer) error {
	start := time.Now()
	err := parallel(ctx, p.groups, func(g int) error {
		name := groupName(g)
		out, err := api.call(ctx, http.MethodPost, "/v1/groups",
			map[string]any{"name": name, "owner": p.apiAddress(g, p.nIM, domain), "limit": p.size}, http.StatusCreated)
		if err != nil {
			return fmt.Errorf("create group %s: %w", name, err)
		}
		var in struct {
			Number string `json:"number"`
		}
		if err := json.Unmarshal(out, &in); err != nil || !strings.HasPrefix(in.Number, "+") {
			return fmt.Errorf("create group %s: number %q in %s: %v", name, in.Number, out, err)
		}
		p.numbers[g] = in.Number[1:]
		for j := range p.size {
			if j == p.nIM {
				continue
			}
			if _, err := api.call(ctx, http.MethodPost, "/v1/groups/"+url.PathEscape(name)+"/members",
				map[string]string{"address": p.apiAddress(g, j, domain)}, http.StatusOK); err != nil {
				return fmt.Errorf("group %s: add member %d: %w", name, j, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(progress, "groups: %d of %d members (%d IM, %d SMS), numbers %s…, created in %.1fs\n",
		p.groups, p.size, p.nIM, p.nSMS, p.numbers[0], time.Since(start).Seconds())
	return nil
}

// groupPost is what the tracker knows of one post: its group, its poster,
// which members have their copy and how many copies are still to come.
type groupPost struct {
	g, poster int
	left      atomic.Int32
	got       []atomic.Uint64 // a bit per member
}

// groupTracker follows every copy of every post; the Tracker's state of
// a post says delivered once its last copy has arrived.
type groupTracker struct {
	plan  *groupPlan
	posts sync.Map // seq → *groupPost
	// copies counts deliveries at the SIP UA and at the SMSC; wrong counts
	// copies for the poster, a non-member or another group's member.
	copies [AtXMPP + 1]atomic.Uint64 // by Sink
	wrong  atomic.Uint64
}

func newGroupTracker(p *groupPlan) *groupTracker { return &groupTracker{plan: p} }

// add expects one copy of post seq (in group g, from member poster) per
// other member.
func (gt *groupTracker) add(seq uint64, g, poster int) {
	p := &groupPost{g: g, poster: poster, got: make([]atomic.Uint64, (gt.plan.size+63)/64)}
	p.left.Store(int32(gt.plan.size - 1))
	gt.posts.Store(seq, p)
}

func (gt *groupTracker) post(seq uint64) *groupPost {
	v, ok := gt.posts.Load(seq)
	if !ok {
		return nil
	}
	return v.(*groupPost)
}

// GroupDelivered records that the sink at received the copy of group post
// tok addressed to addr (a SIP user at AtSIP, the destination number at
// AtSMS). The post's latency is recorded at its last copy.
func (t *Tracker) GroupDelivered(tok Token, at Sink, addr string) {
	if t == nil {
		return
	}
	gt := t.group
	var p *groupPost
	if gt != nil && tok.Route == Group {
		p = gt.post(tok.Seq)
	}
	if p == nil {
		t.unknown[Group].Add(1)
		return
	}
	g, j, ok := gt.plan.member(addr)
	if !ok || g != p.g || j == p.poster {
		gt.wrong.Add(1)
		return
	}
	bit := uint64(1) << (j % 64)
	if p.got[j/64].Or(bit)&bit != 0 {
		t.dups[Group].Add(1)
		return
	}
	t.delivered[Group].Add(1)
	gt.copies[at].Add(1)
	if at != gt.plan.sink(j) {
		t.elsewhere[Group].Add(1)
	}
	if p.left.Add(-1) == 0 {
		t.mark(tok.Seq, stDelivered)
		t.record(tok)
	}
}

// lostCopies counts the copies of acknowledged posts never delivered, and
// samples the posts that miss some. refused counts the copies delivered of
// posts the bridge refused: it refuses a post whose fan-out it could not
// finish, and the copies staged before that still go out.
func (t *Tracker) lostCopies() (lost uint64, samples []uint64, refused uint64) {
	t.group.posts.Range(func(k, v any) bool {
		seq, p := k.(uint64), v.(*groupPost)
		left, st := p.left.Load(), t.state(seq)
		switch {
		case left > 0 && st&stAcked != 0:
			lost += uint64(left)
			if len(samples) < 20 {
				samples = append(samples, seq)
			}
		case st&stRefused != 0:
			refused += uint64(t.group.plan.size - 1 - int(left))
		}
		return true
	})
	return lost, samples, refused
}

// groupWorker posts into the groups as their SMS members do: a deliver_sm
// from the bench's SMSC to the bridge, from a random SMS member to its
// group's number; the deliver_sm_resp, which the bridge sends once every
// copy is durable, is the post's acknowledgement.
func (g *Generator) groupWorker(ctx context.Context, rng *rand.Rand, jobs <-chan job) {
	var p smpp.PDU
	var bo backoff
	plan := g.load.Group
	send := func(ctx context.Context, p *smpp.PDU) error {
		_, err := g.load.SMSC.srv.Deliver(ctx, bridgeSystemID, p)
		return err
	}
	for j := range jobs {
		gi, poster := rng.IntN(plan.groups), plan.nIM+rng.IntN(plan.nSMS)
		tok := g.next(j)
		g.tr.group.add(tok.Seq, gi, poster)
		text := Text(tok, j.alpha)
		if err := sendSMS(ctx, smpp.DeliverSM, send, &p, plan.addrs[gi][poster], plan.numbers[gi], text, uint16(tok.Seq)); err != nil {
			throttled := smppThrottled(err)
			g.tr.Refused(tok, throttled)
			var se *smpp.StatusError
			if !throttled && !errors.As(err, &se) {
				g.log.Debug("deliver_sm failed", "err", err)
			}
			bo.refused(ctx, throttled)
			continue
		}
		bo.accepted()
		g.tr.Acked(tok)
	}
}

// bridgeSystemID is the system_id the spawned bridge binds to the bench's
// SMSC with (its --smsc URL).
const bridgeSystemID = "bridge"

// GroupResult is the group route's own figures: posts, and the member
// copies each becomes.
type GroupResult struct {
	Groups     int `json:"groups"`
	Size       int `json:"size"`
	IMMembers  int `json:"im_members"`
	SMSMembers int `json:"sms_members"`
	// Measured window: posts acknowledged and member copies delivered.
	PostsAckedPerSec       float64 `json:"posts_acked_per_sec"`
	MemberDeliveriesPerSec float64 `json:"member_deliveries_per_sec"`
	// Whole phase.
	PostsAcked     uint64 `json:"posts_acked"`
	CopiesExpected uint64 `json:"copies_expected"` // posts acknowledged × (size − 1)
	IMCopies       uint64 `json:"im_copies"`
	SMSCopies      uint64 `json:"sms_copies"`
	CopiesLost     uint64 `json:"copies_lost"`
	// RefusedPostCopies are copies delivered of posts the bridge refused
	// (a fan-out cut short by overload), beside CopiesExpected.
	RefusedPostCopies uint64 `json:"refused_post_copies,omitempty"`
	Wrong             uint64 `json:"wrong_recipient,omitempty"`
	// PostToLastMember is from a post's send time (its schedule in rate
	// mode) to the delivery of its last copy.
	PostToLastMember Latency `json:"post_to_last_member"`
}
