package api

import (
	"bytes"
	"errors"
	"net/url"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/smsbridge/bridge/directory"
	"github.com/smsbridge/bridge/msg"
)

// dirFail maps directory errors to status codes: the client's mistakes are
// 4xx (an address owned by another user is a 409 that does not name the
// owner), only a failing store is 503.
func (s *Server) dirFail(ctx *fasthttp.RequestCtx, err error) {
	text := strings.TrimPrefix(err.Error(), "directory: ")
	switch {
	case errors.Is(err, directory.ErrOwned):
		fail(ctx, fasthttp.StatusConflict, "address is bound to another user")
	case errors.Is(err, directory.ErrInvalid):
		fail(ctx, fasthttp.StatusBadRequest, "%s", text)
	case errors.Is(err, directory.ErrNotFound):
		fail(ctx, fasthttp.StatusNotFound, "%s", text)
	case errors.Is(err, directory.ErrExists), errors.Is(err, directory.ErrStatic):
		fail(ctx, fasthttp.StatusConflict, "%s", text)
	default:
		s.log.Warn("api directory change not stored", "err", err)
		fail(ctx, fasthttp.StatusServiceUnavailable, "not stored: %s", text)
	}
}

// UserList is the body of GET /v1/users.
type UserList struct {
	Users []directory.User `json:"users"`
}

// ImportResult is the answer to a CSV import.
type ImportResult struct {
	Imported int `json:"imported"`
}

func (s *Server) listUsers(ctx *fasthttp.RequestCtx, _ []string) {
	writeJSON(ctx, fasthttp.StatusOK, UserList{Users: s.cfg.Directory.Users()})
}

func (s *Server) createUser(ctx *fasthttp.RequestCtx, _ []string) {
	if isCSV(ctx) {
		n, err := s.cfg.Directory.ImportCSV(detach(ctx), bytes.NewReader(ctx.PostBody()))
		if err != nil {
			s.dirFail(ctx, err)
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, ImportResult{Imported: n})
		return
	}
	var spec directory.UserSpec
	if !readJSON(ctx, &spec) {
		return
	}
	u, err := s.cfg.Directory.CreateUser(detach(ctx), spec)
	if err != nil {
		s.dirFail(ctx, err)
		return
	}
	ctx.Response.Header.Set("Location", "/v1/users/"+url.PathEscape(u.Name))
	writeJSON(ctx, fasthttp.StatusCreated, u)
}

// user answers a request about user name: its record, or false after
// answering 400 (a name no user can have) or 404.
func (s *Server) user(ctx *fasthttp.RequestCtx, name string) (directory.User, bool) {
	if _, err := directory.NormalizeName(name); err != nil {
		s.dirFail(ctx, err)
		return directory.User{}, false
	}
	u, ok := s.cfg.Directory.User(name)
	if !ok {
		fail(ctx, fasthttp.StatusNotFound, "no user %q", name)
	}
	return u, ok
}

func (s *Server) getUser(ctx *fasthttp.RequestCtx, p []string) {
	if u, ok := s.user(ctx, p[0]); ok {
		writeJSON(ctx, fasthttp.StatusOK, u)
	}
}

func (s *Server) putUser(ctx *fasthttp.RequestCtx, p []string) {
	var spec directory.UserSpec
	if !readJSON(ctx, &spec) {
		return
	}
	u, created, err := s.cfg.Directory.PutUser(detach(ctx), p[0], spec)
	if err != nil {
		s.dirFail(ctx, err)
		return
	}
	code := fasthttp.StatusOK
	if created {
		code = fasthttp.StatusCreated
	}
	writeJSON(ctx, code, u)
}

