package main

import (
	"io"

	"github.com/smsbridge/bridge/login"
)

// runSSO implements `bridge sso verify --key-id K --key HEX [--service S]
// [--leeway D] [--seen FILE] [TICKET]` (ticket on stdin when omitted):
// prints the claims JSON and exits 0, or the reason and exits 1 (2 on usage
// errors). --seen FILE remembers accepted tickets until they expire, safely
// shared by concurrent verifiers, so a second verify of the same ticket
// fails with "replayed"; without it (the default) there is no replay check.
// The logic lives in login.RunSSOCLI so it is tested with the login package.
func runSSO(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return login.RunSSOCLI(args, stdin, stdout, stderr)
}
