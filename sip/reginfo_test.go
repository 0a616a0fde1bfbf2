package sip

import (
	"context"
	"encoding/xml"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

// kamailioReginfo is what Kamailio 5.6 pua_reginfo PUBLISHes (captured from
// a real run), with the AOR's domain and contacts substituted.
func kamailioReginfo(aor, regState string, contacts ...string) string {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0"?>` + "\n" +
		`<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="full">` + "\n" +
		`  <registration aor="` + aor + `" id="0x7f25cdad5068" state="` + regState + `">` + "\n")
	for i := 0; i+2 < len(contacts); i += 3 {
		uri, state, exp := contacts[i], contacts[i+1], contacts[i+2]
		event := "registered"
		if state == "terminated" {
			event = "unregistered"
		}
		b.WriteString(`    <contact id="0x7f25cdad5188" state="` + state + `" event="` + event + `" expires="` + exp +
			`" callid="abc" cseq="121" received="" path="" user_agent="n/a">` + "\n" +
			`      <uri>` + uri + `</uri>` + "\n" +
			`    </contact>` + "\n")
	}
	b.WriteString("  </registration>\n</reginfo>\n")
	return b.String()
}

func TestParseReginfo(t *testing.T) {
	doc, err := ParseReginfo([]byte(kamailioReginfo("sip:8613800000001@example.test", "active",
		"sip:8613800000001@127.0.0.1:6001", "terminated", "119",
		"sip:8613800000001@127.0.0.1:6002", "active", "120")))
	if err != nil {
		t.Fatalf("pua_reginfo document: %v", err)
	}
	want := &Reginfo{Version: 0, State: "full", Registrations: []RegRegistration{{
		AOR: "sip:8613800000001@example.test", ID: "0x7f25cdad5068", State: "active",
		Contacts: []RegContact{
			{ID: "0x7f25cdad5188", State: "terminated", Event: "unregistered", Expires: 119, URI: "sip:8613800000001@127.0.0.1:6001"},
			{ID: "0x7f25cdad5188", State: "active", Event: "registered", Expires: 120, URI: "sip:8613800000001@127.0.0.1:6002"},
		},
	}}}
	if !reflect.DeepEqual(doc, want) {
		t.Fatalf("parsed\n%+v\nwant\n%+v", doc, want)
	}

	// RFC 3680 §5.4 example style: a namespace prefix, no expires, partial.
	doc, err = ParseReginfo([]byte(`<?xml version="1.0" encoding="UTF-8"?>
<r:reginfo xmlns:r="urn:ietf:params:xml:ns:reginfo" version="7" state="partial">
 <r:registration aor="sip:user@example.com" id="a7" state="init">
  <r:contact id="76" state="active" event="created"><r:uri>sip:user@pc887.example.com</r:uri></r:contact>
 </r:registration>
</r:reginfo>`))
	if err != nil {
		t.Fatalf("prefixed document: %v", err)
	}
	if doc.Version != 7 || doc.State != "partial" || len(doc.Registrations) != 1 ||
		doc.Registrations[0].Contacts[0].Expires != -1 || doc.Registrations[0].Contacts[0].URI != "sip:user@pc887.example.com" {
		t.Fatalf("prefixed document parsed as %+v", doc)
	}

	bad := map[string]string{
		"empty":          ``,
		"not xml":        `hello`,
		"wrong root":     `<presence state="full"/>`,
		"no state":       `<reginfo version="0"/>`,
		"bad state":      `<reginfo state="most"/>`,
		"bad version":    `<reginfo state="full" version="x"/>`,
		"no aor":         `<reginfo state="full"><registration state="active"/></reginfo>`,
		"bad reg state":  `<reginfo state="full"><registration aor="sip:a@b" state="on"/></reginfo>`,
		"bad ct state":   `<reginfo state="full"><registration aor="sip:a@b" state="active"><contact state="x"><uri>sip:a@c</uri></contact></registration></reginfo>`,
		"no uri":         `<reginfo state="full"><registration aor="sip:a@b" state="active"><contact state="active"/></registration></reginfo>`,
		"bad expires":    `<reginfo state="full"><registration aor="sip:a@b" state="active"><contact state="active" expires="-1"><uri>sip:a@c</uri></contact></registration></reginfo>`,
		"doctype":        `<!DOCTYPE reginfo [<!ENTITY x "y">]><reginfo state="full"/>`,
		"text first":     `junk<reginfo state="full"/>`,
		"latin1 charset": `<?xml version="1.0" encoding="ISO-8859-1"?><reginfo state="full"/>`,
		"unclosed":       `<reginfo state="full"><registration aor="sip:a@b" state="active">`,
		"too large":      `<reginfo state="full">` + strings.Repeat(" ", maxReginfoBody) + `</reginfo>`,
		"too many regs":  `<reginfo state="full">` + strings.Repeat(`<registration aor="sip:a@b" state="active"/>`, maxReginfoRegistrations+1) + `</reginfo>`,
	}
	for name, body := range bad {
		if doc, err := ParseReginfo([]byte(body)); err == nil {
			t.Errorf("%s: accepted as %+v", name, doc)
		}
	}
}

