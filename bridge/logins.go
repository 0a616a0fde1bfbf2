package bridge

import (
	"context"
	"encoding/xml"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/smsbridge/bridge/config"
	"github.com/smsbridge/bridge/login"
	"github.com/smsbridge/bridge/msg"
)

// logins builds the login side from the configuration: the bridge's own
// users, partner sites, social sites, issued SIP passwords and SSO services.
type logins struct {
	auth     *login.Authenticator
	partners *login.Partners
	issuer   *login.Issuer
}

func buildLogins(cfg *config.Config, ordinaryHA1 func(string) (string, bool), log *slog.Logger) (*logins, error) {
	l := &logins{}
	if len(cfg.PartnerSites) > 0 {
		sites := make([]login.Site, len(cfg.PartnerSites))
		for i, s := range cfg.PartnerSites {
			sites[i] = login.Site{ID: s.ID, VerifyURL: s.VerifyURL, ServerID: s.ServerID, ServerSecret: s.ServerSecret,
				ContactsURL: s.ContactsURL, PostsURL: s.PostsURL, Enabled: true}
		}
		p, err := login.NewPartners(login.PartnersConfig{Sites: sites, Logger: log.With("part", "partners")})
		if err != nil {
			return nil, err
		}
		l.partners = p
	}
	var social *login.SocialAccounts
	if len(cfg.SocialSites) > 0 {
		ss := make([]login.SocialSite, len(cfg.SocialSites))
		for i, s := range cfg.SocialSites {
			ss[i] = login.SocialSite{ID: s.ID, Key: s.Key}
		}
		var err error
		if social, err = login.NewSocialAccounts(login.SocialConfig{Sites: ss}); err != nil {
			return nil, err
		}
	}
	if len(cfg.SSOServices) > 0 {
		services := make([]login.Service, len(cfg.SSOServices))
		for i, s := range cfg.SSOServices {
			services[i] = login.Service{ID: s.ID, KeyID: s.KeyID, Key: s.Key, TTL: s.TTL}
		}
		iss, err := login.NewIssuer(services, time.Now)
		if err != nil {
			return nil, err
		}
		l.issuer = iss
	}
	auth, err := login.New(login.Config{
		Domain:      cfg.SIPDomain,
		OrdinaryHA1: ordinaryHA1,
		Partners:    l.partners, Social: social,
		Credentials: login.NewCredentials(login.CredentialsConfig{Realm: cfg.SIPDomain}),
		Logger:      log.With("part", "login"),
	})
	if err != nil {
		return nil, err
	}
	l.auth = auth
	return l, nil
}

var attrID = regexp.MustCompile(`\bid="([^"]{1,64})"`)

// mcpService answers SIP-C S requests that need the login side: N:
// GetSSOTicket (body `<args><service id="wiki"/></args>`) issues a ticket
// for the handset's user; N: GetContactList for a partner user returns the
// partner site's contacts.
func (l *logins) mcpService(domain string) func(ctx context.Context, user string, aor msg.Address, name string, body []byte) (int, string, []byte, bool) {
	return func(ctx context.Context, user string, aor msg.Address, name string, body []byte) (int, string, []byte, bool) {
		switch {
		case strings.EqualFold(name, "GetSSOTicket"):
			if l.issuer == nil {
				return 501, "Not Implemented", nil, true
			}
			m := attrID.FindSubmatch(body)
			if m == nil {
				return 400, "Bad Request", nil, true
			}
			ticket, _, err := l.issuer.IssueClaims(user+"@"+domain, "", string(m[1]))
			if err != nil {
				return 404, "Not Found", nil, true
			}
			var b strings.Builder
			b.WriteString(`<results><ticket service="`)
			xml.EscapeText(&b, m[1])
			b.WriteString(`" value="`)
			xml.EscapeText(&b, []byte(ticket))
			b.WriteString(`" /></results>`)
			return 200, "OK", []byte(b.String()), true
		case strings.EqualFold(name, "GetContactList") && l.partners != nil:
			i := strings.LastIndexByte(user, '.')
			if i <= 0 || !l.partners.Authorized(user[i+1:]) {
				return 0, "", nil, false // not a partner user: the built-in answer
			}
			cs, err := l.partners.Contacts(ctx, user[i+1:], user[:i])
			if err != nil {
				return 503, "Service Unavailable", nil, true
			}
			var b strings.Builder
			b.WriteString(`<results><contacts version="1"><buddies>`)
			for _, c := range cs {
				b.WriteString(`<buddy uri="`)
				xml.EscapeText(&b, []byte("sip:"+c.User+"."+user[i+1:]+"@"+domain))
				b.WriteString(`" local-name="`)
				xml.EscapeText(&b, []byte(c.Display))
				b.WriteString(`" />`)
			}
			b.WriteString(`</buddies></contacts></results>`)
			return 200, "OK", []byte(b.String()), true
		}
		return 0, "", nil, false
	}
}
