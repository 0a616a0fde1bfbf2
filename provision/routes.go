package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/smsbridge/bridge/msg"
)

// Route sends SMS for destinations starting with Prefix to Target.
type Route struct {
	Name   string `json:"name"`
	Target string `json:"target"`           // "smsc" (any SMSC), "smsc:NAME|NAME" (one of those) or "esme:SYSTEM_ID"
	Prefix string `json:"prefix,omitempty"` // E.164 digits ("+" optional); "" matches every number
}

// MaxRoutes bounds the route table (it is matched linearly).
const MaxRoutes = 1000

// ValidateRoutes checks a route table and returns it normalized (prefixes
// without "+").
func ValidateRoutes(in []Route) ([]Route, error) {
	if len(in) > MaxRoutes {
		return nil, invalid("%d routes, at most %d", len(in), MaxRoutes)
	}
	out := make([]Route, 0, len(in))
	seen := map[string]bool{}
	prefixes := map[string]string{} // prefix → the route that has it
	for i, r := range in {
		if err := validToken(r.Name, 64, "._-"); err != nil {
			return nil, invalid("routes[%d]: name %q %v", i, r.Name, err)
		}
		if seen[r.Name] {
			return nil, invalid("routes[%d]: name %q used twice", i, r.Name)
		}
		seen[r.Name] = true
		if err := validTarget(r.Target); err != nil {
			return nil, invalid("routes[%d] %s: target %q must be \"smsc\", \"smsc:NAME|NAME\" or \"esme:SYSTEM_ID\"", i, r.Name, r.Target)
		}
		p := strings.TrimPrefix(r.Prefix, "+")
		if len(p) > 15 || strings.Trim(p, "0123456789") != "" {
			return nil, invalid("routes[%d] %s: prefix %q is not E.164 digits", i, r.Name, r.Prefix)
		}
		// Two routes for one prefix: only the first would ever be used.
		if other, dup := prefixes[p]; dup {
			return nil, invalid("routes[%d] %s: prefix %q is route %s's already", i, r.Name, r.Prefix, other)
		}
		prefixes[p] = r.Name
		out = append(out, Route{Name: r.Name, Target: r.Target, Prefix: p})
	}
	return out, nil
}

// validTarget checks a target's form: smsc, smsc:NAME|NAME, esme:ID.
func validTarget(t string) error {
	if t == "smsc" {
		return nil
	}
	if names, ok := strings.CutPrefix(t, "smsc:"); ok {
		for _, n := range strings.Split(names, "|") {
			if err := validToken(n, 32, "._-"); err != nil {
				return err
			}
		}
		return nil
	}
	id, ok := strings.CutPrefix(t, "esme:")
	if !ok {
		return errors.New("unknown kind")
	}
	return validToken(id, 15, "._-")
}

// SetRoutes replaces the whole route table atomically (one KV write).
func (s *Store) SetRoutes(ctx context.Context, routes []Route) error {
	rs, err := ValidateRoutes(routes)
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	// A route to nowhere would be accepted and then hold every message for
	// its prefix until expiry.
	for i, r := range rs {
		if err := s.CheckTarget(r.Target); err != nil {
			return invalid("routes[%d] %s: %v", i, r.Name, err)
		}
	}
	if err := s.put(ctx, keyRoutes, rs); err != nil {
		return err
	}
	s.mu.Lock()
	s.c.routes = rs
	s.mu.Unlock()
	s.changed()
	return nil
}

// CheckTarget tells whether a route target can carry SMS: "smsc" needs an
// upstream SMSC, "smsc:NAME|NAME" SMSCs of those names, "esme:ID" an
// account ID.
func (s *Store) CheckTarget(target string) error {
	if target == "smsc" {
		if !s.opts.SMSC && len(s.opts.SMSCs) == 0 {
			return errors.New("target smsc, but no SMSC is configured (--smsc)")
		}
		return nil
	}
	if names, ok := strings.CutPrefix(target, "smsc:"); ok {
		for _, n := range strings.Split(names, "|") {
			if !slices.Contains(s.opts.SMSCs, n) {
				return fmt.Errorf("target %s names SMSC %q, which is not configured (--smsc %s=…)", target, n, n)
			}
		}
		return nil
	}
	id := strings.TrimPrefix(target, "esme:")
	if !s.AccountKnown(id) {
		return fmt.Errorf("target %s names no SMPP account", target)
	}
	return nil
}

// AccountKnown tells whether systemID is an account: provisioned, static
// or configured.
func (s *Store) AccountKnown(systemID string) bool {
	if _, ok := s.opts.StaticAccounts[systemID]; ok {
		return true
	}
	if s.opts.ConfiguredAccount != nil && s.opts.ConfiguredAccount(systemID) {
		return true
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.c.accounts[systemID]
	return ok
}

// Routes returns the route table in order.
func (s *Store) Routes() []Route {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.c.routes)
}

// RouteFor picks the route for destination to: the longest matching prefix,
// the earlier route on a tie. Non-numbers match nothing.
func (s *Store) RouteFor(to msg.Address) (Route, bool) {
	d := to.Digits()
	if d == "" {
		return Route{}, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	best := -1
	for i, r := range s.c.routes {
		if strings.HasPrefix(d, r.Prefix) && (best < 0 || len(r.Prefix) > len(s.c.routes[best].Prefix)) {
			best = i
		}
	}
	if best < 0 {
		return Route{}, false
	}
	return s.c.routes[best], true
}

// String renders a route for logs.
func (r Route) String() string { return fmt.Sprintf("%s(+%s*→%s)", r.Name, r.Prefix, r.Target) }
