package config

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the effective configuration of one bridge process.
type Config struct {
	SMPPListen          string
	SIPListen           string
	HTTPListen          string
	MCPListen           string
	DataDir             string
	SIPDomain           string
	CountryCode         string
	SMSC                string   // smpp://SYSTEM_ID:PASSWORD@HOST:PORT, "" = none
	SMSCBind            string   // transceiver | transmitter
	SMPPAccounts        []string // SYSTEM_ID:PASSWORD
	SMSRoute            string   // where SMS goes out: "smsc" or "esme:SYSTEM_ID"
	SIPUsers            []string // USER:HA1 (HA1 = md5(user:realm:password))
	APITokens           []string
	OpenRegistration    bool
	OutboundProxy       string
	SIPMinExpires       time.Duration
	DefaultValidity     time.Duration
	IMTimeout           time.Duration
	Workers             int
	QueueDepth          int
	SMPPWindow          int
	LogLevel            string
	LogFormat           string
	EnquireInterval     time.Duration
	SMSAlphabet         string        // auto | ucs2 | latin1
	SMSPayload          bool          // long SMS as one PDU with message_payload
	SMSReceipts         string        // "requested" or "always": when to ask the SMSC for receipts
	ReassemblyWait      time.Duration // how long parts of a long SMS wait for the rest
	ReassemblyPolicy    string        // partial | drop
	DedupWindow         time.Duration // duplicate suppression window (0 = off)
	AdminListen         string        // pprof and expvar, for operators only ("" = off)
	Procs               int           // Go scheduler threads (GOMAXPROCS); 0 = available CPUs + 2
	StoreMemtableMB     int           // badger memtable size (two are kept)
	StoreCacheMB        int           // badger block and index caches, each
	StoreCommitInterval time.Duration // least time between the starts of two group commits while the batch is under half of its cap
	RetainText          bool          // a finished message's record keeps its whole text, not only what a receipt quotes
	Retention           time.Duration // how long a finished message's record is kept
	ReginfoFrom         []string      // IM servers allowed to push RFC 3680 registration state
	PartnerSites        []string      // ID,VERIFY_URL,SERVER_ID,SECRET[,CONTACTS_URL[,POSTS_URL]]
	SocialSites         []string      // ID:HEXKEY
	SSOServices         []string      // ID:KEY_ID:HEXKEY[:TTL]
}

type kind int

const (
	kString kind = iota
	kList
	kBool
	kDuration
	kInt
)

type option struct {
	name   string // flag name; env and YAML names derive from it
	kind   kind
	def    string
	help   string
	secret bool
	ptr    func(*Config) any
}

