package api

import (
	"encoding/json"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/msg"
)

// The running log level is read and changed through the API, and every
// logger sharing the handler follows at once.
func TestLogLevelReadAndSet(t *testing.T) {
	var out testutil.SyncBuffer
	level := new(slog.LevelVar)
	log := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: level}))
	e := startEnv(t, func(c *Config, _ *msg.Stager) { c.LogLevel, c.Logger = level, log })
	other := log.With("part", "elsewhere")

	if code, body, _ := e.do(t, "GET", "/v1/admin/log-level", "", ""); code != 200 || body != `{"level":"info"}`+"\n" {
		t.Fatalf("GET: %d %s", code, body)
	}
	other.Debug("before the change")
	if code, body, _ := e.do(t, "PUT", "/v1/admin/log-level", js, `{"level":"DEBUG"}`); code != 200 || body != `{"level":"debug"}`+"\n" {
		t.Fatalf("PUT debug: %d %s", code, body)
	}
	other.Debug("after the change")
	if code, body, _ := e.do(t, "GET", "/v1/admin/log-level", "", ""); code != 200 || body != `{"level":"debug"}`+"\n" {
		t.Fatalf("GET after PUT: %d %s", code, body)
	}
	logged := out.String()
	if strings.Contains(logged, "before the change") || !strings.Contains(logged, "after the change") ||
		!strings.Contains(logged, `msg="log level set through the API" from=info to=debug`) {
		t.Fatalf("log:\n%s", logged)
	}
	for _, bad := range []string{`{"level":"verbose"}`, `{"level":""}`, `{"lvl":"debug"}`} {
		if code, body, _ := e.do(t, "PUT", "/v1/admin/log-level", js, bad); code != 400 || !strings.Contains(body, `"error"`) {
			t.Errorf("PUT %s: %d %s, want 400", bad, code, body)
		}
	}
	if level.Level() != slog.LevelDebug {
		t.Fatalf("a refused PUT changed the level to %v", level.Level())
	}
	if code, _, _ := e.doTok(t, "wrong", "PUT", "/v1/admin/log-level", js, `{"level":"error"}`); code != 401 || level.Level() != slog.LevelDebug {
		t.Fatalf("PUT with a wrong token: %d, level %v", code, level.Level())
	}
}

// Without the parts they read, the admin endpoints say so (501).
func TestAdminNotConfigured(t *testing.T) {
	e := startEnv(t)
	for _, p := range []string{"/v1/admin/binds", "/v1/admin/smsc", "/v1/admin/queues", "/v1/admin/log-level"} {
		if code, body, _ := e.do(t, "GET", p, "", ""); code != 501 || !strings.Contains(body, "not configured") {
			t.Errorf("GET %s: %d %s, want 501", p, code, body)
		}
	}
}

// The admin answers' types have exactly the fields their schemas in the
// OpenAPI document name (the answers themselves come from a running
// bridge: cmd/bridge's admin tests).
func TestAdminSchemasMatchTypes(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]any{"BindView": BindView{}, "BindList": BindList{}, "SMSCView": SMSCView{},
		"QueueCount": QueueCount{}, "QueueView": QueueView{}, "LogLevel": LogLevel{}} {
		var fields, documented []string
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			tag, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			fields = append(fields, tag)
		}
		for p := range doc.Components.Schemas[name].Properties {
			documented = append(documented, p)
		}
		slices.Sort(fields)
		slices.Sort(documented)
		if !slices.Equal(fields, documented) {
			t.Errorf("%s: fields %v, documented %v", name, fields, documented)
		}
	}
}