// publishReq builds a PUBLISH (Event: reg) for user addressed to s.
func publishReq(t testing.TB, s *Server, method sip.RequestMethod, user, event, ctype, body string) *sip.Request {
	t.Helper()
	host, port := hostPort(t, s.Addr())
	req := sip.NewRequest(method, sip.Uri{Scheme: "sip", User: user, Host: testDomain})
	req.SetDestination(host + ":" + strconv.Itoa(port))
	req.AppendHeader(&sip.ToHeader{Address: aorURI(user)})
	from := &sip.FromHeader{Address: aorURI(user), Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	if event != "" {
		req.AppendHeader(sip.NewHeader("Event", event))
	}
	req.AppendHeader(sip.NewHeader("Expires", "3601"))
	if ctype != "" {
		ct := sip.ContentTypeHeader(ctype)
		req.AppendHeader(&ct)
	}
	if body != "" {
		req.SetBody([]byte(body))
	}
	return req
}

func noSubmit() msg.Stager {
	return submitFunc(func(context.Context, *msg.Message) error { return nil })
}

func contactsOf(pres *presence.Store, aor msg.Address) map[string]string {
	out := map[string]string{}
	for _, b := range pres.Bindings(aor) {
		out[b.Contact] = b.Via
	}
	return out
}

func TestReginfoPublish(t *testing.T) {
	pres, err := presence.Open(presence.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig()
	cfg.ReginfoFrom = []string{"192.0.2.1", "127.0.0.1"}
	s := startServer(t, cfg, pres, noSubmit())
	u := newTestUA(t, 200, "OK")
	const aor = msg.Address("+8613800000001")
	c1, c2 := "sip:8613800000001@127.0.0.1:6001", "sip:8613800000001@127.0.0.1:6002"

	// An MCP session of the same user must survive everything reginfo does.
	if err := pres.Register(context.Background(), presence.Binding{AOR: aor, Contact: "mcp-1", Via: "mcp", Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	before := time.Now()
	body := kamailioReginfo("sip:8613800000001@"+testDomain, "active", c1, "active", "120")
	_, res := u.do(t, publishReq(t, s, sip.PUBLISH, "8613800000001", "reg", "application/reginfo+xml", body), "", "")
	if res.StatusCode != 200 {
		t.Fatalf("PUBLISH: %d %s", res.StatusCode, res.Reason)
	}
	etag := headerValue(res, "SIP-ETag")
	if etag == "" || headerValue(res, "Expires") != "3601" {
		t.Fatalf("PUBLISH 200 has SIP-ETag %q, Expires %q", etag, headerValue(res, "Expires"))
	}
	b, ok := pres.Lookup(aor)
	if !ok || b.Contact != c1 || b.Via != "sip" {
		t.Fatalf("after PUBLISH Lookup = %+v, %v", b, ok)
	}
	if lo, hi := before.Add(119*time.Second), time.Now().Add(121*time.Second); b.Expires.Before(lo) || b.Expires.After(hi) {
		t.Fatalf("binding expires %v, want about now+120s", b.Expires)
	}

	// A second device, then the first one unregisters: full state lists both.
	body = kamailioReginfo("sip:8613800000001@"+testDomain, "active", c1, "active", "100", c2, "active", "120")
	req := publishReq(t, s, sip.PUBLISH, "8613800000001", "reg", "application/reginfo+xml", body)
	req.AppendHeader(sip.NewHeader("SIP-If-Match", etag))
	if _, res = u.do(t, req, "", ""); res.StatusCode != 200 || headerValue(res, "SIP-ETag") != etag {
		t.Fatalf("PUBLISH with If-Match: %d, etag %q", res.StatusCode, headerValue(res, "SIP-ETag"))
	}
	if got := contactsOf(pres, aor); !reflect.DeepEqual(got, map[string]string{c1: "sip", c2: "sip", "mcp-1": "mcp"}) {
		t.Fatalf("two devices: %v", got)
	}
	body = kamailioReginfo("sip:8613800000001@"+testDomain, "active", c1, "terminated", "99", c2, "active", "119")
	if _, res = u.do(t, publishReq(t, s, sip.PUBLISH, "8613800000001", "reg", "application/reginfo+xml", body), "", ""); res.StatusCode != 200 {
		t.Fatalf("PUBLISH: %d", res.StatusCode)
	}
	if got := contactsOf(pres, aor); !reflect.DeepEqual(got, map[string]string{c2: "sip", "mcp-1": "mcp"}) {
		t.Fatalf("after c1 unregistered: %v", got)
	}

	// A refresh carries no body and changes nothing.
	req = publishReq(t, s, sip.PUBLISH, "8613800000001", "reg", "", "")
	req.AppendHeader(sip.NewHeader("SIP-If-Match", etag))
	if _, res = u.do(t, req, "", ""); res.StatusCode != 200 || headerValue(res, "SIP-ETag") != etag {
		t.Fatalf("refresh: %d etag %q", res.StatusCode, headerValue(res, "SIP-ETag"))
	}
	if len(contactsOf(pres, aor)) != 2 {
		t.Fatalf("refresh changed presence: %v", contactsOf(pres, aor))
	}

	// A full document that no longer lists c2 (a publication was lost) heals.
	body = kamailioReginfo("sip:8613800000001@"+testDomain, "active")
	if _, res = u.do(t, publishReq(t, s, sip.PUBLISH, "8613800000001", "reg", "application/reginfo+xml", body), "", ""); res.StatusCode != 200 {
		t.Fatalf("PUBLISH: %d", res.StatusCode)
	}
	if got := contactsOf(pres, aor); !reflect.DeepEqual(got, map[string]string{"mcp-1": "mcp"}) {
		t.Fatalf("after full state without contacts: %v", got)
	}

	// NOTIFY (the subscriber side of the same package) works the same; a
	// terminated registration removes the contact.
	body = kamailioReginfo("sip:8613800000001@"+testDomain, "active", c2, "active", "300")
	if _, res = u.do(t, publishReq(t, s, sip.NOTIFY, "8613800000001", "reg", "application/reginfo+xml", body), "", ""); res.StatusCode != 200 {
		t.Fatalf("NOTIFY: %d", res.StatusCode)
	}
	if got := contactsOf(pres, aor); got[c2] != "sip" {
		t.Fatalf("after NOTIFY: %v", got)
	}
	body = kamailioReginfo("sip:8613800000001@"+testDomain, "terminated", c2, "terminated", "0")
	if _, res = u.do(t, publishReq(t, s, sip.NOTIFY, "8613800000001", "reg", "application/reginfo+xml", body), "", ""); res.StatusCode != 200 {
		t.Fatalf("NOTIFY: %d", res.StatusCode)
	}
	if got := contactsOf(pres, aor); !reflect.DeepEqual(got, map[string]string{"mcp-1": "mcp"}) {
		t.Fatalf("after terminated registration: %v", got)
	}

	// Another domain's users are not ours to track; a non-numeric user is
	// an IM-only address.
	body = kamailioReginfo("sip:8613800000009@elsewhere.test", "active", c1, "active", "120")
	if _, res = u.do(t, publishReq(t, s, sip.PUBLISH, "8613800000009", "reg", "application/reginfo+xml", body), "", ""); res.StatusCode != 200 {
		t.Fatalf("PUBLISH foreign: %d", res.StatusCode)
	}
	if _, ok := pres.Lookup("+8613800000009"); ok {
		t.Fatal("a foreign domain's registration became presence")
	}
	body = kamailioReginfo("sip:Carol@"+testDomain, "active", "sip:carol@127.0.0.1:6003;transport=tcp", "active", "120")
	if _, res = u.do(t, publishReq(t, s, sip.PUBLISH, "carol", "reg", "application/reginfo+xml", body), "", ""); res.StatusCode != 200 {
		t.Fatalf("PUBLISH carol: %d", res.StatusCode)
	}
	if b, ok := pres.Lookup("sip:carol@" + testDomain); !ok || b.Contact != "sip:carol@127.0.0.1:6003;transport=tcp" {
		t.Fatalf("carol: %+v %v", b, ok)
	}
}

func TestReginfoRefusals(t *testing.T) {
	body := kamailioReginfo("sip:8613800000001@"+testDomain, "active", "sip:8613800000001@127.0.0.1:6001", "active", "120")
	u := newTestUA(t, 200, "OK")
	for _, tc := range []struct {
		name        string
		from        []string
		method      sip.RequestMethod
		event, ct   string
		body        string
		code        int
		registered  bool
		checkHeader string
	}{
		{name: "no trusted source configured", method: sip.PUBLISH, event: "reg", ct: reginfoContentType, body: body, code: 403},
		{name: "source not in list", from: []string{"10.0.0.0/8", "192.0.2.7"}, method: sip.PUBLISH, event: "reg", ct: reginfoContentType, body: body, code: 403},
		{name: "source by CIDR", from: []string{"127.0.0.0/8"}, method: sip.PUBLISH, event: "reg", ct: reginfoContentType, body: body, code: 200, registered: true},
		{name: "source by host name", from: []string{"localhost"}, method: sip.PUBLISH, event: "reg", ct: reginfoContentType, body: body, code: 200, registered: true},
		{name: "other event package", from: []string{"127.0.0.1"}, method: sip.PUBLISH, event: "presence", ct: "application/pidf+xml", body: body, code: 489, checkHeader: "Allow-Events"},
		{name: "no event", from: []string{"127.0.0.1"}, method: sip.NOTIFY, ct: reginfoContentType, body: body, code: 489},
		{name: "wrong content type", from: []string{"127.0.0.1"}, method: sip.PUBLISH, event: "reg", ct: "text/plain", body: body, code: 415, checkHeader: "Accept"},
		{name: "bad body", from: []string{"127.0.0.1"}, method: sip.PUBLISH, event: "reg;id=1", ct: reginfoContentType, body: "<reginfo>", code: 400},
		{name: "refresh without If-Match", from: []string{"127.0.0.1"}, method: sip.PUBLISH, event: "reg", code: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pres, err := presence.Open(presence.Options{})
			if err != nil {
				t.Fatal(err)
			}
			cfg := baseConfig()
			cfg.ReginfoFrom = tc.from
			s := startServer(t, cfg, pres, noSubmit())
			_, res := u.do(t, publishReq(t, s, tc.method, "8613800000001", tc.event, tc.ct, tc.body), "", "")
			if int(res.StatusCode) != tc.code {
				t.Fatalf("status %d %s, want %d", res.StatusCode, res.Reason, tc.code)
			}
			if tc.checkHeader != "" && headerValue(res, tc.checkHeader) == "" {
				t.Errorf("%d without %s", res.StatusCode, tc.checkHeader)
			}
			if _, ok := pres.Lookup("+8613800000001"); ok != tc.registered {
				t.Fatalf("registered = %v, want %v", ok, tc.registered)
			}
		})
	}
}

func BenchmarkParseReginfo(b *testing.B) {
	body := []byte(kamailioReginfo("sip:8613800000001@example.test", "active",
		"sip:8613800000001@127.0.0.1:6001", "terminated", "119",
		"sip:8613800000001@127.0.0.1:6002", "active", "120"))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseReginfo(body); err != nil {
			b.Fatal(err)
		}
	}
}

// renderReginfo writes doc back as reginfo XML, for the fuzz round trip.
func renderReginfo(doc *Reginfo) []byte {
	x := xmlReginfo{Version: strconv.FormatUint(doc.Version, 10), State: doc.State}
	for _, r := range doc.Registrations {
		xr := xmlRegistration{AOR: r.AOR, ID: r.ID, State: r.State}
		for _, c := range r.Contacts {
			xc := xmlContact{ID: c.ID, State: c.State, Event: c.Event, URI: c.URI}
			if c.Expires >= 0 {
				xc.Expires = strconv.FormatInt(c.Expires, 10)
			}
			xr.Contacts = append(xr.Contacts, xc)
		}
		x.Registrations = append(x.Registrations, xr)
	}
	out, err := xml.Marshal(struct {
		XMLName xml.Name `xml:"urn:ietf:params:xml:ns:reginfo reginfo"`
		xmlReginfo
	}{xmlReginfo: x})
	if err != nil {
		panic(err)
	}
	return out
}

// FuzzParseReginfo: the parser never panics, what it accepts satisfies
// every rule it enforces, and rendering an accepted document and parsing
// it again gives the same document.
func FuzzParseReginfo(f *testing.F) {
	f.Add([]byte(kamailioReginfo("sip:8613800000001@example.test", "active", "sip:8613800000001@127.0.0.1:6001", "active", "120")))
	f.Add([]byte(`<r:reginfo xmlns:r="urn:ietf:params:xml:ns:reginfo" version="1" state="partial"><r:registration aor="sip:a@b" id="1" state="init"><r:contact id="2" state="active"><r:uri>sip:a@c</r:uri></r:contact></r:registration></r:reginfo>`))
	f.Add([]byte(`<reginfo state="full"><registration aor="sip:a@b" state="terminated"/></reginfo>`))
	f.Add([]byte(`<!DOCTYPE x><reginfo/>`))
	f.Fuzz(func(t *testing.T, body []byte) {
		doc, err := ParseReginfo(body)
		if err != nil {
			return
		}
		if doc.State != "full" && doc.State != "partial" {
			t.Fatalf("accepted state %q", doc.State)
		}
		if len(doc.Registrations) > maxReginfoRegistrations {
			t.Fatalf("accepted %d registrations", len(doc.Registrations))
		}
		n := 0
		for _, r := range doc.Registrations {
			if r.AOR == "" || (r.State != "init" && r.State != "active" && r.State != "terminated") {
				t.Fatalf("accepted registration %+v", r)
			}
			for _, c := range r.Contacts {
				n++
				if c.URI == "" || (c.State != "active" && c.State != "terminated") || c.Expires < -1 || c.Expires > maxExpiresValue {
					t.Fatalf("accepted contact %+v", c)
				}
			}
		}
		if n > maxReginfoContacts {
			t.Fatalf("accepted %d contacts", n)
		}
		again, err := ParseReginfo(renderReginfo(doc))
		if err != nil {
			t.Fatalf("re-rendered document refused: %v\n%s", err, renderReginfo(doc))
		}
		if !reflect.DeepEqual(doc, again) {
			t.Fatalf("round trip changed the document:\n%+v\n%+v", doc, again)
		}
	})
}
