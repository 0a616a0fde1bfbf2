package api

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/smsbridge/bridge/directory"
	"github.com/smsbridge/bridge/login"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
	"github.com/smsbridge/bridge/provision"
)

// provFail maps provisioning errors to status codes: the client's mistakes
// are 4xx, only a failing store is 503.
func (s *Server) provFail(ctx *fasthttp.RequestCtx, err error) {
	msg := strings.TrimPrefix(err.Error(), "provision: ")
	switch {
	case errors.Is(err, provision.ErrInvalid):
		fail(ctx, fasthttp.StatusBadRequest, "%s", msg)
	case errors.Is(err, provision.ErrNotFound):
		fail(ctx, fasthttp.StatusNotFound, "%s", msg)
	case errors.Is(err, provision.ErrExists), errors.Is(err, provision.ErrStatic), errors.Is(err, provision.ErrInUse):
		fail(ctx, fasthttp.StatusConflict, "%s", msg)
	default:
		s.log.Warn("api provisioning not stored", "err", err)
		fail(ctx, fasthttp.StatusServiceUnavailable, "not stored: %s", msg)
	}
}

// AccountList is the body of GET /v1/accounts.
type AccountList struct {
	Accounts []provision.Account `json:"accounts"`
}

func (s *Server) listAccounts(ctx *fasthttp.RequestCtx, _ []string) {
	writeJSON(ctx, fasthttp.StatusOK, AccountList{Accounts: s.cfg.Provision.Accounts()})
}

func (s *Server) createAccount(ctx *fasthttp.RequestCtx, _ []string) {
	var spec provision.AccountSpec
	if !readJSON(ctx, &spec) {
		return
	}
	a, err := s.cfg.Provision.CreateAccount(detach(ctx), spec)
	if err != nil {
		s.provFail(ctx, err)
		return
	}
	ctx.Response.Header.Set("Location", "/v1/accounts/"+url.PathEscape(a.SystemID))
	writeJSON(ctx, fasthttp.StatusCreated, a)
}

func (s *Server) getAccount(ctx *fasthttp.RequestCtx, p []string) {
	a, ok := s.cfg.Provision.Account(p[0])
	if !ok {
		fail(ctx, fasthttp.StatusNotFound, "no account %q", p[0])
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, a)
}

