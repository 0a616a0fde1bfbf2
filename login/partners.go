package login

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// Site is a configured partner website.
type Site struct {
	ID           string // the "site" of "alice#site"
	VerifyURL    string // POST endpoint answering VerifyRequest
	ServerID     string // the bridge's identifier at this site
	ServerSecret string // shared secret for the request HMAC
	ContactsURL  string // GET ?user=; "" = not offered
	PostsURL     string // GET ?user=; "" = not offered
	Enabled      bool   // authorized for the IM service
}

// Partner errors; test with errors.Is.
var (
	ErrUnknownSite        = errors.New("login: unknown partner site")
	ErrSiteDisabled       = errors.New("login: partner site not authorized")
	ErrDenied             = errors.New("login: denied")
	ErrServerRejected     = errors.New("login: partner site refused the bridge's server credentials")
	ErrCircuitOpen        = errors.New("login: partner site circuit open")
	ErrPartnerUnavailable = errors.New("login: partner site unavailable")
	ErrNotOffered         = errors.New("login: partner site offers no such endpoint")
	ErrBadName            = errors.New("login: malformed login name")
)

// PartnersConfig configures Partners. Zero values take the defaults noted.
type PartnersConfig struct {
	Sites            []Site
	Timeout          time.Duration // per attempt; default 3s
	Retries          int           // attempts after the first on transport error/5xx; default 2, <0 = none
	Backoff          time.Duration // before the first retry, doubled each time, ±50% jitter; default 100ms
	MaxBackoff       time.Duration // default 2s
	BreakerThreshold int           // consecutive failures that open a site's breaker; default 5
	BreakerCooldown  time.Duration // open time before a half-open probe; default 30s
	CacheTTL         time.Duration // contacts/posts cache; default 60s, <0 = no cache
	CacheMax         int           // cached entries; default 10000
	MaxResponseBytes int           // default 1 MiB
	// TLSConfig verifies https:// sites (nil: the system's roots); its
	// ServerName comes from each URL's host.
	TLSConfig *tls.Config
	Now       func() time.Time
	Logger    *slog.Logger
}

// Identity is a user a partner site admitted.
type Identity struct {
	Site    string
	User    string // the user's name at the site
	Display string
}

// Name is the login name "user#site".
func (i Identity) Name() string { return i.User + PartnerSep + i.Site }

// Partners talks to partner sites: verify, contacts, posts. Safe for
// concurrent use.
type Partners struct {
	cfg      PartnersConfig
	sites    map[string]Site
	breakers map[string]*breaker
	client   *fasthttp.Client
	contacts *ttlCache[[]Contact]
	posts    *ttlCache[[]Post]
	log      *slog.Logger
}

// NewPartners checks the site list and builds the client.
func NewPartners(cfg PartnersConfig) (*Partners, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.Retries == 0 {
		cfg.Retries = 2
	} else if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 2 * time.Second
	}
	if cfg.BreakerThreshold <= 0 {
		cfg.BreakerThreshold = 5
	}
	if cfg.BreakerCooldown <= 0 {
		cfg.BreakerCooldown = 30 * time.Second
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = time.Minute
	}
	if cfg.CacheMax <= 0 {
		cfg.CacheMax = 10000
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = 1 << 20
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Partners{
		cfg:      cfg,
		sites:    make(map[string]Site, len(cfg.Sites)),
		breakers: make(map[string]*breaker, len(cfg.Sites)),
		client: &fasthttp.Client{
			Name:                      "smsbridge-login",
			ReadTimeout:               cfg.Timeout,
			WriteTimeout:              cfg.Timeout,
			MaxIdleConnDuration:       30 * time.Second,
			MaxResponseBodySize:       cfg.MaxResponseBytes,
			MaxIdemponentCallAttempts: 1, // our own loop retries, with backoff and the breaker in view
			MaxConnsPerHost:           64,
			MaxConnWaitTimeout:        cfg.Timeout,
			TLSConfig:                 cfg.TLSConfig,
		},
		contacts: newTTLCache[[]Contact](cfg.CacheTTL, cfg.CacheMax, cfg.Now),
		posts:    newTTLCache[[]Post](cfg.CacheTTL, cfg.CacheMax, cfg.Now),
		log:      cfg.Logger,
	}
	for _, s := range cfg.Sites {
		if s.ID == "" {
			return nil, errors.New("login: partner site without id")
		}
		if _, dup := p.sites[s.ID]; dup {
			return nil, fmt.Errorf("login: partner site %q configured twice", s.ID)
		}
		if s.Enabled {
			if _, err := url.ParseRequestURI(s.VerifyURL); err != nil {
				return nil, fmt.Errorf("login: partner site %q verify url: %w", s.ID, err)
			}
			if s.ServerID == "" || s.ServerSecret == "" {
				return nil, fmt.Errorf("login: partner site %q needs a server id and secret", s.ID)
			}
		}
		p.sites[s.ID] = s
		p.breakers[s.ID] = &breaker{threshold: cfg.BreakerThreshold, cooldown: cfg.BreakerCooldown, now: cfg.Now}
	}
	return p, nil
}

