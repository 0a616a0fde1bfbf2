package api

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/smsbridge/bridge/directory"
	"github.com/smsbridge/bridge/dlr"
	"github.com/smsbridge/bridge/login"
	"github.com/smsbridge/bridge/login/ssoticket"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
	"github.com/smsbridge/bridge/provision"
	"github.com/smsbridge/bridge/store"
)

//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI 3 document served at /v1/openapi.json.
func OpenAPI() []byte { return bytes.Clone(openAPI) }

// Messages answers state queries (store.DB).
type Messages interface {
	Message(id string) (store.Record, error)
}

// Control changes a message after it was sent (*router.Router): the
// router decides what can still be done to it.
type Control interface {
	// Cancel ends a message not yet final as cancelled; msg.ErrFinal, with
	// the record, when it is final already.
	Cancel(ctx context.Context, id string) (store.Record, error)
}

// Directory is the identity directory (*directory.Directory): users, the
// addresses bound to them and their contacts.
type Directory interface {
	CreateUser(ctx context.Context, spec directory.UserSpec) (directory.User, error)
	PutUser(ctx context.Context, name string, spec directory.UserSpec) (directory.User, bool, error)
	User(name string) (directory.User, bool)
	Users() []directory.User
	DeleteUser(ctx context.Context, name string) error
	ImportCSV(ctx context.Context, r io.Reader) (int, error)
	ParseAddress(raw string) (msg.Address, error)
	Bind(ctx context.Context, name string, addr msg.Address) (directory.User, error)
	Unbind(ctx context.Context, name string, addr msg.Address) (directory.User, error)
	Where(c directory.Contact, bindings func(msg.Address) []presence.Binding) []presence.Binding
	Contacts(name string) ([]directory.Contact, error)
	PutContact(ctx context.Context, name string, c directory.Contact) (directory.Contact, bool, error)
	DeleteContact(ctx context.Context, name, id string) error
	BindContact(ctx context.Context, name, id string, addr msg.Address) (directory.Contact, error)
	UnbindContact(ctx context.Context, name, id string, addr msg.Address) (directory.Contact, error)
}

// Provisioner is the provisioning store of SMPP accounts and SMS routes
// (*provision.Store).
type Provisioner interface {
	CreateAccount(ctx context.Context, spec provision.AccountSpec) (provision.Account, error)
	Account(systemID string) (provision.Account, bool)
	Accounts() []provision.Account
	DeleteAccount(ctx context.Context, systemID string) error
	Routes() []provision.Route
	SetRoutes(ctx context.Context, routes []provision.Route) error
}

// Presence is the presence index (*presence.Store).
type Presence interface {
	Register(ctx context.Context, b presence.Binding) error
	Unregister(ctx context.Context, aor msg.Address, contact string) error
	Bindings(aor msg.Address) []presence.Binding
	// Remote are the bindings other nodes of a cluster hold (Node set).
	Remote(aor msg.Address) []presence.Binding
}

// Logins admits password logins and logs devices out (*login.Authenticator).
type Logins interface {
	Password(ctx context.Context, name, password, device string) (login.Result, error)
	Revoke(ctx context.Context, user, device string) error
	RevokeAll(ctx context.Context, user string) error
	// CheckSIPPassword tells whether password is user's SIP password: their
	// own, or one issued to one of their devices by a login.
	CheckSIPPassword(user, password string) bool
}

// Tickets seals SSO tickets (*login.Issuer).
type Tickets interface {
	IssueClaims(user, display, service string) (string, ssoticket.Claims, error)
}

// PartnerContacts reads contact lists from partner sites (*login.Partners).
type PartnerContacts interface {
	Contacts(ctx context.Context, site, user string) ([]login.Contact, error)
	Posts(ctx context.Context, site, user string) ([]login.Post, error)
}

// Config configures the API server. Every dependency after Metrics is
// optional: nil answers its endpoints with 501.
type Config struct {
	Tokens  []string // admin bearer tokens accepted on /v1; none and no Clients = /v1 refuses everyone
	Clients []Client // clients with their own tokens, roles and rates
	// LoginsPerMinute bounds the logins and ticket requests (public: they
	// carry a user's password) from one source address; 0 = no bound.
	LoginsPerMinute int
	// AuthFailuresPerMinute bounds the requests with a missing or wrong
	// token from one source address; past it even a right token waits.
	AuthFailuresPerMinute int
	// MaxConnsPerSource bounds one source address's open connections.
	MaxConnsPerSource int
	CountryCode       string
	Domain            string             // SIP domain: digest realm for SSO credentials, ticket subjects
	Ready             func() error       // nil = ready; an errors.Join gives /readyz one reason per error
	SMSCs             func() []SMSCState // each upstream SMSC's bind, listed by /readyz; nil = none
	Metrics           func() []Metric
	Logger            *slog.Logger
	MaxBody           int // bytes (default 64 KiB); CSV imports get MaxImport
	MaxImport         int // bytes for POST /v1/users with text/csv (default 8 MiB)
	// HeaderTimeout: a request's line and headers must come within it
	// (default 5s); an authorized body then has 10s more.
	HeaderTimeout time.Duration

	Directory Directory
	Provision Provisioner
	Presence  Presence
	Logins    Logins
	Tickets   Tickets
	Partners  PartnerContacts
	// XMPPLogin admits a login at the XMPP server on behalf of its auth
	// module (POST /v1/xmpp/auth): local is the JID's localpart, password
	// the site's signed token. nil answers 501.
	XMPPLogin func(ctx context.Context, local, host, password string) (login.Result, error)
	Accounts  Accounts
	Groups    Groups // nil answers 501 on /v1/groups
	// RobotAuth checks a robot's own credential on its posts to a group
	// (headers X-Robot-Name, X-Robot-Timestamp, X-Robot-Signature over the
	// body, as the bridge signs its webhook requests); nil: bearer tokens only.
	RobotAuth func(name, ts, sig string, body []byte) bool
	// ReportURL is where delivery reports go for a message that asks for a
	// receipt and names no dlr_url (--dlr-url); "" = none.
	ReportURL string
	Now       func() time.Time
	// Admin answers /v1/admin/binds, smsc and queues; LogLevel is the level
	// of the process's loggers, which PUT /v1/admin/log-level changes. nil: 501.
	Admin    Admin
	LogLevel *slog.LevelVar
	// Control cancels messages (DELETE /v1/messages/{id}); nil: 501.
	Control Control
	// AlphaAllowed tells whether a client (by its name, "client:NAME" or
	// "token:…") may send from an alphanumeric sender; nil: any may.
	AlphaAllowed func(client, name string) bool
}