var options = []option{
	{"smpp-listen", kString, ":2775", "SMPP 3.4 listen address for carriers' binds", false, func(c *Config) any { return &c.SMPPListen }},
	{"sip-listen", kString, ":5060", "SIP listen address (UDP and TCP)", false, func(c *Config) any { return &c.SIPListen }},
	{"http-listen", kString, ":8080", "HTTP API and metrics listen address (\"\" = off)", false, func(c *Config) any { return &c.HTTPListen }},
	{"mcp-listen", kString, ":5070", "MCP handset link listen address (\"\" = off)", false, func(c *Config) any { return &c.MCPListen }},
	{"data-dir", kString, "./data", "directory of the durable store (\"\" = in memory, loses everything on exit: labs only)", false, func(c *Config) any { return &c.DataDir }},
	{"sip-domain", kString, "localhost", "our SIP domain and digest realm", false, func(c *Config) any { return &c.SIPDomain }},
	{"country-code", kString, "86", "default country code for national numbers", false, func(c *Config) any { return &c.CountryCode }},
	{"smsc", kString, "", "upstream SMSC to bind to, smpp://SYSTEM_ID:PASSWORD@HOST:PORT (\"\" = none)", true, func(c *Config) any { return &c.SMSC }},
	{"smsc-bind", kString, "transceiver", "bind type toward the SMSC: transceiver or transmitter", false, func(c *Config) any { return &c.SMSCBind }},
	{"smpp-account", kList, "", "SMPP account SYSTEM_ID:PASSWORD allowed to bind (repeatable)", true, func(c *Config) any { return &c.SMPPAccounts }},
	{"sms-route", kString, "", "where SMS leaves the bridge: smsc (submit_sm upstream) or esme:SYSTEM_ID (deliver_sm to that bound receiver); default smsc when --smsc is set", false, func(c *Config) any { return &c.SMSRoute }},
	{"sip-user", kList, "", "SIP user USER:HA1 with HA1=md5(USER:DOMAIN:PASSWORD) (repeatable)", true, func(c *Config) any { return &c.SIPUsers }},
	{"api-token", kList, "", "bearer token accepted by the HTTP API /v1 (repeatable; none = /v1 refuses everyone)", true, func(c *Config) any { return &c.APITokens }},
	{"open-registration", kBool, "false", "accept any SIP REGISTER without authentication (labs only)", false, func(c *Config) any { return &c.OpenRegistration }},
	{"outbound-proxy", kString, "", "send IM through this SIP proxy (e.g. sip:127.0.0.1:5080) instead of to the contact", false, func(c *Config) any { return &c.OutboundProxy }},
	{"sip-min-expires", kDuration, "60s", "shortest REGISTER expiry accepted (shorter gets 423 Interval Too Brief)", false, func(c *Config) any { return &c.SIPMinExpires }},
	{"default-validity", kDuration, "48h", "how long a message is retried before it expires", false, func(c *Config) any { return &c.DefaultValidity }},
	{"im-timeout", kDuration, "8s", "how long to wait for an IM client's answer before falling back", false, func(c *Config) any { return &c.IMTimeout }},
	{"workers", kInt, "512", "concurrent deliveries", false, func(c *Config) any { return &c.Workers }},
	{"queue-depth", kInt, "100000", "messages accepted but not yet delivered before new ones are throttled", false, func(c *Config) any { return &c.QueueDepth }},
	{"smpp-window", kInt, "256", "in-flight requests per SMPP session, each direction", false, func(c *Config) any { return &c.SMPPWindow }},
	{"enquire-interval", kDuration, "30s", "SMPP enquire_link interval on idle sessions", false, func(c *Config) any { return &c.EnquireInterval }},
	{"sms-alphabet", kString, "auto", "alphabet of outgoing SMS: auto (GSM7 when it fits exactly, else UCS-2), ucs2 or latin1", false, func(c *Config) any { return &c.SMSAlphabet }},
	{"sms-receipts", kString, "requested", "ask the upstream SMSC for delivery receipts: requested (when the sender asked for one, or is a SIP user, who gets an IMDN) or always (every message's final state tracked, one more stored mapping and one more PDU per part)", false, func(c *Config) any { return &c.SMSReceipts }},
	{"sms-payload", kBool, "false", "send a long SMS as one PDU with the message_payload TLV instead of concatenated parts", false, func(c *Config) any { return &c.SMSPayload }},
	{"reassembly-timeout", kDuration, "5m", "how long parts of a long SMS wait for the missing ones", false, func(c *Config) any { return &c.ReassemblyWait }},
	{"reassembly-policy", kString, "partial", "when parts are still missing at the timeout: partial (deliver with a marker) or drop", false, func(c *Config) any { return &c.ReassemblyPolicy }},
	{"dedup-window", kDuration, "2m", "a resubmission of the same message (same account, sender, recipient and text) within this window is acknowledged with the first id and not delivered again (0 = off)", false, func(c *Config) any { return &c.DedupWindow }},
	{"store-memtable-mb", kInt, "32", "badger memtable size in MiB (two are kept in memory)", false, func(c *Config) any { return &c.StoreMemtableMB }},
	{"retain-text", kBool, "false", "keep a finished message's whole text for the retention period (--retention); by default its record keeps the first 20 characters, which delivery receipts quote, and the content goes once the message is done", false, func(c *Config) any { return &c.RetainText }},
	{"retention", kDuration, "24h", "how long a finished message's record is kept: queryable over the HTTP API, quoted by delivery receipts, and what duplicate suppression checks a resubmission against (so at least --dedup-window); then the store deletes it and its disk is reclaimed", false, func(c *Config) any { return &c.Retention }},
	{"store-commit-interval", kDuration, "1ms", "least time between two group commits (fsyncs) of the store, unless half a batch is already waiting: fewer, larger commits cost less CPU per message for at most this much more acknowledgement latency (0 = commit as soon as the last one ends)", false, func(c *Config) any { return &c.StoreCommitInterval }},
	{"store-cache-mb", kInt, "32", "badger block cache and index cache size in MiB, each", false, func(c *Config) any { return &c.StoreCacheMB }},
	{"reginfo-from", kList, "", "IP, CIDR or host name of an IM server (Kamailio pua_reginfo) allowed to PUBLISH/NOTIFY registration state, RFC 3680 (repeatable; none = refused)", false, func(c *Config) any { return &c.ReginfoFrom }},
	{"partner-site", kList, "", "partner website for delegated login: ID,VERIFY_URL,SERVER_ID,SERVER_SECRET[,CONTACTS_URL[,POSTS_URL]] (repeatable; users log in as user#ID)", true, func(c *Config) any { return &c.PartnerSites }},
	{"social-site", kList, "", "social site whose signed tokens admit account@ID: ID:HEX_HMAC_KEY (repeatable)", true, func(c *Config) any { return &c.SocialSites }},
	{"sso-service", kList, "", "third-party service that gets single sign-on tickets: ID:KEY_ID:HEX_AES256_KEY[:TTL] (repeatable)", true, func(c *Config) any { return &c.SSOServices }},
	{"procs", kInt, "0", "threads running Go code at once (GOMAXPROCS); 0 = the CPUs available + 2, so the store's CPU-bound compactions never hold every thread and the kernel interleaves them with deliveries (a GOMAXPROCS environment variable also wins over 0)", false, func(c *Config) any { return &c.Procs }},
	{"admin-listen", kString, "", "admin-only listener for Go pprof profiles, e.g. 127.0.0.1:6060 (\"\" = off; never expose it)", false, func(c *Config) any { return &c.AdminListen }},
	{"log-level", kString, "info", "debug, info, warn or error", false, func(c *Config) any { return &c.LogLevel }},
	{"log-format", kString, "text", "text or json", false, func(c *Config) any { return &c.LogFormat }},
}

