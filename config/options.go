package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// option is one setting: its flag name (env and YAML names derive from it),
// default, help and where it lives in a Config.
type option struct {
	name    string
	def     string
	help    string
	list    bool // repeatable; a source replaces the lists of the sources below it
	boolean bool // a flag that needs no value
	secret  bool // masked by Print
	quoted  bool // printed as a YAML string
	bind    func(*Config) value
	mask    func(string) string // for secrets; default: all but what precedes the first ':'
	envSep  string              // separates a list's items in its environment variable (default ",")
	// scalarOK lets a YAML file give a list of one as a plain value (a
	// setting that once took one value).
	scalarOK bool
}

// value parses into and renders a typed field of a Config.
type value interface {
	set(string) error // for a list: append one item
	get() []string
	reset() // for a list: empty it
}

var options = []option{
	addr("smpp-listen", ":2775", "SMPP 3.4 listen address for carriers' binds", func(c *Config) *string { return &c.SMPPListen }),
	addr("sip-listen", ":5060", "SIP listen address (UDP and TCP)", func(c *Config) *string { return &c.SIPListen }),
	addr("http-listen", ":8080", "HTTP API and metrics listen address (\"\" = off)", func(c *Config) *string { return &c.HTTPListen }),
	addr("mcp-listen", ":5070", "MCP handset link listen address (\"\" = off)", func(c *Config) *string { return &c.MCPListen }),
	str("tls-cert", "", "PEM file of the bridge's certificate (chain), served by every TLS listener (--http-tls, --smpp-tls-listen, --sip-tls-listen) and re-read on SIGHUP (\"\" = no TLS listener)", func(c *Config) *string { return &c.TLSCert }, nil),
	str("tls-key", "", "PEM file of the private key of --tls-cert, re-read with it", func(c *Config) *string { return &c.TLSKey }, nil),
	boolean("http-tls", false, "serve --http-listen as HTTPS with --tls-cert (plain HTTP to it then fails)", func(c *Config) *bool { return &c.HTTPTLS }),
	addr("smpp-tls-listen", "", "SMPP 3.4 over TLS listen address, e.g. :3550: the accounts of --smpp-listen, certificate --tls-cert (\"\" = off)", func(c *Config) *string { return &c.SMPPTLSListen }),
	addr("sip-tls-listen", "", "SIP over TLS listen address (RFC 3261, usually :5061), certificate --tls-cert (\"\" = off)", func(c *Config) *string { return &c.SIPTLSListen }),
	str("data-dir", "./data", "directory of the durable store (\"\" = in memory, loses everything on exit: labs only)", func(c *Config) *string { return &c.DataDir }, nil),
	str("sip-domain", "localhost", "our SIP domain and digest realm", func(c *Config) *string { return &c.SIPDomain }, nil),
	str("country-code", "86", "default country code for national numbers", func(c *Config) *string { return &c.CountryCode }, func(v string) error {
		if _, err := strconv.Atoi(v); v != "" && (err != nil || len(v) > 3 || v[0] == '-' || v[0] == '+') {
			return fmt.Errorf("%q: must be 1-3 digits", v)
		}
		return nil
	}),
	scalarOK(withMask(list("smsc", "upstream SMSC to bind to, [NAME=]smpp://SYSTEM_ID:PASSWORD@HOST:PORT, or smpps:// for SMPP over TLS; without NAME it is named default (repeatable: each a NAME of its own)", true,
		func(c *Config) *[]SMSC { return &c.SMSCs }, parseSMSCItem, formatSMSCItem), maskSMSCItem)),
	withEnvSep(list("smsc-option", "settings of the SMSC NAME: NAME:KEY=VALUE,... with bind (transceiver or transmitter; default --smsc-bind), window (requests in flight; default --smpp-window), tps (submit_sm a second; default 0 = no limit), weight (share among the SMSCs a message may take whose bind is up; default 1, 0 = standby while a weighted one is up), accounts (SMPP system_ids and API clients, joined by +, whose SMS on route smsc take this SMSC) (repeatable, ';'-separated in the environment)", false,
		func(c *Config) *[]SMSCOption { return &c.SMSCOptions }, parseSMSCOption, formatSMSCOption), ";"),
	str("smsc-ca", "", "PEM file of the CAs an smpps:// SMSC's certificate must chain to (\"\" = the system's)", func(c *Config) *string { return &c.SMSCCA }, nil),
	enum("smsc-bind", BindTransceiver, "bind type toward the SMSCs: transceiver or transmitter (--smsc-option bind= sets one SMSC's)", func(c *Config) *SMSCBind { return &c.SMSCBind }, BindTransmitter),
	list("smpp-account", "SMPP account SYSTEM_ID:PASSWORD allowed to bind (repeatable)", true, func(c *Config) *[]Account { return &c.SMPPAccounts },
		parseAccount, func(a Account) string { return a.SystemID + ":" + a.Password }),
	{name: "sms-route", help: "where SMS leaves the bridge: smsc (submit_sm to any SMSC whose bind is up, by weight), smsc:NAME|NAME (only those) or esme:SYSTEM_ID (deliver_sm to that bound receiver); default smsc when --smsc is set", quoted: true,
		bind: func(c *Config) value { return routeValue{&c.SMSRoute} }},
	list("sip-user", "SIP user USER:HA1[:HA1SHA256] with HA1=md5(USER:DOMAIN:PASSWORD), HA1SHA256=sha256(USER:DOMAIN:PASSWORD) for SHA-256 digest (repeatable)", true, func(c *Config) *[]SIPUser { return &c.SIPUsers },
		parseSIPUser, func(u SIPUser) string {
			if u.HA1SHA256 != "" {
				return u.User + ":" + u.HA1 + ":" + u.HA1SHA256
			}
			return u.User + ":" + u.HA1
		}),
	withMask(list("api-token", "bearer token accepted by the HTTP API /v1 (repeatable; none = /v1 refuses everyone)", true, func(c *Config) *[]string { return &c.APITokens },
		func(v string) (string, error) { return v, nil }, func(v string) string { return v }), func(string) string { return "****" }),
	withMask(list("api-client", "HTTP API client NAME:ROLES:RATE:TOKEN: ROLES joined by + from send, read (its own messages), provision, admin; RATE requests a second (0 = unlimited) (repeatable)", true, func(c *Config) *[]APIClient { return &c.APIClients },
		parseAPIClient, func(a APIClient) string {
			return a.Name + ":" + strings.Join(a.Roles, "+") + ":" + strconv.FormatFloat(a.Rate, 'g', -1, 64) + ":" + a.Token
		}), maskAPIClient),
	list("alpha-senders", "alphanumeric senders (TON 5) an SMPP account or HTTP client may use: NAME for every account without entries of its own, ACCOUNT=NAME for that one, * any name (repeatable; none = refused)", false, func(c *Config) *[]AlphaSender { return &c.AlphaSenders },
		parseAlphaSender, func(a AlphaSender) string {
			if a.Account == "" {
				return a.Name
			}
			return a.Account + "=" + a.Name
		}),
	integer("api-logins-per-minute", "30", "logins and SSO ticket requests (public, they carry a password) one source address may make a minute; 0 = unbounded", func(c *Config) *int { return &c.LoginsPerMinute }),
	integer("api-auth-failures-per-minute", "20", "API requests with a missing or wrong token one source address may make a minute before all its requests get 429; 0 = unbounded", func(c *Config) *int { return &c.AuthFailuresPerMinute }),
	integer("http-conns-per-source", "128", "open HTTP connections from one source address; 0 = unbounded", func(c *Config) *int { return &c.HTTPConnsPerSource }),
	str("dlr-url", "", "where delivery reports of HTTP-sent messages that ask for a receipt go when the request names no dlr_url: an http(s) URL (\"\" = none)", func(c *Config) *string { return &c.DLRURL }, checkReportURL),
	withMask(option{name: "dlr-secret", help: "key of the HMAC-SHA256 signature (X-Bridge-Signature) on every delivery report (\"\" = unsigned)", secret: true, quoted: true,
		bind: func(c *Config) value { return stringValue{&c.DLRSecret, nil} }}, func(string) string { return "****" }),
	withMask(list("mo-app", "HTTP application of a service number: PREFIX[/KEYWORD]=SECRET@URL; messages to numbers starting with PREFIX (+E164 digits, or digits as dialled with --country-code), whose first word is KEYWORD if given, are POSTed to URL signed with SECRET; the longest prefix wins, a keyword over none (repeatable)", true,
		func(c *Config) *[]MOApp { return &c.MOApps }, parseMOApp, formatMOApp), maskMOApp),
	boolean("open-registration", false, "accept any SIP REGISTER without authentication (labs only)", func(c *Config) *bool { return &c.OpenRegistration }),
	str("outbound-proxy", "", "send IM through this SIP proxy, a SIP URI or HOST:PORT (e.g. sip:127.0.0.1:5080), instead of to the contact", func(c *Config) *string { return &c.OutboundProxy }, checkProxy),
	addr("xmpp-server", "", "XMPP server's component port (XEP-0114) the bridge attaches to as a gateway, e.g. 127.0.0.1:5347 (\"\" = no XMPP)", func(c *Config) *string { return &c.XMPPServer }),
	str("xmpp-domain", "", "the gateway's XMPP domain, as the server's Component line names it (e.g. sms.example.com): numbers are +E164@DOMAIN", func(c *Config) *string { return &c.XMPPDomain }, nil),
	withMask(option{name: "xmpp-secret", help: "shared secret of the XMPP component", secret: true, quoted: true,
		bind: func(c *Config) value { return stringValue{&c.XMPPSecret, nil} }}, func(string) string { return "****" }),
	dur("xmpp-ping-gap", "0s", "least time between two pings to one XMPP client: a delivery is confirmed by the client's answer to a ping sent after it, and under load one ping answers for every message sent since the last; a longer gap costs the XMPP server fewer stanzas and confirms later", func(c *Config) *time.Duration { return &c.XMPPPingGap }),
	str("group-number", "1065800", "access number of group chat: a group's number is it plus a 4-digit extension (\"\" = no groups)", func(c *Config) *string { return &c.GroupNumber }, func(v string) error {
		if strings.Trim(v, "0123456789") != "" || len(v) > 11 {
			return fmt.Errorf("%q: want at most 11 digits", v)
		}
		return nil
	}),
	rate("group-member-rate", "1", "posts per second one member may make in a group (burst: 5, or one second's worth if more); beyond it a post is refused as overload", func(c *Config) *float64 { return &c.GroupMemberRate }),
	rate("group-rate", "20", "posts per second into one group from all its members (burst: 50, or one second's worth if more)", func(c *Config) *float64 { return &c.GroupRate }),
	withMask(list("robot-webhook", "an external robot of the groups: NAME:SECRET@URL, posts signed with SECRET (HMAC-SHA256) go to URL (repeatable)", true, func(c *Config) *[]string { return &c.RobotWebhooks },
		checkRobotWebhook, func(v string) string { return v }), maskRobotWebhook),
	str("group-robots", "", "YAML file of the groups' keyword robots (\"\" = the help robot only)", func(c *Config) *string { return &c.GroupRobots }, nil),
	withMask(option{name: "fusion-key", help: "64 hex digits: the AES-256 key that seals the passwords of users' external IM accounts at rest (\"\" = no external accounts)", secret: true, quoted: true,
		bind: func(c *Config) value { return stringValue{&c.FusionKey, checkHexKey} }}, func(string) string { return "****" }),
	str("fusion-ca", "", "PEM file of the CAs that external IM servers' certificates must chain to (\"\" = the system's)", func(c *Config) *string { return &c.FusionCA }, nil),
	list("fusion-server", "where to reach an external IM domain: DOMAIN=HOST:PORT (repeatable; others are dialed at DOMAIN:5222)", false, func(c *Config) *[]string { return &c.FusionServers },
		checkFusionServer, func(v string) string { return v }),
	dur("sip-min-expires", "60s", "shortest REGISTER expiry accepted (shorter gets 423 Interval Too Brief)", func(c *Config) *time.Duration { return &c.SIPMinExpires }),
	dur("default-validity", "48h", "how long a message is retried before it expires", func(c *Config) *time.Duration { return &c.DefaultValidity }),
	dur("im-timeout", "8s", "how long to wait for an IM client's answer before falling back", func(c *Config) *time.Duration { return &c.IMTimeout }),
	integer("workers", "512", "delivery goroutines always running; while all are busy and messages wait, more start, up to --workers-max", func(c *Config) *int { return &c.Workers }),
	integer("workers-max", "8192", "concurrent deliveries at most (each XMPP one is held until its client answers a ping, so busy workers number rate × that wait); also what a crash may send twice", func(c *Config) *int { return &c.WorkersMax }),
	integer("queue-depth", "100000", "messages accepted but not yet delivered before new ones are throttled", func(c *Config) *int { return &c.QueueDepth }),
	integer("smpp-window", "256", "in-flight requests per SMPP session, each direction", func(c *Config) *int { return &c.SMPPWindow }),
	integer("smpp-max-sessions", "1024", "bound SMPP sessions at once; connections not yet bound have their own cap (--preauth-max), so they never take these places", func(c *Config) *int { return &c.SMPPMaxSessions }),
	dur("preauth-timeout", "5s", "time a connection to the SMPP or MCP listener has to bind or log in (a SIP TCP or TLS connection to send its first request, an HTTP client its request headers) before it is closed", func(c *Config) *time.Duration { return &c.PreauthTimeout }),
	integer("preauth-max", "256", "connections that have not bound or logged in yet (SIP: sent no request yet), per server (SMPP, plain and TLS listeners together; MCP; SIP TCP and TLS); past it the longest waiting one is closed for the newcomer", func(c *Config) *int { return &c.PreauthMax }),
	integer("preauth-per-source", "32", "connections from one IP address that have not bound or logged in yet, per listener; past it that address's longest waiting one is closed", func(c *Config) *int { return &c.PreauthPerSource }),
	dur("enquire-interval", "30s", "SMPP enquire_link interval on idle sessions", func(c *Config) *time.Duration { return &c.EnquireInterval }),
	enum("sms-alphabet", AlphabetAuto, "alphabet of outgoing SMS: auto (GSM7 when it fits exactly, else UCS-2), ucs2 or latin1", func(c *Config) *Alphabet { return &c.SMSAlphabet }, AlphabetUCS2, AlphabetLatin1),
	enum("sms-receipts", ReceiptsRequested, "ask the upstream SMSC for delivery receipts: requested (when the sender asked for one, or is a SIP user, who gets an IMDN) or always (every message's final state tracked, one more stored mapping and one more PDU per part)", func(c *Config) *Receipts { return &c.SMSReceipts }, ReceiptsAlways),
	boolean("sms-payload", false, "send a long SMS as one PDU with the message_payload TLV instead of concatenated parts", func(c *Config) *bool { return &c.SMSPayload }),
	dur("reassembly-timeout", "5m", "how long parts of a long SMS wait for the missing ones", func(c *Config) *time.Duration { return &c.ReassemblyWait }),
	enum("reassembly-policy", ReassemblyPartial, "when parts are still missing at the timeout or a reassembly cap: partial (deliver with a marker) or drop (a sender who asked for a receipt gets a failed one)", func(c *Config) *ReassemblyPolicy { return &c.ReassemblyPolicy }, ReassemblyDrop),
	integer("reassembly-max-pending", "10000", "long SMS waiting for parts at once; past it the oldest is handed out early by --reassembly-policy", func(c *Config) *int { return &c.ReassemblyMaxPending }),
	integer("reassembly-max-mb", "16", "MiB of parts' bodies held for long SMS waiting for parts; past it the oldest is handed out early by --reassembly-policy", func(c *Config) *int { return &c.ReassemblyMaxMB }),
	nonNegative(dur("dedup-window", "0", "suppress by content: a message with the same account, sender, recipient and text as one accepted within this window is acknowledged with the first id and not delivered again (0 = off, the default: identical texts are separate messages, and a resubmission after a lost acknowledgement may be delivered twice)", func(c *Config) *time.Duration { return &c.DedupWindow })),
	integer("dedup-max-keys", "4000000", "cap of keys held in memory by each of the duplicate indexes (--dedup-window, --idempotency-window), about 57 heap bytes a key and 2.5 to 3.5 times that in resident memory (PERFORMANCE.md): past half of it the oldest keys go early, shortening the window (a late resubmission may then be delivered twice, never lost; bridge_dedup_window_shortened_total counts it)", func(c *Config) *int { return &c.DedupMaxKeys }),
	nonNegative(dur("idempotency-window", "0", "how long an HTTP Idempotency-Key is honoured: a POST /v1/messages with a key its client used within this window gets the first message's id and is not delivered again (0 = --retention, as long as the first message's record is kept; the start re-reads the records accepted within it that carry a key)", func(c *Config) *time.Duration { return &c.IdempotencyWindow })),
	integer("store-memtable-mb", "32", "badger memtable size in MiB (two are kept in memory)", func(c *Config) *int { return &c.StoreMemtableMB }),
	boolean("retain-text", false, "keep a finished message's whole text for the retention period (--retention); by default its record keeps the first 20 characters, which delivery receipts quote, and the content goes once the message is done", func(c *Config) *bool { return &c.RetainText }),
	dur("retention", "24h", "how long a finished message's record is kept: queryable over the HTTP API, quoted by delivery receipts, and what duplicate suppression checks a resubmission against (so at least --dedup-window); then the store deletes it and its disk is reclaimed", func(c *Config) *time.Duration { return &c.Retention }),
	nonNegative(dur("store-commit-interval", "1ms", "least time between two group commits (fsyncs) of the store, unless half a batch is already waiting: fewer, larger commits cost less CPU per message for at most this much more acknowledgement latency (0 = commit as soon as the last one ends)", func(c *Config) *time.Duration { return &c.StoreCommitInterval })),
	integer("store-cache-mb", "32", "badger block cache and index cache size in MiB, each", func(c *Config) *int { return &c.StoreCacheMB }),
	list("reginfo-from", "IP, CIDR or host name of an IM server (Kamailio pua_reginfo) allowed to PUBLISH/NOTIFY registration state, RFC 3680 (repeatable; none = refused)", false, func(c *Config) *[]string { return &c.ReginfoFrom },
		func(v string) (string, error) { return v, nil }, func(v string) string { return v }),
	withEnvSep(withMask(list("partner-site", "partner website for delegated login: ID,VERIFY_URL,SERVER_ID,SERVER_SECRET[,CONTACTS_URL[,POSTS_URL]] (repeatable, ';'-separated in the environment; users log in as user#ID)", true, func(c *Config) *[]PartnerSite { return &c.PartnerSites },
		parsePartnerSite, formatPartnerSite), maskPartnerSite), ";"),
	str("partner-ca", "", "PEM file of the CAs partner sites' certificates must chain to (\"\" = the system's)", func(c *Config) *string { return &c.PartnerCA }, nil),
	boolean("lab-allow-http-partners", false, "allow http:// partner-site and --mo-app URLs: server secrets, passwords, digests and messages then cross the network in clear (labs only)", func(c *Config) *bool { return &c.LabAllowHTTPPartners }),
	list("social-site", "social site whose signed tokens admit account@ID: ID:HEX_HMAC_KEY (repeatable)", true, func(c *Config) *[]SocialSite { return &c.SocialSites },
		parseSocialSite, func(s SocialSite) string { return s.ID + ":" + hex.EncodeToString(s.Key) }),
	list("sso-service", "third-party service that gets single sign-on tickets: ID:KEY_ID:HEX_AES256_KEY[:TTL] (repeatable)", true, func(c *Config) *[]SSOService { return &c.SSOServices },
		parseSSOService, formatSSOService),
	str("node-name", "", "this bridge's name in a cluster, unique among its nodes (\"\" = the host name)", func(c *Config) *string { return &c.NodeName }, nil),
	str("nats-url", "", "join a cluster through an external NATS with JetStream, nats://HOST:PORT (comma-separated for several; \"\" = none)", func(c *Config) *string { return &c.NATSURL }, checkNATSURLs),
	addr("nats-listen", "", "client address of an embedded NATS server with JetStream, e.g. 127.0.0.1:4222: the bridge becomes a cluster node sharing presence (\"\" = no NATS, one node: the default)", func(c *Config) *string { return &c.NATSListen }),
	addr("nats-cluster-listen", "", "route address of the embedded NATS server, where the other nodes' routes connect, e.g. :6222 (\"\" = a server of its own)", func(c *Config) *string { return &c.NATSClusterListen }),
	addr("nats-cluster-advertise", "", "route address the other nodes should dial to reach this one when it is not --nats-cluster-listen (NAT, containers, a proxy), host:port (\"\" = --nats-cluster-listen)", func(c *Config) *string { return &c.NATSClusterAdvertise }),
	{name: "nats-routes", help: "route URLs of the other nodes' embedded NATS servers, comma-separated: nats://HOST:PORT,...", quoted: true,
		bind: func(c *Config) value { return urlsValue{&c.NATSRoutes} }},
	enum("cluster-ack", AckLocal, "what a message's acknowledgement waits for in a cluster: local (this node's disk) or replicated (also a JetStream write to the replicas, so a node whose disk is lost loses nothing acknowledged)", func(c *Config) *ClusterAck { return &c.ClusterAck }, AckReplicated),
	integer("cluster-replicas", "0", "replicas of the shared presence bucket, up to 5 (0 = min(3, nodes): this one and --nats-routes; 1 with --nats-url)", func(c *Config) *int { return &c.ClusterReplicas }),
	integer("procs", "0", "threads running Go code at once (GOMAXPROCS); 0 = the CPUs available + 2, so the store's CPU-bound compactions never hold every thread and the kernel interleaves them with deliveries (a GOMAXPROCS environment variable also wins over 0)", func(c *Config) *int { return &c.Procs }),
	addr("admin-listen", "", "admin-only listener for Go pprof profiles and expvar counters (/debug/vars), e.g. 127.0.0.1:6060 (\"\" = off; never expose it)", func(c *Config) *string { return &c.AdminListen }),
	{name: "log-level", def: "info", help: "debug, info, warn or error", quoted: true, bind: func(c *Config) value { return levelValue{&c.LogLevel} }},
	enum("log-format", LogText, "text or json", func(c *Config) *LogFormat { return &c.LogFormat }, LogJSON),
}