// Server serves the HTTP API.
type Server struct {
	cfg    Config
	sub    msg.Stager
	msgs   Messages
	log    *slog.Logger
	srv    *fasthttp.Server
	routes []route
	stats  *httpStats
	creds  []*cred
	logins *sourceLimits // public login and ticket requests per source
	fails  *sourceLimits // missing or wrong tokens per source
}

// isNil catches typed nil pointers in interfaces (a nil *login.Partners
// passed as PartnerContacts), so they disable their endpoints instead of
// panicking.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Pointer && rv.IsNil()
}

// New builds the server.
func New(cfg Config, sub msg.Stager, msgs Messages) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 64 << 10
	}
	if cfg.HeaderTimeout <= 0 {
		cfg.HeaderTimeout = 5 * time.Second
	}
	if cfg.MaxImport <= 0 {
		cfg.MaxImport = 8 << 20
	}
	cfg.MaxImport = max(cfg.MaxImport, cfg.MaxBody)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if isNil(cfg.Directory) {
		cfg.Directory = nil
	}
	if isNil(cfg.Provision) {
		cfg.Provision = nil
	}
	if isNil(cfg.Presence) {
		cfg.Presence = nil
	}
	if isNil(cfg.Logins) {
		cfg.Logins = nil
	}
	if isNil(cfg.Accounts) {
		cfg.Accounts = nil
	}
	if isNil(cfg.Tickets) {
		cfg.Tickets = nil
	}
	if isNil(cfg.Groups) {
		cfg.Groups = nil
	}
	if isNil(cfg.Partners) {
		cfg.Partners = nil
	}
	if isNil(cfg.Admin) {
		cfg.Admin = nil
	}
	if isNil(cfg.Control) {
		cfg.Control = nil
	}
	s := &Server{cfg: cfg, sub: sub, msgs: msgs, log: cfg.Logger}
	if isNil(sub) {
		s.sub = nil
	}
	if isNil(msgs) {
		s.msgs = nil
	}
	s.creds = newCreds(cfg.Tokens, cfg.Clients)
	s.logins = newSourceLimits(cfg.LoginsPerMinute)
	s.fails = newSourceLimits(cfg.AuthFailuresPerMinute)
	s.routes = s.table()
	pats := make([]string, len(s.routes))
	for i, r := range s.routes {
		pats[i] = r.pattern
	}
	s.stats = newHTTPStats(pats)
	s.srv = &fasthttp.Server{
		Handler: s.handle, Name: "bridge",
		// The transport limit is the larger one; handle enforces MaxBody for
		// everything but CSV imports.
		MaxRequestBodySize: cfg.MaxImport,
		ReadBufferSize:     8 << 10, // bounds the request line and headers
		ErrorHandler:       s.transportError,
		Logger:             fasthttpLogger{cfg.Logger},
		// The headers must come within HeaderTimeout; headerReceived then
		// sets the body's limit and time by who is asking.
		HeaderReceived: s.headerReceived,
		// A connection waits for its first byte without a read buffer, so an
		// idle or unauthenticated one holds little.
		ReduceMemoryUsage: true,
		ReadTimeout:       cfg.HeaderTimeout, WriteTimeout: 10 * time.Second, IdleTimeout: 60 * time.Second,
	}
	return s
}

// Serve runs on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		_ = s.srv.ShutdownWithContext(context.Background())
	}()
	if s.cfg.MaxConnsPerSource > 0 {
		ln = newPerSourceListener(ln, s.cfg.MaxConnsPerSource)
	}
	if err := s.srv.Serve(ln); err != nil && ctx.Err() == nil {
		return fmt.Errorf("http: %w", err)
	}
	return nil
}

type apiError struct {
	Error string `json:"error"`
}

func writeJSON(ctx *fasthttp.RequestCtx, code int, v any) {
	ctx.SetStatusCode(code)
	ctx.SetContentType("application/json")
	b, err := json.Marshal(v)
	if err != nil {
		ctx.SetStatusCode(fasthttp.StatusInternalServerError)
		b = []byte(`{"error":"cannot encode the answer"}`)
	}
	ctx.SetBody(append(b, '\n'))
}

func fail(ctx *fasthttp.RequestCtx, code int, format string, args ...any) {
	writeJSON(ctx, code, apiError{Error: fmt.Sprintf(format, args...)})
}

// unauthBody is the most body read of a request to a route that needs a
// bearer token or a robot's signature and has neither: its answer is 401.
const unauthBody = 1 << 10