// EnvName is the environment variable that sets flag name.
func EnvName(name string) string {
	return "BRIDGE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func yamlName(name string) string { return strings.ReplaceAll(name, "-", "_") }

func set(c *Config, o option, v string) error {
	switch p := o.ptr(c).(type) {
	case *string:
		*p = v
	case *[]string:
		*p = append(*p, v)
	case *bool:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("--%s: %q is not true or false", o.name, v)
		}
		*p = b
	case *time.Duration:
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("--%s: %q is not a duration like 30s or 48h", o.name, v)
		}
		*p = d
	case *int:
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("--%s: %q is not a whole number", o.name, v)
		}
		*p = n
	}
	return nil
}

// Defaults returns the embedded defaults.
func Defaults() *Config {
	c := &Config{}
	for _, o := range options {
		if o.kind == kList {
			continue
		}
		if err := set(c, o, o.def); err != nil {
			panic(err) // a bad default is a programming error caught by tests
		}
	}
	return c
}

type listFlag struct {
	c *Config
	o option
}

func (l listFlag) String() string { return "" }
func (l listFlag) Set(v string) error {
	return set(l.c, l.o, v)
}

// Load builds the configuration from defaults, the YAML file named by
// --config (or BRIDGE_CONFIG), the environment and args.
func Load(name string, args []string, getenv func(string) string, usageOut io.Writer) (*Config, error) {
	c := Defaults()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(usageOut)
	configFile := fs.String("config", getenv("BRIDGE_CONFIG"), "YAML configuration file (env BRIDGE_CONFIG)")
	// Flags parse into a scratch config so file and env can be applied first.
	fc := &Config{}
	for _, o := range options {
		help := fmt.Sprintf("%s (env %s)", o.help, EnvName(o.name))
		switch o.kind {
		case kList:
			fs.Var(listFlag{fc, o}, o.name, help)
		case kBool:
			fs.Bool(o.name, o.def == "true", help)
		default:
			fs.String(o.name, o.def, help)
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *configFile != "" {
		if err := loadYAML(c, *configFile); err != nil {
			return nil, err
		}
	}
	for _, o := range options {
		v := getenv(EnvName(o.name))
		if v == "" {
			continue
		}
		if o.kind == kList {
			*o.ptr(c).(*[]string) = nil // replace, not append to, what the file said
			for _, item := range strings.Split(v, ",") {
				if item = strings.TrimSpace(item); item != "" {
					_ = set(c, o, item)
				}
			}
			continue
		}
		if err := set(c, o, v); err != nil {
			return nil, fmt.Errorf("%s: %w", EnvName(o.name), err)
		}
	}
	var err error
	fs.Visit(func(f *flag.Flag) {
		if err != nil || f.Name == "config" {
			return
		}
		for _, o := range options {
			if o.name != f.Name {
				continue
			}
			if o.kind == kList {
				*o.ptr(c).(*[]string) = *o.ptr(fc).(*[]string)
				return
			}
			err = set(c, o, f.Value.String())
		}
	})
	if err != nil {
		return nil, err
	}
	return c, c.Validate()
}

func loadYAML(c *Config, path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
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
	for _, k := range keys {
		o, ok := known[k]
		if !ok {
			return fmt.Errorf("config file %s: unknown setting %q", path, k)
		}
		v := doc[k]
		if o.kind == kList {
			items, ok := v.([]any)
			if !ok {
				return fmt.Errorf("config file %s: %s must be a list", path, k)
			}
			for _, it := range items {
				if err := set(c, o, fmt.Sprint(it)); err != nil {
					return fmt.Errorf("config file %s: %w", path, err)
				}
			}
			continue
		}
		if err := set(c, o, fmt.Sprint(v)); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
	}
	return nil
}

// Validate reports every problem at once, with the setting's name.
func (c *Config) Validate() error {
	var errs []error
	addr := func(name, v string, allowEmpty bool) {
		if v == "" {
			if !allowEmpty {
				errs = append(errs, fmt.Errorf("--%s must not be empty", name))
			}
			return
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			errs = append(errs, fmt.Errorf("--%s %q: %v", name, v, err))
		}
	}
	addr("smpp-listen", c.SMPPListen, true)
	addr("sip-listen", c.SIPListen, true)
	addr("http-listen", c.HTTPListen, true)
	addr("mcp-listen", c.MCPListen, true)
	if c.CountryCode != "" {
		if _, err := strconv.Atoi(c.CountryCode); err != nil || len(c.CountryCode) > 3 {
			errs = append(errs, fmt.Errorf("--country-code %q: must be 1-3 digits", c.CountryCode))
		}
	}
	if c.SIPDomain == "" {
		errs = append(errs, errors.New("--sip-domain must not be empty"))
	}
	if c.SMSC != "" {
		if _, _, _, err := ParseSMSC(c.SMSC); err != nil {
			errs = append(errs, fmt.Errorf("--smsc: %w", err))
		}
	}
	if c.SMSAlphabet != "auto" && c.SMSAlphabet != "ucs2" && c.SMSAlphabet != "latin1" {
		errs = append(errs, fmt.Errorf("--sms-alphabet %q: want auto, ucs2 or latin1", c.SMSAlphabet))
	}
	if c.SMSReceipts != "requested" && c.SMSReceipts != "always" {
		errs = append(errs, fmt.Errorf("--sms-receipts %q: want requested or always", c.SMSReceipts))
	}
	if c.ReassemblyPolicy != "partial" && c.ReassemblyPolicy != "drop" {
		errs = append(errs, fmt.Errorf("--reassembly-policy %q: want partial or drop", c.ReassemblyPolicy))
	}
	if c.ReassemblyWait <= 0 {
		errs = append(errs, fmt.Errorf("--reassembly-timeout must be positive"))
	}
	if c.SMSCBind != "transceiver" && c.SMSCBind != "transmitter" {
		errs = append(errs, fmt.Errorf("--smsc-bind %q: want transceiver or transmitter", c.SMSCBind))
	}
	for _, a := range c.SMPPAccounts {
		if id, pw, ok := strings.Cut(a, ":"); !ok || id == "" || pw == "" || len(id) > 15 || len(pw) > 8 {
			errs = append(errs, fmt.Errorf("--smpp-account %q: want SYSTEM_ID:PASSWORD (system_id ≤15, password ≤8 chars)", mask(a)))
		}
	}
	for _, u := range c.SIPUsers {
		user, ha1, ok := strings.Cut(u, ":")
		if _, err := hex.DecodeString(ha1); !ok || user == "" || len(ha1) != 32 || err != nil {
			errs = append(errs, fmt.Errorf("--sip-user %q: want USER:HA1 with a 32-hex-digit HA1", mask(u)))
		}
	}
	switch {
	case c.SMSRoute == "", c.SMSRoute == "smsc":
		if c.SMSRoute == "smsc" && c.SMSC == "" {
			errs = append(errs, errors.New("--sms-route smsc needs --smsc"))
		}
	case strings.HasPrefix(c.SMSRoute, "esme:") && len(c.SMSRoute) > 5:
	default:
		errs = append(errs, fmt.Errorf("--sms-route %q: want smsc or esme:SYSTEM_ID", c.SMSRoute))
	}
	if c.Procs < 0 {
		errs = append(errs, fmt.Errorf("--procs %d: want 0 (automatic) or more", c.Procs))
	}
	if c.Workers < 1 || c.QueueDepth < 1 || c.SMPPWindow < 1 {
		errs = append(errs, errors.New("--workers, --queue-depth and --smpp-window must be at least 1"))
	}
	if c.DefaultValidity <= 0 || c.IMTimeout <= 0 || c.EnquireInterval <= 0 || c.SIPMinExpires <= 0 {
		errs = append(errs, errors.New("--default-validity, --im-timeout, --enquire-interval and --sip-min-expires must be positive"))
	}
	if c.Retention <= 0 || c.Retention < c.DedupWindow {
		// A resubmission is a duplicate only while the first copy's record
		// is there to check it against.
		errs = append(errs, fmt.Errorf("--retention %v: want positive and at least --dedup-window (%v)", c.Retention, c.DedupWindow))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.LogLevel))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("--log-format %q: want text or json", c.LogFormat))
	}
	return errors.Join(errs...)
}