// Constructors of options by kind.

func str(name, def, help string, p func(*Config) *string, check func(string) error) option {
	return option{name: name, def: def, help: help, quoted: true, bind: func(c *Config) value { return stringValue{p(c), check} }}
}

func addr(name, def, help string, p func(*Config) *string) option {
	return str(name, def, help, p, func(v string) error {
		if v == "" {
			return nil
		}
		_, port, err := net.SplitHostPort(v)
		if err != nil {
			return fmt.Errorf("%q: %v", v, err)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("%q: port must be 0-65535", v)
		}
		return nil
	})
}

func boolean(name string, def bool, help string, p func(*Config) *bool) option {
	return option{name: name, def: strconv.FormatBool(def), help: help, boolean: true, bind: func(c *Config) value { return boolValue{p(c)} }}
}

func dur(name, def, help string, p func(*Config) *time.Duration) option {
	return option{name: name, def: def, help: help, bind: func(c *Config) value { return durValue{p(c), false} }}
}

// nonNegative lets a duration option be 0 but never negative.
func nonNegative(o option) option {
	b := o.bind
	o.bind = func(c *Config) value { v := b(c).(durValue); v.nonNeg = true; return v }
	return o
}

// rate is a positive number of events per second.
func rate(name, def, help string, p func(*Config) *float64) option {
	return option{name: name, def: def, help: help, bind: func(c *Config) value { return rateValue{p(c)} }}
}

