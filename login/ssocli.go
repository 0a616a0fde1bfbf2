package login

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/smsbridge/bridge/login/ssoticket"
)

// RunSSOCLI implements `bridge sso verify --key-id K --key HEX [--service S]
// [--leeway D] [--seen FILE] [TICKET]`: with no TICKET argument the ticket
// is read from the first line of stdin. It prints the claims as JSON and
// returns 0, or prints the reason and returns 1; usage errors return 2.
// With --seen, FILE (a SeenFile) remembers every accepted ticket until it
// expires and a second verify of the same ticket, by this process or
// another, fails with "replayed"; without it (the default) there is no
// replay check.
func RunSSOCLI(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	const usage = "usage: bridge sso verify --key-id K --key HEX64 [--service S] [--leeway 0s] [--seen FILE] [TICKET]\n"
	if len(args) == 0 || args[0] != "verify" {
		fmt.Fprint(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet("sso verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyID := fs.String("key-id", "", "key id the ticket header must name")
	keyHex := fs.String("key", "", "the service's AES-256 key, 64 hex digits")
	service := fs.String("service", "", "required service id (empty = any)")
	leeway := fs.Duration("leeway", 0, "tolerated clock skew")
	seen := fs.String("seen", "", "file remembering accepted ticket ids until they expire, shared safely by concurrent verifiers;\n"+
		"a ticket already in it fails as replayed (default none: no replay check, a ticket verifies until it expires)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *keyID == "" || *keyHex == "" || fs.NArg() > 1 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	key, err := ParseKey(*keyHex)
	if err != nil {
		fmt.Fprintf(stderr, "sso verify: --key: %v\n", err)
		return 2
	}
	ticket := fs.Arg(0)
	if ticket == "" {
		line, err := bufio.NewReader(io.LimitReader(stdin, 8192)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			fmt.Fprintf(stderr, "sso verify: read ticket: %v\n", err)
			return 1
		}
		ticket = strings.TrimSpace(line)
	}
	v := ssoticket.Verifier{Keys: map[string][32]byte{*keyID: key}, Service: *service, Leeway: *leeway, Now: time.Now}
	if *seen != "" {
		v.Replay = SeenFile{Path: *seen, Now: time.Now}
	}
	c, err := v.Verify(ticket)
	if err != nil {
		fmt.Fprintf(stderr, "sso verify: %v\n", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(c); err != nil {
		fmt.Fprintf(stderr, "sso verify: %v\n", err)
		return 1
	}
	return 0
}

// ParseKey decodes a 32-byte key from 64 hex digits.
func ParseKey(s string) ([32]byte, error) {
	var k [32]byte
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return k, fmt.Errorf("key: %w", err)
	}
	if len(b) != 32 {
		return k, fmt.Errorf("key: %d bytes, want 32", len(b))
	}
	copy(k[:], b)
	return k, nil
}
