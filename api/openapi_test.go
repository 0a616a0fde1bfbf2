package api

import (
	"encoding/json"
	"fmt"
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

// schemaLacks reports the parts of v (a decoded JSON answer) that the
// document's schema does not describe: a field not among an object's
// properties where additionalProperties is false, or a value of another
// JSON type. $ref and array items are followed; enums are checked.
func schemaLacks(schemas map[string]any, schema map[string]any, v any, at string) []string {
	if ref, ok := schema["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		s, ok := schemas[name].(map[string]any)
		if !ok {
			return []string{at + ": no schema " + ref}
		}
		return schemaLacks(schemas, s, v, at)
	}
	var out []string
	if enum, ok := schema["enum"].([]any); ok && !slices.Contains(enum, v) {
		out = append(out, fmt.Sprintf("%s: %v is not one of %v", at, v, enum))
	}
	typ, _ := schema["type"].(string)
	switch x := v.(type) {
	case map[string]any:
		if typ != "object" {
			return append(out, at+": an object where the document says "+typ)
		}
		props, _ := schema["properties"].(map[string]any)
		for k, fv := range x {
			ps, ok := props[k].(map[string]any)
			if !ok {
				if schema["additionalProperties"] == false {
					out = append(out, at+"."+k+": not in the document")
				}
				continue
			}
			out = append(out, schemaLacks(schemas, ps, fv, at+"."+k)...)
		}
	case []any:
		if typ != "array" {
			return append(out, at+": an array where the document says "+typ)
		}
		items, _ := schema["items"].(map[string]any)
		for i, e := range x {
			out = append(out, schemaLacks(schemas, items, e, fmt.Sprintf("%s[%d]", at, i))...)
		}
	case string:
		if typ != "string" {
			out = append(out, at+": a string where the document says "+typ)
		}
	case bool:
		if typ != "boolean" {
			out = append(out, at+": a boolean where the document says "+typ)
		}
	case float64:
		if typ != "integer" && typ != "number" {
			out = append(out, at+": a number where the document says "+typ)
		}
	}
	return out
}

// TestOpenAPISchemasMatchAnswers: the answers of the user, address,
// contact and login endpoints have exactly the fields the document's
// schemas name (the 200/201 schema of each operation).
func TestOpenAPISchemasMatchAnswers(t *testing.T) {
	var doc struct {
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	answerSchema := func(pattern, method string, code int) map[string]any {
		op := doc.Paths[pattern][strings.ToLower(method)]
		resp, _ := op["responses"].(map[string]any)[fmt.Sprint(code)].(map[string]any)
		content, _ := resp["content"].(map[string]any)
		js, _ := content["application/json"].(map[string]any)
		s, _ := js["schema"].(map[string]any)
		if s == nil {
			t.Fatalf("%s %s documents no JSON answer for %d", method, pattern, code)
		}
		return s
	}
	e := startEnv(t)
	if _, err := e.dir.CreateUser(t.Context(), userSpec("bob", "pw", "Bob")); err != nil {
		t.Fatal(err)
	}
	// bob is online, so contact answers carry "where".
	if code, body, _ := e.do(t, "PUT", "/v1/presence/sip:bob@im.example", js, `{"contact":"sip:bob@10.0.0.2","expires_in":60}`); code != 200 {
		t.Fatalf("presence: %d %s", code, body)
	}
	steps := []struct {
		method, path, pattern, body string
		want                        int
	}{
		{"POST", "/v1/users", "/v1/users", `{"name":"alice","password":"pw","msisdn":"13800000001","display":"Alice"}`, 201},
		{"GET", "/v1/users/alice", "/v1/users/{user}", "", 200},
		{"GET", "/v1/users", "/v1/users", "", 200},
		{"POST", "/v1/users/alice/addresses", "/v1/users/{user}/addresses", `{"address":"partner:shop:Alice"}`, 200},
		{"DELETE", "/v1/users/alice/addresses/partner:shop:Alice", "/v1/users/{user}/addresses/{address}", "", 200},
		{"POST", "/v1/users/alice/contacts", "/v1/users/{user}/contacts", `{"display":"Bob","addresses":["sip:bob@im.example"]}`, 201},
		{"GET", "/v1/users/alice/contacts", "/v1/users/{user}/contacts", "", 200},
		{"GET", "/v1/users/alice/contacts/c1", "/v1/users/{user}/contacts/{id}", "", 200},
		{"PUT", "/v1/users/alice/contacts/c1", "/v1/users/{user}/contacts/{id}", `{"addresses":["sip:bob@im.example"]}`, 200},
		{"POST", "/v1/users/alice/contacts/c1/addresses", "/v1/users/{user}/contacts/{id}/addresses", `{"address":"+8613800000002"}`, 200},
		{"DELETE", "/v1/users/alice/contacts/c1/addresses/+8613800000002", "/v1/users/{user}/contacts/{id}/addresses/{address}", "", 200},
		{"POST", "/v1/login", "/v1/login", `{"user":"alice#shop","password":"wonderland","device":"phone"}`, 200},
	}
	for _, s := range steps {
		code, body, _ := e.do(t, s.method, s.path, js, s.body)
		if code != s.want {
			t.Fatalf("%s %s: %d %s, want %d", s.method, s.path, code, body, s.want)
		}
		var v any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatal(err)
		}
		for _, p := range schemaLacks(doc.Components.Schemas, answerSchema(s.pattern, s.method, code), v, "answer") {
			t.Errorf("%s %s: %s in %s", s.method, s.path, p, body)
		}
	}
}