func integer(name, def, help string, p func(*Config) *int) option {
	return option{name: name, def: def, help: help, bind: func(c *Config) value { return intValue{p(c)} }}
}

func enum[T ~string](name string, def T, help string, p func(*Config) *T, others ...T) option {
	allowed := append([]T{def}, others...)
	return option{name: name, def: string(def), help: help, quoted: true, bind: func(c *Config) value { return enumValue[T]{p(c), allowed} }}
}

func list[T any](name, help string, secret bool, p func(*Config) *[]T, parse func(string) (T, error), format func(T) string) option {
	return option{name: name, help: help, list: true, secret: secret, mask: maskAfterColon,
		bind: func(c *Config) value { return listValue[T]{p(c), parse, format} }}
}

// withEnvSep gives a list whose items contain commas another separator in
// its environment variable.
func withEnvSep(o option, sep string) option {
	o.envSep = sep
	return o
}

func scalarOK(o option) option {
	o.scalarOK = true
	return o
}

func withMask(o option, mask func(string) string) option {
	o.mask = mask
	return o
}

// Values.

type stringValue struct {
	p     *string
	check func(string) error
}

func (v stringValue) set(s string) error {
	if v.check != nil {
		if err := v.check(s); err != nil {
			return err
		}
	}
	*v.p = s
	return nil
}
func (v stringValue) get() []string { return []string{*v.p} }
func (v stringValue) reset()        {}

