package robot

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"gopkg.in/yaml.v3"
)

// maxKeywordFile bounds a keyword file; a larger one is a mistake, not rules.
const maxKeywordFile = 1 << 20

// keywordFile is the YAML document LoadKeywords reads.
type keywordFile struct {
	Robots []KeywordConfig `yaml:"robots"`
}

// LoadKeywords reads keyword robots from YAML:
//
//	robots:
//	  - name: faq
//	    rules:
//	      - match: "(?i)\\bopening hours\\b"   # Go regexp
//	        answer: "We are open 9-18, Mon-Fri."
//
// Unknown keys, a second document, duplicate names, empty or over-long
// answers and bad regexps are errors naming the robot, the rule index and
// the line. An empty document has no robots.
func LoadKeywords(r io.Reader) ([]KeywordConfig, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxKeywordFile+1))
	if err != nil {
		return nil, fmt.Errorf("robot: keywords: %w", err)
	}
	if len(data) > maxKeywordFile {
		return nil, fmt.Errorf("robot: keywords: file larger than %d bytes", maxKeywordFile)
	}
	var f keywordFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("robot: keywords: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("robot: keywords: want one YAML document")
	}
	seen := make(map[string]int, len(f.Robots))
	for i, c := range f.Robots {
		if _, err := c.compile(); err != nil {
			var re *ruleError
			if errors.As(err, &re) {
				return nil, fmt.Errorf("robot: keywords: line %d: %w", ruleLine(data, i, re.index), err)
			}
			return nil, fmt.Errorf("robot: keywords: robots[%d]: %w", i, err)
		}
		if j, dup := seen[c.Name]; dup {
			return nil, fmt.Errorf("robot: keywords: robots[%d]: name %q already used by robots[%d]", i, c.Name, j)
		}
		seen[c.Name] = i
	}
	return f.Robots, nil
}

// ruleLine finds the line of robots[robot].rules[rule] in data (0 if the
// shape is not the expected one), for error messages only.
func ruleLine(data []byte, robot, rule int) int {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return 0
	}
	n := mapValue(doc.Content[0], "robots")
	if n == nil || n.Kind != yaml.SequenceNode || robot >= len(n.Content) {
		return 0
	}
	n = mapValue(n.Content[robot], "rules")
	if n == nil || n.Kind != yaml.SequenceNode || rule >= len(n.Content) {
		return 0
	}
	return n.Content[rule].Line
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
