package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/smsbridge/bridge/directory"
	"github.com/smsbridge/bridge/login"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/xmpp"
)

// errJIDHeld refuses an XMPP login whose JID is bound to another user: JID
// localparts are case-insensitive, site accounts may not be.
var errJIDHeld = errors.New("this XMPP name belongs to another account: log in with the IM user name the bridge's /v1/login answers")

// xmppLogin admits a login at the XMPP server (prosody/mod_auth_bridge.lua
// asks over the API): local is the JID's localpart as the server prepared
// it, password the site's signed token. The localpart is a login name with
// its '@' escaped (XEP-0106, "vcase\40weibo") or the IM user name of an
// external account ("vcase=1a2b!weibo"). The first login creates the user;
// the JID is bound to them, so messages reach them there.
func (b *Bridge) xmppLogin(ctx context.Context, local, host, password string) (login.Result, error) {
	name := xmpp.Unescape(local)
	user := ""
	if !strings.ContainsAny(name, "@#") {
		u, ok := b.dir.User(name)
		if !ok {
			return login.Result{}, fmt.Errorf("%w: no user %q", login.ErrBadPassword, name)
		}
		if name = externalLogin(u); name == "" {
			return login.Result{}, fmt.Errorf("%w: %q logs in to XMPP with a site's token only", login.ErrBadPassword, u.Name)
		}
		user = u.Name
	}
	if b.lg.auth.Classify(name) == login.Ordinary {
		return login.Result{}, fmt.Errorf("%w: %q is not a site's account", login.ErrBadPassword, name)
	}
	r, err := b.lg.auth.Check(ctx, name, password)
	if err != nil {
		return login.Result{}, err
	}
	if user != "" && r.User != user {
		return login.Result{}, fmt.Errorf("%w: the token is for another account", login.ErrBadPassword)
	}
	jid := msg.Address("xmpp:" + strings.ToLower(local) + "@" + strings.ToLower(host))
	if _, err := b.dir.Bind(ctx, r.User, jid); err != nil {
		if errors.Is(err, directory.ErrOwned) {
			return login.Result{}, errJIDHeld
		}
		return login.Result{}, fmt.Errorf("bind %s: %w", jid, err)
	}
	return r, nil
}

// externalLogin is the login name of a partner or social user ("" for
// others): the account and site of the external address bound to them.
func externalLogin(u directory.User) string {
	for _, a := range u.Addresses {
		kind, rest, _ := strings.Cut(string(a), ":")
		site, account, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		switch kind {
		case directory.KindSocial:
			return account + "@" + site
		case directory.KindPartner:
			return account + "#" + site
		}
	}
	return ""
}
