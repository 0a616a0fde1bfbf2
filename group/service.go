package group

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/smsbridge/bridge/msg"
)

// People tells who an address belongs to (the identity directory): a member
// is reached at their person's number where they have one, so the router
// sends IM where they are online and SMS otherwise.
type People interface {
	Resolve(addr msg.Address) (msg.Person, bool)
}

// Post is a group message as robots see it.
type Post struct {
	ID    string // the post's id: the first copy's message ID
	Group string
	From  msg.Address
	Nick  string
	Text  string
	At    time.Time
}

// Robots receives the posts of groups that have robots; Offer must not
// block (a robot never delays a group).
type Robots interface {
	Offer(group string, robots []string, p Post)
}

// Config configures a Service.
type Config struct {
	// Access is the access number as dialled ("1065800"); a group's number
	// is it plus the group's extension of ExtDigits digits (default 4).
	Access      string
	ExtDigits   int
	CountryCode string
	KV          KV
	People      People // nil: members are reached at the address they joined with
	// ParseAddress reads an address a command names (#invite, #mute …):
	// the directory's, so it is the form the edges give; nil takes numbers.
	ParseAddress func(raw string) (msg.Address, error)
	Robots       Robots // nil: no robots
	Limit        int    // member limit of a new group (default 500)
	MaxLimit     int    // the most a creator may ask for (default 10,000)
	// Posts per second and burst, per member and per group (defaults 1/5
	// and 20/50); beyond them a post is refused with msg.ErrOverloaded.
	MemberRate, MemberBurst float64
	GroupRate, GroupBurst   float64
	Logger                  *slog.Logger
}

