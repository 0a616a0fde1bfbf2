package sip

// Registration state from an IM server (RFC 3680 "reg" event package).
//
// Kamailio's pua_reginfo PUBLISHes an application/reginfo+xml document for
// an AOR whenever one of its contacts is saved, refreshed, removed or
// expires in usrloc. We act as the event state compositor for those
// publications only as far as presence needs: every active contact becomes
// a presence binding via "sip", every terminated one is removed. NOTIFY with
// Event: reg carries the same body (when the bridge is a subscriber instead)
// and is handled the same way.

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/smsbridge/bridge/presence"
)

// Limits on a reginfo document: one publication is about one AOR and a
// handful of devices, so anything much larger is an error or an attack.
const (
	maxReginfoBody          = 64 << 10
	maxReginfoRegistrations = 64
	maxReginfoContacts      = 256
	reginfoContentType      = "application/reginfo+xml"
)

// Reginfo is a parsed RFC 3680 reginfo document.
type Reginfo struct {
	Version       uint64
	State         string // "full" or "partial"
	Registrations []RegRegistration
}

// RegRegistration is one <registration>: an AOR and its contacts.
type RegRegistration struct {
	AOR      string
	ID       string
	State    string // "init", "active" or "terminated"
	Contacts []RegContact
}

// RegContact is one <contact> of a registration.
type RegContact struct {
	ID      string
	State   string // "active" or "terminated"
	Event   string // registered, created, refreshed, shortened, expired, deactivated, probation, unregistered, rejected
	Expires int64  // seconds left; -1 when the attribute is absent
	URI     string
}

// xml shapes; local names only, so any (or no) namespace prefix matches.
type xmlReginfo struct {
	Version       string            `xml:"version,attr"`
	State         string            `xml:"state,attr"`
	Registrations []xmlRegistration `xml:"registration"`
}

type xmlRegistration struct {
	AOR      string       `xml:"aor,attr"`
	ID       string       `xml:"id,attr"`
	State    string       `xml:"state,attr"`
	Contacts []xmlContact `xml:"contact"`
}

type xmlContact struct {
	ID      string `xml:"id,attr"`
	State   string `xml:"state,attr"`
	Event   string `xml:"event,attr"`
	Expires string `xml:"expires,attr"`
	URI     string `xml:"uri"`
}

// ParseReginfo parses and validates an application/reginfo+xml body.
func ParseReginfo(body []byte) (*Reginfo, error) {
	if len(body) > maxReginfoBody {
		return nil, fmt.Errorf("reginfo: body of %d bytes exceeds %d", len(body), maxReginfoBody)
	}
	dec := xml.NewDecoder(bytes.NewReader(body))
	// Only UTF-8 (and its ASCII subset) is accepted; anything else is refused
	// rather than guessed.
	dec.CharsetReader = func(label string, r io.Reader) (io.Reader, error) {
		switch strings.ToLower(label) {
		case "utf-8", "utf8", "us-ascii", "ascii":
			return r, nil
		}
		return nil, fmt.Errorf("unsupported charset %q", label)
	}
	var doc xmlReginfo
	root, err := firstElement(dec)
	if err != nil {
		return nil, err
	}
	if root.Name.Local != "reginfo" {
		return nil, fmt.Errorf("reginfo: root element is <%s>, want <reginfo>", clip(root.Name.Local))
	}
	if err := dec.DecodeElement(&doc, &root); err != nil {
		return nil, fmt.Errorf("reginfo: %w", err)
	}
	out := &Reginfo{State: strings.TrimSpace(doc.State)}
	if v := strings.TrimSpace(doc.Version); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("reginfo: version %q is not a number", clip(v))
		}
		out.Version = n
	}
	switch out.State {
	case "full", "partial":
	default:
		return nil, fmt.Errorf("reginfo: state %q, want full or partial", clip(out.State))
	}
	if len(doc.Registrations) > maxReginfoRegistrations {
		return nil, fmt.Errorf("reginfo: %d registrations exceed %d", len(doc.Registrations), maxReginfoRegistrations)
	}
	contacts := 0
	for _, r := range doc.Registrations {
		reg := RegRegistration{AOR: strings.TrimSpace(r.AOR), ID: r.ID, State: strings.TrimSpace(r.State)}
		if reg.AOR == "" {
			return nil, errors.New("reginfo: registration without aor")
		}
		switch reg.State {
		case "init", "active", "terminated":
		default:
			return nil, fmt.Errorf("reginfo: registration %s state %q", clip(reg.AOR), clip(reg.State))
		}
		contacts += len(r.Contacts)
		if contacts > maxReginfoContacts {
			return nil, fmt.Errorf("reginfo: more than %d contacts", maxReginfoContacts)
		}
		for _, c := range r.Contacts {
			rc := RegContact{ID: c.ID, State: strings.TrimSpace(c.State), Event: strings.TrimSpace(c.Event), Expires: -1, URI: strings.TrimSpace(c.URI)}
			switch rc.State {
			case "active", "terminated":
			default:
				return nil, fmt.Errorf("reginfo: contact of %s state %q", clip(reg.AOR), clip(rc.State))
			}
			if rc.URI == "" {
				return nil, fmt.Errorf("reginfo: contact of %s without uri", clip(reg.AOR))
			}
			if v := strings.TrimSpace(c.Expires); v != "" {
				n, err := parseDeltaSeconds(v)
				if err != nil {
					return nil, fmt.Errorf("reginfo: contact %s: %w", clip(rc.URI), err)
				}
				rc.Expires = n
			}
			reg.Contacts = append(reg.Contacts, rc)
		}
		out.Registrations = append(out.Registrations, reg)
	}
	return out, nil
}

