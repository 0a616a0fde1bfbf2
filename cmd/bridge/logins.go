package main

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/smsbridge/bridge/config"
	"github.com/smsbridge/bridge/login"
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
