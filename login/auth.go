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
	Partners    *Partners
	Social      *SocialAccounts
	Users       UserStore    // nil = NewMemoryUsers()
	Credentials *Credentials // nil = no SIP password is issued
	// MapUser turns an external account into the IM user name (a SIP user
	// part). nil = "account.site".
	MapUser func(kind Kind, account, site string) string
	Logger  *slog.Logger
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
	SIP     *Credential `json:"sip,omitempty"`     // issued SIP password (partner and social)
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
	if cfg.MapUser == nil {
		cfg.MapUser = func(_ Kind, account, site string) string { return imUserName(account, site) }
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
// issues a SIP password.
func (a *Authenticator) Password(ctx context.Context, name, password string) (Result, error) {
	switch a.Classify(name) {
	case Partner:
		if a.cfg.Partners == nil {
			return Result{}, fmt.Errorf("%w: partner logins not configured", ErrUnknownSite)
		}
		id, err := a.cfg.Partners.VerifyPassword(ctx, "", name, password)
		if err != nil {
			return Result{}, err
		}
		return a.admit(ctx, Partner, name, id.User, id.Site, id.Display)
	case Social:
		account, site, _ := SplitSocial(name)
		if _, err := a.cfg.Social.Verify(account, site, password); err != nil {
			a.log.Info("social login refused", "site", site, "account", account, "err", err)
			return Result{}, err
		}
		return a.admit(ctx, Social, name, account, site, "")
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
	user := a.cfg.MapUser(k, account, site)
	created, err := a.cfg.Users.Ensure(ctx, user, display)
	if err != nil {
		return Result{}, fmt.Errorf("login: create IM user %q: %w", user, err)
	}
	if created {
		a.log.Info("IM user created on first login", "user", user, "kind", k.String(), "site", site)
	}
	return Result{Kind: k, Name: name, User: user, AOR: a.aor(user), Display: display, Site: site, Created: created}, nil
}

func (a *Authenticator) admit(ctx context.Context, k Kind, name, account, site, display string) (Result, error) {
	r, err := a.ensure(ctx, k, name, account, site, display)
	if err != nil {
		return Result{}, err
	}
	if a.cfg.Credentials != nil {
		c, err := a.cfg.Credentials.Issue(r.User)
		if err != nil {
			return Result{}, err
		}
		r.SIP = &c
	}
	return r, nil
}

// HA1 is the lookup to give the sip package: the bridge's own users first,
// then SIP passwords issued after partner and social logins.
func (a *Authenticator) HA1(user string) (string, bool) {
	var issued func(string) (string, bool)
	if a.cfg.Credentials != nil {
		issued = a.cfg.Credentials.HA1Func(a.cfg.Domain)
	}
	return Chain(a.cfg.OrdinaryHA1, issued)(user)
}
