package robot_test

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/smsbridge/bridge/robot"
)

// FuzzLoadKeywords: no input panics, and whatever loads makes working
// robots (every rule compiles, names are unique).
func FuzzLoadKeywords(f *testing.F) {
	f.Add([]byte(faqYAML))
	f.Add([]byte(""))
	f.Add([]byte("robots: [{name: a, rules: [{match: '(', answer: x}]}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfgs, err := robot.LoadKeywords(bytes.NewReader(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "robot: keywords: ") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		names := map[string]bool{}
		for _, c := range cfgs {
			if names[c.Name] {
				t.Fatalf("duplicate name %q loaded", c.Name)
			}
			names[c.Name] = true
			k, err := robot.NewKeyword(c, func(context.Context, string, string, string) error { return nil }, robot.Options{})
			if err != nil {
				t.Fatalf("loaded config %+v does not start: %v", c, err)
			}
			k.Close(context.Background())
		}
	})
}

// FuzzVerify: no input panics; Verify accepts only the signature Sign makes
// (hex in any case) for a timestamp within the skew; and Sign's own output
// for a current timestamp always verifies.
func FuzzVerify(f *testing.F) {
	secret := []byte("s3cret")
	now := time.Unix(1700000000, 0)
	f.Add("1700000000", robot.Sign(secret, "1700000000", []byte(`{"id":"m1"}`)), []byte(`{"id":"m1"}`))
	f.Add("", "", []byte{})
	f.Fuzz(func(t *testing.T, ts, sig string, body []byte) {
		err := robot.Verify(secret, ts, sig, body, now, time.Minute)
		if err == nil {
			if !strings.EqualFold(sig, robot.Sign(secret, ts, body)) || !strings.HasPrefix(sig, "sha256=") {
				t.Fatalf("accepted a signature Sign does not make: ts %q sig %q", ts, sig)
			}
			sec, perr := strconv.ParseInt(ts, 10, 64)
			if perr != nil || sec < now.Unix()-60 || sec > now.Unix()+60 {
				t.Fatalf("accepted timestamp %q", ts)
			}
		}
		good := robot.Sign(secret, "1700000000", body)
		if err := robot.Verify(secret, "1700000000", good, body, now, time.Minute); err != nil {
			t.Fatalf("own signature refused: %v", err)
		}
	})
}

// FuzzParseAnswers: no input panics, and what comes out respects the
// bounds: at most MaxAnswers non-empty valid UTF-8 answers of at most
// MaxAnswerBytes each.
func FuzzParseAnswers(f *testing.F) {
	f.Add([]byte(`{"text":"hi"}`))
	f.Add([]byte(`{"answers":["a","b"]}`))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, body []byte) {
		answers, dropped, err := robot.ParseAnswers(body)
		if err != nil {
			if answers != nil || dropped != 0 {
				t.Fatalf("error %v with answers %q dropped %d", err, answers, dropped)
			}
			return
		}
		if len(answers) > robot.MaxAnswers || dropped < 0 || (dropped > 0 && len(answers) != robot.MaxAnswers) {
			t.Fatalf("%d answers, %d dropped", len(answers), dropped)
		}
		for _, a := range answers {
			if strings.TrimSpace(a) == "" || len(a) > robot.MaxAnswerBytes || !utf8.ValidString(a) {
				t.Fatalf("answer %q", a)
			}
		}
	})
}