func (s *Server) deleteUser(ctx *fasthttp.RequestCtx, p []string) {
	if err := s.cfg.Directory.DeleteUser(detach(ctx), p[0]); err != nil {
		s.dirFail(ctx, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// AddressRequest is the body of POST .../addresses.
type AddressRequest struct {
	Address string `json:"address"` // +8613800000002, sip:bob@example.com, xmpp:bob@example.com, partner:site:account …
}

// address reads the address of a POST .../addresses body, or answers 400.
func (s *Server) address(ctx *fasthttp.RequestCtx) (msg.Address, bool) {
	var req AddressRequest
	if !readJSON(ctx, &req) {
		return "", false
	}
	return s.parseAddress(ctx, req.Address)
}

func (s *Server) parseAddress(ctx *fasthttp.RequestCtx, raw string) (msg.Address, bool) {
	a, err := s.cfg.Directory.ParseAddress(raw)
	if err != nil {
		s.dirFail(ctx, err)
		return "", false
	}
	return a, true
}

func (s *Server) bindAddress(ctx *fasthttp.RequestCtx, p []string) {
	a, ok := s.address(ctx)
	if !ok {
		return
	}
	u, err := s.cfg.Directory.Bind(detach(ctx), p[0], a)
	if err != nil {
		s.dirFail(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, u)
}

func (s *Server) unbindAddress(ctx *fasthttp.RequestCtx, p []string) {
	a, ok := s.parseAddress(ctx, p[1])
	if !ok {
		return
	}
	u, err := s.cfg.Directory.Unbind(detach(ctx), p[0], a)
	if err != nil {
		s.dirFail(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, u)
}

// ContactView is a contact with its presence: online where any of its
// addresses (or, for an address of one of our users, any of that user's
// endpoints) has a live binding.
type ContactView struct {
	directory.Contact
	Online bool    `json:"online"`
	Where  []Where `json:"where,omitempty"`
}

// Where is one place a contact is online.
type Where struct {
	Address msg.Address `json:"address"` // the endpoint with the binding
	Via     string      `json:"via"`     // sip, mcp, api, …
}

// ContactsView is the body of GET /v1/users/{user}/contacts.
type ContactsView struct {
	User     string        `json:"user"`
	Contacts []ContactView `json:"contacts"`
}

func (s *Server) view(c directory.Contact) ContactView {
	v := ContactView{Contact: c}
	if s.cfg.Presence == nil {
		return v
	}
	for _, b := range s.cfg.Directory.Where(c, s.cfg.Presence.Bindings) {
		v.Where = append(v.Where, Where{Address: b.AOR, Via: b.Via})
	}
	v.Online = len(v.Where) > 0
	return v
}

func (s *Server) listContacts(ctx *fasthttp.RequestCtx, p []string) {
	u, ok := s.user(ctx, p[0])
	if !ok {
		return
	}
	cs, err := s.cfg.Directory.Contacts(u.Name)
	if err != nil {
		s.dirFail(ctx, err)
		return
	}
	out := ContactsView{User: u.Name, Contacts: make([]ContactView, len(cs))}
	for i, c := range cs {
		out.Contacts[i] = s.view(c)
	}
	writeJSON(ctx, fasthttp.StatusOK, out)
}

// contact finds contact id of user name, or answers 404.
func (s *Server) contact(ctx *fasthttp.RequestCtx, name, id string) (directory.Contact, bool) {
	cs, err := s.cfg.Directory.Contacts(name)
	if err != nil {
		s.dirFail(ctx, err)
		return directory.Contact{}, false
	}
	for _, c := range cs {
		if c.ID == id {
			return c, true
		}
	}
	fail(ctx, fasthttp.StatusNotFound, "user %q has no contact %q", name, id)
	return directory.Contact{}, false
}

func (s *Server) getContact(ctx *fasthttp.RequestCtx, p []string) {
	if c, ok := s.contact(ctx, p[0], p[1]); ok {
		writeJSON(ctx, fasthttp.StatusOK, s.view(c))
	}
}

func (s *Server) createContact(ctx *fasthttp.RequestCtx, p []string) {
	var c directory.Contact
	if !readJSON(ctx, &c) {
		return
	}
	if c.ID != "" {
		fail(ctx, fasthttp.StatusBadRequest, "a new contact's id is assigned: PUT /v1/users/{user}/contacts/{id} names one")
		return
	}
	c, _, err := s.cfg.Directory.PutContact(detach(ctx), p[0], c)
	if err != nil {
		s.dirFail(ctx, err)
		return
	}
	ctx.Response.Header.Set("Location", "/v1/users/"+url.PathEscape(p[0])+"/contacts/"+url.PathEscape(c.ID))
	writeJSON(ctx, fasthttp.StatusCreated, s.view(c))
}

func (s *Server) putContact(ctx *fasthttp.RequestCtx, p []string) {
	var c directory.Contact
	if !readJSON(ctx, &c) {
		return
	}
	if c.ID != "" && c.ID != p[1] {
		fail(ctx, fasthttp.StatusBadRequest, "id %q in the body differs from %q in the path", c.ID, p[1])
		return
	}
	c.ID = p[1]
	c, created, err := s.cfg.Directory.PutContact(detach(ctx), p[0], c)
	if err != nil {
		s.dirFail(ctx, err)
		return
	}
	code := fasthttp.StatusOK
	if created {
		code = fasthttp.StatusCreated
	}
	writeJSON(ctx, code, s.view(c))
}

func (s *Server) deleteContact(ctx *fasthttp.RequestCtx, p []string) {
	if err := s.cfg.Directory.DeleteContact(detach(ctx), p[0], p[1]); err != nil {
		s.dirFail(ctx, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

func (s *Server) bindContactAddress(ctx *fasthttp.RequestCtx, p []string) {
	a, ok := s.address(ctx)
	if !ok {
		return
	}
	c, err := s.cfg.Directory.BindContact(detach(ctx), p[0], p[1], a)
	if err != nil {
		s.dirFail(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, s.view(c))
}

func (s *Server) unbindContactAddress(ctx *fasthttp.RequestCtx, p []string) {
	a, ok := s.parseAddress(ctx, p[2])
	if !ok {
		return
	}
	c, err := s.cfg.Directory.UnbindContact(detach(ctx), p[0], p[1], a)
	if err != nil {
		s.dirFail(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, s.view(c))
}
