package config

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/smsbridge/bridge/internal/tlsconf"
)

// Config is the effective configuration of one bridge process, every value
// parsed and checked: a Config returned by Load is ready to build a bridge.
type Config struct {
	// Listen addresses (host:port); "" turns an optional listener off.
	SMPPListen  string
	SIPListen   string
	HTTPListen  string
	MCPListen   string
	AdminListen string // pprof, for operators only

	// TLS: the bridge's certificate and key (PEM files, re-read on SIGHUP)
	// for HTTPS and the SMPP and SIP TLS listeners ("" = off).
	TLSCert, TLSKey string
	HTTPTLS         bool // --http-listen serves HTTPS
	SMPPTLSListen   string
	SIPTLSListen    string

	DataDir     string // "" = in memory (labs)
	SIPDomain   string // our SIP domain and digest realm
	CountryCode string // for national numbers, 1-3 digits

	// SMSCs are the upstream SMSCs to bind to (none = no upstream), each
	// with its --smsc-option settings resolved by Load.
	SMSCs        []SMSC
	SMSCOptions  []SMSCOption // --smsc-option as given; Load folds them into SMSCs
	SMSCCA       string       // PEM roots for smpps:// SMSCs; "" = the system's
	SMSCBind     SMSCBind     // bind type toward an SMSC whose options name none
	SMSRoute     SMSRoute     // where SMS leaves the bridge (defaults to any SMSC when there is one)
	SMPPAccounts []Account
	SIPUsers     []SIPUser
	APITokens    []string
	APIClients   []APIClient
	// AlphaSenders are the alphanumeric senders (TON 5) accounts may use:
	// an entry without an account applies to every SMPP account and HTTP
	// client that has none of its own (a provisioned account's
	// alpha_senders come first).
	AlphaSenders []AlphaSender
	// LoginsPerMinute, AuthFailuresPerMinute and HTTPConnsPerSource bound
	// what one source address may do to the HTTP API.
	LoginsPerMinute       int
	AuthFailuresPerMinute int
	HTTPConnsPerSource    int
	DLRURL                string // default report URL of HTTP senders asking for a receipt; "" = none
	DLRSecret             string // signs delivery reports; "" = unsigned

	MOApps []MOApp // HTTP applications taking the messages for their numbers

	OpenRegistration bool
	OutboundProxy    string
	ReginfoFrom      []string // IP, CIDR or host name of IM servers allowed to push registration state

	XMPPServer  string // component address of the XMPP server; "" = no XMPP
	XMPPDomain  string // the gateway's component domain
	XMPPSecret  string
	XMPPPingGap time.Duration // least time between two pings to one XMPP client

	GroupNumber   string   // access number of group chat; "" = no groups
	GroupRobots   string   // YAML file of keyword robots
	RobotWebhooks []string // NAME:SECRET@URL
	// Posts per second per member and per group; beyond them a post is
	// refused as overload.
	GroupMemberRate, GroupRate float64

	FusionKey     string   // hex AES-256 key sealing external IM accounts; "" = none
	FusionCA      string   // PEM roots for external IM servers; "" = the system's
	FusionServers []string // DOMAIN=HOST:PORT

	SIPMinExpires   time.Duration
	DefaultValidity time.Duration
	IMTimeout       time.Duration
	EnquireInterval time.Duration
	Workers         int
	WorkersMax      int
	QueueDepth      int
	SMPPWindow      int
	SMPPMaxSessions int // bound SMPP sessions
	// Connections not yet authenticated (SMPP bind, MCP login): how long
	// they may wait, how many per listener and per source address.
	PreauthTimeout   time.Duration
	PreauthMax       int
	PreauthPerSource int
	Procs            int // Go scheduler threads; 0 = available CPUs + 2

	SMSAlphabet      Alphabet
	SMSPayload       bool // long SMS as one PDU with message_payload
	SMSReceipts      Receipts
	ReassemblyWait   time.Duration
	ReassemblyPolicy ReassemblyPolicy
	// Caps of the long SMS waiting for parts: messages, MiB of bodies.
	ReassemblyMaxPending, ReassemblyMaxMB int
	DedupWindow                           time.Duration // 0 = no suppression by content
	// IdempotencyWindow: how long an HTTP Idempotency-Key is honoured
	// (Load makes 0 the retention).
	IdempotencyWindow time.Duration
	// DedupMaxKeys caps each in-memory key index (content and
	// Idempotency-Key); past half of it a window rotates early.
	DedupMaxKeys int

	StoreMemtableMB     int
	StoreCacheMB        int
	StoreCommitInterval time.Duration
	RetainText          bool
	Retention           time.Duration

	// A cluster of bridges sharing presence over NATS JetStream; with
	// neither NATSURL nor NATSListen the bridge is one node without NATS.
	NodeName          string // this node's name in the cluster; "" = the host name
	NATSURL           string // external NATS; "" = none
	NATSListen        string // embedded NATS server's client address; "" = none
	NATSClusterListen string // embedded server's route address; "" = a server of its own
	// NATSClusterAdvertise is the route address gossiped to other nodes;
	// "" = NATSClusterListen.
	NATSClusterAdvertise string
	NATSRoutes           []string // the other nodes' route URLs, nats://host:port
	ClusterReplicas      int      // presence bucket replicas; 0 = min(3, nodes)
	ClusterAck           ClusterAck

	PartnerSites []PartnerSite
	PartnerCA    string // PEM roots for partner sites; "" = the system's
	// LabAllowHTTPPartners admits http:// partner URLs (secrets in clear).
	LabAllowHTTPPartners bool
	SocialSites          []SocialSite
	SSOServices          []SSOService

	LogLevel  slog.Level
	LogFormat LogFormat
}

