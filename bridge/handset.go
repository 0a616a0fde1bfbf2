package bridge

import (
	"context"
	"encoding/xml"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/smsbridge/bridge/directory"
	"github.com/smsbridge/bridge/fusion"
	"github.com/smsbridge/bridge/login"
	"github.com/smsbridge/bridge/msg"
)

var attrID = regexp.MustCompile(`\bid="([^"]{1,64})"`)

// handsetService answers the handset link's S requests that need more than
// the link: N: GetSSOTicket (body `<args><service id="wiki"/></args>`)
// issues a ticket for the handset's user; N: GetContactList returns the
// user's contacts from the directory, with a partner user's contacts at
// their site after them; N: BindAccount, UnbindAccount and GetAccounts keep
// the user's external IM accounts (`<args><account jid="…" password="…"/></args>`).
func (b *Bridge) handsetService(ctx context.Context, user string, aor msg.Address, name string, body []byte) (int, string, []byte, bool) {
	switch {
	case strings.EqualFold(name, "GetSSOTicket"):
		if b.lg.issuer == nil {
			return 501, "Not Implemented", nil, true
		}
		m := attrID.FindSubmatch(body)
		if m == nil {
			return 400, "Bad Request", nil, true
		}
		ticket, _, err := b.lg.issuer.IssueClaims(user+"@"+b.cfg.SIPDomain, "", string(m[1]))
		if err != nil {
			return 404, "Not Found", nil, true
		}
		var w strings.Builder
		w.WriteString(`<results><ticket service="`)
		xml.EscapeText(&w, m[1])
		w.WriteString(`" value="`)
		xml.EscapeText(&w, []byte(ticket))
		w.WriteString(`" /></results>`)
		return 200, "OK", []byte(w.String()), true
	case strings.EqualFold(name, "BindAccount"), strings.EqualFold(name, "UnbindAccount"), strings.EqualFold(name, "GetAccounts"):
		return b.handsetAccounts(ctx, user, name, body)
	case strings.EqualFold(name, "GetContactList"):
		list, err := b.contactList(ctx, user)
		if err != nil {
			return 503, "Service Unavailable", nil, true
		}
		return 200, "OK", list, true
	}
	return 0, "", nil, false
}

// contactList renders user's contact list as SIP-C results: one buddy per
// contact (its first address as the URI, every address as a child, where
// it is online), then a partner user's contacts at their site.
func (b *Bridge) contactList(ctx context.Context, user string) ([]byte, error) {
	var w strings.Builder
	w.WriteString(`<results><contacts version="` + strconv.FormatInt(time.Now().UnixMilli(), 10) + `"><buddies>`)
	u, known := b.dir.User(user)
	if known {
		cs, err := b.dir.Contacts(u.Name)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			b.writeBuddy(&w, c)
		}
	}
	if site, account, ok := partnerAccount(u); known && ok && b.lg.partners != nil && b.lg.partners.Authorized(site) {
		cs, err := b.lg.partners.Contacts(ctx, site, account)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			w.WriteString(`<buddy uri="`)
			xml.EscapeText(&w, []byte(b.partnerURI(site, c.User)))
			w.WriteString(`" local-name="`)
			xml.EscapeText(&w, []byte(c.Display))
			w.WriteString(`" />`)
		}
	}
	w.WriteString(`</buddies></contacts></results>`)
	return []byte(w.String()), nil
}