// Authorized reports whether id is a configured and enabled site.
func (p *Partners) Authorized(id string) bool {
	s, ok := p.sites[id]
	return ok && s.Enabled
}

// Breaker reports a site's breaker state: "closed", "open" or "half-open".
func (p *Partners) Breaker(site string) string {
	if b, ok := p.breakers[site]; ok {
		return b.current().String()
	}
	return ""
}

// site returns an authorized site; never any network traffic for others.
func (p *Partners) site(id string) (Site, error) {
	s, ok := p.sites[id]
	if !ok {
		return s, fmt.Errorf("%w %q", ErrUnknownSite, id)
	}
	if !s.Enabled {
		return s, fmt.Errorf("%w: %q", ErrSiteDisabled, id)
	}
	return s, nil
}

// resolve takes the site either explicitly or from "user#site".
func resolve(site, user string) (string, string, error) {
	if u, s, ok := SplitPartner(user); ok {
		if site != "" && site != s {
			return "", "", fmt.Errorf("%w: %q names site %q, not %q", ErrBadName, user, s, site)
		}
		return s, u, nil
	}
	if site == "" || user == "" {
		return "", "", fmt.Errorf("%w: %q has no partner site", ErrBadName, user)
	}
	return site, user, nil
}

// VerifyPassword asks the site whether user/password may log in. site may be
// "" when user is "alice#site"; user may be bare when site is given.
func (p *Partners) VerifyPassword(ctx context.Context, site, user, password string) (Identity, error) {
	site, user, err := resolve(site, user)
	if err != nil {
		return Identity{}, err
	}
	return p.verify(ctx, site, VerifyRequest{User: user, Password: password})
}

// VerifyDigest forwards SIP digest parameters to the site, which checks them
// against the user's password. d.Username is what the UA sent ("alice#site");
// site may be "" to take it from there. The caller must already have checked
// that d.Nonce is one it issued and is fresh.
func (p *Partners) VerifyDigest(ctx context.Context, site string, d DigestParams) (Identity, error) {
	site, user, err := resolve(site, d.Username)
	if err != nil {
		return Identity{}, err
	}
	if _, err := p.site(site); err != nil {
		return Identity{}, err
	}
	if !d.Valid() {
		return Identity{}, fmt.Errorf("%w: incomplete digest parameters", ErrDenied)
	}
	return p.verify(ctx, site, VerifyRequest{User: user, Digest: &d})
}

func (p *Partners) verify(ctx context.Context, siteID string, vr VerifyRequest) (Identity, error) {
	s, err := p.site(siteID)
	if err != nil {
		return Identity{}, err
	}
	vr.ServerID = s.ServerID
	body, err := json.Marshal(vr)
	if err != nil {
		return Identity{}, fmt.Errorf("login: encode verify request: %w", err)
	}
	raw, err := p.call(ctx, s, fasthttp.MethodPost, s.VerifyURL, body)
	if err != nil {
		return Identity{}, err
	}
	var ans VerifyResponse
	if err := json.Unmarshal(raw, &ans); err != nil {
		return Identity{}, fmt.Errorf("%w: site %q: bad verify answer: %v", ErrPartnerUnavailable, s.ID, err)
	}
	if !ans.Allow {
		p.log.Info("partner login denied", "site", s.ID, "user", vr.User, "reason", ans.Reason)
		return Identity{}, fmt.Errorf("%w by site %q: %s", ErrDenied, s.ID, ans.Reason)
	}
	id := Identity{Site: s.ID, User: vr.User, Display: ans.Display}
	if ans.User != "" {
		id.User = ans.User
	}
	return id, nil
}

// Contacts returns user's contact list at site, cached for CacheTTL.
func (p *Partners) Contacts(ctx context.Context, site, user string) ([]Contact, error) {
	return fetchList(ctx, p, p.contacts, site, user, "contacts",
		func(s Site) string { return s.ContactsURL },
		func(r *ContactsResponse) []Contact { return r.Contacts })
}

// Posts returns the site's published posts as shown to user, cached for
// CacheTTL.
func (p *Partners) Posts(ctx context.Context, site, user string) ([]Post, error) {
	return fetchList(ctx, p, p.posts, site, user, "posts",
		func(s Site) string { return s.PostsURL },
		func(r *PostsResponse) []Post { return r.Posts })
}