func (c *Config) defaults() {
	if c.ExtDigits <= 0 {
		c.ExtDigits = 4
	}
	if c.Limit <= 0 {
		c.Limit = 500
	}
	if c.MaxLimit <= 0 {
		c.MaxLimit = 10000
	}
	if c.MemberRate <= 0 {
		c.MemberRate, c.MemberBurst = 1, 5
	}
	if c.GroupRate <= 0 {
		c.GroupRate, c.GroupBurst = 20, 50
	}
	c.MemberBurst = max(c.MemberBurst, 1)
	c.GroupBurst = max(c.GroupBurst, 1)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Service is group chat in front of the router (see the package comment).
// It is safe for concurrent use.
type Service struct {
	cfg    Config
	next   msg.Stager
	access msg.Address
	log    *slog.Logger

	mu       sync.RWMutex
	byName   map[string]*Group
	byNumber map[msg.Address]*Group
	nextExt  int
	stopped  map[msg.Address]struct{}

	lastMu sync.Mutex
	last   map[msg.Address]string // member → group they last received from
	lastW  chan lastEntry         // changes of last for Run to store

	limMu   sync.Mutex
	buckets map[string]*bucket
}

// New loads the groups kept in cfg.KV; next is where every message that is
// not for a group goes, and where copies and answers are staged.
func New(cfg Config, next msg.Stager) (*Service, error) {
	cfg.defaults()
	if cfg.KV == nil || next == nil {
		return nil, errors.New("group: a KV and a next stager are needed")
	}
	if cfg.Access == "" || strings.Trim(cfg.Access, "0123456789") != "" {
		return nil, fmt.Errorf("group: access number %q: want digits", cfg.Access)
	}
	s := &Service{cfg: cfg, next: next, log: cfg.Logger, nextExt: 1,
		byName: map[string]*Group{}, byNumber: map[msg.Address]*Group{}, stopped: map[msg.Address]struct{}{},
		last: map[msg.Address]string{}, lastW: make(chan lastEntry, lastQueue), buckets: map[string]*bucket{}}
	var err error
	if s.access, err = s.number(""); err != nil {
		return nil, fmt.Errorf("group: access number: %w", err)
	}
	err = cfg.KV.Iterate([]byte(groupPrefix), func(_, v []byte) error {
		g, err := decode(v, s.number)
		if err != nil {
			return err
		}
		s.add(g)
		return nil
	})
	if err == nil {
		err = cfg.KV.Iterate([]byte(lastPrefix), func(k, v []byte) error {
			s.last[msg.Address(strings.TrimPrefix(string(k), lastPrefix))] = string(v)
			return nil
		})
	}
	if err == nil {
		err = cfg.KV.Iterate([]byte(stopPrefix), func(k, _ []byte) error {
			s.stopped[msg.Address(strings.TrimPrefix(string(k), stopPrefix))] = struct{}{}
			return nil
		})
	}
	if err != nil {
		return nil, fmt.Errorf("group: load: %w", err)
	}
	return s, nil
}

// number is the address of extension ext (the access number for "").
func (s *Service) number(ext string) (msg.Address, error) {
	return msg.NormalizeNumber(s.cfg.Access+ext, msg.TONUnknown, msg.NPIISDN, s.cfg.CountryCode)
}

// add indexes g; s.mu is held (or s is not shared yet).
func (s *Service) add(g *Group) {
	s.byName[g.name] = g
	s.byNumber[g.number] = g
	if n, err := strconv.Atoi(g.ext); err == nil && n >= s.nextExt {
		s.nextExt = n + 1
	}
}

// Stage takes m in: a message to a group's number or to the access number
// is a command or a post; anything else goes to the router unchanged.
func (s *Service) Stage(ctx context.Context, m *msg.Message) (msg.Ack, error) {
	if m == nil || m.Origin.Kind == msg.FromGroup || !m.To.IsMSISDN() || !strings.HasPrefix(string(m.To), string(s.access)) {
		return s.next.Stage(ctx, m)
	}
	var g *Group
	if m.To != s.access {
		s.mu.RLock()
		g = s.byNumber[m.To]
		s.mu.RUnlock()
		if g == nil {
			if len(m.To) != len(s.access)+s.cfg.ExtDigits {
				return s.next.Stage(ctx, m) // a longer number that only starts like ours
			}
			return s.answer(ctx, m, s.access, "", fmt.Sprintf("No group has the number %s. Send #rooms to %s for the groups.", m.To.Digits(), s.access.Digits()))
		}
	}
	if c, ok := ParseCommand(m.Text); ok {
		from, group, text := s.exec(ctx, g, m.From, c)
		return s.answer(ctx, m, from, group, text)
	}
	if g == nil {
		if g = s.lastGroup(m.From); g == nil {
			return s.answer(ctx, m, s.access, "", "Which group? Reply to a group's number, or JOIN a group first. Send HELP for the commands.")
		}
	}
	return s.post(ctx, g, m.From, "", m)
}

// answer stages text from from (a group's number, or the access number) to
// the sender of m, as the acknowledgement of m: m takes the answer's ID.
func (s *Service) answer(ctx context.Context, m *msg.Message, from msg.Address, group, text string) (msg.Ack, error) {
	a := &msg.Message{From: from, To: m.From, Text: text, Expires: m.Expires,
		Origin: msg.Origin{Kind: msg.FromGroup, Account: group}, Group: group}
	ack, err := s.next.Stage(ctx, a)
	if err != nil {
		return nil, fmt.Errorf("group: answer to %s: %w", m.From, err)
	}
	m.ID = a.ID
	return ack, nil
}

// post fans m out from its sender (or, with robot set, from that robot) to
// every other member of g: one message each, staged with the router. The
// returned Ack settles when every copy is durable.
func (s *Service) post(ctx context.Context, g *Group, from msg.Address, robot string, m *msg.Message) (msg.Ack, error) {
	g.mu.RLock()
	var nick string
	var self []msg.Address
	if robot != "" {
		nick = robot
	} else {
		addr, mem, ok := s.memberOf(g, from)
		if !ok {
			g.mu.RUnlock()
			return s.answer(ctx, m, g.number, g.name, fmt.Sprintf("You are not a member of %s. Send JOIN %s to join.", g.name, g.name))
		}
		if mem.muted {
			g.mu.RUnlock()
			return s.answer(ctx, m, g.number, g.name, fmt.Sprintf("You are muted in %s: your message was not posted.", g.name))
		}
		nick, self = mem.nick, s.selves(addr, from)
	}
	targets := make([]msg.Address, 0, len(g.members))
	for a := range g.members {
		t := s.target(a)
		if slices.Contains(self, a) || slices.Contains(self, t) {
			continue
		}
		targets = append(targets, t)
	}
	robots := g.robots
	g.mu.RUnlock()
	if robot == "" && (!s.allow("m:"+string(from), s.cfg.MemberRate, s.cfg.MemberBurst) ||
		!s.allow("g:"+g.name, s.cfg.GroupRate, s.cfg.GroupBurst)) {
		return nil, fmt.Errorf("group %s: posts from %s come too fast: %w", g.name, from, msg.ErrOverloaded)
	}
	s.mu.RLock()
	targets = slices.DeleteFunc(targets, func(t msg.Address) bool { _, stop := s.stopped[t]; return stop })
	s.mu.RUnlock()
	slices.Sort(targets)
	targets = slices.Compact(targets) // two memberships of one person get one copy

	text := nick + ": " + m.Text
	acks := make([]msg.Ack, 0, len(targets))
	postID := ""
	for _, t := range targets {
		c := &msg.Message{From: g.number, To: t, Text: text, Expires: m.Expires, Group: g.name,
			Origin: msg.Origin{Kind: msg.FromGroup, Account: g.name, Ref: m.Origin.Ref}}
		if m.IdempotencyKey != "" {
			// A post sent again under its key finds the copies it already
			// made: a member gets it once, however often it was sent.
			c.IdempotencyKey = m.Origin.Kind.String() + "\x00" + m.Origin.Account + "\x00" + string(from) + "\x00" + m.IdempotencyKey + "\x00" + string(t)
		}
		a, err := s.next.Stage(ctx, c)
		if err != nil {
			// The copies staged so far are on their way; the sender is
			// refused and may post again (those members then get it twice).
			settleAll(acks)
			return nil, fmt.Errorf("group %s: copy %d of %d: %w", g.name, len(acks)+1, len(targets), err)
		}
		if postID == "" {
			postID = c.ID
		}
		acks = append(acks, a)
	}
	if postID == "" {
		postID = randomID()
	}
	m.ID = postID
	s.setLast(g.name, targets...)
	var offer func()
	if len(robots) > 0 && s.cfg.Robots != nil && robot == "" {
		p := Post{ID: postID, Group: g.name, From: from, Nick: nick, Text: m.Text, At: time.Now()}
		offer = func() { s.cfg.Robots.Offer(g.name, robots, p) }
	}
	return newAllAck(acks, m, offer), nil
}

// lastEntry is a member's last group, on its way to the store.
type lastEntry struct {
	member msg.Address
	group  string
}

// lastQueue bounds the changes of last waiting for Run; past it they stay
// in memory only (a reply after a restart may then ask which group).
const lastQueue = 4096

// setLast records that members last received from group; what changed is
// stored by Run, off the post's path.
func (s *Service) setLast(group string, members ...msg.Address) {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	for _, m := range members {
		if s.last[m] == group {
			continue
		}
		s.last[m] = group
		select {
		case s.lastW <- lastEntry{m, group}:
		default:
		}
	}
}

// storeLast writes member's last group at once (a join: the member's next
// reply may come right after it).
func (s *Service) storeLast(ctx context.Context, group string, member msg.Address) {
	s.lastMu.Lock()
	s.last[member] = group
	s.lastMu.Unlock()
	if err := s.cfg.KV.Put(ctx, []byte(lastPrefix+string(member)), []byte(group)); err != nil {
		s.log.Warn("group: a member's last group not stored", "member", member, "err", err)
	}
}

// Run stores the members' last groups (the reply rule survives a restart)
// until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-s.lastW:
			if err := s.cfg.KV.Put(ctx, []byte(lastPrefix+string(e.member)), []byte(e.group)); err != nil && ctx.Err() == nil {
				s.log.Warn("group: a member's last group not stored", "member", e.member, "err", err)
			}
		}
	}
}