type boolValue struct{ p *bool }

func (v boolValue) set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("%q is not true or false", s)
	}
	*v.p = b
	return nil
}
func (v boolValue) get() []string { return []string{strconv.FormatBool(*v.p)} }
func (v boolValue) reset()        {}

type durValue struct {
	p      *time.Duration
	nonNeg bool
}

func (v durValue) set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration like 30s or 48h", s)
	}
	if v.nonNeg && d < 0 {
		return fmt.Errorf("%q: must not be negative", s)
	}
	*v.p = d
	return nil
}
func (v durValue) get() []string { return []string{v.p.String()} }
func (v durValue) reset()        {}

type intValue struct{ p *int }

func (v intValue) set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("%q is not a whole number", s)
	}
	*v.p = n
	return nil
}
func (v intValue) get() []string { return []string{strconv.Itoa(*v.p)} }
func (v intValue) reset()        {}

type rateValue struct{ p *float64 }

func (v rateValue) set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f > 0) || math.IsInf(f, 0) {
		return fmt.Errorf("%q: want a positive number per second", s)
	}
	*v.p = f
	return nil
}
func (v rateValue) get() []string { return []string{strconv.FormatFloat(*v.p, 'g', -1, 64)} }
func (v rateValue) reset()        {}

type enumValue[T ~string] struct {
	p       *T
	allowed []T
}

