package robot_test

import (
	"strings"
	"testing"

	"github.com/smsbridge/bridge/robot"
)

const faqYAML = `robots:
  - name: faq
    rules:
      - match: "(?i)\\bopening hours\\b"   # Go regexp
        answer: "We are open 9-18, Mon-Fri."
      - match: "(?i)^price\\b"
        answer: "See https://example.com/prices"
  - name: 客服
    rules:
      - match: 营业时间
        answer: 9-18
`

func TestLoadKeywords(t *testing.T) {
	got, err := robot.LoadKeywords(strings.NewReader(faqYAML))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "faq" || len(got[0].Rules) != 2 || got[1].Name != "客服" {
		t.Fatalf("loaded %+v", got)
	}
	if r := got[0].Rules[0]; r.Match != `(?i)\bopening hours\b` || r.Answer != "We are open 9-18, Mon-Fri." {
		t.Fatalf("rule 0 = %+v", r)
	}
	for _, empty := range []string{"", "# nothing yet\n", "robots: []\n"} {
		got, err := robot.LoadKeywords(strings.NewReader(empty))
		if err != nil || len(got) != 0 {
			t.Errorf("%q: %v %v", empty, got, err)
		}
	}
}

// Each mistake is refused with an error that says where it is.
func TestLoadKeywordsErrors(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"bad regexp": {`robots:
  - name: faq
    rules:
      - match: "ok"
        answer: "fine"
      - match: "(unclosed"
        answer: "never"
`, `line 6: robot "faq": rules[1]: bad match`},
		"empty match":    {"robots:\n  - name: a\n    rules:\n      - answer: x\n", `line 4: robot "a": rules[0]: empty match`},
		"empty answer":   {"robots:\n  - name: a\n    rules:\n      - match: x\n        answer: '  '\n", `robot "a": rules[0]: empty answer`},
		"long answer":    {"robots:\n  - name: a\n    rules:\n      - match: x\n        answer: " + strings.Repeat("x", robot.MaxAnswerBytes+1) + "\n", `rules[0]: answer longer than 4096 bytes`},
		"no rules":       {"robots:\n  - name: a\n", `robots[0]: robot "a": no rules`},
		"no name":        {"robots:\n  - rules:\n      - {match: x, answer: y}\n", `robots[0]: robot name is empty`},
		"space in name":  {"robots:\n  - name: a b\n    rules:\n      - {match: x, answer: y}\n", `robots[0]: robot name "a b"`},
		"duplicate name": {"robots:\n  - name: a\n    rules: [{match: x, answer: y}]\n  - name: a\n    rules: [{match: x, answer: y}]\n", `robots[1]: name "a" already used by robots[0]`},
		"unknown key":    {"robots:\n  - name: a\n    rule: []\n", `field rule not found`},
		"typo in rule":   {"robots:\n  - name: a\n    rules: [{match: x, anwser: y}]\n", `field anwser not found`},
		"not a list":     {"robots: faq\n", `cannot unmarshal`},
		"two documents":  {"robots: []\n---\nrobots: []\n", `want one YAML document`},
		"not yaml":       {"robots: [\n", `robot: keywords:`},
	} {
		_, err := robot.LoadKeywords(strings.NewReader(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to contain %q", name, err, tc.want)
		}
	}
	big := strings.NewReader("# " + strings.Repeat("x", 1<<20) + "\n")
	if _, err := robot.LoadKeywords(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("1 MiB file: %v", err)
	}
}