// PostAs posts text into group as robot (a robot's answer): it fans out
// like a member's post, to every member.
func (s *Service) PostAs(ctx context.Context, group, robot, text string) (string, error) {
	g, err := s.group(group)
	if err != nil {
		return "", err
	}
	m := &msg.Message{From: g.number, To: g.number, Text: text}
	a, err := s.post(ctx, g, g.number, robot, m)
	if err != nil {
		return "", err
	}
	if err := a.Settle(ctx); err != nil {
		return "", err
	}
	return m.ID, nil
}

// memberOf finds from's membership in g: the address itself, else any
// address of its person. g.mu is held.
func (s *Service) memberOf(g *Group, from msg.Address) (msg.Address, member, bool) {
	if m, ok := g.members[from]; ok {
		return from, m, true
	}
	if s.cfg.People != nil {
		if p, ok := s.cfg.People.Resolve(from); ok {
			for _, a := range append(p.Endpoints, p.Number) {
				if m, ok := g.members[a]; ok && a != "" {
					return a, m, true
				}
			}
		}
	}
	return "", member{}, false
}

// selves are the addresses a poster must not get their own post at.
func (s *Service) selves(addr, from msg.Address) []msg.Address {
	self := []msg.Address{addr, from, s.target(addr)}
	if s.cfg.People != nil {
		if p, ok := s.cfg.People.Resolve(from); ok && p.Number != "" {
			self = append(self, p.Number)
		}
	}
	return self
}

