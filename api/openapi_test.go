package api

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// TestOpenAPIMatchesServer: every route the server handles is in the
// document with the same methods, and every documented operation is really
// answered (not a 404 "no such endpoint" nor a 405).
func TestOpenAPIMatchesServer(t *testing.T) {
	e := startEnv(t)
	code, body, _ := e.doTok(t, "", "GET", "/v1/openapi.json", "", "")
	if code != 200 {
		t.Fatalf("openapi.json: %d", code)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("not an OpenAPI 3 document: %v", err)
	}
	var documented []string
	for p, ops := range doc.Paths {
		for m := range ops {
			documented = append(documented, strings.ToUpper(m)+" "+p)
		}
	}
	served := New(Config{}, nil, nil).Endpoints()
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Fatalf("document and server differ\ndocumented: %v\nserved:     %v", documented, served)
	}
	fill := strings.NewReplacer("{id}", "0000000000000000", "{user}", "nobody", "{system_id}", "nobody",
		"{address}", "+8613800000001", "{site}", "shop")
	for _, ep := range served {
		m, p, _ := strings.Cut(ep, " ")
		code, body, _ := e.do(t, m, fill.Replace(p), "", "")
		if code == 405 || strings.Contains(body, "no such endpoint") {
			t.Errorf("%s documented but answered %d %s", ep, code, body)
		}
	}
}