// headerReceived runs once a request's headers are in, before any of its
// body is read: the token is checked here, so a request without one is
// answered without its body being read past unauthBody (the transport
// otherwise reads up to MaxImport before the handler can refuse it).
func (s *Server) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	path, _, _ := strings.Cut(string(h.RequestURI()), "?")
	segs, _ := pathSegments(path)
	r, _ := s.match(segs)
	switch {
	case r == nil || (!r.public && !s.tokenOK(h) && !(r.robot && len(h.Peek("X-Robot-Name")) > 0)):
		return fasthttp.RequestConfig{MaxRequestBodySize: unauthBody}
	case r.public || r.robot && !s.tokenOK(h):
		return fasthttp.RequestConfig{MaxRequestBodySize: s.cfg.MaxBody, ReadTimeout: 10 * time.Second}
	}
	return fasthttp.RequestConfig{ReadTimeout: 10 * time.Second}
}

func (s *Server) tokenOK(h *fasthttp.RequestHeader) bool { return s.credOf(h) != nil }

// transportError answers what fasthttp could not parse, in the API's JSON.
func (s *Server) transportError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var nerr *net.OpError
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge) && s.headerReceived(&ctx.Request.Header).MaxRequestBodySize == unauthBody:
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="bridge"`)
		fail(ctx, fasthttp.StatusUnauthorized, "missing or wrong bearer token")
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		fail(ctx, fasthttp.StatusRequestEntityTooLarge, "request body larger than %d bytes", s.cfg.MaxImport)
	case errors.As(err, &small):
		fail(ctx, fasthttp.StatusRequestHeaderFieldsTooLarge, "request headers too large")
	case errors.As(err, &nerr) && nerr.Timeout():
		fail(ctx, fasthttp.StatusRequestTimeout, "request not received in time")
	default:
		fail(ctx, fasthttp.StatusBadRequest, "malformed HTTP request")
	}
}

// fasthttpLogger sends fasthttp's own complaints (bad clients, mostly) to
// slog at debug level: the client already got its error answer.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug("http transport", "detail", fmt.Sprintf(format, args...))
}

// handler serves one matched route; p holds the path parameters in order.
type handler func(ctx *fasthttp.RequestCtx, p []string)

type route struct {
	pattern string
	segs    []string
	public  bool // no bearer token needed
	limited bool // public, but bounded per source address (LoginsPerMinute)
	robot   bool // a robot's signature stands for the bearer token
	methods map[string]handler
}

// table is every endpoint; it drives dispatch, 405s and the OpenAPI test.
func (s *Server) table() []route {
	prov := func(h handler) handler { return needs("provisioning", s.cfg.Provision != nil, h) }
	dir := func(h handler) handler { return needs("directory", s.cfg.Directory != nil, h) }
	pres := func(h handler) handler { return needs("presence", s.cfg.Presence != nil, h) }
	acct := func(h handler) handler {
		return needs("external accounts", s.cfg.Directory != nil && s.cfg.Accounts != nil, h)
	}
	grp := func(h handler) handler { return needs("groups", s.cfg.Groups != nil && s.cfg.Directory != nil, h) }
	adm := func(h handler) handler { return needs("admin", s.cfg.Admin != nil, h) }
	lvl := func(h handler) handler { return needs("log level", s.cfg.LogLevel != nil, h) }
	rs := []route{
		{pattern: "/healthz", public: true, methods: map[string]handler{"GET": s.healthz}},
		{pattern: "/readyz", public: true, methods: map[string]handler{"GET": s.readyz}},
		{pattern: "/metrics", public: true, methods: map[string]handler{"GET": func(c *fasthttp.RequestCtx, _ []string) { s.metrics(c) }}},
		{pattern: "/v1/openapi.json", public: true, methods: map[string]handler{"GET": s.openapi}},
		{pattern: "/v1/messages", methods: map[string]handler{"POST": s.postMessage}},
		{pattern: "/v1/messages/{id}", methods: map[string]handler{"GET": s.getMessage, "DELETE": s.cancelMessage}},
		{pattern: "/v1/users", methods: map[string]handler{"GET": dir(s.listUsers), "POST": dir(s.createUser)}},
		{pattern: "/v1/users/{user}", methods: map[string]handler{"GET": dir(s.getUser), "PUT": dir(s.putUser), "DELETE": dir(s.deleteUser)}},
		{pattern: "/v1/users/{user}/addresses", methods: map[string]handler{"POST": dir(s.bindAddress)}},
		{pattern: "/v1/users/{user}/addresses/{address}", methods: map[string]handler{"DELETE": dir(s.unbindAddress)}},
		{pattern: "/v1/users/{user}/accounts", methods: map[string]handler{"GET": acct(s.listIMAccounts), "POST": acct(s.bindIMAccount)}},
		{pattern: "/v1/users/{user}/accounts/{jid}", methods: map[string]handler{"DELETE": acct(s.unbindIMAccount)}},
		{pattern: "/v1/users/{user}/contacts", methods: map[string]handler{"GET": dir(s.listContacts), "POST": dir(s.createContact)}},
		{pattern: "/v1/users/{user}/contacts/{id}", methods: map[string]handler{"GET": dir(s.getContact), "PUT": dir(s.putContact), "DELETE": dir(s.deleteContact)}},
		{pattern: "/v1/users/{user}/contacts/{id}/addresses", methods: map[string]handler{"POST": dir(s.bindContactAddress)}},
		{pattern: "/v1/users/{user}/contacts/{id}/addresses/{address}", methods: map[string]handler{"DELETE": dir(s.unbindContactAddress)}},
		{pattern: "/v1/accounts", methods: map[string]handler{"GET": prov(s.listAccounts), "POST": prov(s.createAccount)}},
		{pattern: "/v1/accounts/{system_id}", methods: map[string]handler{"GET": prov(s.getAccount), "DELETE": prov(s.deleteAccount)}},
		{pattern: "/v1/routes", methods: map[string]handler{"GET": prov(s.getRoutes), "PUT": prov(s.putRoutes)}},
		{pattern: "/v1/presence/{address}", methods: map[string]handler{"GET": pres(s.getPresence), "PUT": pres(s.putPresence), "DELETE": pres(s.deletePresence)}},
		{pattern: "/v1/groups", methods: map[string]handler{"GET": grp(s.listGroups), "POST": grp(s.createGroup)}},
		{pattern: "/v1/groups/{name}", methods: map[string]handler{"GET": grp(s.getGroup), "DELETE": grp(s.deleteGroup)}},
		{pattern: "/v1/groups/{name}/members", methods: map[string]handler{"POST": grp(s.addMember)}},
		{pattern: "/v1/groups/{name}/members/{address}", methods: map[string]handler{"DELETE": grp(s.removeMember)}},
		{pattern: "/v1/groups/{name}/messages", robot: true, methods: map[string]handler{"POST": grp(s.postToGroup)}},
		{pattern: "/v1/login", public: true, limited: true, methods: map[string]handler{"POST": s.postLogin}},
		{pattern: "/v1/login/{user}", methods: map[string]handler{"DELETE": s.deleteLogins}},
		{pattern: "/v1/login/{user}/{device}", methods: map[string]handler{"DELETE": s.deleteLogin}},
		{pattern: "/v1/xmpp/auth", methods: map[string]handler{"POST": s.postXMPPAuth}},
		{pattern: "/v1/sso/tickets", public: true, limited: true, methods: map[string]handler{"POST": s.postTicket}},
		{pattern: "/v1/partners/{site}/contacts", methods: map[string]handler{"GET": s.getContacts}},
		{pattern: "/v1/partners/{site}/posts", methods: map[string]handler{"GET": s.getPosts}},
		{pattern: "/v1/admin/binds", methods: map[string]handler{"GET": adm(s.adminBinds)}},
		{pattern: "/v1/admin/smsc", methods: map[string]handler{"GET": adm(s.adminSMSC)}},
		{pattern: "/v1/admin/queues", methods: map[string]handler{"GET": adm(s.adminQueues)}},
		{pattern: "/v1/admin/log-level", methods: map[string]handler{"GET": lvl(s.getLogLevel), "PUT": lvl(s.putLogLevel)}},
	}
	for i := range rs {
		rs[i].segs = strings.Split(strings.TrimPrefix(rs[i].pattern, "/"), "/")
	}
	return rs
}

// needs is h when the part it needs is configured (ok), else a 501 naming
// the part (what); the configuration is fixed when the table is built.
func needs(what string, ok bool, h handler) handler {
	if ok {
		return h
	}
	return func(ctx *fasthttp.RequestCtx, _ []string) { notConfigured(ctx, what) }
}

// Endpoints lists every method and path pattern the server answers, e.g.
// "GET /v1/users/{user}".
func (s *Server) Endpoints() []string {
	var out []string
	for _, r := range s.routes {
		for m := range r.methods {
			out = append(out, m+" "+r.pattern)
		}
	}
	return out
}

// pathSegments splits a request's path as sent (PathOriginal) at '/' and
// only then unescapes each segment, so that a path parameter may hold an
// escaped '/': an address such as "partner:site:a/b" or "sip:a/b@host"
// (fasthttp's decoded Path would split it and the route would not match).
// ok is false for a malformed %-escape.
func pathSegments(raw string) (segs []string, ok bool) {
	segs = strings.Split(strings.TrimPrefix(raw, "/"), "/")
	for i, seg := range segs {
		if strings.IndexByte(seg, '%') < 0 {
			continue
		}
		u, err := url.PathUnescape(seg)
		if err != nil {
			return nil, false
		}
		segs[i] = u
	}
	return segs, true
}

// match finds the route of a path split by pathSegments.
func (s *Server) match(segs []string) (*route, []string) {
	for i := range s.routes {
		r := &s.routes[i]
		if len(r.segs) != len(segs) {
			continue
		}
		var params []string
		ok := true
		for j, want := range r.segs {
			if strings.HasPrefix(want, "{") {
				if segs[j] == "" {
					ok = false
					break
				}
				params = append(params, segs[j])
			} else if want != segs[j] {
				ok = false
				break
			}
		}
		if ok {
			return r, params
		}
	}
	return nil, nil
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	path := string(ctx.Path())
	method := string(ctx.Method())
	segs, escOK := pathSegments(string(ctx.URI().PathOriginal()))
	r, params := s.match(segs)
	pattern := "other"
	if r != nil {
		pattern = r.pattern
	}
	defer func() {
		s.stats.observe(pattern, method, ctx.Response.StatusCode(), time.Since(start))
	}()
	if !escOK {
		fail(ctx, fasthttp.StatusBadRequest, "malformed %%-escape in path %q", ctx.URI().PathOriginal())
		return
	}
	if r == nil {
		fail(ctx, fasthttp.StatusNotFound, "no such endpoint %s", path)
		return
	}
	var c *cred
	if !r.public {
		src := sourceOf(ctx)
		if s.fails.spent(src) {
			ctx.Response.Header.Set("Retry-After", retryAfter(s.fails.per))
			fail(ctx, fasthttp.StatusTooManyRequests, "too many requests with a missing or wrong token from %s; wait", src)
			return
		}
		if c = s.credOf(&ctx.Request.Header); c == nil && !(r.robot && s.robotSigned(ctx)) {
			s.fails.take(src)
			ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="bridge"`)
			fail(ctx, fasthttp.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
	}
	h, ok := r.methods[method]
	if !ok {
		allow := make([]string, 0, len(r.methods))
		for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
			if _, ok := r.methods[m]; ok {
				allow = append(allow, m)
			}
		}
		ctx.Response.Header.Set("Allow", strings.Join(allow, ", "))
		fail(ctx, fasthttp.StatusMethodNotAllowed, "%s does not take %s; use %s", r.pattern, method, strings.Join(allow, " or "))
		return
	}
	if c != nil {
		if need := roleFor(r.pattern, method); !c.roles.has(need) {
			fail(ctx, fasthttp.StatusForbidden, "%s %s needs the %s role; client %s has %s", method, r.pattern, need, c.name, c.roles)
			return
		}
		if c.lim != nil && !c.lim.Allow() {
			ctx.Response.Header.Set("Retry-After", retryAfter(c.lim.Limit()))
			fail(ctx, fasthttp.StatusTooManyRequests, "client %s is over its rate of %g requests a second", c.name, float64(c.lim.Limit()))
			return
		}
		ctx.SetUserValue(credKey, c)
	}
	if r.limited && !s.logins.take(sourceOf(ctx)) {
		ctx.Response.Header.Set("Retry-After", retryAfter(s.logins.per))
		fail(ctx, fasthttp.StatusTooManyRequests, "too many login or ticket requests from %s; wait", sourceOf(ctx))
		return
	}
	// Only CSV imports may use the larger transport limit.
	if len(ctx.Request.Body()) > s.cfg.MaxBody && !(r.pattern == "/v1/users" && method == "POST" && isCSV(ctx)) {
		fail(ctx, fasthttp.StatusRequestEntityTooLarge, "request body larger than %d bytes", s.cfg.MaxBody)
		return
	}
	h(ctx, params)
}