func (v enumValue[T]) set(s string) error {
	if !slices.Contains(v.allowed, T(s)) {
		names := make([]string, len(v.allowed))
		for i, a := range v.allowed {
			names[i] = string(a)
		}
		return fmt.Errorf("%q: want %s", s, strings.Join(names, ", "))
	}
	*v.p = T(s)
	return nil
}
func (v enumValue[T]) get() []string { return []string{string(*v.p)} }
func (v enumValue[T]) reset()        {}

type listValue[T any] struct {
	p      *[]T
	parse  func(string) (T, error)
	format func(T) string
}

func (v listValue[T]) set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	*v.p = append(*v.p, x)
	return nil
}

func (v listValue[T]) get() []string {
	out := make([]string, len(*v.p))
	for i, x := range *v.p {
		out[i] = v.format(x)
	}
	return out
}
func (v listValue[T]) reset() { *v.p = nil }

// urlsValue is a comma-separated list of NATS URLs in one setting.
type urlsValue struct{ p *[]string }

func (v urlsValue) set(s string) error {
	var out []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		if err := checkNATSURLs(u); err != nil {
			return err
		}
		out = append(out, u)
	}
	*v.p = out
	return nil
}
func (v urlsValue) get() []string { return []string{strings.Join(*v.p, ",")} }
func (v urlsValue) reset()        {}

