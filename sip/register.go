package sip

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// maxExpiresValue caps parsed delta-seconds (RFC 3261 §20.19 allows up to
// 2**32-1); anything larger is clamped to MaxExpires anyway.
const maxExpiresValue = 1<<32 - 1

// parseDeltaSeconds parses an Expires header or expires parameter value.
func parseDeltaSeconds(v string) (int64, error) {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 10 {
		return 0, fmt.Errorf("expires %q is not delta-seconds", clip(v))
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > maxExpiresValue || v[0] == '+' {
		return 0, fmt.Errorf("expires %q is not delta-seconds", clip(v))
	}
	return n, nil
}

// aorOf normalizes the user of a SIP URI in our domain to an Address.
func (s *Server) aorOf(user string) (msg.Address, error) {
	if user == "" {
		return "", errors.New("no user part")
	}
	return msg.FromAOR("sip:"+user+"@"+s.cfg.Domain, s.cfg.CountryCode)
}

// authenticate answers the challenge itself and returns false when the
// request must not proceed. user is the URI user the credentials must
// belong to (To for REGISTER, From for MESSAGE).
func (s *Server) authenticate(req *sip.Request, tx sip.ServerTransaction, aor msg.Address) bool {
	if s.cfg.OpenRegistration {
		return true
	}
	var hv string
	if h := req.GetHeader("Authorization"); h != nil {
		hv = h.Value()
	}
	user, err := s.nonces.verify(hv, string(req.Method), s.cfg.Domain,
		lookups{s.cfg.HA1, s.cfg.Issued}, lookups{s.cfg.HA1SHA256, s.cfg.IssuedSHA256})
	if err != nil {
		stale := errors.Is(err, errStaleNonce)
		if !errors.Is(err, errNoCredentials) {
			s.log.Debug("sip auth failed", "method", req.Method, "call_id", callID(req), "source", req.Source(), "err", err)
		}
		md5 := sip.NewHeader("WWW-Authenticate", s.nonces.challenge(s.cfg.Domain, "MD5", stale))
		// SHA-256 first, the preferred one (RFC 8760 §2.4), only to a user
		// who has a SHA-256 credential: a UA takes the first it supports.
		if s.hasSHA256(aor) {
			s.reply(tx, req, 401, "Unauthorized",
				sip.NewHeader("WWW-Authenticate", s.nonces.challenge(s.cfg.Domain, "SHA-256", stale)), md5)
			return false
		}
		s.reply(tx, req, 401, "Unauthorized", md5)
		return false
	}
	// The credentials must be those of the identity the request claims, or
	// one user could register or send as another.
	if got, err := s.aorOf(user); err != nil || got != aor {
		s.log.Info("sip auth identity mismatch", "method", req.Method, "auth_user", user, "aor", aor, "source", req.Source())
		s.reply(tx, req, 403, "Forbidden")
		return false
	}
	return true
}

// hasSHA256 reports whether the user of aor (sip:USER@our domain) has a
// SHA-256 digest credential of their own or issued to a device.
func (s *Server) hasSHA256(aor msg.Address) bool {
	rest, ok := strings.CutPrefix(string(aor), "sip:")
	user, host, ok2 := strings.Cut(rest, "@")
	if !ok || !ok2 || !strings.EqualFold(host, s.cfg.Domain) {
		return false
	}
	if s.cfg.HA1SHA256 != nil {
		if _, ok := s.cfg.HA1SHA256(user); ok {
			return true
		}
	}
	return s.cfg.IssuedSHA256 != nil && len(s.cfg.IssuedSHA256(user)) > 0
}

func (s *Server) handleRegister(req *sip.Request, tx sip.ServerTransaction) {
	to := req.To()
	if to == nil || req.From() == nil || req.CallID() == nil || req.CSeq() == nil {
		s.reply(tx, req, 400, "Missing To, From, Call-ID or CSeq")
		return
	}
	if !s.ourDomain(to.Address.Host) {
		s.reply(tx, req, 404, "Not Found (domain not served here)")
		return
	}
	aor, err := s.aorOf(to.Address.User)
	if err != nil {
		s.reply(tx, req, 400, "Bad To AOR")
		return
	}
	if !s.authenticate(req, tx, aor) {
		return
	}

	// Expires header: default for contacts without an expires parameter.
	defExp := int64(s.cfg.DefaultExpires / time.Second)
	if h := req.GetHeader("Expires"); h != nil {
		n, err := parseDeltaSeconds(h.Value())
		if err != nil {
			s.reply(tx, req, 400, "Bad Expires")
			return
		}
		defExp = n
	}

	type change struct {
		contact string
		exp     int64
	}
	var changes []change
	wildcard := false
	contacts := req.GetHeaders("Contact")
	for _, h := range contacts {
		ch, ok := h.(*sip.ContactHeader)
		if !ok {
			s.reply(tx, req, 400, "Bad Contact")
			return
		}
		if ch.Address.Wildcard {
			wildcard = true
			continue
		}
		exp := defExp
		if v, ok := ch.Params.Get("expires"); ok {
			n, err := parseDeltaSeconds(v)
			if err != nil {
				s.reply(tx, req, 400, "Bad Contact expires")
				return
			}
			exp = n
		}
		if ch.Address.Host == "" || (ch.Address.Scheme != "" && ch.Address.Scheme != "sip" && ch.Address.Scheme != "sips") {
			s.reply(tx, req, 400, "Unusable Contact")
			return
		}
		changes = append(changes, change{contact: contactString(s.usableContact(req, ch.Address)), exp: exp})
	}
	// RFC 3261 §10.3 step 6: "*" only alone and with Expires: 0.
	if wildcard {
		if len(contacts) != 1 || defExp != 0 {
			s.reply(tx, req, 400, "Wildcard Contact needs Expires 0 and no other Contact")
			return
		}
		if err := s.reg.Unregister(s.ctx(), aor, ""); err != nil {
			s.log.Warn("sip unregister failed", "aor", aor, "err", err)
			s.reply(tx, req, 500, "Server Internal Error")
			return
		}
		s.log.Info("sip unregistered", "aor", aor, "contact", "*")
		s.reply(tx, req, 200, "OK")
		return
	}
	minExp := int64(s.cfg.MinExpires / time.Second)
	for _, c := range changes {
		if c.exp > 0 && c.exp < minExp {
			s.reply(tx, req, 423, "Interval Too Brief", sip.NewHeader("Min-Expires", strconv.FormatInt(minExp, 10)))
			return
		}
	}
	now := s.now()
	maxExp := int64(s.cfg.MaxExpires / time.Second)
	for _, c := range changes {
		if c.exp == 0 {
			if err := s.reg.Unregister(s.ctx(), aor, c.contact); err != nil {
				s.log.Warn("sip unregister failed", "aor", aor, "err", err)
				s.reply(tx, req, 500, "Server Internal Error")
				return
			}
			s.log.Info("sip unregistered", "aor", aor, "contact", c.contact)
			continue
		}
		exp := min(c.exp, maxExp)
		b := presence.Binding{
			AOR: aor, Contact: c.contact, Via: "sip",
			Expires: now.Add(time.Duration(exp) * time.Second), Updated: now,
		}
		if err := s.reg.Register(s.ctx(), b); err != nil {
			s.log.Warn("sip register failed", "aor", aor, "err", err)
			s.reply(tx, req, 500, "Server Internal Error")
			return
		}
		s.log.Info("sip registered", "aor", aor, "contact", c.contact, "expires", exp)
	}

	// 200 lists every current binding (RFC 3261 §10.3 step 8).
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	for _, b := range s.reg.Bindings(aor) {
		var u sip.Uri
		if err := sip.ParseUri(b.Contact, &u); err != nil {
			continue
		}
		left := int64(b.Expires.Sub(now).Round(time.Second) / time.Second)
		res.AppendHeader(&sip.ContactHeader{Address: u, Params: sip.HeaderParams{{K: "expires", V: strconv.FormatInt(max(left, 0), 10)}}})
	}
	res.AppendHeader(sip.NewHeader("Date", now.UTC().Format(time.RFC1123)))
	s.respond(tx, req, res)
}

// usableContact keeps the Contact as given unless it cannot be reached at
// all (an unspecified address such as 0.0.0.0, or a ".invalid" host as
// WebSocket UAs send); then the request's source address stands in, the way
// rport (RFC 3581) does for responses.
func (s *Server) usableContact(req *sip.Request, u sip.Uri) sip.Uri {
	host := strings.Trim(u.Host, "[]")
	ip := net.ParseIP(host)
	if (ip == nil || !ip.IsUnspecified()) && !strings.HasSuffix(strings.ToLower(host), ".invalid") {
		return u
	}
	srcHost, srcPort, err := net.SplitHostPort(req.Source())
	if err != nil {
		return u
	}
	p, err := strconv.Atoi(srcPort)
	if err != nil {
		return u
	}
	u.Host, u.Port = srcHost, p
	if !strings.EqualFold(req.Transport(), "UDP") {
		u.UriParams = u.UriParams.Clone()
		if u.UriParams == nil {
			u.UriParams = sip.NewParams()
		}
		u.UriParams.Remove("transport")
		u.UriParams.Add("transport", strings.ToLower(req.Transport()))
	}
	return u
}

// contactString is the contact URI as we store it: the URI with its own
// parameters (transport=tcp matters for delivery) but no header params.
func contactString(u sip.Uri) string {
	if u.Scheme == "" {
		u.Scheme = "sip"
	}
	return u.String()
}