// robotKey is where a request signed by a robot keeps the robot's name.
const robotKey = "robot"

// robotSigned reports whether the request carries a valid signature of
// the robot it names, and records that robot for the handler.
func (s *Server) robotSigned(ctx *fasthttp.RequestCtx) bool {
	name := string(ctx.Request.Header.Peek("X-Robot-Name"))
	if s.cfg.RobotAuth == nil || name == "" || len(ctx.Request.Body()) > s.cfg.MaxBody ||
		!s.cfg.RobotAuth(name, string(ctx.Request.Header.Peek("X-Robot-Timestamp")), string(ctx.Request.Header.Peek("X-Robot-Signature")), ctx.Request.Body()) {
		return false
	}
	ctx.SetUserValue(robotKey, name)
	return true
}

// client names the client of an authorized request, without its token:
// its Idempotency-Keys are its own, apart from other clients'.
func (s *Server) client(ctx *fasthttp.RequestCtx) string {
	if c := requestCred(ctx); c != nil {
		return c.name
	}
	return ""
}

func mediaType(ctx *fasthttp.RequestCtx) string {
	ct := string(ctx.Request.Header.ContentType())
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "invalid"
	}
	return mt
}

func isCSV(ctx *fasthttp.RequestCtx) bool { return mediaType(ctx) == "text/csv" }

