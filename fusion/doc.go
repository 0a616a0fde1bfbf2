// Package fusion is the bridge's proxy into other IM systems: a bridge
// user binds an external XMPP account (user@server and its password), and
// the bridge logs in to it as a client on the user's behalf, keeps the
// session, reads the account's roster and its contacts' presence, and
// relays messages both ways. For the router the contacts are one more kind
// of IM binding (Via "fusion"); for the contacts the bridge user is simply
// online with that account. It only translates; the router decides where
// every message goes.
//
// Stored accounts. Each bound account is one KV record,
// "fusion/acct/<user>\x00<bare JID>", whose value is sealed JSON (user,
// JID, password, when bound): a version byte, a random 96-bit nonce, then
// the AES-256-GCM ciphertext and tag under Config.Key, with the version
// byte and the storage key as additional data, so a record copied under
// another user's or another account's key does not open. The password is
// kept in memory to log in again after a disconnection; it is never
// logged and Accounts never returns it. A record that does not open with
// the configured key (another key, or damage) makes New neither fail nor
// delete it: the account is listed as StateUnreadable and not connected
// until its user binds it again (which reseals it) or unbinds it, or the
// right key is configured again.
//
// Sessions. The proxy dials Config.Resolve(domain), or domain:5222,
// demands STARTTLS even where the server does not offer it, verifies the
// certificate for the JID's domain against Config.RootCAs (nil: the system
// roots), authenticates with SCRAM-SHA-256 or SCRAM-SHA-1 (-PLUS with
// channel binding where the server offers it; never PLAIN), and binds a
// resource the server chooses. mellium refuses SASL on a stream that is
// not encrypted. Bind logs in once to check the password: a refusal is
// ErrAuth and nothing is stored; the checked session is kept. While Run
// runs, every readable account has a session; a lost one is logged in
// again with exponential backoff from 100ms to 30s, half of each delay
// random; a refusal of the stored credentials stops the retries
// (StateAuthFailed) until the account is bound again.
//
// No SRV lookup. The servers the bridge logs in to are a few known IM
// systems, configured by the operator; Resolve maps their domains to
// addresses. Following SRV records would let whoever answers DNS for those
// domains pick the host we connect to, and would add a resolver to every
// reconnection and to the tests. The certificate is checked against the
// JID's domain either way, so an operator who needs another host names it
// in Resolve.
//
// Roster and presence. After each login the proxy fetches the roster,
// passes it whole to Config.OnRoster (and again after each roster push),
// then sends available presence with priority 0 so that messages to the
// account's bare JID reach it, and the server sends the contacts'
// presence. Available presence from a roster contact's resource binds it
// in Config.Presence: AOR "xmpp:" and the contact's bare JID, Contact
// "<user>|<account bare JID>|<contact full JID>", Via "fusion", its show
// and priority, expiring after Config.TTL and renewed every TTL/2 while
// the session is up; unavailable presence removes it. When a session is
// lost or the account is unbound, the bindings made through it are
// removed; when Run ends they are left to expire (the next session renews
// the live ones). Subscription requests are left to the user's own client.
// Presence from outside the roster and from the account's own other
// resources binds nothing.
//
// Acknowledgements. A client stream has no per-message acknowledgement: a
// stanza the server routed to us is ours, and the contact hears nothing
// unless we answer.
//
//   - A chat or normal message with a body from a contact is staged with
//     the router (msg.Stager) as From "xmpp:<bare sender>", To
//     Config.UserAddress(user), Origin{Kind: msg.FromFusion, Account: the
//     account's bare JID, Ref: the stanza id}; its commit is waited for
//     off the read loop (msg.Ack). If it is not taken in, the contact gets
//     a stanza error: wait / resource-constraint when the bridge is busy
//     or the message was not stored (they may resend), cancel /
//     item-not-found when there is no route, modify / policy-violation
//     for a text over MaxText. Nothing with a body from a contact is
//     dropped silently, except headlines, which take no errors, and
//     groupchat, which the session never joined.
//   - Receipts (XEP-0184) a contact asks for are not sent: the proxy
//     stages messages without Receipt, since whether the bridge user read
//     the message is not known here.
//   - Messages without a body (chat states, receipts) are consumed; a
//     receipt for a message we sent completes that delivery.
//
// Delivery. SendIM refuses a message whose sender Config.Owner does not
// map to the user in the binding's Contact (ErrNotOwner): one user's
// messages never leave through another user's account. It also refuses a
// binding whose AOR is not its contact's. It sends a chat message to the
// contact's full JID (bare if the binding has no resource), asking for a
// receipt, then an XEP-0199 ping to the same JID, and succeeds on the
// receipt or the ping's result, whichever comes first: the contact's
// client answered after our message on the ordered stream, so it holds
// it. An error stanza for either, no answer within Config.Timeout
// (ErrNoAnswer), or a session that is down (ErrNotConnected, at once) fail
// the attempt, and the router moves on to the next binding, SMS, or parks
// the message. A message whose answer was lost is sent again by the
// router: the contact may see it twice. The text loses what XML 1.0
// cannot carry.
//
// The XMPP edge (package xmpp) works the same way towards its users; the
// stanza reader and writers here are this package's own, sized to what a
// client session receives (roster pushes), because that edge's are not
// exported.
//
// Interoperability is tested against Prosody (Debian package prosody,
// started by internal/prosodytest) with github.com/xmppo/go-xmpp as the
// contacts' client; those tests skip when prosody is missing unless
// BRIDGE_REQUIRE_INTEROP=1.
package fusion
