package codec

import (
	"encoding/json"
	"fmt"
	"io"
)

const cliUsage = `usage:
  bridge codec stats                     the per-family table: every corpus family (tuned and held-out) and a long stream, with the targets
  bridge codec stats DIR                 encode every file of DIR (file-name order = session order) in both modes, print JSON
  bridge codec encode [--stateful] < msg > frame
  bridge codec decode [--stateful] < frame > msg`

// RunCLI is `bridge codec ...`: args after "codec". It returns the exit
// code: 0 success, 1 failure (including any failed round trip), 2 usage.
// Without families, `stats` needs a DIR.
func RunCLI(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return RunCLIFamilies(args, stdin, stdout, stderr, nil)
}

// RunCLIFamilies is RunCLI with the evaluation corpus that `stats`
// without a DIR measures (the corpus package, which the codec does not
// import).
func RunCLIFamilies(args []string, stdin io.Reader, stdout, stderr io.Writer, families func() []FamilySessions) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, cliUsage)
		return 2
	}
	switch args[0] {
	case "stats":
		if len(args) == 1 && families != nil {
			return familyStats(families(), stdout, stderr)
		}
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

// familyStats prints the family table, the targets and the speed on the
// held-out messages.
func familyStats(fams []FamilySessions, stdout, stderr io.Writer) int {
	var rows []FamilyRow
	for _, f := range fams {
		rows = append(rows, MeasureFamily(f, true))
	}
	if err := WriteFamilyTable(stdout, rows); err != nil {
		fmt.Fprintln(stderr, "bridge codec stats:", err)
		return 1
	}
	fmt.Fprintln(stdout)
	// The targets are reported, not an exit status: the table is a measurement.
	lines, _ := CheckTargets(rows)
	for _, l := range lines {
		fmt.Fprintln(stdout, l)
	}
	for _, p := range []string{"SIP-C", "SIP"} {
		var msgs [][]byte
		for _, f := range fams {
			if f.Protocol == p && !f.Tuned && !f.Extra {
				for _, s := range f.Sessions {
					msgs = append(msgs, s...)
				}
			}
		}
		if len(msgs) == 0 {
			continue
		}
		es, ds, ef, df := timeMessages(msgs)
		fmt.Fprintf(stdout, "%s held-out, ns per message: encode %.0f / decode %.0f stateless, encode %.0f / decode %.0f stateful\n",
			p, es, ds, ef, df)
	}
	for _, r := range rows {
		if !r.RoundtripOK {
			fmt.Fprintln(stderr, "bridge codec stats: round trip failed")
			return 1
		}
	}
	return 0
}
