package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/smsbridge/bridge/config"
	"github.com/smsbridge/bridge/directory"
	"github.com/smsbridge/bridge/store"
)

// runUsers is `bridge users import FILE.csv [flags]`: it writes users
// (user,password,msisdn,display) into the store under --data-dir, with
// --sip-domain as the digest realm and --country-code for national numbers,
// all read like `bridge serve` reads them (flag > env > --config file). The
// store is locked by a running bridge: stop it first, or POST the same CSV
// to /v1/users with Content-Type text/csv instead.
func runUsers(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) < 2 || args[0] != "import" {
		fmt.Fprintln(stderr, "usage: bridge users import FILE.csv|- [--data-dir DIR] [--sip-domain D] [--country-code CC] [--config FILE]")
		return 2
	}
	file, rest := args[1], args[2:]
	cfg, err := config.Load("bridge users import", rest, os.Getenv, stderr)
	if err != nil {
		return usageError(stderr, err)
	}
	var in io.Reader = stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			fmt.Fprintln(stderr, "bridge users import:", err)
			return 1
		}
		defer f.Close()
		in = f
	}
	db, err := store.Open(store.Options{Dir: cfg.DataDir})
	if err != nil {
		fmt.Fprintf(stderr, "bridge users import: open store %q (is the bridge running? then POST the CSV to /v1/users): %v\n", cfg.DataDir, err)
		return 1
	}
	defer db.Close()
	dir, err := directory.Open(directory.Options{KV: db, Domain: cfg.SIPDomain, CountryCode: cfg.CountryCode, Static: cfg.Users()})
	if err != nil {
		fmt.Fprintln(stderr, "bridge users import:", err)
		return 1
	}
	n, err := dir.ImportCSV(context.Background(), in)
	if err != nil {
		fmt.Fprintf(stderr, "bridge users import %s: %v\n", file, err)
		return 1
	}
	fmt.Fprintf(stdout, "imported %d users into %s (domain %s)\n", n, cfg.DataDir, cfg.SIPDomain)
	return 0
}