// SMSC is one upstream SMSC, from [NAME=]smpp://SYSTEM_ID:PASSWORD@HOST:PORT
// (smpps:// sets TLS; without a name it is DefaultSMSC), with what its
// --smsc-option settings say, defaults filled in by Load.
type SMSC struct {
	Name                     string
	Addr, SystemID, Password string
	TLS                      bool

	Bind   SMSCBind // --smsc-bind unless its options name one
	Window int      // requests in flight on its bind; --smpp-window unless set
	TPS    float64  // submit_sm a second, enforced by a token bucket; 0 = no limit
	// Weight is its share of the traffic among the eligible SMSCs whose bind
	// is up (default 1); 0 makes it a standby, used while no weighted one is up.
	Weight int
	// Accounts are the senders (SMPP system_id, HTTP API client) whose SMS
	// leave through this SMSC (or another that names them) on route smsc.
	Accounts []string
}

// DefaultSMSC names the SMSC of the unnamed --smsc form.
const DefaultSMSC = "default"

// SMSCOption is one --smsc-option NAME:KEY=VALUE,...: the keys it sets.
type SMSCOption struct {
	Name     string
	Bind     SMSCBind
	Window   int
	TPS      float64
	Weight   *int // nil = not set
	Accounts []string
}

// SMSCNames lists the configured SMSCs' names in order.
func (c *Config) SMSCNames() []string {
	out := make([]string, len(c.SMSCs))
	for i, s := range c.SMSCs {
		out[i] = s.Name
	}
	return out
}

// Scheme is "smpps" for an SMSC reached over TLS, else "smpp".
func (s SMSC) Scheme() string {
	if s.TLS {
		return "smpps"
	}
	return "smpp"
}

// SMSCBind is the bind type toward the SMSC.
type SMSCBind string

const (
	BindTransceiver SMSCBind = "transceiver"
	BindTransmitter SMSCBind = "transmitter"
)

// SMSRoute is where SMS leaves the bridge: over a bind to an SMSC (any,
// or one of SMSCs), or as deliver_sm to an ESME bound with system_id ESME.
// The zero value is no route.
type SMSRoute struct {
	SMSC  bool
	SMSCs []string // with SMSC: only these; none = any
	ESME  string
}

// IsZero reports whether r is no route.
func (r SMSRoute) IsZero() bool { return !r.SMSC && r.ESME == "" }

func (r SMSRoute) String() string {
	switch {
	case r.SMSC && len(r.SMSCs) > 0:
		return "smsc:" + strings.Join(r.SMSCs, "|")
	case r.SMSC:
		return "smsc"
	case r.ESME != "":
		return "esme:" + r.ESME
	}
	return ""
}

// Account is an SMPP account allowed to bind.
type Account struct{ SystemID, Password string }

// APIClient is an HTTP API client with its own token, roles and rate.
type APIClient struct {
	Name  string
	Roles []string // send, read, provision, admin
	Rate  float64  // requests a second; 0 = unlimited
	Token string
}

// AlphaSender allows the alphanumeric sender Name ("*": any) to Account
// (an SMPP system_id or HTTP client name; "": every account).
type AlphaSender struct{ Account, Name string }