// readJSON decodes the body into v strictly: one JSON object, no unknown
// fields. curl -d sends application/x-www-form-urlencoded unless told
// otherwise, so that type is read as JSON too; anything else is a 415.
func readJSON(ctx *fasthttp.RequestCtx, v any) bool {
	switch mediaType(ctx) {
	case "", "application/json", "application/x-www-form-urlencoded":
	default:
		fail(ctx, fasthttp.StatusUnsupportedMediaType, "send the body as application/json")
		return false
	}
	if err := decodeStrict(ctx.PostBody(), v); err != nil {
		fail(ctx, fasthttp.StatusBadRequest, "%v", err)
		return false
	}
	return true
}

// decodeStrict is the one JSON reader of request bodies (fuzzed).
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errors.New("empty body; send a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("body is not the expected JSON object: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("body has data after the JSON object")
	}
	return nil
}

func (s *Server) healthz(ctx *fasthttp.RequestCtx, _ []string) { ctx.SetBodyString("ok\n") }

// Readiness is the body of /readyz: "ready", or "not ready" with one
// reason per part that is down (the store, the SMSC binds), and the state
// of each upstream SMSC's bind: ready needs one of them up, so the others
// may be down.
type Readiness struct {
	Status  string      `json:"status"`
	Reasons []string    `json:"reasons,omitempty"`
	SMSCs   []SMSCState `json:"smscs,omitempty"`
}

// SMSCState is one upstream SMSC's bind in /readyz.
type SMSCState struct {
	Name  string    `json:"name"`
	State string    `json:"state"`           // up or down
	Since time.Time `json:"since,omitzero"`  // when it came up or went down
	Error string    `json:"error,omitempty"` // while down: why the last attempt failed
}

func (s *Server) readyz(ctx *fasthttp.RequestCtx, _ []string) {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			// errors.Join of several parts: one reason each.
			errs := []error{err}
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				errs = j.Unwrap()
			}
			r := Readiness{Status: "not ready", SMSCs: s.smscStates()}
			for _, e := range errs {
				r.Reasons = append(r.Reasons, e.Error())
			}
			writeJSON(ctx, fasthttp.StatusServiceUnavailable, r)
			return
		}
	}
	writeJSON(ctx, fasthttp.StatusOK, Readiness{Status: "ready", SMSCs: s.smscStates()})
}

func (s *Server) smscStates() []SMSCState {
	if s.cfg.SMSCs == nil {
		return nil
	}
	return s.cfg.SMSCs()
}

func (s *Server) openapi(ctx *fasthttp.RequestCtx, _ []string) {
	ctx.SetContentType("application/json")
	ctx.SetBody(openAPI)
}

