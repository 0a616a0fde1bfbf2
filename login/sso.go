package login

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/smsbridge/bridge/login/ssoticket"
)

// ErrUnknownService is returned for a ticket request naming no configured
// service.
var ErrUnknownService = errors.New("login: unknown SSO service")

// Service is a third party that accepts the bridge's SSO tickets.
type Service struct {
	ID    string        // what the client asks for, e.g. "wiki"
	KeyID string        // names Key in the ticket header; rotate by adding a new id
	Key   [32]byte      // AES-256-GCM key shared with the service
	TTL   time.Duration // ticket lifetime; default 2m
}

// Issuer seals SSO tickets for configured services. Safe for concurrent use
// (read-only after NewIssuer).
type Issuer struct {
	services map[string]Service
	now      func() time.Time
}

// NewIssuer checks the services. now nil = time.Now.
func NewIssuer(services []Service, now func() time.Time) (*Issuer, error) {
	if now == nil {
		now = time.Now
	}
	is := &Issuer{services: make(map[string]Service, len(services)), now: now}
	for _, s := range services {
		if s.ID == "" {
			return nil, errors.New("login: SSO service without id")
		}
		if !ssoticket.ValidKeyID(s.KeyID) {
			return nil, fmt.Errorf("login: SSO service %q: key id %q must be 1-64 of [A-Za-z0-9_-]", s.ID, s.KeyID)
		}
		if s.Key == ([32]byte{}) {
			return nil, fmt.Errorf("login: SSO service %q has an all-zero key", s.ID)
		}
		if _, dup := is.services[s.ID]; dup {
			return nil, fmt.Errorf("login: SSO service %q configured twice", s.ID)
		}
		if s.TTL <= 0 {
			s.TTL = 2 * time.Minute
		}
		is.services[s.ID] = s
	}
	return is, nil
}

// Services lists the configured service ids, sorted.
func (is *Issuer) Services() []string {
	out := make([]string, 0, len(is.services))
	for id := range is.services {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Issue seals a ticket for user (an authenticated IM identity such as
// "alice@im.example") toward service.
func (is *Issuer) Issue(user, service string) (string, error) {
	t, _, err := is.IssueClaims(user, "", service)
	return t, err
}

// IssueClaims is Issue with a display name, also returning the claims (for
// the API answer: expiry, ticket id).
func (is *Issuer) IssueClaims(user, display, service string) (string, ssoticket.Claims, error) {
	s, ok := is.services[service]
	if !ok {
		return "", ssoticket.Claims{}, fmt.Errorf("%w %q", ErrUnknownService, service)
	}
	if user == "" {
		return "", ssoticket.Claims{}, errors.New("login: SSO ticket without user")
	}
	now := is.now()
	c := ssoticket.Claims{
		User: user, Display: display, Service: s.ID, KeyID: s.KeyID,
		IssuedAt: now.Unix(), Expires: now.Add(s.TTL).Unix(),
	}
	// The ticket id is made here, not left to Seal, so the caller gets it
	// back without reopening the ticket.
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", ssoticket.Claims{}, fmt.Errorf("login: random ticket id: %w", err)
	}
	c.ID = hex.EncodeToString(id[:])
	t, err := ssoticket.Seal(s.Key, c)
	if err != nil {
		return "", ssoticket.Claims{}, fmt.Errorf("login: seal ticket for %q: %w", service, err)
	}
	return t, c, nil
}