// ParseSMSC splits smpp://SYSTEM_ID:PASSWORD@HOST:PORT.
func ParseSMSC(u string) (addr, systemID, password string, err error) {
	rest, ok := strings.CutPrefix(u, "smpp://")
	if !ok {
		return "", "", "", fmt.Errorf("%q: want smpp://SYSTEM_ID:PASSWORD@HOST:PORT", mask(u))
	}
	cred, hostport, ok := strings.Cut(rest, "@")
	if !ok {
		return "", "", "", errors.New("missing SYSTEM_ID:PASSWORD@")
	}
	systemID, password, _ = strings.Cut(cred, ":")
	if systemID == "" {
		return "", "", "", errors.New("missing system_id")
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		return "", "", "", fmt.Errorf("host:port: %w", err)
	}
	return hostport, systemID, password, nil
}

// HA1 is md5(user:realm:password) in hex, the form SIP credentials are kept in.
func HA1(user, realm, password string) string {
	h := md5.Sum([]byte(user + ":" + realm + ":" + password))
	return hex.EncodeToString(h[:])
}

// Accounts returns SMPP accounts as system_id → password.
func (c *Config) Accounts() map[string]string {
	m := make(map[string]string, len(c.SMPPAccounts))
	for _, a := range c.SMPPAccounts {
		id, pw, _ := strings.Cut(a, ":")
		m[id] = pw
	}
	return m
}