func notConfigured(ctx *fasthttp.RequestCtx, what string) {
	fail(ctx, fasthttp.StatusNotImplemented, "%s is not configured on this bridge", what)
}

// SendRequest is the body of POST /v1/messages.
type SendRequest struct {
	From string `json:"from"`
	// To is one recipient, or a list of up to MaxBatch: a batch, one
	// message each.
	To      Recipients `json:"to"`
	Text    string     `json:"text"`
	Receipt bool       `json:"receipt,omitempty"`
	// DLRURL is where the message's delivery reports are posted (package
	// dlr); it implies Receipt.
	DLRURL string `json:"dlr_url,omitempty"`
	Ref    string `json:"ref,omitempty"` // the client's own id, kept as the origin reference
	// Route hint: "" (the router decides), "im", "sms", "smsc" or
	// "esme:SYSTEM_ID".
	Route string `json:"route,omitempty"`
	// Validity (a Go duration, "2h", from SendAt if later than now) or
	// Expires (RFC 3339), not both: when the message expires if
	// undelivered (default --default-validity).
	Validity string `json:"validity,omitempty"`
	Expires  string `json:"expires,omitempty"`
	// SendAt (RFC 3339) holds the message, stored, until then.
	SendAt string `json:"send_at,omitempty"`
	// Priority 0 (normal) to 3: above 0 goes before normal messages.
	Priority int `json:"priority,omitempty"`
}

// Recipients is "to": one address (a JSON string) or a batch (an array).
type Recipients struct {
	List  []string
	Batch bool
}

// UnmarshalJSON takes a string or an array of strings.
func (r *Recipients) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '[' {
		r.Batch = true
		return json.Unmarshal(t, &r.List)
	}
	var one string
	if err := json.Unmarshal(b, &one); err != nil {
		return err
	}
	r.List, r.Batch = []string{one}, false
	return nil
}

// MarshalJSON writes what UnmarshalJSON reads.
func (r Recipients) MarshalJSON() ([]byte, error) {
	if r.Batch {
		return json.Marshal(r.List)
	}
	if len(r.List) == 0 {
		return []byte(`""`), nil
	}
	return json.Marshal(r.List[0])
}

// MaxBatch bounds the recipients of one POST /v1/messages.
const MaxBatch = 1000

// idempotencyKey is the request's Idempotency-Key ("" without one); false
// after answering 400 to a malformed one.
func idempotencyKey(ctx *fasthttp.RequestCtx) (string, bool) {
	k := ctx.Request.Header.Peek("Idempotency-Key")
	if k == nil {
		return "", true
	}
	if len(k) == 0 || len(k) > MaxIdempotencyKey || bytes.ContainsFunc(k, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		fail(ctx, fasthttp.StatusBadRequest, "Idempotency-Key must be 1 to %d printable ASCII characters", MaxIdempotencyKey)
		return "", false
	}
	return string(k), true
}

// MaxIdempotencyKey bounds an Idempotency-Key header's length.
const MaxIdempotencyKey = 255

// MaxTextBytes bounds a message's text (a long SMS of 255 parts of UCS-2).
const MaxTextBytes = 255 * 67 * 4

func parseParty(s, cc string) (msg.Address, error) {
	if name, ok := strings.CutPrefix(s, "alpha:"); ok {
		if name == "" || len(name) > 11 || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
			return "", fmt.Errorf("alphanumeric sender %q: 1 to 11 printable ASCII characters", name)
		}
		return msg.NormalizeNumber(name, msg.TONAlphanumeric, msg.NPIUnknown, cc)
	}
	if len(s) > 5 && strings.EqualFold(s[:5], "xmpp:") {
		return directory.ParseXMPP(s)
	}
	if strings.HasPrefix(s, "sip:") || strings.Contains(s, "@") {
		return msg.FromAOR(s, cc)
	}
	return msg.NormalizeNumber(s, msg.TONUnknown, msg.NPIISDN, cc)
}

// ParseSendRequest turns a POST /v1/messages body into a message (the
// first of a batch).
func ParseSendRequest(body []byte, cc string) (*msg.Message, error) {
	ms, _, err := ParseSendBatch(body, cc, time.Now())
	if err != nil {
		return nil, err
	}
	return ms[0], nil
}

// ParseSendBatch turns a POST /v1/messages body into its messages, one per
// recipient in order; batch tells whether "to" was a list.
func ParseSendBatch(body []byte, cc string, now time.Time) (ms []*msg.Message, batch bool, err error) {
	var req SendRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, false, err
	}
	from, err := parseParty(req.From, cc)
	if err != nil {
		return nil, false, fmt.Errorf("from: %v", err)
	}
	switch n := len(req.To.List); {
	case n == 0:
		return nil, false, errors.New("to: no recipient")
	case n > MaxBatch:
		return nil, false, fmt.Errorf("to: %d recipients, at most %d", n, MaxBatch)
	}
	tmpl, err := checkSend(&req, now)
	if err != nil {
		return nil, false, err
	}
	tmpl.From = from
	ms = make([]*msg.Message, len(req.To.List))
	for i, raw := range req.To.List {
		where := "to"
		if req.To.Batch {
			where = fmt.Sprintf("to[%d]", i)
		}
		to, err := parseParty(raw, cc)
		if err != nil {
			return nil, false, fmt.Errorf("%s: %v", where, err)
		}
		if strings.HasPrefix(string(to), "alpha:") {
			return nil, false, fmt.Errorf("%s: an alphanumeric address cannot receive", where)
		}
		if err := msg.CheckRoute(req.Route, to); err != nil {
			return nil, false, fmt.Errorf("%s: %v", where, err)
		}
		m := tmpl
		m.To = to
		ms[i] = &m
	}
	return ms, req.To.Batch, nil
}

