package provision

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// FuzzParseCSV: any input parses or is refused with ErrInvalid, never
// panics, and rows carry positive, increasing line numbers.
func FuzzParseCSV(f *testing.F) {
	f.Add([]byte("user,password,msisdn,display\nalice,pw,13800000001,Alice\n"))
	f.Add([]byte("bob,pw\n# c\n\"q,uoted\",\"p\"\"w\"\n"))
	f.Add([]byte("a,\"open\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, err := ParseCSV(strings.NewReader(string(data)))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		last := 0
		for _, r := range rows {
			if r.Line <= last {
				t.Fatalf("line numbers not increasing: %d after %d", r.Line, last)
			}
			last = r.Line
		}
		s, err := Open(Options{Domain: "im.example", CountryCode: "86", HashIterations: 1})
		if err != nil {
			t.Fatal(err)
		}
		n, err := s.ImportCSV(context.Background(), strings.NewReader(string(data)))
		if err != nil && n != 0 {
			t.Fatalf("refused import wrote %d users", n)
		}
		if err == nil && len(s.Users()) != n {
			t.Fatalf("imported %d, have %d", n, len(s.Users()))
		}
	})
}
