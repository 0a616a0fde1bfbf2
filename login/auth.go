package login

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// ErrBadPassword is the answer to a wrong ordinary password or unknown user
// (deliberately the same error for both).
var ErrBadPassword = errors.New("login: wrong user name or password")

// Config wires the login paths together. Only Domain is required; a nil
// Partners or Social disables that path (names of that form are refused).
type Config struct {
	Domain      string                                  // the bridge's SIP domain, also the digest realm
	OrdinaryHA1 func(user string) (ha1 string, ok bool) // the bridge's own users (config.Users())
	// OrdinaryHA1SHA256 is their SHA-256 digest credential (RFC 8760); nil = none.
	OrdinaryHA1SHA256 func(user string) (ha1 string, ok bool)
	Partners          *Partners
	Social            *SocialAccounts
	// Users names and creates the IM users of partner and social accounts
	// (the bridge's directory); nil = NewMemoryUsers().
	Users       UserStore
	Credentials *Credentials // nil = no SIP password is issued; its realm must be Domain
	Logger      *slog.Logger
}

// Result is an admitted login.
type Result struct {
	Kind    Kind        `json:"kind"`
	Name    string      `json:"name"`              // login name as given
	User    string      `json:"user"`              // IM user name (SIP user part)
	AOR     string      `json:"aor"`               // sip:User@Domain
	Display string      `json:"display,omitempty"` // from the site, if any
	Site    string      `json:"site,omitempty"`
	Created bool        `json:"created,omitempty"` // the IM user was created by this login
	SIP     *Credential `json:"sip,omitempty"`     // SIP password issued to this device (partner and social)
}

// Authenticator admits or refuses logins by the form of the name. Safe for
// concurrent use.
type Authenticator struct {
	cfg Config
	log *slog.Logger
}

// New checks cfg.
func New(cfg Config) (*Authenticator, error) {
	if cfg.Domain == "" {
		return nil, errors.New("login: no domain")
	}
	if cfg.Users == nil {
		cfg.Users = NewMemoryUsers()
	}
	if cfg.Credentials != nil && cfg.Credentials.Realm() != cfg.Domain {
		return nil, fmt.Errorf("login: credentials realm %q is not the domain %q", cfg.Credentials.Realm(), cfg.Domain)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Authenticator{cfg: cfg, log: cfg.Logger}, nil
}

// Classify tells which path name takes, with the configured social sites.
func (a *Authenticator) Classify(name string) Kind {
	return Classify(name, a.cfg.Social.IsSite)
}

// Password admits name/password on any path: the HTTP API (/v1/login) and
// SIP-C logins that carry the password. For partner and social logins it
// creates the IM user on first login and, with Credentials configured,
// issues a SIP password for device ("" = a random device id, returned in
// Result.SIP.Device), leaving the user's other devices logged in.
func (a *Authenticator) Password(ctx context.Context, name, password, device string) (Result, error) {
	return a.password(ctx, name, password, device, true)
}

// Check admits name/password as Password does, creating the IM user of a
// first partner or social login, but issues no SIP password: for servers
// that only ask whether a login is good (the XMPP server's auth module).
func (a *Authenticator) Check(ctx context.Context, name, password string) (Result, error) {
	return a.password(ctx, name, password, "", false)
}

func (a *Authenticator) password(ctx context.Context, name, password, device string, issue bool) (Result, error) {
	switch a.Classify(name) {
	case Partner:
		if a.cfg.Partners == nil {
			return Result{}, fmt.Errorf("%w: partner logins not configured", ErrUnknownSite)
		}
		id, err := a.cfg.Partners.VerifyPassword(ctx, "", name, password)
		if err != nil {
			return Result{}, err
		}
		return a.admit(ctx, Partner, name, id.User, id.Site, id.Display, device, issue)
	case Social:
		account, site, _ := SplitSocial(name)
		if a.cfg.Social == nil {
			return Result{}, fmt.Errorf("%w %q", ErrUnknownSocial, site)
		}
		if _, err := a.cfg.Social.Verify(ctx, account, site, password); err != nil {
			a.log.Info("social login refused", "site", site, "account", account, "err", err)
			return Result{}, err
		}
		return a.admit(ctx, Social, name, account, site, "", device, issue)
	default:
		return a.ordinary(name, password)
	}
}

// PartnerDigest admits a SIP REGISTER whose digest username is "alice#site"
// by asking the site (the bridge has already checked its own nonce). No SIP
// password is issued: the UA already knows its password.
func (a *Authenticator) PartnerDigest(ctx context.Context, d DigestParams) (Result, error) {
	if a.Classify(d.Username) != Partner || a.cfg.Partners == nil {
		return Result{}, fmt.Errorf("%w: %q is not a partner login", ErrBadName, d.Username)
	}
	id, err := a.cfg.Partners.VerifyDigest(ctx, "", d)
	if err != nil {
		return Result{}, err
	}
	r, err := a.ensure(ctx, Partner, d.Username, id.User, id.Site, id.Display)
	return r, err
}

func (a *Authenticator) ordinary(name, password string) (Result, error) {
	user := name
	if u, dom, ok := strings.Cut(name, "@"); ok {
		if !strings.EqualFold(dom, a.cfg.Domain) {
			return Result{}, fmt.Errorf("%w: domain %q is neither ours nor a social site", ErrBadPassword, dom)
		}
		user = u
	}
	if a.cfg.OrdinaryHA1 == nil || user == "" {
		return Result{}, ErrBadPassword
	}
	have, ok := a.cfg.OrdinaryHA1(user)
	// Compute even for an unknown user so that timing does not tell.
	want := HA1(user, a.cfg.Domain, password)
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(have)), []byte(want)) != 1 || !ok {
		return Result{}, ErrBadPassword
	}
	return Result{Kind: Ordinary, Name: name, User: user, AOR: a.aor(user)}, nil
}

