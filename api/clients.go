package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
	"golang.org/x/time/rate"
)

// Client is an API client with its own bearer token, roles and rate.
type Client struct {
	Name  string
	Roles []string // RoleSend, RoleRead, RoleProvision, RoleAdmin
	Rate  float64  // requests per second, burst of one second's worth; 0 = unlimited
	Token string
}

// Roles a client may hold. Admin holds every other role.
const (
	RoleSend      = "send"      // POST /v1/messages, DELETE of the client's own, and posts to groups
	RoleRead      = "read"      // GET /v1/messages/{id} of the client's own messages
	RoleProvision = "provision" // users, contacts, accounts, routes, presence, groups, logins
	RoleAdmin     = "admin"     // everything, every client's messages included
)

// Roles lists the role names, for validating configuration.
func Roles() []string { return []string{RoleSend, RoleRead, RoleProvision, RoleAdmin} }

type roleSet uint8

const (
	roleSend roleSet = 1 << iota
	roleRead
	roleProvision
	roleAdmin
)

func parseRoles(names []string) roleSet {
	var rs roleSet
	for _, n := range names {
		switch n {
		case RoleSend:
			rs |= roleSend
		case RoleRead:
			rs |= roleRead
		case RoleProvision:
			rs |= roleProvision
		case RoleAdmin:
			rs |= roleAdmin
		}
	}
	return rs
}

func (rs roleSet) has(r roleSet) bool { return rs&roleAdmin != 0 || rs&r == r }

func (rs roleSet) String() string {
	var out []string
	for i, n := range Roles() {
		if rs&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return strings.Join(out, "+")
}

// roleFor is the one place that says which role an endpoint needs; every
// authenticated route goes through it.
func roleFor(pattern, method string) roleSet {
	switch {
	case pattern == "/v1/messages" && method == "POST", pattern == "/v1/groups/{name}/messages",
		pattern == "/v1/messages/{id}" && method == "DELETE":
		return roleSend
	case pattern == "/v1/messages/{id}":
		return roleRead
	case strings.HasPrefix(pattern, "/v1/admin/"):
		return roleAdmin
	}
	return roleProvision
}

// cred is one accepted bearer token.
type cred struct {
	token []byte
	name  string // what the store keeps as the origin of a message: never the token
	roles roleSet
	lim   *rate.Limiter // nil = unlimited
}

func newCreds(tokens []string, clients []Client) []*cred {
	var out []*cred
	for _, t := range tokens {
		sum := sha256.Sum256([]byte(t))
		out = append(out, &cred{token: []byte(t), name: "token:" + hex.EncodeToString(sum[:8]), roles: roleAdmin})
	}
	for _, c := range clients {
		cr := &cred{token: []byte(c.Token), name: "client:" + c.Name, roles: parseRoles(c.Roles)}
		if c.Rate > 0 {
			cr.lim = rate.NewLimiter(rate.Limit(c.Rate), int(math.Max(1, math.Ceil(c.Rate))))
		}
		out = append(out, cr)
	}
	return out
}

// credOf is the credential of the request's bearer token, or nil. Every
// token is compared, so the time says nothing about which one matched.
func (s *Server) credOf(hdr *fasthttp.RequestHeader) *cred {
	tok, ok := strings.CutPrefix(string(hdr.Peek("Authorization")), "Bearer ")
	if !ok || tok == "" {
		return nil
	}
	var found *cred
	for _, c := range s.creds {
		if subtle.ConstantTimeCompare(c.token, []byte(tok)) == 1 {
			found = c
		}
	}
	return found
}

// credKey is where an authenticated request keeps its credential.
const credKey = "cred"

func requestCred(ctx *fasthttp.RequestCtx) *cred {
	c, _ := ctx.UserValue(credKey).(*cred)
	return c
}

// sourceLimits holds one token bucket per source address, for what an
// unauthenticated peer can repeat: logins, ticket requests, wrong tokens.
// The table is bounded: when full, idle buckets go first, then any.
type sourceLimits struct {
	mu    sync.Mutex
	per   rate.Limit
	burst int
	max   int
	m     map[string]*sourceBucket
}

type sourceBucket struct {
	lim  *rate.Limiter
	used time.Time
}

// newSourceLimits allows perMinute events a minute per source address, all
// of them at once after a quiet minute; perMinute ≤ 0 allows everything.
func newSourceLimits(perMinute int) *sourceLimits {
	if perMinute <= 0 {
		return nil
	}
	return &sourceLimits{per: rate.Limit(float64(perMinute) / 60), burst: perMinute, max: 65536, m: map[string]*sourceBucket{}}
}

func (l *sourceLimits) bucket(src string, now time.Time) *rate.Limiter {
	b := l.m[src]
	if b == nil {
		if len(l.m) >= l.max {
			l.evict(now)
		}
		b = &sourceBucket{lim: rate.NewLimiter(l.per, l.burst)}
		l.m[src] = b
	}
	b.used = now
	return b.lim
}

func (l *sourceLimits) evict(now time.Time) {
	for k, b := range l.m {
		if now.Sub(b.used) > time.Minute {
			delete(l.m, k)
		}
	}
	for k := range l.m {
		if len(l.m) < l.max {
			return
		}
		delete(l.m, k)
	}
}

// take spends one event of src and reports whether it was allowed.
func (l *sourceLimits) take(src string) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	return l.bucket(src, now).AllowN(now, 1)
}

// spent reports whether src has no event left, without spending one; a
// source that never spent one has no bucket, and gets none here.
func (l *sourceLimits) spent(src string) bool {
	if l == nil {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.m[src]
	return b != nil && b.lim.TokensAt(time.Now()) < 1
}

// retryAfter is a Retry-After value for one more event at limit lim.
func retryAfter(lim rate.Limit) string {
	if lim <= 0 {
		return "60"
	}
	return strconv.Itoa(max(1, int(math.Ceil(1/float64(lim)))))
}

func sourceOf(ctx *fasthttp.RequestCtx) string {
	if a, ok := ctx.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return ctx.RemoteAddr().String()
}

// perSourceListener bounds the open connections of each source address;
// past the bound a newcomer gets a 429 and is closed. fasthttp's own
// MaxConnsPerIP writes its connection wrapper unsynchronized on Shutdown.
type perSourceListener struct {
	net.Listener
	max  int
	mu   sync.Mutex
	open map[string]int
}

func newPerSourceListener(ln net.Listener, max int) *perSourceListener {
	return &perSourceListener{Listener: ln, max: max, open: map[string]int{}}
}

const tooManyConns = "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 10\r\nConnection: close\r\nContent-Length: 56\r\n\r\n" +
	`{"error":"too many open connections from this address"}` + "\n"

func (l *perSourceListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := c.RemoteAddr().String()
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			src = a.IP.String()
		}
		l.mu.Lock()
		over := l.open[src] >= l.max
		if !over {
			l.open[src]++
		}
		l.mu.Unlock()
		if !over {
			return &sourceConn{Conn: c, l: l, src: src}, nil
		}
		// The answer fits a socket buffer: it does not block the accept loop.
		c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		c.Write([]byte(tooManyConns))
		c.Close()
	}
}

type sourceConn struct {
	net.Conn
	l    *perSourceListener
	src  string
	once sync.Once
}

func (c *sourceConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.open[c.src]--; c.l.open[c.src] <= 0 {
			delete(c.l.open, c.src)
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