// firstElement skips the prolog (declaration, comments, whitespace) and
// returns the root start element. A DOCTYPE is refused: reginfo has none and
// entity games are not something to entertain from the network.
func firstElement(dec *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return xml.StartElement{}, errors.New("reginfo: no root element")
			}
			return xml.StartElement{}, fmt.Errorf("reginfo: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.Directive:
			return xml.StartElement{}, errors.New("reginfo: DOCTYPE not allowed")
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return xml.StartElement{}, errors.New("reginfo: text before root element")
			}
		}
	}
}

// reginfoAllowed reports whether src ("ip:port") is one of
// Config.ReginfoFrom: an IP, a CIDR, or a host name resolved now (so a
// container name keeps working when its address changes).
func (s *Server) reginfoAllowed(ctx context.Context, src string) bool {
	host, _, err := net.SplitHostPort(src)
	if err != nil {
		host = src
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	if ip == nil {
		return false
	}
	for _, e := range s.cfg.ReginfoFrom {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if _, n, err := net.ParseCIDR(e); err == nil {
			if n.Contains(ip) {
				return true
			}
			continue
		}
		if a := net.ParseIP(strings.Trim(e, "[]")); a != nil {
			if a.Equal(ip) {
				return true
			}
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		addrs, err := net.DefaultResolver.LookupIPAddr(lctx, e)
		cancel()
		if err != nil {
			s.log.Debug("sip reginfo source lookup failed", "host", e, "err", err)
			continue
		}
		for _, a := range addrs {
			if a.IP.Equal(ip) {
				return true
			}
		}
	}
	return false
}

// handleReginfo takes PUBLISH or NOTIFY with Event: reg from a trusted IM
// server and turns the registration state into presence bindings.
func (s *Server) handleReginfo(req *sip.Request, tx sip.ServerTransaction) {
	if req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil {
		s.reply(tx, req, 400, "Missing To, From, Call-ID or CSeq")
		return
	}
	if len(s.cfg.ReginfoFrom) == 0 || !s.reginfoAllowed(s.ctx(), req.Source()) {
		s.log.Info("sip reginfo refused: source not trusted", "method", req.Method, "source", req.Source())
		s.reply(tx, req, 403, "Forbidden (reginfo source not trusted)")
		return
	}
	ev := ""
	if h := req.GetHeader("Event"); h != nil {
		ev = strings.TrimSpace(h.Value())
		if i := strings.IndexByte(ev, ';'); i >= 0 {
			ev = strings.TrimSpace(ev[:i])
		}
	}
	if !strings.EqualFold(ev, "reg") {
		// RFC 3903 §6 / RFC 6665 §8.2.1: unknown event package.
		s.reply(tx, req, 489, "Bad Event", sip.NewHeader("Allow-Events", "reg"))
		return
	}
	exp := int64(-1)
	if h := req.GetHeader("Expires"); h != nil {
		n, err := parseDeltaSeconds(h.Value())
		if err != nil {
			s.reply(tx, req, 400, "Bad Expires")
			return
		}
		exp = n
	}
	etag := ""
	if h := req.GetHeader("SIP-If-Match"); h != nil {
		etag = strings.TrimSpace(h.Value())
	}
	body := req.Body()
	if len(body) == 0 {
		// A PUBLISH refresh or removal (RFC 3903 §4.3, §4.4) carries no
		// body; the contacts carry their own expiries, so nothing changes.
		if req.Method == sip.PUBLISH && etag == "" {
			s.reply(tx, req, 400, "PUBLISH without body needs SIP-If-Match")
			return
		}
		s.reginfoOK(tx, req, etag, exp)
		return
	}
	if ct := req.ContentType(); ct == nil || !strings.EqualFold(mediaTypeOf(ct.Value()), reginfoContentType) {
		s.reply(tx, req, 415, "Unsupported Media Type", sip.NewHeader("Accept", reginfoContentType))
		return
	}
	doc, err := ParseReginfo(body)
	if err != nil {
		s.log.Info("sip reginfo rejected", "source", req.Source(), "call_id", callID(req), "err", err)
		s.reply(tx, req, 400, "Bad reginfo")
		return
	}
	if err := s.applyReginfo(s.ctx(), doc); err != nil {
		s.log.Warn("sip reginfo not applied", "source", req.Source(), "err", err)
		s.reply(tx, req, 500, "Server Internal Error")
		return
	}
	s.reginfoOK(tx, req, etag, exp)
}

// reginfoOK answers 200; a PUBLISH also gets the entity tag and the expiry
// it asked for (RFC 3903 §6 steps 7-8).
func (s *Server) reginfoOK(tx sip.ServerTransaction, req *sip.Request, etag string, exp int64) {
	if req.Method != sip.PUBLISH {
		s.reply(tx, req, 200, "OK")
		return
	}
	if etag == "" {
		etag = uuid.NewString()
	}
	if exp < 0 {
		exp = int64(s.cfg.DefaultExpires / time.Second)
	}
	s.reply(tx, req, 200, "OK",
		sip.NewHeader("SIP-ETag", etag),
		sip.NewHeader("Expires", strconv.FormatInt(min(exp, int64(s.cfg.MaxExpires/time.Second)), 10)))
}

// applyReginfo turns a reginfo document into Register/Unregister calls.
// Registrations for other domains are skipped: we only hold presence for
// our own users. A "full" document (what pua_reginfo always sends, listing
// every contact of the AOR) is authoritative for the AOR's "sip" bindings:
// those it does not list as active are removed, so a lost publication heals
// with the next one. Bindings of other adapters (mcp, api) are left alone,
// which is also why a terminated registration removes contacts one by one
// rather than the whole AOR. The document version is not tracked:
// pua_reginfo sends version 0 every time.
func (s *Server) applyReginfo(ctx context.Context, doc *Reginfo) error {
	now := s.now()
	maxExp := int64(s.cfg.MaxExpires / time.Second)
	for _, r := range doc.Registrations {
		var u sip.Uri
		if err := sip.ParseUri(strings.Trim(r.AOR, "<>"), &u); err != nil || u.User == "" {
			s.log.Info("sip reginfo: unusable aor", "aor", clip(r.AOR))
			continue
		}
		if !s.ourDomain(u.Host) {
			s.log.Info("sip reginfo: aor not in our domain", "aor", clip(r.AOR))
			continue
		}
		aor, err := s.aorOf(u.User)
		if err != nil {
			s.log.Info("sip reginfo: bad aor", "aor", clip(r.AOR), "err", err)
			continue
		}
		active := map[string]bool{}
		for _, c := range r.Contacts {
			var cu sip.Uri
			if err := sip.ParseUri(strings.Trim(c.URI, "<>"), &cu); err != nil || cu.Host == "" {
				s.log.Info("sip reginfo: unusable contact", "aor", aor, "contact", clip(c.URI))
				continue
			}
			contact := contactString(cu)
			if r.State == "terminated" || c.State == "terminated" || c.Expires == 0 {
				if err := s.reg.Unregister(ctx, aor, contact); err != nil {
					return fmt.Errorf("unregister %s %s: %w", aor, contact, err)
				}
				s.log.Info("sip reginfo unregistered", "aor", aor, "contact", contact, "event", c.Event)
				continue
			}
			exp := c.Expires
			if exp < 0 {
				exp = int64(s.cfg.DefaultExpires / time.Second)
			}
			exp = min(exp, maxExp)
			b := presence.Binding{
				AOR: aor, Contact: contact, Via: "sip",
				Expires: now.Add(time.Duration(exp) * time.Second), Updated: now,
			}
			if err := s.reg.Register(ctx, b); err != nil {
				return fmt.Errorf("register %s %s: %w", aor, contact, err)
			}
			active[contact] = true
			s.log.Info("sip reginfo registered", "aor", aor, "contact", contact, "expires", exp, "event", c.Event)
		}
		if doc.State != "full" {
			continue
		}
		for _, b := range s.reg.Bindings(aor) {
			if b.Via != "sip" || active[b.Contact] {
				continue
			}
			if err := s.reg.Unregister(ctx, aor, b.Contact); err != nil {
				return fmt.Errorf("unregister %s %s: %w", aor, b.Contact, err)
			}
			s.log.Info("sip reginfo unregistered", "aor", aor, "contact", b.Contact, "event", "not in full state")
		}
	}
	return nil
}

// mediaTypeOf is the type/subtype of a Content-Type value, parameters cut.
func mediaTypeOf(v string) string {
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v)
}
