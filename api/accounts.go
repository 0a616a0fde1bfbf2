package api

import (
	"context"
	"errors"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/smsbridge/bridge/fusion"
)

// Accounts keeps users' external IM accounts, which the bridge logs in to
// on their behalf (*fusion.Proxy).
type Accounts interface {
	Bind(ctx context.Context, user, jid, password string) (fusion.AccountView, error)
	Unbind(ctx context.Context, user, jid string) error
	Accounts(user string) []fusion.AccountView
}

// AccountRequest binds an external IM account to a user.
type AccountRequest struct {
	JID      string `json:"jid"`
	Password string `json:"password"`
}

// AccountsView lists a user's external IM accounts (never their passwords).
type AccountsView struct {
	User     string               `json:"user"`
	Accounts []fusion.AccountView `json:"accounts"`
}

func (s *Server) listIMAccounts(ctx *fasthttp.RequestCtx, p []string) {
	u, ok := s.user(ctx, p[0])
	if !ok {
		return
	}
	as := s.cfg.Accounts.Accounts(u.Name)
	if as == nil {
		as = []fusion.AccountView{}
	}
	writeJSON(ctx, fasthttp.StatusOK, AccountsView{User: u.Name, Accounts: as})
}

// bindIMAccount logs in to the account once to check it, then keeps it: 200
// with its state, 403 when its server refuses the password.
func (s *Server) bindIMAccount(ctx *fasthttp.RequestCtx, p []string) {
	u, ok := s.user(ctx, p[0])
	if !ok {
		return
	}
	var req AccountRequest
	if !readJSON(ctx, &req) {
		return
	}
	if req.JID == "" || req.Password == "" || len(req.JID) > 3071 || len(req.Password) > 1024 {
		fail(ctx, fasthttp.StatusBadRequest, "jid and password are required (jid ≤ 3071, password ≤ 1024 bytes)")
		return
	}
	v, err := s.cfg.Accounts.Bind(detach(ctx), u.Name, req.JID, req.Password)
	if err != nil {
		s.accountFail(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, v)
}

func (s *Server) unbindIMAccount(ctx *fasthttp.RequestCtx, p []string) {
	u, ok := s.user(ctx, p[0])
	if !ok {
		return
	}
	if err := s.cfg.Accounts.Unbind(detach(ctx), u.Name, p[1]); err != nil {
		s.accountFail(ctx, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

func (s *Server) accountFail(ctx *fasthttp.RequestCtx, err error) {
	text := strings.TrimPrefix(err.Error(), "fusion: ")
	switch {
	case errors.Is(err, fusion.ErrAuth):
		fail(ctx, fasthttp.StatusForbidden, "%s", text)
	case errors.Is(err, fusion.ErrNotFound):
		fail(ctx, fasthttp.StatusNotFound, "%s", text)
	case errors.Is(err, fusion.ErrInvalid):
		fail(ctx, fasthttp.StatusBadRequest, "%s", text)
	default:
		// The account's server could not be reached or answered late.
		ctx.Response.Header.Set("Retry-After", "30")
		fail(ctx, fasthttp.StatusBadGateway, "%s", text)
	}
}
