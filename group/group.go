package group

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/smsbridge/bridge/msg"
)

// Role is a member's standing in a group.
type Role uint8

const (
	RoleMember Role = iota
	RoleAdmin
	RoleOwner
)

func (r Role) String() string {
	switch r {
	case RoleOwner:
		return "owner"
	case RoleAdmin:
		return "admin"
	}
	return "member"
}

// Errors of group operations (wrapped with the group's name); each edge
// answers them as its protocol does: a text answer, a SIP 4xx, an HTTP 4xx.
var (
	ErrNoGroup     = errors.New("no such group")
	ErrExists      = errors.New("group already exists")
	ErrNotMember   = errors.New("not a member")
	ErrIsMember    = errors.New("already a member")
	ErrNotAllowed  = errors.New("not allowed")
	ErrFull        = errors.New("group is full")
	ErrPrivate     = errors.New("group is private: an invitation is needed")
	ErrMuted       = errors.New("you are muted in this group")
	ErrInvalidName = errors.New("invalid group name")
	ErrNoExtension = errors.New("no group extension left")
)

// member is one membership; kept small, there may be millions.
type member struct {
	nick  string
	role  Role
	muted bool
}

// Group is one group chat. Its fields are guarded by mu; the Service
// hands out Info copies only.
type Group struct {
	mu      sync.RWMutex
	name    string
	ext     string
	number  msg.Address
	private bool
	limit   int
	created time.Time
	members map[msg.Address]member
	invited map[msg.Address]struct{}
	robots  []string
}

// Member is a membership as Info shows it.
type Member struct {
	Address msg.Address `json:"address"`
	Nick    string      `json:"nick"`
	Role    string      `json:"role"`
	Muted   bool        `json:"muted,omitempty"`
}

// Info is a group as the API shows it.
type Info struct {
	Name    string      `json:"name"`
	Number  msg.Address `json:"number"`
	Private bool        `json:"private"`
	Limit   int         `json:"limit"`
	Created time.Time   `json:"created"`
	Size    int         `json:"size"`
	Members []Member    `json:"members,omitempty"`
	Invited []string    `json:"invited,omitempty"`
	Robots  []string    `json:"robots,omitempty"`
}

// info copies g; g.mu is held.
func (g *Group) info() Info {
	in := Info{Name: g.name, Number: g.number, Private: g.private, Limit: g.limit, Created: g.created, Size: len(g.members),
		Members: make([]Member, 0, len(g.members)), Robots: slices.Clone(g.robots)}
	for a, m := range g.members {
		in.Members = append(in.Members, Member{Address: a, Nick: m.nick, Role: m.role.String(), Muted: m.muted})
	}
	slices.SortFunc(in.Members, func(a, b Member) int { return strings.Compare(string(a.Address), string(b.Address)) })
	for a := range g.invited {
		in.Invited = append(in.Invited, string(a))
	}
	slices.Sort(in.Invited)
	return in
}

// record is a group as stored: the whole group in one value, rewritten on
// each change of membership (rare next to posts).
type record struct {
	Name    string         `json:"name"`
	Ext     string         `json:"ext"`
	Private bool           `json:"private,omitempty"`
	Limit   int            `json:"limit"`
	Created time.Time      `json:"created"`
	Members []storedMember `json:"members"`
	Invited []string       `json:"invited,omitempty"`
	Robots  []string       `json:"robots,omitempty"`
}

type storedMember struct {
	A string `json:"a"`
	N string `json:"n,omitempty"`
	R Role   `json:"r,omitempty"`
	M bool   `json:"m,omitempty"`
}

// encode is g as stored; g.mu is held.
func (g *Group) encode() ([]byte, error) {
	r := record{Name: g.name, Ext: g.ext, Private: g.private, Limit: g.limit, Created: g.created, Robots: g.robots}
	r.Members = make([]storedMember, 0, len(g.members))
	for a, m := range g.members {
		r.Members = append(r.Members, storedMember{string(a), m.nick, m.role, m.muted})
	}
	for a := range g.invited {
		r.Invited = append(r.Invited, string(a))
	}
	return json.Marshal(r)
}

// decode reads a stored group; number makes its address from its extension.
func decode(b []byte, number func(ext string) (msg.Address, error)) (*Group, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("group: decode: %w", err)
	}
	if err := checkName(r.Name); err != nil {
		return nil, fmt.Errorf("group: decode: %w", err)
	}
	n, err := number(r.Ext)
	if err != nil {
		return nil, fmt.Errorf("group %s: decode: %w", r.Name, err)
	}
	g := &Group{name: r.Name, ext: r.Ext, number: n, private: r.Private, limit: r.Limit, created: r.Created,
		members: make(map[msg.Address]member, len(r.Members)), invited: make(map[msg.Address]struct{}, len(r.Invited)),
		robots: r.Robots}
	for _, m := range r.Members {
		g.members[msg.Address(m.A)] = member{nick: m.N, role: m.R, muted: m.M}
	}
	for _, a := range r.Invited {
		g.invited[msg.Address(a)] = struct{}{}
	}
	return g, nil
}

// checkName allows what every network can carry in a command: 1–32 of
// a–z, 0–9, '-', '_' (names are folded to lower case first).
func checkName(name string) error {
	if name == "" || len(name) > 32 {
		return fmt.Errorf("%w %q: 1 to 32 characters", ErrInvalidName, name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("%w %q: only a-z, 0-9, '-' and '_'", ErrInvalidName, name)
		}
	}
	return nil
}

// defaultNick is what a member is called until they choose: the user part
// of an IM address, the last four digits of a number.
func defaultNick(a msg.Address) string {
	if a.IsMSISDN() {
		d := a.Digits()
		return "~" + d[max(0, len(d)-4):]
	}
	s := string(a)
	if i := strings.IndexByte(s, ':'); i >= 0 {
		s = s[i+1:]
	}
	if i := strings.IndexByte(s, '@'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 24 {
		s = s[:24]
	}
	return s
}

// KV is where groups are kept; store.DB satisfies it. Put and Delete are
// durable when they return nil.
type KV interface {
	Put(ctx context.Context, key, val []byte) error
	Get(key []byte) ([]byte, error)
	Delete(ctx context.Context, key []byte) error
	Iterate(prefix []byte, fn func(key, val []byte) error) error
}

const (
	groupPrefix = "grp/g/"
	stopPrefix  = "grp/stop/"
	lastPrefix  = "grp/last/"
)
