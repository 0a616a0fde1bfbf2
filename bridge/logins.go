package bridge

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/smsbridge/bridge/config"
	"github.com/smsbridge/bridge/internal/tlsconf"
	"github.com/smsbridge/bridge/login"
)

// logins builds the login side from the configuration: the bridge's own
// users, partner sites, social sites, issued SIP passwords and SSO services.
type logins struct {
	auth     *login.Authenticator
	partners *login.Partners
	issuer   *login.Issuer
}

// The KV keeps used social tokens and issued SIP passwords across restarts;
// users holds the users external logins create.
func buildLogins(cfg *config.Config, ordinaryHA1, ordinaryHA1SHA256 func(string) (string, bool), kv login.KV, users login.UserStore, log *slog.Logger) (*logins, error) {
	l := &logins{}
	if len(cfg.PartnerSites) > 0 {
		sites := make([]login.Site, len(cfg.PartnerSites))
		for i, s := range cfg.PartnerSites {
			sites[i] = login.Site{ID: s.ID, VerifyURL: s.VerifyURL, ServerID: s.ServerID, ServerSecret: s.ServerSecret,
				ContactsURL: s.ContactsURL, PostsURL: s.PostsURL, Enabled: true}
		}
		tc, err := tlsconf.ClientConfig(cfg.PartnerCA)
		if err != nil {
			return nil, fmt.Errorf("partner sites: %w", err)
		}
		if cfg.LabAllowHTTPPartners {
			log.Warn("--lab-allow-http-partners: partner sites may be plain http://, their secrets and users' passwords cross in clear. Labs only.")
		}
		p, err := login.NewPartners(login.PartnersConfig{Sites: sites, TLSConfig: tc, Logger: log.With("part", "partners")})
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
		if social, err = login.NewSocialAccounts(login.SocialConfig{Sites: ss, Store: kv}); err != nil {
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
	creds, err := login.NewCredentials(login.CredentialsConfig{Realm: cfg.SIPDomain, Store: kv})
	if err != nil {
		return nil, err
	}
	auth, err := login.New(login.Config{
		Domain:      cfg.SIPDomain,
		OrdinaryHA1: ordinaryHA1, OrdinaryHA1SHA256: ordinaryHA1SHA256,
		Partners: l.partners, Social: social, Users: users,
		Credentials: creds,
		Logger:      log.With("part", "login"),
	})
	if err != nil {
		return nil, err
	}
	l.auth = auth
	return l, nil
}
