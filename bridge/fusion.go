package bridge

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/smsbridge/bridge/directory"
	"github.com/smsbridge/bridge/fusion"
	"github.com/smsbridge/bridge/msg"
)

// buildFusion makes the proxy that logs in to users' external IM accounts
// (--fusion-key turns it on).
func (b *Bridge) buildFusion() error {
	cfg := b.cfg
	if cfg.FusionKey == "" {
		return nil
	}
	key, err := hex.DecodeString(cfg.FusionKey)
	if err != nil {
		return fmt.Errorf("fusion key: %w", err)
	}
	var roots *x509.CertPool
	if cfg.FusionCA != "" {
		pem, err := os.ReadFile(cfg.FusionCA)
		if err != nil {
			return fmt.Errorf("fusion CA: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("fusion CA %s: no PEM certificate in it", cfg.FusionCA)
		}
	}
	servers := make(map[string]string, len(cfg.FusionServers))
	for _, s := range cfg.FusionServers {
		d, a, _ := strings.Cut(s, "=")
		servers[strings.ToLower(d)] = a
	}
	p, err := fusion.New(fusion.Config{
		Key: key, KV: b.db, Stager: b.in, Presence: b.pres,
		Owner: func(from msg.Address) (string, bool) {
			p, ok := b.dir.Resolve(from)
			return p.Name, ok
		},
		UserAddress: func(user string) msg.Address {
			if u, ok := b.dir.User(user); ok && len(u.Addresses) > 0 {
				return u.Addresses[0]
			}
			return msg.Address("sip:" + user + "@" + cfg.SIPDomain)
		},
		OnRoster: b.mergeRoster,
		RootCAs:  roots,
		Resolve: func(domain string) string {
			if a, ok := servers[strings.ToLower(domain)]; ok {
				return a
			}
			return domain + ":5222"
		},
		Timeout: cfg.IMTimeout,
		Logger:  b.log.With("part", "fusion"),
	})
	b.fusion = p
	return err
}

// mergeRoster adds the contacts of an external account's roster to the
// user's contacts: each JID not yet an address of one of their contacts
// becomes a contact of its own (the user may merge it into another by
// binding the address there).
func (b *Bridge) mergeRoster(ctx context.Context, user, account string, items []fusion.RosterItem) {
	have, err := b.dir.Contacts(user)
	if err != nil {
		b.log.Warn("roster not merged", "user", user, "account", account, "err", err)
		return
	}
	for _, it := range items {
		a, err := directory.ParseXMPP("xmpp:" + it.JID)
		if err != nil {
			continue
		}
		if slices.ContainsFunc(have, func(c directory.Contact) bool { return slices.Contains(c.Addresses, a) }) {
			continue
		}
		c, _, err := b.dir.PutContact(ctx, user, directory.Contact{Display: it.Name, Addresses: []msg.Address{a}})
		if err != nil {
			if !errors.Is(err, directory.ErrInvalid) {
				b.log.Warn("roster contact not merged", "user", user, "contact", it.JID, "err", err)
			}
			continue
		}
		have = append(have, c)
	}
}