func (b *Bridge) writeBuddy(w *strings.Builder, c directory.Contact) {
	uri := ""
	if len(c.Addresses) > 0 {
		uri = c.Addresses[0].SIPURI(b.cfg.SIPDomain)
	}
	status := "offline"
	where := b.dir.Where(c, b.pres.Bindings)
	if len(where) > 0 {
		status = "online"
	}
	w.WriteString(`<buddy id="`)
	xml.EscapeText(w, []byte(c.ID))
	w.WriteString(`" uri="`)
	xml.EscapeText(w, []byte(uri))
	w.WriteString(`" local-name="`)
	xml.EscapeText(w, []byte(c.Display))
	w.WriteString(`" status="` + status + `">`)
	for _, a := range c.Addresses {
		w.WriteString(`<address uri="`)
		xml.EscapeText(w, []byte(a))
		w.WriteString(`" />`)
	}
	for _, bd := range where {
		w.WriteString(`<online address="`)
		xml.EscapeText(w, []byte(bd.AOR))
		w.WriteString(`" via="`)
		xml.EscapeText(w, []byte(bd.Via))
		w.WriteString(`" />`)
	}
	w.WriteString(`</buddy>`)
}

// partnerAccount is the partner site and account a user was created for.
func partnerAccount(u directory.User) (site, account string, ok bool) {
	for _, a := range u.Addresses {
		if rest, found := strings.CutPrefix(string(a), "partner:"); found {
			return strings.Cut(rest, ":")
		}
	}
	return "", "", false
}

// partnerURI is the SIP URI of a partner site's user: their directory user
// if they logged in once, else the name their first login will get.
func (b *Bridge) partnerURI(site, account string) string {
	if p, ok := b.dir.Resolve(msg.Address("partner:" + site + ":" + account)); ok {
		return "sip:" + p.Name + "@" + b.cfg.SIPDomain
	}
	name, err := login.ExternalUserName("partner", site, account)
	if err != nil {
		return ""
	}
	return "sip:" + name + "@" + b.cfg.SIPDomain
}

// pushContacts sends a user's changed contact list to their handsets.
func (b *Bridge) pushContacts(name string) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.IMTimeout)
		defer cancel()
		u, ok := b.dir.User(name)
		if !ok || len(u.Addresses) == 0 {
			return
		}
		list, err := b.contactList(ctx, name)
		if err != nil {
			b.log.Info("contact list not pushed", "user", name, "err", err)
			return
		}
		b.mcp.Notify(ctx, u.Addresses[0], "contact", list)
	}()
}

// handsetAccounts binds, unbinds or lists the handset user's external IM
// accounts: 200 with `<results><accounts><account jid state/>…`, 403 for a
// password the account's server refused, 404 for no such account.
func (b *Bridge) handsetAccounts(ctx context.Context, user, name string, body []byte) (int, string, []byte, bool) {
	if b.fusion == nil {
		return 501, "Not Implemented", nil, true
	}
	var args struct {
		Account struct {
			JID      string `xml:"jid,attr"`
			Password string `xml:"password,attr"`
		} `xml:"account"`
	}
	if !strings.EqualFold(name, "GetAccounts") {
		if err := xml.Unmarshal(body, &args); err != nil || args.Account.JID == "" {
			return 400, "Bad Request", nil, true
		}
	}
	var err error
	switch {
	case strings.EqualFold(name, "BindAccount"):
		_, err = b.fusion.Bind(ctx, user, args.Account.JID, args.Account.Password)
	case strings.EqualFold(name, "UnbindAccount"):
		err = b.fusion.Unbind(ctx, user, args.Account.JID)
	}
	switch {
	case errors.Is(err, fusion.ErrAuth):
		return 403, "Forbidden", nil, true
	case errors.Is(err, fusion.ErrNotFound):
		return 404, "Not Found", nil, true
	case errors.Is(err, fusion.ErrInvalid):
		return 400, "Bad Request", nil, true
	case err != nil:
		return 504, "Server Time-out", nil, true
	}
	var w strings.Builder
	w.WriteString(`<results><accounts>`)
	for _, a := range b.fusion.Accounts(user) {
		w.WriteString(`<account jid="`)
		xml.EscapeText(&w, []byte(a.JID))
		w.WriteString(`" state="`)
		xml.EscapeText(&w, []byte(a.State))
		w.WriteString(`"/>`)
	}
	w.WriteString(`</accounts></results>`)
	return 200, "OK", []byte(w.String()), true
}
