package main

import (
	"io"

	"github.com/smsbridge/bridge/codec"
	"github.com/smsbridge/bridge/codec/corpus"
)

// runCodec implements `bridge codec stats [DIR]` and
// `bridge codec encode|decode [--stateful]` (one message on stdin, one
// frame on stdout, or back). Exit codes: 0 ok, 1 failure, 2 usage. The
// logic lives in codec.RunCLI so that it is tested with the codec; the
// evaluation corpus comes from codec/corpus, which the codec itself does
// not import.
func runCodec(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return codec.RunCLIFamilies(args, stdin, stdout, stderr, evaluationFamilies)
}

func evaluationFamilies() []codec.FamilySessions {
	var out []codec.FamilySessions
	for _, s := range corpus.Evaluation() {
		out = append(out, codec.FamilySessions{Name: s.Name, Protocol: s.Kind.String(), Tuned: s.Tuned, Extra: s.Extra, Sessions: s.Sessions})
	}
	return out
}