// checkNATSURLs checks a comma-separated list of nats:// (or tls://) URLs.
func checkNATSURLs(s string) error {
	if s == "" {
		return nil
	}
	for _, raw := range strings.Split(s, ",") {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Hostname() == "" || u.Port() == "" {
			return fmt.Errorf("%q: want nats://HOST:PORT", raw)
		}
	}
	return nil
}

type routeValue struct{ p *SMSRoute }

func (v routeValue) set(s string) error {
	switch {
	case s == "":
		*v.p = SMSRoute{}
	case s == "smsc":
		*v.p = SMSRoute{SMSC: true}
	case strings.HasPrefix(s, "smsc:"):
		names, err := parseSMSCNames(s[5:])
		if err != nil {
			return fmt.Errorf("%q: %w", s, err)
		}
		*v.p = SMSRoute{SMSC: true, SMSCs: names}
	case strings.HasPrefix(s, "esme:") && len(s) > 5:
		*v.p = SMSRoute{ESME: s[5:]}
	default:
		return fmt.Errorf("%q: want smsc, smsc:NAME|NAME or esme:SYSTEM_ID", s)
	}
	return nil
}
func (v routeValue) get() []string { return []string{v.p.String()} }
func (v routeValue) reset()        {}

type levelValue struct{ p *slog.Level }

func (v levelValue) set(s string) error {
	switch s {
	case "debug", "info", "warn", "error":
		return v.p.UnmarshalText([]byte(s))
	}
	return fmt.Errorf("%q: want debug, info, warn or error", s)
}
func (v levelValue) get() []string { return []string{strings.ToLower(v.p.String())} }
func (v levelValue) reset()        {}

// Parsers of list items.

// ParseSMSC reads smpp://SYSTEM_ID:PASSWORD@HOST:PORT, or smpps:// for
// SMPP over TLS.
func ParseSMSC(u string) (SMSC, error) {
	rest, ok := strings.CutPrefix(u, "smpp://")
	useTLS := false
	if !ok {
		rest, ok = strings.CutPrefix(u, "smpps://")
		useTLS = true
	}
	if !ok {
		return SMSC{}, fmt.Errorf("%q: want smpp:// or smpps://SYSTEM_ID:PASSWORD@HOST:PORT", maskSMSC(u))
	}
	cred, hostport, ok := strings.Cut(rest, "@")
	if !ok {
		return SMSC{}, errors.New("missing SYSTEM_ID:PASSWORD@")
	}
	id, pw, _ := strings.Cut(cred, ":")
	if id == "" {
		return SMSC{}, errors.New("missing system_id")
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		return SMSC{}, fmt.Errorf("host:port: %w", err)
	}
	return SMSC{Addr: hostport, SystemID: id, Password: pw, TLS: useTLS}, nil
}

var clientName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func parseAPIClient(v string) (APIClient, error) {
	parts := strings.SplitN(v, ":", 4)
	bad := func(why string) (APIClient, error) {
		return APIClient{}, fmt.Errorf("%q: want NAME:ROLES:RATE:TOKEN: %s", maskAPIClient(v), why)
	}
	if len(parts) != 4 {
		return bad("four fields")
	}
	c := APIClient{Name: parts[0], Token: parts[3]}
	if !clientName.MatchString(c.Name) {
		return bad("a name of letters, digits, '.', '_' or '-'")
	}
	for _, r := range strings.Split(parts[1], "+") {
		if !slices.Contains([]string{"send", "read", "provision", "admin"}, r) {
			return bad(fmt.Sprintf("role %q is none of send, read, provision, admin", r))
		}
		c.Roles = append(c.Roles, r)
	}
	rate, err := strconv.ParseFloat(parts[2], 64)
	if err != nil || rate < 0 || math.IsInf(rate, 0) || math.IsNaN(rate) {
		return bad("a rate of requests a second, 0 or more")
	}
	c.Rate = rate
	if len(c.Token) < 16 {
		return bad("a token of at least 16 characters")
	}
	return c, nil
}

