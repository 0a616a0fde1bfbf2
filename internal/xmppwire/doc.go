// Package xmppwire is the stanza reading and writing that both of the
// bridge's XMPP roles share: the component edge (package xmpp) and the
// client-to-server proxy into users' external accounts (package fusion).
//
// Both take stanzas from mellium one at a time and act on a few of their
// children only, so both read a stanza the same way: Decode keeps its
// routing attributes and the children either role acts on, within fixed
// bounds, and skips the rest without keeping it. Each role ignores the
// fields only the other acts on: the component its roster items, the proxy
// its receipt requests. Both write a message and its ping as XML text
// (AppendChat, AppendPing) under the stream's output lock (WriteRaw), and
// other stanzas as token lists (Tokens, built with El, Empty and TextEl or
// whole: ErrorReply); both clean the text they send with CleanText so that
// no stanza carries what XML 1.0 cannot, and read their streams through a MeteredConn so that one stanza
// cannot make the decoder buffer without bound. A GatherConn gathers a
// stream's writes for a moment into one system call (the component's).
//
// It exists so that one fix to how a stanza is read, bounded or cleaned
// reaches both roles.
package xmppwire
