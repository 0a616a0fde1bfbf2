// Package corpus generates evaluation traffic for the handset-link codec,
// organised in families: SIP-C sessions of several Fetion client versions
// and session mixes, RFC 3261 SIP built with sipgo's message types, and
// SIP traces captured from Kamailio, baresip and sipgo user agents.
//
// It is independent of the generator the codec package ships for its own
// tests (codec.GenerateSessions): other client profiles, header orders,
// bodies and vocabularies. Every family is marked Tuned or held out: the
// codec's tables, dictionary and primed models may be derived from tuned
// families only, and its targets are asserted on the held-out ones (and on
// a long single stream made by held-out generators).
//
// The package does not import the codec, so the codec's tests can use it.
package corpus

import (
	"fmt"
	"math/rand/v2"
)

// Kind is the protocol of a family.
type Kind int

const (
	SIPC Kind = iota // SIP-C/2.0 or SIP-C/4.0 (Fetion)
	SIP              // RFC 3261 SIP
)

func (k Kind) String() string {
	if k == SIPC {
		return "SIP-C"
	}
	return "SIP"
}

// Family is one generator (or one captured trace) of sessions; a session
// is the messages of one handset link, both directions, in order.
type Family struct {
	Name  string
	Kind  Kind
	Tuned bool   // the codec may be tuned on this family
	Desc  string // what the family is
	// Sessions returns n sessions made from seed (a captured trace ignores
	// seed and returns at most the sessions it holds).
	Sessions func(seed uint64, n int) [][][]byte
}

// Families lists every family: the tuned half first, then the held-out
// half. The split is by generator: a held-out family shares no generator
// code path with a tuned one where it matters (client profile × session
// mix, vocabulary, captured program).
func Families() []Family {
	return []Family{
		// SIP-C, tuned.
		{Name: "sipc-pc3-chat", Kind: SIPC, Tuned: true, Desc: "PC client 3.x, SIP-C/2.0, chat-heavy", Sessions: sipcFamily(profPC3, mixChat, vocabA)},
		{Name: "sipc-pc4-presence", Kind: SIPC, Tuned: true, Desc: "PC client 4.x, SIP-C/4.0, presence-heavy", Sessions: sipcFamily(profPC4, mixPresence, vocabA)},
		{Name: "sipc-j2me-sms", Kind: SIPC, Tuned: true, Desc: "J2ME handset 2.x, SIP-C/2.0, SMS-heavy, other header order", Sessions: sipcFamily(profJ2ME, mixSMS, vocabA)},
		{Name: "sipc-pc4-contacts", Kind: SIPC, Tuned: true, Desc: "PC client 4.x, contact-list management", Sessions: sipcFamily(profPC4, mixContacts, vocabA)},
		// SIP, tuned.
		{Name: "sip-sipgo-im", Kind: SIP, Tuned: true, Desc: "sipgo messages: REGISTER with digest, MESSAGE, OPTIONS", Sessions: sipFamily(sipIM)},
		{Name: "sip-sipgo-presence", Kind: SIP, Tuned: true, Desc: "sipgo messages: SUBSCRIBE/NOTIFY presence and winfo, PUBLISH", Sessions: sipFamily(sipPresence)},
		{Name: "sip-kamailio-sipgo", Kind: SIP, Tuned: true, Desc: "captured: sipgo user agents through Kamailio", Sessions: traceFamily("kamailio-sipgo")},
		// SIP-C, held out.
		{Name: "sipc-pc3-presence", Kind: SIPC, Desc: "PC client 3.x, presence-heavy, large contact lists", Sessions: sipcFamily(profPC3, mixPresence, vocabB)},
		{Name: "sipc-linux4-chat", Kind: SIPC, Desc: "Linux client 4.x (other header order), chat-heavy with nudges and typing", Sessions: sipcFamily(profLinux4, mixChat, vocabB)},
		{Name: "sipc-android4-group", Kind: SIPC, Desc: "Android client 4.x, group (PG) traffic", Sessions: sipcFamily(profAndroid4, mixGroup, vocabB)},
		{Name: "sipc-j2me-mixed", Kind: SIPC, Desc: "J2ME handset 2.x, everything mixed", Sessions: sipcFamily(profJ2ME, mixAll, vocabB)},
		// SIP, held out.
		{Name: "sip-sipgo-call", Kind: SIP, Desc: "sipgo messages: INVITE dialogs with SDP, re-INVITE, INFO, CANCEL, BYE", Sessions: sipFamily(sipCall)},
		{Name: "sip-kamailio-baresip", Kind: SIP, Desc: "captured: baresip through Kamailio (register, calls, messages)", Sessions: traceFamily("kamailio-baresip")},
	}
}

// The evaluation (the family table of `bridge codec stats` and the codec's
// target test): EvalSessions sessions of every family from EvalSeed, and
// one held-out stream of LongMessages messages. The codec's training uses
// other seeds.
const (
	EvalSeed     = 1
	EvalSessions = 12
	LongMessages = 3000
)

// Set is one line of the evaluation.
type Set struct {
	Name     string
	Kind     Kind
	Tuned    bool
	Extra    bool // not a family: the long stream, reported on its own
	Sessions [][][]byte
}

// Evaluation returns the sets the family table reports: every family,
// then the long stream.
func Evaluation() []Set {
	var out []Set
	for _, f := range Families() {
		out = append(out, Set{Name: f.Name, Kind: f.Kind, Tuned: f.Tuned, Sessions: f.Sessions(EvalSeed, EvalSessions)})
	}
	return append(out, Set{Name: fmt.Sprintf("long stream (android4, all traffic, %d msgs)", LongMessages), Kind: SIPC, Extra: true,
		Sessions: [][][]byte{LongStream(EvalSeed, LongMessages)}})
}

// LongStream is one long SIP-C session of about n messages from a held-out
// generator (Android client 4.x, every kind of traffic).
func LongStream(seed uint64, n int) [][]byte {
	g := newSIPCGen(seed, profAndroid4, mixAll, vocabB)
	g.minMsgs = n
	return g.session()[:n]
}

func newRand(seed uint64, salt uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed^salt, seed*0x9E3779B97F4A7C15+salt))
}
