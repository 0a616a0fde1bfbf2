package main

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/smsbridge/bridge/api"
	"github.com/smsbridge/bridge/internal/tlsconf"
	"github.com/smsbridge/bridge/provision"
)

// defaultAdminURL is a bridge's HTTP API on its default address.
const defaultAdminURL = "http://127.0.0.1:8080"

// adminCommand is one `bridge admin` command: the client, what follows
// the command's name, and its own flags (already parsed).
type adminCommand struct {
	usage, help string
	flags       func(fs *flag.FlagSet) func(c *adminClient, args []string) error
}

var adminCommands = map[string]adminCommand{
	"binds": {"binds", "SMPP sessions bound to the bridge", noFlags(0, (*adminClient).binds)},
	"smsc":  {"smsc", "the bind to the upstream SMSC", noFlags(0, (*adminClient).smsc)},
	"queues": {"queues", "messages waiting, by state and network",
		noFlags(0, (*adminClient).queues)},
	"accounts": {"accounts [list | add SYSTEM_ID [--password PW] [--sources P,...] [--tps N] [--window N] | delete SYSTEM_ID]",
		"SMPP accounts (add reads the password from stdin without --password)", accountsFlags},
	"routes": {"routes [show | set NAME=TARGET[@PREFIX]... | set --file FILE|-]",
		"the SMS route table; set replaces it whole (TARGET: smsc, smsc:NAME|NAME or esme:SYSTEM_ID)", routesFlags},
	"log-level": {"log-level [debug|info|warn|error]", "read or set the running log level",
		noFlags(1, (*adminClient).logLevel)},
	"message": {"message ID", "a message's state and history", noFlags(1, (*adminClient).message)},
}

var adminOrder = []string{"binds", "smsc", "queues", "accounts", "routes", "log-level", "message"}

// noFlags is a command without flags of its own taking at most maxArgs
// arguments.
func noFlags(maxArgs int, run func(c *adminClient, args []string) error) func(*flag.FlagSet) func(*adminClient, []string) error {
	return func(*flag.FlagSet) func(*adminClient, []string) error {
		return func(c *adminClient, args []string) error {
			if len(args) > maxArgs {
				return usageErr("too many arguments: %q", args[maxArgs:])
			}
			return run(c, args)
		}
	}
}

// errUsage marks a command line the command cannot run: exit 2.
var errUsage = errors.New("usage")

func usageErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

func adminUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: bridge admin COMMAND [--url URL] [--token TOKEN] [--ca FILE] [--json]")
	fmt.Fprintln(w, "  talks to a running bridge's HTTP API (--url, default "+defaultAdminURL+"; the token also from BRIDGE_API_TOKEN)")
	for _, n := range adminOrder {
		c := adminCommands[n]
		fmt.Fprintf(w, "  %s\n      %s\n", c.usage, c.help)
	}
}

// runAdmin is `bridge admin COMMAND ...`: operations on a running bridge
// through its HTTP API, as tables (or the API's JSON with --json). A
// refusal prints the server's reason and exits 1; a bad command line 2.
func runAdmin(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		adminUsage(stderr)
		return 2
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" {
		adminUsage(stdout)
		return 0
	}
	cmd, ok := adminCommands[name]
	if !ok {
		fmt.Fprintf(stderr, "bridge admin: unknown command %q\n", name)
		adminUsage(stderr)
		return 2
	}
	fs := flag.NewFlagSet("bridge admin "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	base := fs.String("url", defaultAdminURL, "the bridge's HTTP API")
	token := fs.String("token", getenv("BRIDGE_API_TOKEN"), "API bearer token (default $BRIDGE_API_TOKEN)")
	ca := fs.String("ca", "", "PEM file of the CA the bridge's HTTPS certificate chains to (default: the system's)")
	raw := fs.Bool("json", false, "print the API's JSON answer")
	run := cmd.flags(fs)
	pos, err := parseInterspersed(fs, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, "usage: bridge admin "+cmd.usage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "bridge admin %s: %v\nusage: bridge admin %s\n", name, err, cmd.usage)
		return 2
	}
	c, err := newAdminClient(*base, *token, *ca, *raw, stdin, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "bridge admin %s: %v\n", name, err)
		return 2
	}
	switch err := run(c, pos); {
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "bridge admin %s: %v\nusage: bridge admin %s\n", name, strings.TrimPrefix(err.Error(), "usage: "), cmd.usage)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "bridge admin %s: %v\n", name, err)
		return 1
	}
	return 0
}