// checkSend checks what a request's recipients share and returns it as a
// message without its parties.
func checkSend(req *SendRequest, now time.Time) (msg.Message, error) {
	if req.Text == "" {
		return msg.Message{}, errors.New("text must not be empty")
	}
	if len(req.Text) > MaxTextBytes {
		return msg.Message{}, fmt.Errorf("text longer than %d bytes", MaxTextBytes)
	}
	if len(req.Ref) > 64 {
		return msg.Message{}, errors.New("ref longer than 64 bytes")
	}
	if len(req.Route) > 64 {
		return msg.Message{}, errors.New("route longer than 64 bytes")
	}
	if req.DLRURL != "" {
		if err := dlr.CheckURL(req.DLRURL); err != nil {
			return msg.Message{}, fmt.Errorf("dlr_url: %v", err)
		}
	}
	m := msg.Message{Text: req.Text, Receipt: req.Receipt || req.DLRURL != "", Route: req.Route,
		ReportURL: req.DLRURL, Origin: msg.Origin{Kind: msg.FromAPI, Ref: req.Ref}}
	if req.Priority < 0 || req.Priority > 3 {
		return msg.Message{}, fmt.Errorf("priority %d: want 0 to 3", req.Priority)
	}
	m.Priority = uint8(req.Priority)
	if req.SendAt != "" {
		t, err := time.Parse(time.RFC3339, req.SendAt)
		if err != nil {
			return msg.Message{}, fmt.Errorf("send_at: %v", err)
		}
		m.NotBefore = t
	}
	switch {
	case req.Validity != "" && req.Expires != "":
		return msg.Message{}, errors.New("validity and expires: give one of them")
	case req.Validity != "":
		d, err := time.ParseDuration(req.Validity)
		if err != nil || d <= 0 {
			return msg.Message{}, fmt.Errorf("validity %q: want a positive duration such as 90m or 2h", req.Validity)
		}
		from := now // counted from when the message may first go
		if m.NotBefore.After(now) {
			from = m.NotBefore
		}
		m.Expires = from.Add(d)
	case req.Expires != "":
		t, err := time.Parse(time.RFC3339, req.Expires)
		if err != nil {
			return msg.Message{}, fmt.Errorf("expires: %v", err)
		}
		if !t.After(now) {
			return msg.Message{}, fmt.Errorf("expires %s: already past", req.Expires)
		}
		if m.NotBefore.After(t) {
			return msg.Message{}, fmt.Errorf("send_at %s: after the message expires (%s)", req.SendAt, req.Expires)
		}
		m.Expires = t
	}
	return m, nil
}

func (s *Server) postMessage(ctx *fasthttp.RequestCtx, _ []string) {
	if s.sub == nil {
		notConfigured(ctx, "sending")
		return
	}
	switch mediaType(ctx) {
	case "", "application/json", "application/x-www-form-urlencoded":
	default:
		fail(ctx, fasthttp.StatusUnsupportedMediaType, "send the body as application/json")
		return
	}
	ms, batch, err := ParseSendBatch(ctx.PostBody(), s.cfg.CountryCode, s.cfg.Now())
	if err != nil {
		fail(ctx, fasthttp.StatusBadRequest, "%v", err)
		return
	}
	// Copies under one key are one message: a client that lost the answer
	// sends again and gets the first id, nothing delivered twice.
	key, ok := idempotencyKey(ctx)
	if !ok {
		return
	}
	if alpha, isAlpha := strings.CutPrefix(string(ms[0].From), "alpha:"); isAlpha && s.cfg.AlphaAllowed != nil && !s.cfg.AlphaAllowed(s.client(ctx), alpha) {
		fail(ctx, fasthttp.StatusBadRequest, "from: the alphanumeric sender %q is not allowed for this client", alpha)
		return
	}
	for i, m := range ms {
		m.Origin.Account = s.client(ctx)
		if m.ReportURL == "" && m.Receipt {
			m.ReportURL = s.cfg.ReportURL
		}
		m.IdempotencyKey = key
		if key != "" && batch { // each recipient's copy is its own message
			m.IdempotencyKey = key + "\x00" + strconv.Itoa(i)
		}
	}
	if batch {
		s.postBatch(ctx, ms)
		return
	}
	m := ms[0]
	switch err := msg.Accept(detach(ctx), s.sub, m); {
	case err == nil:
		ctx.Response.Header.Set("Location", "/v1/messages/"+m.ID)
		writeJSON(ctx, fasthttp.StatusAccepted, map[string]string{"id": m.ID})
	default:
		s.refuse(ctx, err)
	}
}

// BatchAnswer is the answer to a batch: one id per recipient, in order;
// on an error the ids of the messages stored before it ("" for the rest).
type BatchAnswer struct {
	IDs   []string `json:"ids"`
	Error string   `json:"error,omitempty"`
}

// postBatch stages every message of a batch into the store's group commits
// and only then waits for them, so the batch costs a commit or two, not one
// per recipient.
func (s *Server) postBatch(ctx *fasthttp.RequestCtx, ms []*msg.Message) {
	dctx := detach(ctx)
	acks := make([]msg.Ack, 0, len(ms))
	var err error
	for _, m := range ms {
		var a msg.Ack
		if a, err = s.sub.Stage(dctx, m); err != nil {
			break
		}
		acks = append(acks, a)
	}
	ans := BatchAnswer{IDs: make([]string, len(ms))}
	for i, a := range acks {
		if serr := a.Settle(dctx); serr != nil && err == nil {
			err = serr
		}
		ans.IDs[i] = ms[i].ID // cleared when its commit failed
	}
	if err == nil {
		writeJSON(ctx, fasthttp.StatusAccepted, ans)
		return
	}
	s.refuse(ctx, err)
	var e apiError
	if json.Unmarshal(ctx.Response.Body(), &e) == nil {
		ans.Error = e.Error
	}
	writeJSON(ctx, ctx.Response.StatusCode(), ans)
}