func (a *Authenticator) aor(user string) string { return "sip:" + user + "@" + a.cfg.Domain }

func (a *Authenticator) ensure(ctx context.Context, k Kind, name, account, site, display string) (Result, error) {
	user, created, err := a.cfg.Users.EnsureExternal(ctx, k.String(), site, account, display)
	if err != nil {
		return Result{}, fmt.Errorf("login: IM user for %s account %q at %q: %w", k, account, site, err)
	}
	if created {
		a.log.Info("IM user created on first login", "user", user, "kind", k.String(), "site", site)
	}
	return Result{Kind: k, Name: name, User: user, AOR: a.aor(user), Display: display, Site: site, Created: created}, nil
}

func (a *Authenticator) admit(ctx context.Context, k Kind, name, account, site, display, device string, issue bool) (Result, error) {
	r, err := a.ensure(ctx, k, name, account, site, display)
	if err != nil {
		return Result{}, err
	}
	if issue && a.cfg.Credentials != nil {
		c, err := a.cfg.Credentials.Issue(ctx, r.User, device)
		if err != nil {
			return Result{}, err
		}
		r.SIP = &c
	}
	return r, nil
}

// HA1 is the ordinary lookup to give the sip and mcp packages (Config.HA1):
// the bridge's own users. Issued SIP passwords are not in it: a user may
// have several, one per device (Issued).
func (a *Authenticator) HA1(user string) (string, bool) {
	if a.cfg.OrdinaryHA1 == nil {
		return "", false
	}
	return a.cfg.OrdinaryHA1(user)
}

// HA1SHA256 is HA1 for SHA-256 digest (sip.Config.HA1SHA256).
func (a *Authenticator) HA1SHA256(user string) (string, bool) {
	if a.cfg.OrdinaryHA1SHA256 == nil {
		return "", false
	}
	return a.cfg.OrdinaryHA1SHA256(user)
}

// IssuedSHA256 is Issued for SHA-256 digest (sip.Config.IssuedSHA256).
func (a *Authenticator) IssuedSHA256(user string) []string {
	if a.cfg.Credentials == nil {
		return nil
	}
	return a.cfg.Credentials.IssuedSHA256(user)
}

// Issued returns the HA1s of user's live issued SIP passwords, one per
// device (sip.Config.Issued, mcp.Config.Issued); nil without Credentials.
func (a *Authenticator) Issued(user string) []string {
	if a.cfg.Credentials == nil {
		return nil
	}
	return a.cfg.Credentials.Issued(user)
}

// CheckSIPPassword reports whether password is user's ordinary password or
// one of its live issued SIP passwords, comparing every candidate in
// constant time (for an HTTP endpoint that takes SIP credentials).
func (a *Authenticator) CheckSIPPassword(user, password string) bool {
	want := HA1(user, a.cfg.Domain, password)
	have, ok := a.HA1(user)
	match := subtle.ConstantTimeCompare([]byte(strings.ToLower(have)), []byte(want)) & boolInt(ok)
	for _, h := range a.Issued(user) {
		match |= subtle.ConstantTimeCompare([]byte(h), []byte(want))
	}
	return match == 1
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Revoke logs one device of user out (Credentials.Revoke).
func (a *Authenticator) Revoke(ctx context.Context, user, device string) error {
	if a.cfg.Credentials == nil {
		return nil
	}
	return a.cfg.Credentials.Revoke(ctx, user, device)
}

// RevokeAll logs every device of user out (Credentials.RevokeAll).
func (a *Authenticator) RevokeAll(ctx context.Context, user string) error {
	if a.cfg.Credentials == nil {
		return nil
	}
	return a.cfg.Credentials.RevokeAll(ctx, user)
}