// target is where a member's copy goes: their person's number if they
// have one (IM where online, else SMS), else the address they joined with.
func (s *Service) target(a msg.Address) msg.Address {
	if s.cfg.People != nil {
		if p, ok := s.cfg.People.Resolve(a); ok && p.Number != "" {
			return p.Number
		}
	}
	return a
}

// lastGroup is the group from receives a reply to the access number in:
// the one it last received from, else its only group.
func (s *Service) lastGroup(from msg.Address) *Group {
	s.lastMu.Lock()
	name := s.last[s.target(from)]
	s.lastMu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if g := s.byName[name]; g != nil {
		return g
	}
	var only *Group
	for _, g := range s.byName {
		g.mu.RLock()
		_, _, in := s.memberOf(g, from)
		g.mu.RUnlock()
		if in {
			if only != nil {
				return nil
			}
			only = g
		}
	}
	return only
}

func (s *Service) group(name string) (*Group, error) {
	name = strings.ToLower(name)
	s.mu.RLock()
	g := s.byName[name]
	s.mu.RUnlock()
	if g == nil {
		return nil, fmt.Errorf("group %s: %w", name, ErrNoGroup)
	}
	return g, nil
}

// save writes g durably; g.mu is held.
func (s *Service) save(ctx context.Context, g *Group) error {
	b, err := g.encode()
	if err == nil {
		err = s.cfg.KV.Put(ctx, []byte(groupPrefix+g.name), b)
	}
	if err != nil {
		return fmt.Errorf("group %s: save: %w", g.name, err)
	}
	return nil
}

// bucket is a token bucket for a rate limit.
type bucket struct {
	tokens float64
	at     time.Time
}

func (s *Service) allow(key string, rate, burst float64) bool {
	now := time.Now()
	s.limMu.Lock()
	defer s.limMu.Unlock()
	b := s.buckets[key]
	if b == nil {
		if len(s.buckets) > 1<<20 { // bounded: forget idle senders
			clear(s.buckets)
		}
		b = &bucket{tokens: burst, at: now}
		s.buckets[key] = b
	}
	b.tokens = min(burst, b.tokens+rate*now.Sub(b.at).Seconds())
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func randomID() string {
	var b [10]byte
	rand.Read(b[:])
	return "g" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// allAck settles when every copy of a post has; the post takes the first
// copy's ID, cleared if any copy was not stored.
type allAck struct {
	acks []msg.Ack
	m    *msg.Message
	done chan struct{}
}

// newAllAck also runs then, if not nil, once every copy is on disk (robots
// see a post once it is stored, so their answers rarely overtake it).
func newAllAck(acks []msg.Ack, m *msg.Message, then func()) msg.Ack {
	if len(acks) == 0 {
		if then != nil {
			then()
		}
		return msg.Settled{}
	}
	a := &allAck{acks: acks, m: m, done: make(chan struct{})}
	go func() {
		for _, x := range acks {
			if d := x.Done(); d != nil {
				<-d
			}
		}
		close(a.done)
		if then != nil {
			then()
		}
	}()
	return a
}

func (a *allAck) Done() <-chan struct{} { return a.done }

func (a *allAck) Settle(ctx context.Context) error {
	var first error
	for _, x := range a.acks {
		if err := x.Settle(ctx); err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		a.m.ID = ""
		return fmt.Errorf("group post: %w", first)
	}
	return nil
}

// settleAll releases copies staged for a post that is being refused.
func settleAll(acks []msg.Ack) {
	go func() {
		for _, a := range acks {
			a.Settle(context.Background())
		}
	}()
}
