package group

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/smsbridge/bridge/msg"
)

// Options of a new group.
type Options struct {
	Private bool
	Limit   int      // 0: Config.Limit
	Robots  []string // robots that see its posts
}

// Create makes group name with owner as its first member.
func (s *Service) Create(ctx context.Context, name string, owner msg.Address, o Options) (Info, error) {
	name = strings.ToLower(name)
	if err := checkName(name); err != nil {
		return Info{}, err
	}
	if o.Limit == 0 {
		o.Limit = s.cfg.Limit
	}
	if o.Limit < 2 || o.Limit > s.cfg.MaxLimit {
		return Info{}, fmt.Errorf("group %s: limit %d: want 2 to %d: %w", name, o.Limit, s.cfg.MaxLimit, ErrNotAllowed)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byName[name] != nil {
		return Info{}, fmt.Errorf("group %s: %w", name, ErrExists)
	}
	if s.nextExt >= pow10(s.cfg.ExtDigits) {
		return Info{}, fmt.Errorf("group %s: %w", name, ErrNoExtension)
	}
	ext := fmt.Sprintf("%0*d", s.cfg.ExtDigits, s.nextExt)
	number, err := s.number(ext)
	if err != nil {
		return Info{}, fmt.Errorf("group %s: number: %w", name, err)
	}
	g := &Group{name: name, ext: ext, number: number, private: o.Private, limit: o.Limit, created: time.Now().UTC(),
		members: map[msg.Address]member{owner: {nick: defaultNick(owner), role: RoleOwner}},
		invited: map[msg.Address]struct{}{}, robots: slices.Clone(o.Robots)}
	if err := s.save(ctx, g); err != nil {
		return Info{}, err
	}
	s.add(g)
	return g.info(), nil
}

// Info describes group name.
func (s *Service) Info(name string) (Info, error) {
	g, err := s.group(name)
	if err != nil {
		return Info{}, err
	}
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.info(), nil
}

// List is every group's name, number and size, by name.
func (s *Service) List() []Info {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Info, 0, len(s.byName))
	for _, g := range s.byName {
		g.mu.RLock()
		out = append(out, Info{Name: g.name, Number: g.number, Private: g.private, Limit: g.limit, Created: g.created,
			Size: len(g.members)})
		g.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Destroy ends group name; by must be its owner ("" for the operator).
func (s *Service) Destroy(ctx context.Context, name string, by msg.Address) error {
	g, err := s.group(name)
	if err != nil {
		return err
	}
	if by != "" {
		g.mu.RLock()
		_, m, ok := s.memberOf(g, by)
		g.mu.RUnlock()
		if !ok || m.role != RoleOwner {
			return fmt.Errorf("group %s: only its owner may destroy it: %w", g.name, ErrNotAllowed)
		}
	}
	if err := s.cfg.KV.Delete(ctx, []byte(groupPrefix+g.name)); err != nil {
		return fmt.Errorf("group %s: destroy: %w", g.name, err)
	}
	s.mu.Lock()
	delete(s.byName, g.name)
	delete(s.byNumber, g.number)
	s.mu.Unlock()
	return nil
}

// Join adds who to group name: an open group takes anyone, a private one
// those invited (or an operator's add: by "").
func (s *Service) Join(ctx context.Context, name string, who msg.Address, operator bool) (Info, error) {
	g, err := s.group(name)
	if err != nil {
		return Info{}, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, _, ok := s.memberOf(g, who); ok {
		return Info{}, fmt.Errorf("group %s: %s: %w", g.name, who, ErrIsMember)
	}
	if _, invited := g.invited[who]; g.private && !invited && !operator {
		return Info{}, fmt.Errorf("group %s: %w", g.name, ErrPrivate)
	}
	if len(g.members) >= g.limit {
		return Info{}, fmt.Errorf("group %s: %d members: %w", g.name, g.limit, ErrFull)
	}
	g.members[who] = member{nick: defaultNick(who)}
	delete(g.invited, who)
	if err := s.save(ctx, g); err != nil {
		delete(g.members, who)
		return Info{}, err
	}
	s.storeLast(ctx, g.name, s.target(who))
	return g.info(), nil
}

// Leave removes who's membership of group name (found by any address of
// their person). An owner who leaves hands the group to an admin, else to
// a member; a group left empty stays, for its number.
func (s *Service) Leave(ctx context.Context, name string, who msg.Address) error {
	return s.modify(ctx, name, who, func(g *Group, addr msg.Address, m member) error {
		delete(g.members, addr)
		if m.role == RoleOwner {
			var heir msg.Address
			for a, o := range g.members {
				if heir == "" || o.role > g.members[heir].role || o.role == g.members[heir].role && a < heir {
					heir = a
				}
			}
			if heir != "" {
				h := g.members[heir]
				h.role = RoleOwner
				g.members[heir] = h
			}
		}
		return nil
	})
}

// Invite lets who join private group name; by must be an admin.
func (s *Service) Invite(ctx context.Context, name string, by, who msg.Address) error {
	g, err := s.group(name)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := s.mustBe(g, by, RoleAdmin); err != nil {
		return err
	}
	if _, _, ok := s.memberOf(g, who); ok {
		return fmt.Errorf("group %s: %s: %w", g.name, who, ErrIsMember)
	}
	g.invited[who] = struct{}{}
	if err := s.save(ctx, g); err != nil {
		delete(g.invited, who)
		return err
	}
	return nil
}

// SetNick names who in group name.
func (s *Service) SetNick(ctx context.Context, name string, who msg.Address, nick string) error {
	if nick == "" || len(nick) > 24 || strings.IndexFunc(nick, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0 {
		return fmt.Errorf("nick %q: 1 to 24 characters, no spaces: %w", nick, ErrNotAllowed)
	}
	return s.modify(ctx, name, who, func(g *Group, addr msg.Address, m member) error {
		for a, o := range g.members {
			if a != addr && strings.EqualFold(o.nick, nick) {
				return fmt.Errorf("nick %q is taken in %s: %w", nick, g.name, ErrNotAllowed)
			}
		}
		m.nick = nick
		g.members[addr] = m
		return nil
	})
}

// Manage changes another member: "mute", "unmute", "remove" (admins),
// "admin", "member" (the owner). by "" is the operator.
func (s *Service) Manage(ctx context.Context, name string, by msg.Address, op string, who msg.Address) error {
	need := RoleAdmin
	if op == "admin" || op == "member" {
		need = RoleOwner
	}
	return s.modify(ctx, name, who, func(g *Group, addr msg.Address, m member) error {
		if by != "" {
			if err := s.mustBe(g, by, need); err != nil {
				return err
			}
			if _, me, _ := s.memberOf(g, by); m.role >= me.role {
				return fmt.Errorf("group %s: %s ranks as high as you: %w", g.name, who, ErrNotAllowed)
			}
		}
		switch op {
		case "mute", "unmute":
			m.muted = op == "mute"
		case "admin":
			m.role = RoleAdmin
		case "member":
			m.role = RoleMember
		case "remove":
			delete(g.members, addr)
			return nil
		default:
			return fmt.Errorf("group %s: %q: %w", g.name, op, ErrNotAllowed)
		}
		g.members[addr] = m
		return nil
	})
}

// modify applies fn to who's membership of group name under the group's
// lock and saves the group; on a failed save the membership is restored.
func (s *Service) modify(ctx context.Context, name string, who msg.Address, fn func(*Group, msg.Address, member) error) error {
	g, err := s.group(name)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	addr, m, ok := s.memberOf(g, who)
	if !ok {
		return fmt.Errorf("group %s: %s: %w", g.name, who, ErrNotMember)
	}
	before := make(map[msg.Address]member, len(g.members))
	for a, o := range g.members {
		before[a] = o
	}
	if err := fn(g, addr, m); err != nil {
		return err
	}
	if err := s.save(ctx, g); err != nil {
		g.members = before
		return err
	}
	return nil
}

// mustBe checks that by ranks at least role in g; g.mu is held.
func (s *Service) mustBe(g *Group, by msg.Address, role Role) error {
	if by == "" {
		return nil
	}
	_, m, ok := s.memberOf(g, by)
	if !ok {
		return fmt.Errorf("group %s: %w", g.name, ErrNotMember)
	}
	if m.role < role {
		return fmt.Errorf("group %s: only an %s may do that: %w", g.name, role, ErrNotAllowed)
	}
	return nil
}

// SetStopped records that number wants no group traffic (STOP) or wants it
// again (START).
func (s *Service) SetStopped(ctx context.Context, number msg.Address, stop bool) error {
	key := []byte(stopPrefix + string(number))
	var err error
	if stop {
		err = s.cfg.KV.Put(ctx, key, []byte{1})
	} else {
		err = s.cfg.KV.Delete(ctx, key)
	}
	if err != nil {
		return fmt.Errorf("group: stop list: %w", err)
	}
	s.mu.Lock()
	if stop {
		s.stopped[number] = struct{}{}
	} else {
		delete(s.stopped, number)
	}
	s.mu.Unlock()
	return nil
}

// exec runs a command from sender, sent to g's number (nil: the access
// number), and returns the answer: its source, group and text.
func (s *Service) exec(ctx context.Context, g *Group, sender msg.Address, c Command) (from msg.Address, group, text string) {
	from = s.access
	if g != nil {
		from, group = g.number, g.name
	}
	if !c.valid() {
		if _, known := commands[c.Name]; known {
			return from, group, fmt.Sprintf("#%s takes other arguments. Send #help for the commands.", c.Name)
		}
		return from, group, fmt.Sprintf("Unknown command #%s. Send #help for the commands.", c.Name)
	}
	// The group a command is about: named in it, else the one it was sent
	// to, else the one the sender last heard from.
	about := func(i int) (*Group, error) {
		if i < len(c.Args) {
			return s.group(c.Args[i])
		}
		if g != nil {
			return g, nil
		}
		if l := s.lastGroup(sender); l != nil {
			return l, nil
		}
		return nil, fmt.Errorf("which group? name it: #%s NAME", c.Name)
	}
	fail := func(err error) (msg.Address, string, string) {
		return from, group, "Sorry: " + plain(err)
	}
	switch c.Name {
	case "help":
		return from, group, HelpText
	case "stop", "unsubscribe", "start":
		number := s.target(sender)
		if err := s.SetStopped(ctx, number, c.Name != "start"); err != nil {
			return fail(err)
		}
		if c.Name == "start" {
			return from, group, "You will receive group messages again. Send STOP to stop them."
		}
		return from, group, "You will receive no more group messages. Send START to receive them again."
	case "create":
		var o Options
		for i := 1; i < len(c.Args); i++ {
			switch a := strings.ToLower(c.Args[i]); {
			case a == "private":
				o.Private = true
			case a == "open":
			case a == "limit" && i+1 < len(c.Args):
				n, err := strconv.Atoi(c.Args[i+1])
				if err != nil {
					return fail(fmt.Errorf("limit %q is not a number", c.Args[i+1]))
				}
				o.Limit = n
				i++
			default:
				if n, err := strconv.Atoi(a); err == nil {
					o.Limit = n
					continue
				}
				return fail(fmt.Errorf("#create NAME [private] [limit N], not %q", c.Args[i]))
			}
		}
		in, err := s.Create(ctx, c.Args[0], sender, o)
		if err != nil {
			return fail(err)
		}
		return in.Number, in.Name, fmt.Sprintf("Group %s created; its number is %s. Invite with #invite ADDRESS %s, post by replying here.", in.Name, in.Number.Digits(), in.Name)
	case "join":
		t, err := about(0)
		if err != nil {
			return fail(err)
		}
		in, err := s.Join(ctx, t.name, sender, false)
		if err != nil {
			return fail(err)
		}
		return in.Number, in.Name, fmt.Sprintf("Welcome to %s (%d members). Reply here to post; LEAVE to leave, WHO for the members, NICK name to set yours.", in.Name, len(in.Members))
	case "leave":
		t, err := about(0)
		if err != nil {
			return fail(err)
		}
		if err := s.Leave(ctx, t.name, sender); err != nil {
			return fail(err)
		}
		return t.number, t.name, fmt.Sprintf("You left %s.", t.name)
	case "members", "who":
		t, err := about(0)
		if err != nil {
			return fail(err)
		}
		t.mu.RLock()
		_, _, in := s.memberOf(t, sender)
		var names []string
		if in || !t.private {
			for _, m := range t.members {
				n := m.nick
				if m.role != RoleMember {
					n += " (" + m.role.String() + ")"
				}
				names = append(names, n)
			}
		}
		size := len(t.members)
		t.mu.RUnlock()
		if !in && t.private {
			return fail(fmt.Errorf("group %s: %w", t.name, ErrNotMember))
		}
		slices.Sort(names)
		if len(names) > 30 {
			names = append(names[:30], fmt.Sprintf("and %d more", size-30))
		}
		return t.number, t.name, fmt.Sprintf("%s, %d members: %s", t.name, size, strings.Join(names, ", "))
	case "rooms":
		var mine, open []string
		for _, in := range s.List() {
			t, err := s.group(in.Name)
			if err != nil {
				continue
			}
			t.mu.RLock()
			_, _, member := s.memberOf(t, sender)
			t.mu.RUnlock()
			switch {
			case member:
				mine = append(mine, in.Name+" "+in.Number.Digits())
			case !in.Private && len(open) < 20:
				open = append(open, in.Name)
			}
		}
		return from, group, fmt.Sprintf("Your groups: %s. Open groups: %s.", orNone(mine), orNone(open))
	case "nick":
		t, err := about(1)
		if err != nil {
			return fail(err)
		}
		if err := s.SetNick(ctx, t.name, sender, c.Args[0]); err != nil {
			return fail(err)
		}
		return t.number, t.name, fmt.Sprintf("You are %s in %s.", c.Args[0], t.name)
	case "invite":
		t, err := about(1)
		if err != nil {
			return fail(err)
		}
		who, err := s.parseAddress(c.Args[0])
		if err != nil {
			return fail(err)
		}
		if err := s.Invite(ctx, t.name, sender, who); err != nil {
			return fail(err)
		}
		inv := &msg.Message{From: t.number, To: who, Group: t.name, Origin: msg.Origin{Kind: msg.FromGroup, Account: t.name},
			Text: fmt.Sprintf("You are invited to the group %s. Reply JOIN %s to join.", t.name, t.name)}
		if a, err := s.next.Stage(ctx, inv); err != nil {
			return fail(fmt.Errorf("invited, but the invitation was not sent: %w", err))
		} else if err := a.Settle(ctx); err != nil {
			return fail(fmt.Errorf("invited, but the invitation was not sent: %w", err))
		}
		return t.number, t.name, fmt.Sprintf("Invited %s to %s.", c.Args[0], t.name)
	case "destroy":
		t, err := about(0)
		if err != nil {
			return fail(err)
		}
		if err := s.Destroy(ctx, t.name, sender); err != nil {
			return fail(err)
		}
		return s.access, "", fmt.Sprintf("Group %s is no more.", t.name)
	case "mute", "unmute", "admin", "member", "remove":
		if g == nil {
			return fail(errors.New("send this to the group's number"))
		}
		who, err := s.parseAddress(c.Args[0])
		if err != nil {
			return fail(err)
		}
		if err := s.Manage(ctx, g.name, sender, c.Name, who); err != nil {
			return fail(err)
		}
		return from, group, fmt.Sprintf("Done: %s %s.", c.Name, c.Args[0])
	}
	return fail(fmt.Errorf("#%s is not handled", c.Name))
}

// plain is err as a member reads it, without the package's prefix.
func plain(err error) string { return strings.TrimPrefix(err.Error(), "group ") }

func orNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

func pow10(n int) int {
	p := 1
	for range n {
		p *= 10
	}
	return p
}

// parseAddress reads an address a command names: with Config.ParseAddress
// (the directory's), else a number.
func (s *Service) parseAddress(raw string) (msg.Address, error) {
	if s.cfg.ParseAddress != nil {
		return s.cfg.ParseAddress(raw)
	}
	return msg.NormalizeNumber(raw, msg.TONUnknown, msg.NPIISDN, s.cfg.CountryCode)
}