// SIPUser is a SIP user with HA1 = md5(user:realm:password), lower-case
// hex, and optionally HA1SHA256 = sha256(user:realm:password) for SHA-256
// digest (RFC 8760).
type SIPUser struct{ User, HA1, HA1SHA256 string }

// Alphabet of outgoing SMS.
type Alphabet string

const (
	AlphabetAuto   Alphabet = "auto" // GSM7 when it fits exactly, else UCS-2
	AlphabetUCS2   Alphabet = "ucs2"
	AlphabetLatin1 Alphabet = "latin1"
)

// ClusterAck says what a message's acknowledgement waits for in a cluster.
type ClusterAck string

const (
	AckLocal      ClusterAck = "local"      // this node's disk (fsync)
	AckReplicated ClusterAck = "replicated" // and a replicated JetStream write
)

// Receipts says when the SMSC is asked for delivery receipts.
type Receipts string

const (
	ReceiptsRequested Receipts = "requested" // when the sender asked, or is an IM user (who gets an IMDN)
	ReceiptsAlways    Receipts = "always"
)

// ReassemblyPolicy says what happens to a long SMS whose parts are still
// missing at the timeout.
type ReassemblyPolicy string

const (
	ReassemblyPartial ReassemblyPolicy = "partial" // deliver with a marker
	ReassemblyDrop    ReassemblyPolicy = "drop"
)

// LogFormat of the process's logs.
type LogFormat string

const (
	LogText LogFormat = "text"
	LogJSON LogFormat = "json"
)

// PartnerSite is a website whose users log in by delegated login.
type PartnerSite struct {
	ID, VerifyURL, ServerID, ServerSecret string
	ContactsURL, PostsURL                 string // "" = not offered
}

// MOApp is an HTTP application that takes the messages for its numbers
// (--mo-app PREFIX[/KEYWORD]=SECRET@URL): mobile-originated SMS and IM
// addressed to a service number, each a signed POST to URL.
type MOApp struct {
	Prefix  string // as configured: +DIGITS (E.164) or digits as dialled
	Number  string // Prefix in E.164 with its '+' (Load sets it with --country-code)
	Keyword string // "" = any text; else the text's first word, compared case-insensitively
	Secret  string // signs every request (X-Bridge-Signature)
	URL     string
}

// Name is the route as the configuration wrote it: PREFIX[/KEYWORD].
func (a MOApp) Name() string {
	if a.Keyword == "" {
		return a.Prefix
	}
	return a.Prefix + "/" + a.Keyword
}

// SocialSite is a social site whose signed tokens admit its accounts.
type SocialSite struct {
	ID  string
	Key []byte // HMAC key, at least 16 bytes
}

// SSOService is a third-party service that gets single sign-on tickets.
type SSOService struct {
	ID, KeyID string
	Key       [32]byte      // AES-256 key
	TTL       time.Duration // 0 = the issuer's default
}

// Accounts returns SMPP accounts as system_id → password.
func (c *Config) Accounts() map[string]string {
	m := make(map[string]string, len(c.SMPPAccounts))
	for _, a := range c.SMPPAccounts {
		m[a.SystemID] = a.Password
	}
	return m
}

// Users returns SIP users as user → HA1, or HA1:HA1SHA256 for those with
// a SHA-256 credential (the directory's static form).
func (c *Config) Users() map[string]string {
	m := make(map[string]string, len(c.SIPUsers))
	for _, u := range c.SIPUsers {
		m[u.User] = u.HA1
		if u.HA1SHA256 != "" {
			m[u.User] += ":" + u.HA1SHA256
		}
	}
	return m
}

// HA1 is md5(user:realm:password) in hex, the form SIP credentials are kept in.
func HA1(user, realm, password string) string {
	h := md5.Sum([]byte(user + ":" + realm + ":" + password))
	return hex.EncodeToString(h[:])
}

