package config

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// smscName is what names an SMSC: it appears in route targets
// (smsc:NAME|NAME), metric labels and receipt keys.
var smscName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)

// parseSMSCItem reads one --smsc: [NAME=]smpp://SYSTEM_ID:PASSWORD@HOST:PORT.
func parseSMSCItem(v string) (SMSC, error) {
	name, rest := DefaultSMSC, v
	if eq, scheme := strings.IndexByte(v, '='), strings.Index(v, "://"); eq >= 0 && (scheme < 0 || eq < scheme) {
		name, rest = v[:eq], v[eq+1:]
		if !smscName.MatchString(name) {
			return SMSC{}, fmt.Errorf("SMSC name %q: want 1 to 32 letters, digits, '.', '_' or '-'", name)
		}
	}
	s, err := ParseSMSC(rest)
	if err != nil {
		if name != DefaultSMSC {
			return SMSC{}, fmt.Errorf("%s: %w", name, err)
		}
		return SMSC{}, err
	}
	s.Name = name
	return s, nil
}

func formatSMSCItem(s SMSC) string {
	return s.Name + "=" + s.Scheme() + "://" + s.SystemID + ":" + s.Password + "@" + s.Addr
}

// maskSMSCItem masks the password of [NAME=]smpp://ID:PASSWORD@HOST:PORT.
func maskSMSCItem(v string) string {
	if eq, scheme := strings.IndexByte(v, '='), strings.Index(v, "://"); eq >= 0 && (scheme < 0 || eq < scheme) {
		return v[:eq+1] + maskSMSC(v[eq+1:])
	}
	return maskSMSC(v)
}

// parseSMSCOption reads NAME:KEY=VALUE,... with the keys bind, window,
// tps, weight and accounts; the name is checked against --smsc by Load.
func parseSMSCOption(v string) (SMSCOption, error) {
	name, kvs, ok := strings.Cut(v, ":")
	if !ok || !smscName.MatchString(name) || kvs == "" {
		return SMSCOption{}, fmt.Errorf("%q: want NAME:KEY=VALUE,... (keys bind, window, tps, weight, accounts)", v)
	}
	o := SMSCOption{Name: name}
	var errs []error
	for _, kv := range strings.Split(kvs, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(kv), "=")
		bad := func(want string) { errs = append(errs, fmt.Errorf("%s: %s=%q: want %s", name, k, val, want)) }
		switch k {
		case "bind":
			if b := SMSCBind(val); b == BindTransceiver || b == BindTransmitter {
				o.Bind = b
			} else {
				bad("transceiver or transmitter")
			}
		case "window":
			if n, err := strconv.Atoi(val); err == nil && n >= 1 && n <= 65535 {
				o.Window = n
			} else {
				bad("1 to 65535 requests in flight")
			}
		case "tps":
			if f, err := strconv.ParseFloat(val, 64); err == nil && f >= 0 && !math.IsInf(f, 0) {
				o.TPS = f
			} else {
				bad("submit_sm a second, 0 (no limit) or more")
			}
		case "weight":
			if n, err := strconv.Atoi(val); err == nil && n >= 0 && n <= 10000 {
				o.Weight = &n
			} else {
				bad("0 (standby) to 10000")
			}
		case "accounts":
			o.Accounts = nil
			for _, a := range strings.Split(val, "+") {
				if !clientName.MatchString(a) {
					bad("account names (SMPP system_id, API client) joined by +")
					break
				}
				o.Accounts = append(o.Accounts, a)
			}
		default:
			errs = append(errs, fmt.Errorf("%s: unknown key %q: want bind, window, tps, weight or accounts", name, k))
		}
	}
	return o, errors.Join(errs...)
}

func formatSMSCOption(o SMSCOption) string {
	var kv []string
	if o.Bind != "" {
		kv = append(kv, "bind="+string(o.Bind))
	}
	if o.Window > 0 {
		kv = append(kv, "window="+strconv.Itoa(o.Window))
	}
	if o.TPS > 0 {
		kv = append(kv, "tps="+strconv.FormatFloat(o.TPS, 'g', -1, 64))
	}
	if o.Weight != nil {
		kv = append(kv, "weight="+strconv.Itoa(*o.Weight))
	}
	if len(o.Accounts) > 0 {
		kv = append(kv, "accounts="+strings.Join(o.Accounts, "+"))
	}
	return o.Name + ":" + strings.Join(kv, ",")
}

// resolveSMSCs checks the SMSCs' names and folds each --smsc-option into
// its SMSC over the defaults; every problem is one error.
func (c *Config) resolveSMSCs() []error {
	var errs []error
	seen := map[string]int{}
	for i := range c.SMSCs {
		s := &c.SMSCs[i]
		if _, dup := seen[s.Name]; dup {
			why := ""
			if s.Name == DefaultSMSC {
				why = " (name each of several: NAME=smpp://…)"
			}
			errs = append(errs, fmt.Errorf("--smsc: two SMSCs are named %s%s", s.Name, why))
			continue
		}
		seen[s.Name] = i
		s.Bind, s.Window, s.TPS, s.Weight, s.Accounts = c.SMSCBind, c.SMPPWindow, 0, 1, nil
	}
	for _, o := range c.SMSCOptions {
		i, ok := seen[o.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("--smsc-option %s: no --smsc is named %s", o.Name, o.Name))
			continue
		}
		s := &c.SMSCs[i]
		if o.Bind != "" {
			s.Bind = o.Bind
		}
		if o.Window > 0 {
			s.Window = o.Window
		}
		if o.TPS > 0 {
			s.TPS = o.TPS
		}
		if o.Weight != nil {
			s.Weight = *o.Weight
		}
		for _, a := range o.Accounts {
			if !slices.Contains(s.Accounts, a) {
				s.Accounts = append(s.Accounts, a)
			}
		}
	}
	for _, n := range c.SMSRoute.SMSCs {
		if _, ok := seen[n]; !ok {
			errs = append(errs, fmt.Errorf("--sms-route %s: no --smsc is named %s", c.SMSRoute, n))
		}
	}
	return errs
}

// parseSMSCNames reads NAME|NAME... of a route target smsc:NAMES.
func parseSMSCNames(s string) ([]string, error) {
	var out []string
	for _, n := range strings.Split(s, "|") {
		if !smscName.MatchString(n) {
			return nil, fmt.Errorf("SMSC name %q: want 1 to 32 letters, digits, '.', '_' or '-'", n)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}
