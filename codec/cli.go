package codec

import (
	"encoding/json"
	"fmt"
	"io"
)

const cliUsage = `usage:
  bridge codec stats DIR                 encode every file of DIR (file-name order = session order) in both modes, print JSON
  bridge codec encode [--stateful] < msg > frame
  bridge codec decode [--stateful] < frame > msg`

// RunCLI is `bridge codec ...`: args after "codec". It returns the exit
// code: 0 success, 1 failure (including any failed round trip), 2 usage.
func RunCLI(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, cliUsage)
		return 2
	}
	switch args[0] {
	case "stats":
		if len(args) != 2 {
			fmt.Fprintln(stderr, cliUsage)
			return 2
		}
		rep, err := Stats(args[1])
		if err != nil {
			fmt.Fprintln(stderr, "bridge codec stats:", err)
			return 1
		}
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(stderr, "bridge codec stats:", err)
			return 1
		}
		if !rep.RoundtripOK {
			fmt.Fprintln(stderr, "bridge codec stats: round trip failed")
			return 1
		}
		return 0
	case "encode", "decode":
		stateful := false
		for _, a := range args[1:] {
			switch a {
			case "--stateful", "-stateful":
				stateful = true
			case "-h", "--help", "-help":
				fmt.Fprintln(stdout, cliUsage)
				return 0
			default:
				fmt.Fprintf(stderr, "bridge codec %s: unknown argument %q\n%s\n", args[0], a, cliUsage)
				return 2
			}
		}
		in, err := io.ReadAll(io.LimitReader(stdin, 2*MaxMessageSize+1))
		if err != nil {
			fmt.Fprintf(stderr, "bridge codec %s: read stdin: %v\n", args[0], err)
			return 1
		}
		var out []byte
		if args[0] == "encode" {
			out, err = NewEncoder(stateful).Encode(nil, in)
		} else {
			out, err = NewDecoder(stateful).Decode(nil, in)
		}
		if err != nil {
			fmt.Fprintf(stderr, "bridge codec %s: %v\n", args[0], err)
			return 1
		}
		if _, err := stdout.Write(out); err != nil {
			fmt.Fprintf(stderr, "bridge codec %s: write stdout: %v\n", args[0], err)
			return 1
		}
		return 0
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, cliUsage)
		return 0
	}
	fmt.Fprintf(stderr, "bridge codec: unknown subcommand %q\n%s\n", args[0], cliUsage)
	return 2
}
