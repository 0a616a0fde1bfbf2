package main

import (
	"context"
	"encoding/hex"
	"encoding/xml"
	"fmt"
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
	var sites []login.Site
	for _, s := range cfg.PartnerSites {
		f := strings.Split(s, ",")
		if len(f) < 4 || len(f) > 6 {
			return nil, fmt.Errorf("--partner-site %q: want ID,VERIFY_URL,SERVER_ID,SERVER_SECRET[,CONTACTS_URL[,POSTS_URL]]", f[0])
		}
		site := login.Site{ID: f[0], VerifyURL: f[1], ServerID: f[2], ServerSecret: f[3], Enabled: true}
		if len(f) > 4 {
			site.ContactsURL = f[4]
		}
		if len(f) > 5 {
			site.PostsURL = f[5]
		}
		sites = append(sites, site)
	}
	if len(sites) > 0 {
		p, err := login.NewPartners(login.PartnersConfig{Sites: sites, Logger: log.With("part", "partners")})
		if err != nil {
			return nil, err
		}
		l.partners = p
	}
	var social *login.SocialAccounts
	if len(cfg.SocialSites) > 0 {
		var ss []login.SocialSite
		for _, s := range cfg.SocialSites {
			id, k, ok := strings.Cut(s, ":")
			key, err := hex.DecodeString(k)
			if !ok || err != nil || len(key) < 16 {
				return nil, fmt.Errorf("--social-site %q: want ID:HEX_KEY with at least 16 key bytes", id)
			}
			ss = append(ss, login.SocialSite{ID: id, Key: key})
		}
		var err error
		if social, err = login.NewSocialAccounts(login.SocialConfig{Sites: ss}); err != nil {
			return nil, err
		}
	}
	var services []login.Service
	for _, s := range cfg.SSOServices {
		f := strings.Split(s, ":")
		if len(f) < 3 || len(f) > 4 {
			return nil, fmt.Errorf("--sso-service %q: want ID:KEY_ID:HEX_KEY[:TTL]", f[0])
		}
		key, err := login.ParseKey(f[2])
		if err != nil {
			return nil, fmt.Errorf("--sso-service %s: %w", f[0], err)
		}
		svc := login.Service{ID: f[0], KeyID: f[1], Key: key}
		if len(f) == 4 {
			if svc.TTL, err = time.ParseDuration(f[3]); err != nil {
				return nil, fmt.Errorf("--sso-service %s: ttl: %w", f[0], err)
			}
		}
		services = append(services, svc)
	}
	if len(services) > 0 {
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