// refuse answers a message the router did not take.
func (s *Server) refuse(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, msg.ErrOverloaded):
		ctx.Response.Header.Set("Retry-After", "1")
		fail(ctx, fasthttp.StatusTooManyRequests, "bridge overloaded, retry later")
	case errors.Is(err, msg.ErrNoRoute):
		fail(ctx, fasthttp.StatusBadRequest, "to: %v", err)
	case errors.Is(err, msg.ErrTooLong):
		fail(ctx, fasthttp.StatusBadRequest, "text: %v", err)
	case errors.Is(err, msg.ErrBadSchedule):
		fail(ctx, fasthttp.StatusBadRequest, "send_at: %v", err)
	default:
		s.log.Warn("api submit not stored", "err", err)
		fail(ctx, fasthttp.StatusServiceUnavailable, "message not stored: %v", err)
	}
}

// MessageView is the JSON form of a message's state.
type MessageView struct {
	ID       string      `json:"id"`
	From     string      `json:"from"`
	To       string      `json:"to"`
	State    string      `json:"state"`
	Events   []EventView `json:"events"`
	Expires  time.Time   `json:"expires"`
	SendAt   *time.Time  `json:"send_at,omitempty"`
	Priority int         `json:"priority,omitempty"`
}

func viewOf(rec store.Record) MessageView {
	v := MessageView{ID: rec.Msg.ID, From: string(rec.Msg.From), To: string(rec.Msg.To), State: rec.State.String(),
		Expires: rec.Msg.Expires, Events: []EventView{}, Priority: int(rec.Msg.Priority)}
	if t := rec.Msg.NotBefore; !t.IsZero() {
		v.SendAt = &t
	}
	for _, e := range rec.Events {
		v.Events = append(v.Events, EventView{State: e.State.String(), At: e.At, Detail: e.Detail})
	}
	return v
}

// EventView is one state transition.
type EventView struct {
	State  string    `json:"state"`
	At     time.Time `json:"at"`
	Detail string    `json:"detail,omitempty"`
}

func (s *Server) getMessage(ctx *fasthttp.RequestCtx, p []string) {
	if s.msgs == nil {
		notConfigured(ctx, "message state")
		return
	}
	if rec, ok := s.ownMessage(ctx, p[0]); ok {
		writeJSON(ctx, fasthttp.StatusOK, viewOf(rec))
	}
}

// CancelConflict is the 409 of DELETE /v1/messages/{id}: the message is
// final already, in state.
type CancelConflict struct {
	Error string `json:"error"`
	State string `json:"state"`
}

// cancelMessage withdraws a message its client sent (admin: any API
// message); a message handed to the SMSC is cancelled there, if it can be.
func (s *Server) cancelMessage(ctx *fasthttp.RequestCtx, p []string) {
	if s.msgs == nil || s.cfg.Control == nil {
		notConfigured(ctx, "cancelling")
		return
	}
	if _, ok := s.ownMessage(ctx, p[0]); !ok {
		return
	}
	cctx, cancel := context.WithTimeout(detach(ctx), 10*time.Second)
	defer cancel()
	rec, err := s.cfg.Control.Cancel(cctx, p[0])
	switch {
	case err == nil:
		writeJSON(ctx, fasthttp.StatusOK, viewOf(rec))
	case errors.Is(err, msg.ErrFinal):
		writeJSON(ctx, fasthttp.StatusConflict, CancelConflict{Error: err.Error(), State: rec.State.String()})
	case errors.Is(err, store.ErrNotFound):
		fail(ctx, fasthttp.StatusNotFound, "no message %s", p[0])
	default:
		s.log.Warn("api cancel", "id", p[0], "err", err)
		fail(ctx, fasthttp.StatusServiceUnavailable, "not cancelled: %v", err)
	}
}

// ownMessage reads message id for its client, or answers why not: a
// client that is not admin sees only the messages it sent.
func (s *Server) ownMessage(ctx *fasthttp.RequestCtx, id string) (store.Record, bool) {
	if len(id) > 64 {
		fail(ctx, fasthttp.StatusBadRequest, "bad message id")
		return store.Record{}, false
	}
	rec, err := s.msgs.Message(id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		fail(ctx, fasthttp.StatusNotFound, "no message %s", id)
		return store.Record{}, false
	case errors.Is(err, store.ErrBadID):
		fail(ctx, fasthttp.StatusBadRequest, "bad message id %q", id)
		return store.Record{}, false
	case err != nil:
		s.log.Warn("api message state", "id", id, "err", err)
		fail(ctx, fasthttp.StatusServiceUnavailable, "store: %v", err)
		return store.Record{}, false
	}
	// A client that may only see its own messages learns nothing of others'.
	if c := requestCred(ctx); c != nil && c.roles&roleAdmin == 0 && (rec.Msg.Origin.Kind != msg.FromAPI || rec.Msg.Origin.Account != c.name) {
		fail(ctx, fasthttp.StatusNotFound, "no message %s", id)
		return store.Record{}, false
	}
	return rec, true
}

// detach is a request's context for work in other packages: its values
// without fasthttp's Done, which Server.Shutdown writes unsynchronized with
// the contexts derived from it (the race detector's report), and which
// only ends at shutdown, where each of those calls has its own bound.
func detach(c *fasthttp.RequestCtx) context.Context { return context.WithoutCancel(c) }