func (s *Server) deleteAccount(ctx *fasthttp.RequestCtx, p []string) {
	if err := s.cfg.Provision.DeleteAccount(detach(ctx), p[0]); err != nil {
		s.provFail(ctx, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// RouteTable is the body of GET and PUT /v1/routes.
type RouteTable struct {
	Routes []provision.Route `json:"routes"`
}

func (s *Server) getRoutes(ctx *fasthttp.RequestCtx, _ []string) {
	rs := s.cfg.Provision.Routes()
	if rs == nil {
		rs = []provision.Route{}
	}
	writeJSON(ctx, fasthttp.StatusOK, RouteTable{Routes: rs})
}

func (s *Server) putRoutes(ctx *fasthttp.RequestCtx, _ []string) {
	var t RouteTable
	if !readJSON(ctx, &t) {
		return
	}
	if t.Routes == nil {
		fail(ctx, fasthttp.StatusBadRequest, `body needs "routes" (an empty list clears the table)`)
		return
	}
	if err := s.cfg.Provision.SetRoutes(detach(ctx), t.Routes); err != nil {
		s.provFail(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, RouteTable{Routes: s.cfg.Provision.Routes()})
}

// PresenceRequest is the body of PUT /v1/presence/{address}.
type PresenceRequest struct {
	Contact   string `json:"contact"`
	Via       string `json:"via,omitempty"` // edge that delivers to Contact: "sip" (the default, a sip: or sips: URI) or "xmpp" (an xmpp: URI)
	ExpiresIn int    `json:"expires_in"`    // seconds, 1..MaxPresenceSeconds
}

// MaxPresenceSeconds bounds a pushed binding's lifetime (7 days): the
// pusher must refresh, so a crashed IM server's users do not stay online.
const MaxPresenceSeconds = 7 * 24 * 3600

// PresenceView is the answer of GET and PUT /v1/presence/{address}.
type PresenceView struct {
	Address  msg.Address        `json:"address"`
	Online   bool               `json:"online"`
	Bindings []presence.Binding `json:"bindings"`
}

// ParsePresenceRequest checks a PUT /v1/presence body into a binding of aor.
func ParsePresenceRequest(body []byte, aor msg.Address, now time.Time) (presence.Binding, error) {
	var req PresenceRequest
	if err := decodeStrict(body, &req); err != nil {
		return presence.Binding{}, err
	}
	c := strings.TrimSpace(req.Contact)
	if c == "" || len(c) > 512 || strings.IndexFunc(c, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return presence.Binding{}, errors.New("contact must be 1 to 512 bytes without spaces or control characters (e.g. sip:alice@10.0.0.5:5060)")
	}
	via := req.Via
	if via == "" {
		via = "sip"
	}
	// Messages are delivered to the contact: only a URI the named edge can
	// send to is one (a javascript: or http: contact would be retried until
	// the binding expires, and shown to whoever reads presence). Handsets
	// (mcp) and external accounts bind through their own edges.
	scheme, rest, _ := strings.Cut(c, ":")
	switch scheme = strings.ToLower(scheme); {
	case via == "sip" && (scheme == "sip" || scheme == "sips"):
	case via == "xmpp" && scheme == "xmpp":
		c = strings.TrimPrefix(rest, "//") // the XMPP edge sends to the bare or full JID
	case via == "sip" || via == "xmpp":
		return presence.Binding{}, fmt.Errorf("contact %q: via %s wants a %s: URI", req.Contact, via, via)
	default:
		return presence.Binding{}, fmt.Errorf("via %q: the API binds sip and xmpp contacts; other edges bind their own", req.Via)
	}
	if rest == "" || rest[0] == '@' || c == "" {
		return presence.Binding{}, fmt.Errorf("contact %q names no user or host", req.Contact)
	}
	if req.ExpiresIn < 1 || req.ExpiresIn > MaxPresenceSeconds {
		return presence.Binding{}, fmt.Errorf("expires_in must be 1 to %d seconds; DELETE takes a user offline", MaxPresenceSeconds)
	}
	return presence.Binding{AOR: aor, Contact: c, Via: via,
		Expires: now.Add(time.Duration(req.ExpiresIn) * time.Second).UTC(), Updated: now.UTC()}, nil
}

func (s *Server) presenceAddr(ctx *fasthttp.RequestCtx, raw string) (msg.Address, bool) {
	a, err := parseParty(raw, s.cfg.CountryCode)
	if err == nil && strings.HasPrefix(string(a), "alpha:") {
		err = errors.New("an alphanumeric address has no presence")
	}
	if err != nil {
		fail(ctx, fasthttp.StatusBadRequest, "address %q: %v (use +E164, a national number, sip:user@domain or xmpp:user@domain)", raw, err)
		return "", false
	}
	return a, true
}

func (s *Server) presenceView(a msg.Address) PresenceView {
	// In a cluster a user online at another node is online here too.
	bs := append(s.cfg.Presence.Bindings(a), s.cfg.Presence.Remote(a)...)
	if bs == nil {
		bs = []presence.Binding{}
	}
	return PresenceView{Address: a, Online: len(bs) > 0, Bindings: bs}
}

func (s *Server) getPresence(ctx *fasthttp.RequestCtx, p []string) {
	a, ok := s.presenceAddr(ctx, p[0])
	if !ok {
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, s.presenceView(a))
}

func (s *Server) putPresence(ctx *fasthttp.RequestCtx, p []string) {
	a, ok := s.presenceAddr(ctx, p[0])
	if !ok {
		return
	}
	switch mediaType(ctx) {
	case "", "application/json", "application/x-www-form-urlencoded":
	default:
		fail(ctx, fasthttp.StatusUnsupportedMediaType, "send the body as application/json")
		return
	}
	b, err := ParsePresenceRequest(ctx.PostBody(), a, s.cfg.Now())
	if err != nil {
		fail(ctx, fasthttp.StatusBadRequest, "%v", err)
		return
	}
	if err := s.cfg.Presence.Register(detach(ctx), b); err != nil {
		s.log.Warn("api presence not stored", "aor", a, "err", err)
		fail(ctx, fasthttp.StatusServiceUnavailable, "presence not stored: %v", err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, s.presenceView(a))
}

func (s *Server) deletePresence(ctx *fasthttp.RequestCtx, p []string) {
	a, ok := s.presenceAddr(ctx, p[0])
	if !ok {
		return
	}
	contact := string(ctx.QueryArgs().Peek("contact")) // "" = every contact
	if err := s.cfg.Presence.Unregister(detach(ctx), a, contact); err != nil {
		s.log.Warn("api presence not removed", "aor", a, "err", err)
		fail(ctx, fasthttp.StatusServiceUnavailable, "presence not removed: %v", err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// LoginRequest is the body of POST /v1/login.
type LoginRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
	// Device names the client's device: each device of a user holds its own
	// SIP password, and a login on one leaves the others logged in. "" =
	// the bridge names a new device (Result.SIP.Device).
	Device string `json:"device,omitempty"`
}

// loginStatus maps login errors: refusals of the user are 403 (401 is kept
// for the bearer token), malformed input 400, partner trouble 502/503.
func loginStatus(err error) int {
	switch {
	case errors.Is(err, login.ErrBadName), errors.Is(err, login.ErrMalformedToken), errors.Is(err, login.ErrBadDevice):
		return fasthttp.StatusBadRequest
	case errors.Is(err, login.ErrUnknownSite), errors.Is(err, login.ErrUnknownSocial), errors.Is(err, login.ErrUnknownService):
		return fasthttp.StatusNotFound
	case errors.Is(err, login.ErrServerRejected):
		return fasthttp.StatusBadGateway
	case errors.Is(err, login.ErrCircuitOpen), errors.Is(err, login.ErrPartnerUnavailable):
		return fasthttp.StatusServiceUnavailable
	case errors.Is(err, login.ErrReplayFull), errors.Is(err, login.ErrTooManyCredentials):
		return fasthttp.StatusTooManyRequests
	case errors.Is(err, login.ErrNotOffered):
		return fasthttp.StatusNotFound
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fasthttp.StatusServiceUnavailable
	}
	// ErrBadPassword, ErrDenied, ErrSiteDisabled, ErrBadSignature,
	// ErrWrongAccount, ErrExpired, ErrTooLong, ErrReplayed and anything new.
	return fasthttp.StatusForbidden
}

func (s *Server) postLogin(ctx *fasthttp.RequestCtx, _ []string) {
	if s.cfg.Logins == nil {
		notConfigured(ctx, "login")
		return
	}
	var req LoginRequest
	if !readJSON(ctx, &req) {
		return
	}
	if req.User == "" || req.Password == "" || len(req.User) > 256 || len(req.Password) > 4096 {
		fail(ctx, fasthttp.StatusBadRequest, "user and password are required (user ≤ 256, password ≤ 4096 bytes)")
		return
	}
	r, err := s.cfg.Logins.Password(detach(ctx), req.User, req.Password, req.Device)
	if err != nil {
		code := loginStatus(err)
		if code >= 500 {
			ctx.Response.Header.Set("Retry-After", "30")
		}
		fail(ctx, code, "%v", err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, LoginView{Result: r, Kind: r.Kind.String()})
}

// XMPPAuthRequest is what the XMPP server's auth module asks.
type XMPPAuthRequest struct {
	User     string `json:"user"` // the JID's localpart, as the server prepared it
	Host     string `json:"host"` // the JID's domain
	Password string `json:"password"`
}

// postXMPPAuth admits or refuses a login at the XMPP server: 200 with the
// IM user, or the status /v1/login gives for the same refusal.
func (s *Server) postXMPPAuth(ctx *fasthttp.RequestCtx, _ []string) {
	if s.cfg.XMPPLogin == nil {
		notConfigured(ctx, "XMPP login")
		return
	}
	var req XMPPAuthRequest
	if !readJSON(ctx, &req) {
		return
	}
	if req.User == "" || req.Host == "" || req.Password == "" || len(req.User) > 1023 || len(req.Host) > 1023 || len(req.Password) > 4096 {
		fail(ctx, fasthttp.StatusBadRequest, "user, host and password are required (user and host ≤ 1023, password ≤ 4096 bytes)")
		return
	}
	r, err := s.cfg.XMPPLogin(ctx, req.User, req.Host, req.Password)
	if err != nil {
		fail(ctx, loginStatus(err), "%v", err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]string{"user": r.User})
}

// deleteLogin logs one device of a user out: its SIP password stops
// working; the user's other devices stay logged in.
func (s *Server) deleteLogin(ctx *fasthttp.RequestCtx, p []string) {
	s.logout(ctx, p[0], p[1])
}

// deleteLogins logs every device of a user out.
func (s *Server) deleteLogins(ctx *fasthttp.RequestCtx, p []string) {
	s.logout(ctx, p[0], "")
}

func (s *Server) logout(ctx *fasthttp.RequestCtx, user, device string) {
	if s.cfg.Logins == nil {
		notConfigured(ctx, "login")
		return
	}
	// Credentials are issued to the canonical IM user name ("alice~shop"):
	// any other spelling, or the login name "alice#shop", would revoke
	// nothing and still answer 204.
	n, err := directory.NormalizeName(user)
	if err != nil {
		fail(ctx, fasthttp.StatusBadRequest, "%s (give the IM user name, the \"user\" of the login answer)",
			strings.TrimPrefix(err.Error(), "directory: "))
		return
	}
	user = n
	if device == "" {
		err = s.cfg.Logins.RevokeAll(detach(ctx), user)
	} else {
		err = s.cfg.Logins.Revoke(detach(ctx), user, device)
	}
	if err != nil {
		code := loginStatus(err)
		if code == fasthttp.StatusForbidden { // not a refusal: the store failed
			code = fasthttp.StatusServiceUnavailable
		}
		fail(ctx, code, "%v", err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// LoginView is the answer of POST /v1/login: the login result with its kind
// spelled out ("ordinary", "partner", "social").
type LoginView struct {
	login.Result
	Kind string `json:"kind"`
}

// TicketRequest is the body of POST /v1/sso/tickets. The bearer token says
// the caller is a trusted front end; User and Password say whose ticket it
// is: the IM user name and its SIP password (an ordinary user's own, or the
// one POST /v1/login issued to a partner or social login).
type TicketRequest struct {
	Service  string `json:"service"`
	User     string `json:"user"`
	Password string `json:"password"`
}

// TicketResponse is the answer of POST /v1/sso/tickets.
type TicketResponse struct {
	Ticket  string `json:"ticket"`
	Expires int64  `json:"expires"` // unix seconds
	ID      string `json:"id"`      // jti
	Subject string `json:"subject"` // user@domain
}

func (s *Server) postTicket(ctx *fasthttp.RequestCtx, _ []string) {
	if s.cfg.Tickets == nil || s.cfg.Logins == nil || s.cfg.Domain == "" {
		notConfigured(ctx, "single sign-on")
		return
	}
	var req TicketRequest
	if !readJSON(ctx, &req) {
		return
	}
	if req.Service == "" || req.User == "" || req.Password == "" {
		fail(ctx, fasthttp.StatusBadRequest, "service, user and password are required")
		return
	}
	if len(req.User) > 256 || len(req.Password) > 256 || strings.ContainsAny(req.User, ":@# ") {
		fail(ctx, fasthttp.StatusBadRequest, "user must be an IM user name (the \"user\" of a login result)")
		return
	}
	if !s.cfg.Logins.CheckSIPPassword(req.User, req.Password) {
		fail(ctx, fasthttp.StatusForbidden, "wrong user name or password")
		return
	}
	display := ""
	if s.cfg.Directory != nil {
		if u, ok := s.cfg.Directory.User(req.User); ok {
			display = u.Display
		}
	}
	sub := req.User + "@" + s.cfg.Domain
	t, c, err := s.cfg.Tickets.IssueClaims(sub, display, req.Service)
	if err != nil {
		code := loginStatus(err)
		if code == fasthttp.StatusForbidden {
			code = fasthttp.StatusServiceUnavailable
			s.log.Warn("api sso ticket not issued", "service", req.Service, "err", err)
		}
		fail(ctx, code, "%v", err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, TicketResponse{Ticket: t, Expires: c.Expires, ID: c.ID, Subject: sub})
}

// ContactList is the answer of GET /v1/partners/{site}/contacts.
type ContactList struct {
	Site     string          `json:"site"`
	User     string          `json:"user"`
	Contacts []login.Contact `json:"contacts"`
}

func (s *Server) getContacts(ctx *fasthttp.RequestCtx, p []string) {
	if user, cs, ok := partnerList(s, ctx, p[0], PartnerContacts.Contacts); ok {
		writeJSON(ctx, fasthttp.StatusOK, ContactList{Site: p[0], User: user, Contacts: cs})
	}
}

// partnerList runs one of the partner sites' per-user list calls for the
// request's ?user=, answering the error itself; ok says whether to write list.
func partnerList[T any](s *Server, ctx *fasthttp.RequestCtx, site string,
	get func(PartnerContacts, context.Context, string, string) ([]T, error)) (user string, list []T, ok bool) {
	if s.cfg.Partners == nil {
		notConfigured(ctx, "partner sites")
		return "", nil, false
	}
	user = string(ctx.QueryArgs().Peek("user"))
	if user == "" || len(user) > 256 {
		fail(ctx, fasthttp.StatusBadRequest, "query parameter user is required (the user's name at the site)")
		return "", nil, false
	}
	list, err := get(s.cfg.Partners, ctx, site, user)
	if err != nil {
		code := loginStatus(err)
		if code >= 500 {
			ctx.Response.Header.Set("Retry-After", "30")
		}
		fail(ctx, code, "%v", err)
		return "", nil, false
	}
	if list == nil {
		list = []T{}
	}
	return user, list, true
}

// PostList is the answer of GET /v1/partners/{site}/posts.
type PostList struct {
	Site  string       `json:"site"`
	User  string       `json:"user"`
	Posts []login.Post `json:"posts"`
}

func (s *Server) getPosts(ctx *fasthttp.RequestCtx, p []string) {
	if user, ps, ok := partnerList(s, ctx, p[0], PartnerContacts.Posts); ok {
		writeJSON(ctx, fasthttp.StatusOK, PostList{Site: p[0], User: user, Posts: ps})
	}
}
