package main

import (
	"io"

	"github.com/smsbridge/bridge/codec"
)

// runCodec implements `bridge codec stats DIR` and
// `bridge codec encode|decode [--stateful]` (one message on stdin, one
// frame on stdout, or back). Exit codes: 0 ok, 1 failure, 2 usage. The
// logic lives in codec.RunCLI so that it is tested with the codec.
func runCodec(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return codec.RunCLI(args, stdin, stdout, stderr)
}