func maskAPIClient(s string) string {
	if strings.Count(s, ":") >= 3 {
		parts := strings.SplitN(s, ":", 4)
		return strings.Join(parts[:3], ":") + ":****"
	}
	return "****"
}

func parseAlphaSender(v string) (AlphaSender, error) {
	var a AlphaSender
	a.Name = v
	if acct, name, ok := strings.Cut(v, "="); ok {
		a.Account, a.Name = acct, name
		if !clientName.MatchString(acct) {
			return AlphaSender{}, fmt.Errorf("%q: the account is letters, digits, '.', '_' or '-'", v)
		}
	}
	if a.Name != "*" && (a.Name == "" || len(a.Name) > 11 || strings.ContainsFunc(a.Name, func(r rune) bool { return r < 0x20 || r > 0x7e })) {
		return AlphaSender{}, fmt.Errorf("%q: an alphanumeric sender is 1 to 11 printable ASCII characters, or *", v)
	}
	return a, nil
}

func parseAccount(v string) (Account, error) {
	id, pw, ok := strings.Cut(v, ":")
	if !ok || id == "" || pw == "" || len(id) > 15 || len(pw) > 8 {
		return Account{}, fmt.Errorf("%q: want SYSTEM_ID:PASSWORD (system_id ≤15, password ≤8 chars)", maskAfterColon(v))
	}
	return Account{id, pw}, nil
}

func parseSIPUser(v string) (SIPUser, error) {
	user, ha1, ok := strings.Cut(v, ":")
	ha1, s256, both := strings.Cut(ha1, ":")
	_, err := hex.DecodeString(ha1)
	_, err2 := hex.DecodeString(s256)
	if !ok || user == "" || len(ha1) != 32 || err != nil || both && (len(s256) != 64 || err2 != nil) {
		return SIPUser{}, fmt.Errorf("%q: want USER:HA1[:HA1SHA256] with a 32-hex-digit HA1 and a 64-hex-digit HA1SHA256", maskAfterColon(v))
	}
	return SIPUser{user, strings.ToLower(ha1), strings.ToLower(s256)}, nil
}

func parsePartnerSite(v string) (PartnerSite, error) {
	f := strings.Split(v, ",")
	if len(f) < 4 || len(f) > 6 || f[0] == "" || f[1] == "" || f[2] == "" || f[3] == "" {
		// No field is quoted: with fields missing any of them may be the secret.
		return PartnerSite{}, fmt.Errorf("%d fields: want ID,VERIFY_URL,SERVER_ID,SERVER_SECRET[,CONTACTS_URL[,POSTS_URL]]", len(f))
	}
	s := PartnerSite{ID: f[0], VerifyURL: f[1], ServerID: f[2], ServerSecret: f[3]}
	if len(f) > 4 {
		s.ContactsURL = f[4]
	}
	if len(f) > 5 {
		s.PostsURL = f[5]
	}
	return s, nil
}

func formatPartnerSite(s PartnerSite) string {
	f := []string{s.ID, s.VerifyURL, s.ServerID, s.ServerSecret}
	if s.ContactsURL != "" || s.PostsURL != "" {
		f = append(f, s.ContactsURL)
	}
	if s.PostsURL != "" {
		f = append(f, s.PostsURL)
	}
	return strings.Join(f, ",")
}

func parseSocialSite(v string) (SocialSite, error) {
	id, k, ok := strings.Cut(v, ":")
	key, err := hex.DecodeString(k)
	if !ok || id == "" || err != nil || len(key) < 16 {
		return SocialSite{}, fmt.Errorf("%q: want ID:HEX_KEY with at least 16 key bytes", id)
	}
	return SocialSite{ID: id, Key: key}, nil
}

func parseSSOService(v string) (SSOService, error) {
	f := strings.Split(v, ":")
	if len(f) < 3 || len(f) > 4 || f[0] == "" || f[1] == "" {
		return SSOService{}, fmt.Errorf("%q: want ID:KEY_ID:HEX_KEY[:TTL]", f[0])
	}
	s := SSOService{ID: f[0], KeyID: f[1]}
	key, err := hex.DecodeString(strings.TrimSpace(f[2]))
	if err != nil || len(key) != 32 {
		return SSOService{}, fmt.Errorf("%s: key: want 64 hex digits (an AES-256 key)", f[0])
	}
	copy(s.Key[:], key)
	if len(f) == 4 {
		if s.TTL, err = time.ParseDuration(f[3]); err != nil || s.TTL <= 0 {
			return SSOService{}, fmt.Errorf("%s: ttl %q: want a positive duration", f[0], f[3])
		}
	}
	return s, nil
}

func formatSSOService(s SSOService) string {
	v := s.ID + ":" + s.KeyID + ":" + hex.EncodeToString(s.Key[:])
	if s.TTL > 0 {
		v += ":" + s.TTL.String()
	}
	return v
}

// Masks of secrets, for Print and errors.

func maskAfterColon(s string) string {
	if id, _, ok := strings.Cut(s, ":"); ok {
		return id + ":****"
	}
	return "****"
}

func maskSMSC(s string) string {
	for _, scheme := range []string{"smpp://", "smpps://"} {
		if i := strings.LastIndexByte(s, '@'); strings.HasPrefix(s, scheme) && i > len(scheme) {
			if id, _, ok := strings.Cut(s[len(scheme):i], ":"); ok {
				return scheme + id + ":****" + s[i:]
			}
		}
	}
	return s
}