// parseInterspersed parses flags wherever they stand among the arguments
// ("accounts add esme3 --tps 10" as well as "--tps 10 accounts add esme3")
// and returns the others in order; "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// adminClient calls one bridge's API.
type adminClient struct {
	base, token string
	http        *http.Client
	json        bool
	in          io.Reader
	out         io.Writer
}

func newAdminClient(base, token, ca string, raw bool, in io.Reader, out io.Writer) (*adminClient, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url %q: want http://HOST:PORT or https://HOST:PORT", base)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if ca != "" {
		tc, err := tlsconf.ClientConfig(ca)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		tr.TLSClientConfig = tc
	}
	return &adminClient{base: strings.TrimSuffix(base, "/"), token: token, json: raw, in: in, out: out,
		http: &http.Client{Transport: tr, Timeout: 15 * time.Second}}, nil
}

// apiRefusal is an answer other than 2xx, with the server's reason.
type apiRefusal struct {
	status  int
	reason  string
	noToken bool
}

func (e *apiRefusal) Error() string {
	s := fmt.Sprintf("%d %s: %s", e.status, http.StatusText(e.status), e.reason)
	if e.status == http.StatusUnauthorized && e.noToken {
		s += " (give --token or set BRIDGE_API_TOKEN)"
	}
	return s
}

// call sends one request (body encoded as JSON unless nil) and decodes a
// 2xx answer into out (unless nil); with --json it prints the answer as
// sent instead and reports printed.
func (c *adminClient) call(method, path string, body, out any) (printed bool, err error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return false, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return false, fmt.Errorf("request: %w", err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return false, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return false, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		var e struct {
			Error string `json:"error"`
		}
		reason := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			reason = e.Error
		}
		return false, &apiRefusal{status: res.StatusCode, reason: reason, noToken: c.token == ""}
	}
	if c.json {
		if len(b) > 0 {
			c.out.Write(b)
			if b[len(b)-1] != '\n' {
				fmt.Fprintln(c.out)
			}
		}
		return true, nil
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return false, fmt.Errorf("%s %s: answer is not the expected JSON: %w", method, path, err)
		}
	}
	return false, nil
}

func (c *adminClient) table() *tabwriter.Writer { return tabwriter.NewWriter(c.out, 0, 8, 2, ' ', 0) }

// when prints an instant with how long ago it was.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), time.Since(t).Round(time.Second))
}

func (c *adminClient) binds([]string) error {
	var l api.BindList
	if printed, err := c.call("GET", "/v1/admin/binds", nil, &l); printed || err != nil {
		return err
	}
	if len(l.Binds) == 0 {
		fmt.Fprintln(c.out, "no SMPP session is bound")
		return nil
	}
	tw := c.table()
	fmt.Fprintln(tw, "SYSTEM_ID\tBIND\tREMOTE\tSINCE\tWINDOW\tINBOUND")
	for _, b := range l.Binds {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%d/%d\n", b.SystemID, b.Bind, b.Remote, when(b.Since), b.WindowUsed, b.Window, b.InboundUsed, b.Inbound)
	}
	return tw.Flush()
}

