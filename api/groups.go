package api

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/smsbridge/bridge/group"
	"github.com/smsbridge/bridge/msg"
)

// Groups is group chat (*group.Service).
type Groups interface {
	Create(ctx context.Context, name string, owner msg.Address, o group.Options) (group.Info, error)
	Info(name string) (group.Info, error)
	List() []group.Info
	Destroy(ctx context.Context, name string, by msg.Address) error
	Join(ctx context.Context, name string, who msg.Address, operator bool) (group.Info, error)
	Leave(ctx context.Context, name string, who msg.Address) error
	PostAs(ctx context.Context, name, robot, text string) (string, error)
}

// GroupRequest is the body of POST /v1/groups.
type GroupRequest struct {
	Name    string   `json:"name"`
	Owner   string   `json:"owner"`
	Private bool     `json:"private"`
	Limit   int      `json:"limit"`
	Robots  []string `json:"robots"`
}

// GroupList is the body of GET /v1/groups.
type GroupList struct {
	Groups []group.Info `json:"groups"`
}

// GroupPost is the body of POST /v1/groups/{name}/messages: a post from a
// member's address, or a robot's answer (robot set, from empty).
type GroupPost struct {
	From  string `json:"from"`
	Robot string `json:"robot"`
	Text  string `json:"text"`
}

func (s *Server) groupFail(ctx *fasthttp.RequestCtx, err error) {
	text := strings.TrimPrefix(err.Error(), "group ")
	switch {
	case errors.Is(err, group.ErrNoGroup):
		fail(ctx, fasthttp.StatusNotFound, "%s", text)
	case errors.Is(err, group.ErrInvalidName):
		fail(ctx, fasthttp.StatusBadRequest, "%s", text)
	case errors.Is(err, group.ErrExists), errors.Is(err, group.ErrIsMember), errors.Is(err, group.ErrFull),
		errors.Is(err, group.ErrNoExtension):
		fail(ctx, fasthttp.StatusConflict, "%s", text)
	case errors.Is(err, group.ErrNotMember), errors.Is(err, group.ErrNotAllowed), errors.Is(err, group.ErrPrivate),
		errors.Is(err, group.ErrMuted):
		fail(ctx, fasthttp.StatusForbidden, "%s", text)
	case errors.Is(err, msg.ErrOverloaded):
		ctx.Response.Header.Set("Retry-After", "1")
		fail(ctx, fasthttp.StatusTooManyRequests, "%s", text)
	default:
		s.log.Warn("api group change not stored", "err", err)
		fail(ctx, fasthttp.StatusServiceUnavailable, "not stored: %s", text)
	}
}

func (s *Server) listGroups(ctx *fasthttp.RequestCtx, _ []string) {
	writeJSON(ctx, fasthttp.StatusOK, GroupList{Groups: s.cfg.Groups.List()})
}

func (s *Server) createGroup(ctx *fasthttp.RequestCtx, _ []string) {
	var req GroupRequest
	if !readJSON(ctx, &req) {
		return
	}
	owner, ok := s.parseAddress(ctx, req.Owner)
	if !ok {
		return
	}
	in, err := s.cfg.Groups.Create(detach(ctx), req.Name, owner, group.Options{Private: req.Private, Limit: req.Limit, Robots: req.Robots})
	if err != nil {
		s.groupFail(ctx, err)
		return
	}
	ctx.Response.Header.Set("Location", "/v1/groups/"+in.Name)
	writeJSON(ctx, fasthttp.StatusCreated, in)
}

func (s *Server) getGroup(ctx *fasthttp.RequestCtx, p []string) {
	in, err := s.cfg.Groups.Info(p[0])
	if err != nil {
		s.groupFail(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, in)
}

func (s *Server) deleteGroup(ctx *fasthttp.RequestCtx, p []string) {
	if err := s.cfg.Groups.Destroy(detach(ctx), p[0], ""); err != nil {
		s.groupFail(ctx, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

func (s *Server) addMember(ctx *fasthttp.RequestCtx, p []string) {
	var req AddressRequest
	if !readJSON(ctx, &req) {
		return
	}
	a, ok := s.parseAddress(ctx, req.Address)
	if !ok {
		return
	}
	in, err := s.cfg.Groups.Join(detach(ctx), p[0], a, true)
	if err != nil {
		s.groupFail(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, in)
}

func (s *Server) removeMember(ctx *fasthttp.RequestCtx, p []string) {
	a, ok := s.parseAddress(ctx, p[1])
	if !ok {
		return
	}
	if err := s.cfg.Groups.Leave(detach(ctx), p[0], a); err != nil {
		s.groupFail(ctx, err)
		return
	}
	ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// postToGroup posts as a member (staged like any message to the group's
// number, so the answer to a non-member is a message to them, and 202
// means every copy is durable) or as a robot.
func (s *Server) postToGroup(ctx *fasthttp.RequestCtx, p []string) {
	var req GroupPost
	if !readJSON(ctx, &req) {
		return
	}
	if req.Text == "" || len(req.Text) > 4096 {
		fail(ctx, fasthttp.StatusBadRequest, "text: 1 to 4096 bytes")
		return
	}
	in, err := s.cfg.Groups.Info(p[0])
	if err != nil {
		s.groupFail(ctx, err)
		return
	}
	// A robot signing for itself posts only as itself, to its own groups.
	if name, ok := ctx.UserValue(robotKey).(string); ok {
		if req.Robot != name || req.From != "" || !slices.Contains(in.Robots, name) {
			fail(ctx, fasthttp.StatusForbidden, "robot %s posts only as itself to a group it serves", name)
			return
		}
	}
	if req.Robot != "" {
		id, err := s.cfg.Groups.PostAs(detach(ctx), in.Name, req.Robot, req.Text)
		if err != nil {
			s.groupFail(ctx, err)
			return
		}
		writeJSON(ctx, fasthttp.StatusAccepted, map[string]string{"id": id})
		return
	}
	from, ok := s.parseAddress(ctx, req.From)
	if !ok {
		return
	}
	member := false
	for _, m := range in.Members {
		member = member || m.Address == from
	}
	if !member {
		fail(ctx, fasthttp.StatusForbidden, "%s is not a member of %s", from, in.Name)
		return
	}
	m := &msg.Message{From: from, To: in.Number, Text: req.Text, Origin: msg.Origin{Kind: msg.FromAPI, Account: s.client(ctx)}}
	if m.IdempotencyKey, ok = idempotencyKey(ctx); !ok { // a post sent again reaches each member once
		return
	}
	if err := msg.Accept(detach(ctx), s.sub, m); err != nil {
		s.groupFail(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusAccepted, map[string]string{"id": m.ID})
}