// EnvName is the environment variable that sets flag name.
func EnvName(name string) string {
	return "BRIDGE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func yamlName(name string) string { return strings.ReplaceAll(name, "-", "_") }

// Defaults returns the embedded defaults.
func Defaults() *Config {
	c := &Config{}
	for _, o := range options {
		if o.list {
			continue
		}
		if err := o.bind(c).set(o.def); err != nil {
			panic(fmt.Sprintf("config: default of --%s: %v", o.name, err)) // caught by tests
		}
	}
	return c
}

// Load builds the configuration from defaults, the YAML file named by
// --config (or BRIDGE_CONFIG), the environment and args, in that order of
// precedence from lowest; a list given by a source replaces the list of the
// sources below it. Every problem is reported, each naming its setting.
func Load(name string, args []string, getenv func(string) string, usageOut io.Writer) (*Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(usageOut)
	configFile := fs.String("config", getenv("BRIDGE_CONFIG"), "YAML configuration file (env BRIDGE_CONFIG)")
	given := map[string]*rawFlag{}
	for _, o := range options {
		r := &rawFlag{list: o.list, boolean: o.boolean, def: o.def}
		given[o.name] = r
		fs.Var(r, o.name, fmt.Sprintf("%s (env %s)", o.help, EnvName(o.name)))
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c := Defaults()
	var errs []error
	if *configFile != "" {
		errs = append(errs, loadYAML(c, *configFile)...)
	}
	for _, o := range options {
		v := getenv(EnvName(o.name))
		if v == "" {
			continue
		}
		if o.list {
			sep := o.envSep
			if sep == "" {
				sep = ","
			}
			var items []string
			for _, it := range strings.Split(v, sep) {
				if it = strings.TrimSpace(it); it != "" {
					items = append(items, it)
				}
			}
			errs = append(errs, setAll(c, o, items, EnvName(o.name)+": ")...)
			continue
		}
		if err := o.bind(c).set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s: --%s: %w", EnvName(o.name), o.name, err))
		}
	}
	for _, o := range options {
		r := given[o.name]
		if !r.set {
			continue
		}
		if o.list {
			errs = append(errs, setAll(c, o, r.vals, "")...)
			continue
		}
		if err := o.bind(c).set(r.vals[len(r.vals)-1]); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", o.name, err))
		}
	}
	// The routes read well are checked together even when others did
	// not, so one start reports every problem of the table.
	errs = append(errs, c.validateMOApps()...)
	errs = append(errs, c.resolveSMSCs()...)
	if len(errs) == 0 {
		if c.SMSRoute.IsZero() && len(c.SMSCs) > 0 {
			c.SMSRoute.SMSC = true
		}
		if c.IdempotencyWindow == 0 {
			c.IdempotencyWindow = c.Retention
		}
		errs = append(errs, c.validate()...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// setAll replaces o's list with items, reporting each bad item.
func setAll(c *Config, o option, items []string, prefix string) []error {
	v := o.bind(c)
	v.reset()
	var errs []error
	for _, it := range items {
		if err := v.set(it); err != nil {
			errs = append(errs, fmt.Errorf("%s--%s: %w", prefix, o.name, err))
		}
	}
	return errs
}

// rawFlag keeps what the command line said for one option, parsed later so
// that file and environment apply first.
type rawFlag struct {
	list, boolean, set bool
	def                string
	vals               []string
}

func (r *rawFlag) String() string {
	if r == nil {
		return ""
	}
	return r.def
}

func (r *rawFlag) Set(v string) error {
	if !r.list {
		r.vals = r.vals[:0]
	}
	r.vals = append(r.vals, v)
	r.set = true
	return nil
}

func (r *rawFlag) IsBoolFlag() bool { return r.boolean }

func loadYAML(c *Config, path string) []error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return []error{fmt.Errorf("config file: %w", err)}
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return []error{fmt.Errorf("config file %s: %w", path, err)}
	}
	known := map[string]option{}
	for _, o := range options {
		known[yamlName(o.name)] = o
	}
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		o, ok := known[k]
		if !ok {
			errs = append(errs, fmt.Errorf("config file %s: unknown setting %q", path, k))
			continue
		}
		prefix := "config file " + path + ": "
		if o.list {
			items, ok := doc[k].([]any)
			if one, isStr := doc[k].(string); !ok && isStr && o.scalarOK {
				items, ok = []any{one}, true
			}
			if !ok {
				errs = append(errs, fmt.Errorf("%s%s must be a list", prefix, k))
				continue
			}
			strs := make([]string, len(items))
			for i, it := range items {
				strs[i] = fmt.Sprint(it)
			}
			errs = append(errs, setAll(c, o, strs, prefix)...)
			continue
		}
		v := ""
		if doc[k] != nil {
			v = fmt.Sprint(doc[k])
		}
		if err := o.bind(c).set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s--%s: %w", prefix, o.name, err))
		}
	}
	return errs
}