func (c *adminClient) smsc([]string) error {
	var v api.SMSCView
	if printed, err := c.call("GET", "/v1/admin/smsc", nil, &v); printed || err != nil {
		return err
	}
	if !v.Configured {
		fmt.Fprintln(c.out, "no upstream SMSC is configured (--smsc)")
		return nil
	}
	tw := c.table()
	if len(v.SMSCs) > 1 {
		fmt.Fprintln(tw, "NAME\tADDR\tBIND\tSTATE\tWEIGHT\tTPS\tWINDOW\tSUBMITS\tERRORS\tTHROTTLED")
		for _, s := range v.SMSCs {
			state := "up since " + when(s.Since)
			if !s.Bound {
				state = "down since " + when(s.Since)
				if s.LastError != "" {
					state += ": " + s.LastError
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%g\t%d/%d\t%d\t%d\t%d\n", s.Name, s.Addr, s.Bind, state, s.Weight, s.TPS,
				s.WindowUsed, s.Window, s.Submits, s.Errors, s.Throttled)
		}
		return tw.Flush()
	}
	fmt.Fprintf(tw, "SMSC\t%s\nSYSTEM_ID\t%s\nBIND\t%s\n", v.Addr, v.SystemID, v.Bind)
	if v.Bound {
		fmt.Fprintf(tw, "STATE\tup since %s\nWINDOW\t%d/%d\n", when(v.Since), v.WindowUsed, v.Window)
	} else {
		fmt.Fprintf(tw, "STATE\tdown since %s\n", when(v.Since))
		if v.LastError != "" {
			fmt.Fprintf(tw, "LAST ERROR\t%s\n", v.LastError)
		}
	}
	return tw.Flush()
}

func (c *adminClient) queues([]string) error {
	var q api.QueueView
	if printed, err := c.call("GET", "/v1/admin/queues", nil, &q); printed || err != nil {
		return err
	}
	tw := c.table()
	fmt.Fprintln(tw, "STATE\tROUTE\tMESSAGES")
	for _, w := range q.Waiting {
		fmt.Fprintf(tw, "%s\t%s\t%d\n", w.State, cmp.Or(w.Route, "-"), w.Count)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	tw = c.table()
	fmt.Fprintf(tw, "\npending\t%d of %d (past it new messages are throttled)\n", q.Pending, q.Limit)
	fmt.Fprintf(tw, "reassembling\t%d long SMS waiting for parts\n", q.Reassembling)
	fmt.Fprintf(tw, "reports\t%d delivery reports to HTTP senders not yet taken\n", q.Reports)
	fmt.Fprintf(tw, "store writes\t%d waiting for the next group commit\n", q.StoreWrites)
	return tw.Flush()
}

func accountsFlags(fs *flag.FlagSet) func(*adminClient, []string) error {
	password := fs.String("password", "", "accounts add: the password (default: the first line of stdin)")
	sources := fs.String("sources", "", "accounts add: source address prefixes it may send from, comma-separated (default any)")
	tps := fs.Int("tps", 0, "accounts add: submits per second (0 = unlimited)")
	window := fs.Int("window", 0, "accounts add: requests in flight (0 = the bridge's --smpp-window)")
	return func(c *adminClient, args []string) error {
		sub := "list"
		if len(args) > 0 {
			sub, args = args[0], args[1:]
		}
		switch {
		case sub == "list" && len(args) == 0:
			return c.listAccounts()
		case sub == "add" && len(args) == 1:
			spec := provision.AccountSpec{SystemID: args[0], Password: *password, TPS: *tps, Window: *window}
			if *sources != "" {
				spec.AllowedSources = strings.Split(*sources, ",")
			}
			if spec.Password == "" {
				line, err := bufio.NewReader(c.in).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return fmt.Errorf("reading the password from stdin: %w", err)
				}
				spec.Password = strings.TrimRight(line, "\r\n")
				if spec.Password == "" {
					return usageErr("no password: give --password or one line on stdin")
				}
			}
			var a provision.Account
			if printed, err := c.call("POST", "/v1/accounts", spec, &a); printed || err != nil {
				return err
			}
			fmt.Fprintf(c.out, "account %s added\n", a.SystemID)
			return nil
		case (sub == "delete" || sub == "del" || sub == "rm") && len(args) == 1:
			if printed, err := c.call("DELETE", "/v1/accounts/"+url.PathEscape(args[0]), nil, nil); printed || err != nil {
				return err
			}
			fmt.Fprintf(c.out, "account %s deleted\n", args[0])
			return nil
		}
		return usageErr("accounts %s", strings.Join(append([]string{sub}, args...), " "))
	}
}

func (c *adminClient) listAccounts() error {
	var l api.AccountList
	if printed, err := c.call("GET", "/v1/accounts", nil, &l); printed || err != nil {
		return err
	}
	tw := c.table()
	fmt.Fprintln(tw, "SYSTEM_ID\tSOURCES\tTPS\tWINDOW\tFROM\tCREATED")
	for _, a := range l.Accounts {
		from, created := "api", a.Created.UTC().Format(time.RFC3339)
		if a.Static {
			from, created = "config", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.SystemID, cmp.Or(strings.Join(a.AllowedSources, ","), "any"),
			zeroIs(a.TPS, "unlimited"), zeroIs(a.Window, "default"), from, created)
	}
	return tw.Flush()
}

func zeroIs(n int, zero string) string {
	if n == 0 {
		return zero
	}
	return strconv.Itoa(n)
}

func routesFlags(fs *flag.FlagSet) func(*adminClient, []string) error {
	file := fs.String("file", "", `routes set: read the table from FILE ("-": stdin), JSON as "routes --json" prints it`)
	return func(c *adminClient, args []string) error {
		sub := "show"
		if len(args) > 0 {
			sub, args = args[0], args[1:]
		}
		switch {
		case sub == "show" && len(args) == 0 && *file == "":
			var t api.RouteTable
			if printed, err := c.call("GET", "/v1/routes", nil, &t); printed || err != nil {
				return err
			}
			return c.printRoutes(t)
		case sub == "set" && (len(args) > 0) != (*file != ""):
			t, err := c.routeTable(args, *file)
			if err != nil {
				return err
			}
			if printed, err := c.call("PUT", "/v1/routes", t, &t); printed || err != nil {
				return err
			}
			return c.printRoutes(t)
		}
		return usageErr("routes %s", strings.Join(append([]string{sub}, args...), " "))
	}
}

// routeTable reads the table to set: from specs NAME=TARGET[@PREFIX], or
// from a JSON file.
func (c *adminClient) routeTable(specs []string, file string) (api.RouteTable, error) {
	t := api.RouteTable{Routes: []provision.Route{}}
	if file != "" {
		var b []byte
		var err error
		if file == "-" {
			b, err = io.ReadAll(c.in)
		} else {
			b, err = os.ReadFile(file)
		}
		if err != nil {
			return t, fmt.Errorf("route table: %w", err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil || t.Routes == nil {
			return t, fmt.Errorf(`route table %s: want {"routes":[{"name":…,"target":…,"prefix":…}]}: %v`, file, err)
		}
		return t, nil
	}
	for _, s := range specs {
		name, target, ok := strings.Cut(s, "=")
		if !ok || name == "" || target == "" {
			return t, usageErr("route %q: want NAME=TARGET[@PREFIX]", s)
		}
		target, prefix, _ := strings.Cut(target, "@")
		t.Routes = append(t.Routes, provision.Route{Name: name, Target: target, Prefix: prefix})
	}
	return t, nil
}

func (c *adminClient) printRoutes(t api.RouteTable) error {
	if len(t.Routes) == 0 {
		fmt.Fprintln(c.out, "no routes: every SMS takes the default route (--sms-route)")
		return nil
	}
	tw := c.table()
	fmt.Fprintln(tw, "NAME\tTARGET\tPREFIX")
	for _, r := range t.Routes {
		p := "(any)"
		if r.Prefix != "" {
			p = "+" + r.Prefix
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, r.Target, p)
	}
	return tw.Flush()
}

func (c *adminClient) logLevel(args []string) error {
	var l api.LogLevel
	var printed bool
	var err error
	if len(args) == 0 {
		printed, err = c.call("GET", "/v1/admin/log-level", nil, &l)
	} else {
		printed, err = c.call("PUT", "/v1/admin/log-level", api.LogLevel{Level: args[0]}, &l)
	}
	if printed || err != nil {
		return err
	}
	fmt.Fprintln(c.out, l.Level)
	return nil
}

func (c *adminClient) message(args []string) error {
	if len(args) != 1 {
		return usageErr("which message? give its ID")
	}
	var m api.MessageView
	if printed, err := c.call("GET", "/v1/messages/"+url.PathEscape(args[0]), nil, &m); printed || err != nil {
		return err
	}
	tw := c.table()
	fmt.Fprintf(tw, "ID\t%s\nFROM\t%s\nTO\t%s\nSTATE\t%s\nEXPIRES\t%s\n", m.ID, m.From, m.To, m.State, m.Expires.UTC().Format(time.RFC3339))
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(c.out, "\nHISTORY")
	tw = c.table()
	for _, e := range m.Events {
		fmt.Fprintf(tw, "  %s\t%s", e.At.UTC().Format("2006-01-02T15:04:05.000Z07:00"), e.State)
		if e.Detail != "" {
			fmt.Fprintf(tw, "\t%s", e.Detail)
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
