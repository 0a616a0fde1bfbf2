// Package config is the bridge's one source of truth for settings: every
// option is declared once (options.go) with its default and help, and may be
// set by a YAML file (--config), by environment (BRIDGE_<FLAG_IN_UPPER_SNAKE>)
// and by flags, in that order of increasing precedence. Load parses every
// value into its type and reports every problem at once, so a Config it
// returns is ready to build a bridge.
package config