// Users returns SIP users as user → HA1.
func (c *Config) Users() map[string]string {
	m := make(map[string]string, len(c.SIPUsers))
	for _, u := range c.SIPUsers {
		user, ha1, _ := strings.Cut(u, ":")
		m[user] = strings.ToLower(ha1)
	}
	return m
}

func mask(s string) string {
	if i := strings.LastIndexByte(s, '@'); strings.HasPrefix(s, "smpp://") && i > 0 {
		if id, _, ok := strings.Cut(s[len("smpp://"):i], ":"); ok {
			return "smpp://" + id + ":****" + s[i:]
		}
		return s
	}
	if id, _, ok := strings.Cut(s, ":"); ok {
		return id + ":****"
	}
	return s
}

// Print writes the effective configuration as YAML with secrets masked.
func (c *Config) Print(w io.Writer) error {
	for _, o := range options {
		n := yamlName(o.name)
		switch p := o.ptr(c).(type) {
		case *[]string:
			if len(*p) == 0 {
				fmt.Fprintf(w, "%s: []\n", n)
				continue
			}
			fmt.Fprintf(w, "%s:\n", n)
			for _, v := range *p {
				if o.secret {
					v = mask(v)
				}
				fmt.Fprintf(w, "  - %q\n", v)
			}
		case *string:
			v := *p
			if o.secret {
				v = mask(v)
			}
			fmt.Fprintf(w, "%s: %q\n", n, v)
		default:
			fmt.Fprintf(w, "%s: %v\n", n, reflectValue(p))
		}
	}
	return nil
}

func reflectValue(p any) any {
	switch v := p.(type) {
	case *bool:
		return *v
	case *int:
		return *v
	case *time.Duration:
		return v.String()
	}
	return p
}