func maskPartnerSite(s string) string {
	f := strings.Split(s, ",")
	if len(f) >= 4 {
		f[3] = "****"
	}
	return strings.Join(f, ",")
}

// checkHexKey accepts "" or an AES-256 key in hex.
func checkHexKey(v string) error {
	if v == "" {
		return nil
	}
	if k, err := hex.DecodeString(v); err != nil || len(k) != 32 {
		return errors.New("want 64 hex digits (an AES-256 key)")
	}
	return nil
}

// checkProxy accepts "" (none), a sip: or sips: URI with a host, or
// HOST:PORT. A bare word is refused: it would be taken as a host name and
// every IM message would be sent to wherever it resolves, or nowhere.
func checkProxy(v string) error {
	if v == "" {
		return nil
	}
	want := fmt.Errorf("%q: want a SIP URI (sip:HOST[:PORT]) or HOST:PORT", v)
	if strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r == 0x7f || strings.ContainsRune(`<>"`, r) }) {
		return want
	}
	rest, ok := strings.CutPrefix(v, "sip:")
	if !ok {
		rest, ok = strings.CutPrefix(v, "sips:")
	}
	if !ok {
		if _, err := checkHostPort(v); err != nil {
			return want
		}
		return nil
	}
	if i := strings.IndexAny(rest, ";?"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		rest = rest[i+1:]
	}
	host := rest
	if strings.Contains(strings.TrimSuffix(strings.TrimPrefix(rest, "["), "]"), ":") && !strings.HasSuffix(rest, "]") {
		h, err := checkHostPort(rest)
		if err != nil {
			return fmt.Errorf("%q: %v", v, err)
		}
		host = h
	}
	if host == "" || host == "[]" {
		return fmt.Errorf("%q: the URI names no host", v)
	}
	return nil
}

// checkHostPort splits HOST:PORT and checks both are there, the port in range.
func checkHostPort(v string) (host string, err error) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", err
	}
	if n, err := strconv.Atoi(port); host == "" || err != nil || n < 1 || n > 65535 {
		return "", errors.New("want a host and a port 1-65535")
	}
	return host, nil
}

func checkRobotWebhook(v string) (string, error) {
	name, rest, ok1 := strings.Cut(v, ":")
	secret, u, ok2 := strings.Cut(rest, "@")
	if !ok1 || !ok2 || name == "" || secret == "" {
		return "", fmt.Errorf("want NAME:SECRET@URL")
	}
	if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return "", fmt.Errorf("%s: the URL must be http(s)://HOST…", name)
	}
	return v, nil
}

// checkReportURL: "" or an absolute http(s) URL with a host (what
// dlr.CheckURL takes from a request's dlr_url).
func checkReportURL(v string) error {
	if v == "" {
		return nil
	}
	if p, err := url.Parse(v); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.User != nil || len(v) > 2048 {
		return fmt.Errorf("%q: want an http:// or https:// URL with a host, no user info, at most 2048 bytes", v)
	}
	return nil
}

// parseMOApp reads PREFIX[/KEYWORD]=SECRET@URL; the prefix's country
// code and the URL's scheme are checked with the other settings.
func parseMOApp(v string) (MOApp, error) {
	route, rest, ok1 := strings.Cut(v, "=")
	secret, u, ok2 := strings.Cut(rest, "@")
	prefix, keyword, hasKeyword := strings.Cut(route, "/")
	if !ok1 { // no field is quoted: any of it may be the secret
		return MOApp{}, errors.New("want PREFIX[/KEYWORD]=SECRET@URL")
	}
	if !ok2 || secret == "" {
		return MOApp{}, fmt.Errorf("%s: want PREFIX[/KEYWORD]=SECRET@URL", route)
	}
	digits := strings.TrimPrefix(prefix, "+")
	if digits == "" || strings.Trim(digits, "0123456789") != "" || len(digits) > 15 {
		return MOApp{}, fmt.Errorf("%s: the prefix must be 1 to 15 digits, with a '+' when it has the country code", route)
	}
	if hasKeyword && (keyword == "" || len(keyword) > 32 || strings.ContainsFunc(keyword, func(r rune) bool { return r <= ' ' || r == 0x7f || r == ',' })) {
		return MOApp{}, fmt.Errorf("%s: the keyword must be one word of at most 32 bytes", route)
	}
	if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.User != nil || len(u) > 2048 {
		return MOApp{}, fmt.Errorf("%s: %q: want an https:// URL with a host, no user info, at most 2048 bytes", route, u)
	}
	return MOApp{Prefix: prefix, Keyword: keyword, Secret: secret, URL: u}, nil
}

func formatMOApp(a MOApp) string { return a.Name() + "=" + a.Secret + "@" + a.URL }

func maskMOApp(v string) string {
	route, rest, _ := strings.Cut(v, "=")
	_, u, _ := strings.Cut(rest, "@")
	return route + "=****@" + u
}

func maskRobotWebhook(v string) string {
	name, rest, _ := strings.Cut(v, ":")
	_, u, _ := strings.Cut(rest, "@")
	return name + ":****@" + u
}

func checkFusionServer(v string) (string, error) {
	d, a, ok := strings.Cut(v, "=")
	if !ok || d == "" {
		return "", fmt.Errorf("%q: want DOMAIN=HOST:PORT", v)
	}
	if _, _, err := net.SplitHostPort(a); err != nil {
		return "", fmt.Errorf("%q: %v", v, err)
	}
	return v, nil
}