// fetchList gets one of a site's per-user lists (answer type R holding a
// []T), through cache.
func fetchList[T, R any](ctx context.Context, p *Partners, cache *ttlCache[[]T], site, user, what string,
	url func(Site) string, list func(*R) []T) ([]T, error) {
	site, user, err := resolve(site, user)
	if err != nil {
		return nil, err
	}
	s, err := p.site(site)
	if err != nil {
		return nil, err
	}
	key := site + "\x00" + user
	if v, ok := cache.get(key); ok {
		return v, nil
	}
	if url(s) == "" {
		return nil, fmt.Errorf("%w: %s at %q", ErrNotOffered, what, site)
	}
	raw, err := p.call(ctx, s, fasthttp.MethodGet, withUser(url(s), user), nil)
	if err != nil {
		return nil, err
	}
	var ans R
	if err := json.Unmarshal(raw, &ans); err != nil {
		return nil, fmt.Errorf("%w: site %q: bad %s answer: %v", ErrPartnerUnavailable, site, what, err)
	}
	v := list(&ans)
	cache.put(key, v)
	return v, nil
}

func withUser(base, user string) string {
	sep := "?"
	if u, err := url.Parse(base); err == nil && u.RawQuery != "" {
		sep = "&"
	}
	return base + sep + "user=" + url.QueryEscape(user)
}

// errPermanent marks an answer that retrying cannot change.
type errPermanent struct{ error }

// call sends one signed request with retries, under the site's breaker.
// Only transport errors, timeouts and 5xx count as breaker failures: a site
// that answers 4xx is up, just unhappy with us.
func (p *Partners) call(ctx context.Context, s Site, method, rawURL string, body []byte) ([]byte, error) {
	b := p.breakers[s.ID]
	backoff := p.cfg.Backoff
	var last error
	for attempt := 0; attempt <= p.cfg.Retries; attempt++ {
		if attempt > 0 {
			d := backoff/2 + rand.N(backoff) // ±50% so a fleet of bridges does not retry in step
			backoff = min(2*backoff, p.cfg.MaxBackoff)
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, fmt.Errorf("%w: site %q: %w (last: %v)", ErrPartnerUnavailable, s.ID, ctx.Err(), last)
			case <-t.C:
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%w: site %q: %w", ErrPartnerUnavailable, s.ID, err)
		}
		if !b.allow() {
			if last != nil {
				return nil, fmt.Errorf("%w: site %q (last: %v)", ErrCircuitOpen, s.ID, last)
			}
			return nil, fmt.Errorf("%w: site %q", ErrCircuitOpen, s.ID)
		}
		raw, err := p.once(ctx, s, method, rawURL, body)
		if err == nil {
			b.success()
			return raw, nil
		}
		var perm errPermanent
		if errors.As(err, &perm) {
			b.success()
			return nil, perm.error
		}
		b.failure()
		last = err
		p.log.Warn("partner call failed", "site", s.ID, "attempt", attempt+1, "err", err, "breaker", b.current().String())
	}
	return nil, fmt.Errorf("%w: site %q after %d attempts: %v", ErrPartnerUnavailable, s.ID, p.cfg.Retries+1, last)
}

func (p *Partners) once(ctx context.Context, s Site, method, rawURL string, body []byte) ([]byte, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(rawURL)
	req.Header.SetMethod(method)
	ts := p.cfg.Now().Unix()
	req.Header.Set(HeaderServerID, s.ServerID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(s.ServerSecret, method, string(req.URI().RequestURI()), s.ServerID, ts, body))
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBody(body)
	}
	deadline := time.Now().Add(p.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := p.client.DoDeadline(req, resp, deadline); err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, req.URI().Path(), err)
	}
	code := resp.StatusCode()
	switch {
	case code == fasthttp.StatusUnauthorized || code == fasthttp.StatusForbidden:
		return nil, errPermanent{fmt.Errorf("%w: site %q answered %d: %s", ErrServerRejected, s.ID, code, clip(resp.Body()))}
	case code >= 500:
		return nil, fmt.Errorf("site answered %d", code)
	case code != fasthttp.StatusOK:
		return nil, errPermanent{fmt.Errorf("%w: site %q answered %d: %s", ErrPartnerUnavailable, s.ID, code, clip(resp.Body()))}
	}
	return append([]byte(nil), resp.Body()...), nil
}

func clip(b []byte) string {
	if len(b) > 120 {
		return string(b[:120]) + "…"
	}
	return string(b)
}