// validate checks what involves more than one setting, or ranges.
func (c *Config) validate() []error {
	var errs []error
	if c.SIPDomain == "" {
		errs = append(errs, errors.New("--sip-domain must not be empty"))
	}
	if c.SMSRoute.SMSC && len(c.SMSCs) == 0 {
		errs = append(errs, errors.New("--sms-route smsc needs --smsc"))
	}
	if c.ReassemblyWait <= 0 {
		errs = append(errs, errors.New("--reassembly-timeout must be positive"))
	}
	if c.LoginsPerMinute < 0 || c.AuthFailuresPerMinute < 0 || c.HTTPConnsPerSource < 0 {
		errs = append(errs, errors.New("--api-logins-per-minute, --api-auth-failures-per-minute and --http-conns-per-source must not be negative"))
	}
	seen := map[string]bool{}
	for _, cl := range c.APIClients {
		if seen[cl.Name] {
			errs = append(errs, fmt.Errorf("--api-client %q is given twice", cl.Name))
		}
		seen[cl.Name] = true
	}
	if c.SMPPMaxSessions < 1 || c.PreauthMax < 1 || c.PreauthPerSource < 1 || c.PreauthTimeout <= 0 {
		errs = append(errs, errors.New("--smpp-max-sessions, --preauth-max and --preauth-per-source must be at least 1, --preauth-timeout positive"))
	}
	if c.DedupMaxKeys < 1000 {
		errs = append(errs, fmt.Errorf("--dedup-max-keys %d: want at least 1000", c.DedupMaxKeys))
	}
	if c.ReassemblyMaxPending < 1 || c.ReassemblyMaxMB < 1 {
		errs = append(errs, errors.New("--reassembly-max-pending and --reassembly-max-mb must be at least 1"))
	}
	if c.Procs < 0 {
		errs = append(errs, fmt.Errorf("--procs %d: want 0 (automatic) or more", c.Procs))
	}
	if c.Workers < 1 || c.QueueDepth < 1 || c.SMPPWindow < 1 {
		errs = append(errs, errors.New("--workers, --queue-depth and --smpp-window must be at least 1"))
	}
	if c.WorkersMax < c.Workers {
		errs = append(errs, fmt.Errorf("--workers-max %d: want at least --workers (%d)", c.WorkersMax, c.Workers))
	}
	if c.DefaultValidity <= 0 || c.IMTimeout <= 0 || c.EnquireInterval <= 0 || c.SIPMinExpires <= 0 {
		errs = append(errs, errors.New("--default-validity, --im-timeout, --enquire-interval and --sip-min-expires must be positive"))
	}
	if c.XMPPServer != "" && (c.XMPPDomain == "" || c.XMPPSecret == "") {
		errs = append(errs, errors.New("--xmpp-server needs --xmpp-domain and --xmpp-secret"))
	}
	if c.NATSURL != "" && c.NATSListen != "" {
		errs = append(errs, errors.New("--nats-url and --nats-listen: join an external NATS or embed a server, not both"))
	}
	if c.NATSListen == "" && (c.NATSClusterListen != "" || c.NATSClusterAdvertise != "" || len(c.NATSRoutes) > 0) {
		errs = append(errs, errors.New("--nats-cluster-listen, --nats-cluster-advertise and --nats-routes are the embedded server's: they need --nats-listen"))
	}
	if c.ClusterAck == AckReplicated && !c.Clustered() {
		errs = append(errs, errors.New("--cluster-ack replicated needs a cluster (--nats-listen or --nats-url)"))
	}
	if c.ClusterReplicas < 0 || c.ClusterReplicas > 5 {
		errs = append(errs, fmt.Errorf("--cluster-replicas %d: want 0 (automatic) to 5", c.ClusterReplicas))
	}
	errs = append(errs, c.validateTLS()...)
	if c.Retention <= 0 || c.Retention < c.DedupWindow || c.Retention < c.IdempotencyWindow {
		// A resubmission is a duplicate only while the first copy's record
		// is there to check it against.
		errs = append(errs, fmt.Errorf("--retention %v: want positive and at least --dedup-window (%v) and --idempotency-window (%v)",
			c.Retention, c.DedupWindow, c.IdempotencyWindow))
	}
	return errs
}

