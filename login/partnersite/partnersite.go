// Package partnersite is the reference partner website server: the other
// side of the bridge's delegated login (login.Partners). It answers
//
//	POST /verify     login.VerifyRequest → login.VerifyResponse (password or SIP digest)
//	GET  /contacts   ?user=NAME → login.ContactsResponse
//	GET  /posts      ?user=NAME → login.PostsResponse
//	GET  /healthz    200 ok
//
// and refuses every request whose X-Bridge-Server-Id is not the server id it
// authorized (403) or whose signature or timestamp is wrong (401) before it
// looks at the body. cmd/partnersite runs it; tests run it in-process.
package partnersite

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/smsbridge/bridge/login"
)

// User is an account at the site.
type User struct {
	Name     string          `json:"name"`
	Password string          `json:"password"`
	Display  string          `json:"display,omitempty"`
	Contacts []login.Contact `json:"contacts,omitempty"`
}

// Config is the site's setup; the JSON file form has the same field names.
type Config struct {
	SiteID       string           `json:"site_id"`         // e.g. "shop"; digest usernames must end in "#shop"
	ServerID     string           `json:"server_id"`       // the bridge server id this site authorized
	ServerSecret string           `json:"server_secret"`   // shared with that bridge
	Realm        string           `json:"realm,omitempty"` // required digest realm ("" = any)
	Users        []User           `json:"users"`
	Posts        []login.Post     `json:"posts,omitempty"`
	Now          func() time.Time `json:"-"`
	Logger       *slog.Logger     `json:"-"`
}

// LoadFile reads a Config from a JSON file.
func LoadFile(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("partnersite: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("partnersite: %s: %w", path, err)
	}
	return c, nil
}

type site struct {
	cfg   Config
	users map[string]User
	log   *slog.Logger
}

const maxBody = 64 << 10

// NewHandler checks cfg and returns the site's HTTP handler.
func NewHandler(cfg Config) (http.Handler, error) {
	if cfg.ServerID == "" || cfg.ServerSecret == "" {
		return nil, errors.New("partnersite: server id and secret are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &site{cfg: cfg, users: make(map[string]User, len(cfg.Users)), log: cfg.Logger}
	for _, u := range cfg.Users {
		if u.Name == "" {
			return nil, errors.New("partnersite: user without name")
		}
		s.users[u.Name] = u
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /verify", s.authed(s.verify))
	mux.HandleFunc("GET /contacts", s.authed(s.contacts))
	mux.HandleFunc("GET /posts", s.authed(s.posts))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	return mux, nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

type errBody struct {
	Error string `json:"error"`
}

// authed checks the bridge's server id and request signature first.
func (s *site) authed(next func(http.ResponseWriter, *http.Request, []byte)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			writeJSON(w, http.StatusRequestEntityTooLarge, errBody{"body too large"})
			return
		}
		sid := r.Header.Get(login.HeaderServerID)
		if subtle.ConstantTimeCompare([]byte(sid), []byte(s.cfg.ServerID)) != 1 {
			s.log.Warn("request from an unauthorized server id", "server_id", sid, "remote", r.RemoteAddr)
			writeJSON(w, http.StatusForbidden, errBody{"server id not authorized"})
			return
		}
		if !login.CheckSignature(s.cfg.ServerSecret, r.Method, r.URL.RequestURI(), sid,
			r.Header.Get(login.HeaderTimestamp), r.Header.Get(login.HeaderSignature), body, s.cfg.Now()) {
			s.log.Warn("bad request signature", "server_id", sid, "remote", r.RemoteAddr)
			writeJSON(w, http.StatusUnauthorized, errBody{"bad signature or timestamp"})
			return
		}
		next(w, r, body)
	}
}

func (s *site) verify(w http.ResponseWriter, _ *http.Request, body []byte) {
	var req login.VerifyRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusBadRequest, errBody{"bad json: " + err.Error()})
		return
	}
	if req.ServerID != s.cfg.ServerID {
		writeJSON(w, http.StatusForbidden, errBody{"server id in body differs"})
		return
	}
	deny := func(reason string) {
		s.log.Info("login denied", "user", req.User, "reason", reason)
		writeJSON(w, http.StatusOK, login.VerifyResponse{Allow: false, Reason: reason})
	}
	u, ok := s.users[req.User]
	// An unknown user gets the same reason as a wrong password.
	switch {
	case req.Digest != nil && req.Password != "":
		writeJSON(w, http.StatusBadRequest, errBody{"password and digest both given"})
		return
	case req.Digest != nil:
		d := *req.Digest
		name, site, split := login.SplitPartner(d.Username)
		if !split || name != req.User || (s.cfg.SiteID != "" && site != s.cfg.SiteID) {
			deny("digest username does not match user")
			return
		}
		if s.cfg.Realm != "" && d.Realm != s.cfg.Realm {
			deny("digest realm not accepted")
			return
		}
		if !ok || !d.Check(u.Password) {
			deny("wrong user name or password")
			return
		}
	default:
		if !ok || subtle.ConstantTimeCompare([]byte(req.Password), []byte(u.Password)) != 1 || req.Password == "" {
			deny("wrong user name or password")
			return
		}
	}
	writeJSON(w, http.StatusOK, login.VerifyResponse{Allow: true, User: u.Name, Display: u.Display})
}

func (s *site) contacts(w http.ResponseWriter, r *http.Request, _ []byte) {
	u, ok := s.users[r.URL.Query().Get("user")]
	if !ok {
		writeJSON(w, http.StatusNotFound, errBody{"unknown user"})
		return
	}
	c := u.Contacts
	if c == nil {
		c = []login.Contact{}
	}
	writeJSON(w, http.StatusOK, login.ContactsResponse{Contacts: c})
}

func (s *site) posts(w http.ResponseWriter, _ *http.Request, _ []byte) {
	p := s.cfg.Posts
	if p == nil {
		p = []login.Post{}
	}
	writeJSON(w, http.StatusOK, login.PostsResponse{Posts: p})
}