// validateMOApps gives each application route its E.164 number, refuses
// two routes that would take the same messages, and plain http:// outside
// a lab: the messages' texts and the replies cross to the application.
func (c *Config) validateMOApps() []error {
	var errs []error
	seen := map[string]string{}
	for i := range c.MOApps {
		a := &c.MOApps[i]
		a.Number = e164Prefix(a.Prefix, c.CountryCode)
		if len(a.Number) > 16 {
			errs = append(errs, fmt.Errorf("--mo-app %s: the prefix has %d digits with the country code, want at most 15", a.Name(), len(a.Number)-1))
		}
		k := a.Number + "/" + strings.ToUpper(a.Keyword)
		if other, dup := seen[k]; dup {
			errs = append(errs, fmt.Errorf("--mo-app %s: the same number prefix (%s) and keyword as %s", a.Name(), a.Number, other))
		} else {
			seen[k] = a.Name()
		}
		if strings.HasPrefix(a.URL, "http://") && !c.LabAllowHTTPPartners {
			errs = append(errs, fmt.Errorf("--mo-app %s: %q: applications are reached over https:// (http:// only with --lab-allow-http-partners)", a.Name(), a.URL))
		}
	}
	return errs
}

// e164Prefix is a number prefix in E.164 with its '+': as it is with a
// '+' or "00", else dialled in the country cc (a leading 0 is the trunk
// prefix), the way numbers without a type are read (msg.NormalizeNumber).
func e164Prefix(p, cc string) string {
	switch {
	case strings.HasPrefix(p, "+"):
		return p
	case strings.HasPrefix(p, "00"):
		return "+" + p[2:]
	case strings.HasPrefix(p, "0"):
		return "+" + cc + p[1:]
	}
	return "+" + cc + p
}

// Print writes the effective configuration as YAML with secrets masked.
func (c *Config) Print(w io.Writer) error {
	for _, o := range options {
		n := yamlName(o.name)
		vals := o.bind(c).get()
		if o.secret {
			for i := range vals {
				vals[i] = o.mask(vals[i])
			}
		}
		if !o.list {
			if o.quoted {
				fmt.Fprintf(w, "%s: %q\n", n, vals[0])
			} else {
				fmt.Fprintf(w, "%s: %s\n", n, vals[0])
			}
			continue
		}
		if len(vals) == 0 {
			fmt.Fprintf(w, "%s: []\n", n)
			continue
		}
		fmt.Fprintf(w, "%s:\n", n)
		for _, v := range vals {
			fmt.Fprintf(w, "  - %q\n", v)
		}
	}
	return nil
}

// Clustered reports whether the bridge is a node of a cluster (shares
// presence over NATS).
func (c *Config) Clustered() bool { return c.NATSURL != "" || c.NATSListen != "" }

// validateTLS checks the TLS settings and reads their files, so a missing
// or unreadable certificate stops the start rather than the first handshake.
func (c *Config) validateTLS() []error {
	var errs []error
	switch {
	case (c.TLSCert == "") != (c.TLSKey == ""):
		errs = append(errs, errors.New("--tls-cert and --tls-key go together: a certificate needs its key"))
	case c.TLSCert != "":
		if _, err := tlsconf.Load(c.TLSCert, c.TLSKey, nil); err != nil {
			errs = append(errs, fmt.Errorf("--tls-cert, --tls-key: %w", err))
		}
	}
	if c.TLSCert == "" && (c.HTTPTLS || c.SMPPTLSListen != "" || c.SIPTLSListen != "") {
		errs = append(errs, errors.New("--http-tls, --smpp-tls-listen and --sip-tls-listen need --tls-cert and --tls-key"))
	}
	if c.HTTPTLS && c.HTTPListen == "" {
		errs = append(errs, errors.New("--http-tls needs --http-listen"))
	}
	if c.SMSCCA != "" && !slices.ContainsFunc(c.SMSCs, func(s SMSC) bool { return s.TLS }) {
		errs = append(errs, errors.New("--smsc-ca is for an smpps:// --smsc"))
	}
	for _, f := range []struct{ flag, file string }{{"--smsc-ca", c.SMSCCA}, {"--partner-ca", c.PartnerCA}} {
		if _, err := tlsconf.Roots(f.file); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.flag, err))
		}
	}
	for _, s := range c.PartnerSites {
		for _, u := range []string{s.VerifyURL, s.ContactsURL, s.PostsURL} {
			if err := checkPartnerURL(u, c.LabAllowHTTPPartners); err != nil {
				errs = append(errs, fmt.Errorf("--partner-site %s: %w", s.ID, err))
			}
		}
	}
	return errs
}

// checkPartnerURL: "" (not offered) or an https:// URL with a host; http://
// only in a lab, since the server secret signs what crosses and users'
// passwords cross it.
func checkPartnerURL(v string, allowHTTP bool) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%q: want an https:// URL with a host", v)
	}
	if u.Scheme == "http" && !allowHTTP {
		return fmt.Errorf("%q: partner sites are reached over https:// (http:// only with --lab-allow-http-partners)", v)
	}
	return nil
}
