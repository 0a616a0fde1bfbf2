package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/smsbridge/bridge/directory"
	"github.com/smsbridge/bridge/msg"
)

// getUser reads one user through the API.
func getUser(t *testing.T, e *env, name string) directory.User {
	t.Helper()
	code, body, _ := e.do(t, "GET", "/v1/users/"+name, "", "")
	if code != 200 {
		t.Fatalf("GET user %s: %d %s", name, code, body)
	}
	var u directory.User
	if err := json.Unmarshal([]byte(body), &u); err != nil {
		t.Fatalf("user %s: %v in %s", name, err, body)
	}
	return u
}

// TestUserAddresses: a user's addresses are bound and unbound through the
// API in any form a client types, answered in canonical form; an address
// belongs to one user only, and the 409 of a second user does not say who
// holds it.
func TestUserAddresses(t *testing.T) {
	e := startEnv(t)
	run(t, e, []tc{
		{"create alice", "POST", "/v1/users", js, `{"name":"alice","password":"pw","msisdn":"13800000001","display":"Alice"}`, 201, `"kind":"local"`},
		{"create bob", "PUT", "/v1/users/bob", js, `{"password":"bpw"}`, 201, `"addresses":["sip:bob@im.example"]`},

		{"bind number", "POST", "/v1/users/alice/addresses", js, `{"address":"+8613800000002"}`, 200,
			`"addresses":["sip:alice@im.example","+8613800000001","+8613800000002"]`},
		{"bind again changes nothing", "POST", "/v1/users/alice/addresses", js, `{"address":"138 0000 0002"}`, 200,
			`"addresses":["sip:alice@im.example","+8613800000001","+8613800000002"]`},
		{"bind own aor changes nothing", "POST", "/v1/users/alice/addresses", js, `{"address":"sip:ALICE@IM.example"}`, 200,
			`"addresses":["sip:alice@im.example","+8613800000001","+8613800000002"]`},
		{"bind tel", "POST", "/v1/users/alice/addresses", js, `{"address":"tel:+86-138-0000-0003"}`, 200, `"+8613800000003"`},
		{"bind foreign sip", "POST", "/v1/users/alice/addresses", js, `{"address":"sip:Alice@Other.Example;transport=tcp"}`, 200, `"sip:Alice@other.example"`},
		{"bind xmpp", "POST", "/v1/users/alice/addresses", js, `{"address":"xmpp:Alice@Chat.Example/phone"}`, 200, `"xmpp:alice@chat.example"`},
		{"bind partner", "POST", "/v1/users/alice/addresses", js, `{"address":"partner:Shop:Alice"}`, 200, `"partner:shop:Alice"`},
		{"bind social", "POST", "/v1/users/alice/addresses", js, `{"address":"social:weibo:VCASE"}`, 200, `"social:weibo:VCASE"`},
		{"curl default type", "POST", "/v1/users/alice/addresses", "application/x-www-form-urlencoded", `{"address":"13800000004"}`, 200, `"+8613800000004"`},
		{"get shows it", "GET", "/v1/users/alice", "", "", 200, `"+8613800000002"`},

		{"bad address", "POST", "/v1/users/alice/addresses", js, `{"address":"not an address"}`, 400, "not an address"},
		{"bad scheme", "POST", "/v1/users/alice/addresses", js, `{"address":"mailto:alice@example.com"}`, 400, "unsupported scheme"},
		{"bad number", "POST", "/v1/users/alice/addresses", js, `{"address":"+86abc"}`, 400, "number"},
		{"empty address", "POST", "/v1/users/alice/addresses", js, `{"address":""}`, 400, "empty"},
		{"bad site", "POST", "/v1/users/alice/addresses", js, `{"address":"partner:sh op:alice"}`, 400, "site"},
		{"another user's aor", "POST", "/v1/users/alice/addresses", js, `{"address":"sip:bob@im.example"}`, 400, "cannot be bound"},
		{"our xmpp of another name", "POST", "/v1/users/alice/addresses", js, `{"address":"xmpp:bob@im.example"}`, 400, "reserved"},
		{"unknown field", "POST", "/v1/users/alice/addresses", js, `{"address":"+8613800000005","user":"bob"}`, 400, "user"},
		{"no body", "POST", "/v1/users/alice/addresses", js, ``, 400, "empty body"},
		{"xml", "POST", "/v1/users/alice/addresses", "application/xml", `<a/>`, 415, ""},
		{"no such user", "POST", "/v1/users/nobody/addresses", js, `{"address":"+8613800000005"}`, 404, "nobody"},
		{"bad user name", "POST", "/v1/users/a%23b/addresses", js, `{"address":"+8613800000005"}`, 400, ""},
		{"static user", "POST", "/v1/users/carol/addresses", js, `{"address":"+8613800000005"}`, 409, "static"},
		{"carol's aor is hers", "POST", "/v1/users/bob/addresses", js, `{"address":"sip:carol@im.example"}`, 400, "cannot be bound"},

		{"own aor cannot be unbound", "DELETE", "/v1/users/alice/addresses/sip:alice@im.example", "", "", 400, "cannot be unbound"},
		{"own aor in another case", "DELETE", "/v1/users/alice/addresses/sip:Alice@IM.EXAMPLE", "", "", 400, "cannot be unbound"},
		{"unbind bad address", "DELETE", "/v1/users/alice/addresses/nothing", "", "", 400, "not an address"},
		{"unbind not bound", "DELETE", "/v1/users/alice/addresses/+8613800000009", "", "", 404, "no address"},
		{"unbind no user", "DELETE", "/v1/users/nobody/addresses/+8613800000002", "", "", 404, ""},
		{"unbind static", "DELETE", "/v1/users/carol/addresses/+8613800000002", "", "", 409, "static"},
		{"unbind tel form", "DELETE", "/v1/users/alice/addresses/tel:+86-138-0000-0003", "", "", 200, `"name":"alice"`},
		{"unbind national form", "DELETE", "/v1/users/alice/addresses/13800000004", "", "", 200, `"name":"alice"`},
	})

	// Another user binding alice's number (in another form) is refused
	// with a 409 that does not reveal the owner.
	for _, form := range []string{"+8613800000002", "13800000002", "tel:+8613800000002", "sip:13800000002@im.example"} {
		code, body, _ := e.do(t, "POST", "/v1/users/bob/addresses", js, `{"address":"`+form+`"}`)
		if code != 409 || !strings.Contains(body, "bound to another user") {
			t.Errorf("bob binds %s: %d %s, want 409", form, code, body)
		}
		if strings.Contains(strings.ToLower(body), "alice") {
			t.Errorf("bob binds %s: the 409 names the owner: %s", form, body)
		}
	}
	// So is creating a user with that number, or replacing bob's with it.
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/users", `{"name":"dave","msisdn":"+8613800000002"}`},
		{"PUT", "/v1/users/bob", `{"msisdn":"13800000002"}`},
	} {
		code, body, _ := e.do(t, c.method, c.path, js, c.body)
		if code != 409 || strings.Contains(strings.ToLower(body), "alice") {
			t.Errorf("%s %s: %d %s, want a 409 that does not name alice", c.method, c.path, code, body)
		}
	}

	u := getUser(t, e, "alice")
	want := []msg.Address{"sip:alice@im.example", "+8613800000001", "+8613800000002", "sip:Alice@other.example",
		"xmpp:alice@chat.example", "partner:shop:Alice", "social:weibo:VCASE"}
	if u.Name != "alice" || u.Kind != directory.KindLocal || u.Display != "Alice" || !u.SIPCredential ||
		!slices.Equal(u.Addresses, want) || u.Created.IsZero() || u.Updated.Before(u.Created) {
		t.Fatalf("alice = %+v, want addresses %v", u, want)
	}
	// The answers have the directory's shape: no aor or msisdn fields.
	_, body, _ := e.do(t, "GET", "/v1/users/alice", "", "")
	for _, gone := range []string{`"aor"`, `"msisdn"`, `"ha1"`, `"password"`} {
		if strings.Contains(body, gone) {
			t.Errorf("user answer has %s: %s", gone, body)
		}
	}
	_, body, _ = e.do(t, "GET", "/v1/users", "", "")
	if !strings.Contains(body, `"kind":"static"`) || !strings.Contains(body, `"name":"carol"`) {
		t.Errorf("user list lacks the static user: %s", body)
	}
	if p, ok := e.dir.Resolve("+8613800000002"); !ok || p.Name != "alice" {
		t.Fatalf("bound number resolves to %+v %v", p, ok)
	}

	// Unbound, the number is free for bob; the change is live at once.
	run(t, e, []tc{
		{"unbind", "DELETE", "/v1/users/alice/addresses/+8613800000002", "", "", 200, `"addresses":["sip:alice@im.example","+8613800000001","sip:Alice@other.example"`},
		{"unbind again", "DELETE", "/v1/users/alice/addresses/+8613800000002", "", "", 404, ""},
		{"bob binds it now", "POST", "/v1/users/bob/addresses", js, `{"address":"13800000002"}`, 200, `"addresses":["sip:bob@im.example","+8613800000002"]`},
		{"alice cannot take it back", "POST", "/v1/users/alice/addresses", js, `{"address":"+8613800000002"}`, 409, "bound to another user"},
		{"unbind xmpp", "DELETE", "/v1/users/alice/addresses/xmpp:ALICE@chat.example", "", "", 200, ""},
		{"unbind partner", "DELETE", "/v1/users/alice/addresses/partner:shop:Alice", "", "", 200, ""},
		{"partner account is case-sensitive", "DELETE", "/v1/users/alice/addresses/social:weibo:vcase", "", "", 404, ""},
		{"unbind escaped", "DELETE", "/v1/users/alice/addresses/" + url.PathEscape("social:weibo:VCASE"), "", "", 200, ""},
	})
	if p, ok := e.dir.Resolve("+8613800000002"); !ok || p.Name != "bob" {
		t.Fatalf("rebound number resolves to %+v %v", p, ok)
	}
	if u := getUser(t, e, "alice"); !slices.Equal(u.Addresses, []msg.Address{"sip:alice@im.example", "+8613800000001", "sip:Alice@other.example"}) {
		t.Fatalf("alice after unbinding: %v", u.Addresses)
	}
	// Deleting a user frees its addresses.
	run(t, e, []tc{
		{"delete bob", "DELETE", "/v1/users/bob", "", "", 204, ""},
		{"number free again", "POST", "/v1/users/alice/addresses", js, `{"address":"+8613800000002"}`, 200, `"+8613800000002"`},
	})
}

// TestAddressWithSlash: an address may contain '/' (an external account,
// a SIP user part), which a client sends %-escaped in the path.
func TestAddressWithSlash(t *testing.T) {
	e := startEnv(t)
	if _, err := e.dir.CreateUser(t.Context(), userSpec("zoe", "pw", "Zoe")); err != nil {
		t.Fatal(err)
	}
	run(t, e, []tc{
		{"bind", "POST", "/v1/users/zoe/addresses", js, `{"address":"partner:shop:a/b"}`, 200, `"partner:shop:a/b"`},
		{"bind sip", "POST", "/v1/users/zoe/addresses", js, `{"address":"sip:x/y@other.example"}`, 200, `"sip:x/y@other.example"`},
		{"unbind", "DELETE", "/v1/users/zoe/addresses/" + url.PathEscape("partner:shop:a/b"), "", "", 200, `"name":"zoe"`},
		{"unbind sip", "DELETE", "/v1/users/zoe/addresses/" + url.PathEscape("sip:x/y@other.example"), "", "", 200, `"name":"zoe"`},
		{"contact", "PUT", "/v1/users/zoe/contacts/k", js, `{"addresses":["partner:shop:c/d"]}`, 201, `"partner:shop:c/d"`},
		{"contact unbind", "DELETE", "/v1/users/zoe/contacts/k/addresses/" + url.PathEscape("partner:shop:c/d"), "", "", 200, `"addresses":[]`},
		{"escaped constant segment", "GET", "/v1/%75sers/zoe", "", "", 200, `"name":"zoe"`},
		{"still no such endpoint", "GET", "/v1/users/zoe/x/y", "", "", 404, "no such endpoint"},
	})
	if u := getUser(t, e, "zoe"); len(u.Addresses) != 1 {
		t.Fatalf("zoe keeps %v", u.Addresses)
	}
	// A malformed escape is a 400 (sent by hand: net/http refuses to).
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "DELETE /v1/users/zoe/addresses/%%zz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", testToken)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 400 || !strings.Contains(string(b), `"error":"malformed %-escape`) {
		t.Fatalf("bad escape: %d %s", resp.StatusCode, b)
	}
}

// contactView decodes one contact answer.
func contactView(t *testing.T, body string) ContactView {
	t.Helper()
	var v ContactView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("contact %v in %s", err, body)
	}
	return v
}

// TestContacts: a user's address book through the API, and its presence.
func TestContacts(t *testing.T) {
	e := startEnv(t)
	for _, s := range []directory.UserSpec{
		{Name: "dan", Password: "pw"},
		{Name: "erin", Password: "pw", MSISDN: "13800000007", Display: "Erin"},
	} {
		if _, err := e.dir.CreateUser(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	run(t, e, []tc{
		{"empty book", "GET", "/v1/users/dan/contacts", "", "", 200, `{"user":"dan","contacts":[]}`},
		{"any spelling of the user", "GET", "/v1/users/DAN/contacts", "", "", 200, `"user":"dan"`},
	})
	code, body, h := e.do(t, "POST", "/v1/users/dan/contacts", js, `{"display":"Erin","addresses":["13800000007","xmpp:Erin@Chat.Example","+8613800000007"]}`)
	if code != 201 || h.Get("Location") != "/v1/users/dan/contacts/c1" {
		t.Fatalf("create contact: %d %s %v", code, body, h)
	}
	if v := contactView(t, body); v.ID != "c1" || v.Display != "Erin" || v.Online || v.Where != nil ||
		!slices.Equal(v.Addresses, []msg.Address{"+8613800000007", "xmpp:erin@chat.example"}) {
		t.Fatalf("created contact %+v", v)
	}
	run(t, e, []tc{
		{"second", "POST", "/v1/users/dan/contacts", js, `{"display":"Frank","addresses":["sip:frank@other.example"]}`, 201, `"id":"c2"`},
		{"no addresses", "POST", "/v1/users/dan/contacts", js, `{"display":"Nobody yet"}`, 201, `"addresses":[]`},
		{"id is assigned", "POST", "/v1/users/dan/contacts", js, `{"id":"mine","addresses":["+8613800000008"]}`, 400, "assigned"},
		{"bad address", "POST", "/v1/users/dan/contacts", js, `{"addresses":["what?"]}`, 400, "not an address"},
		{"presence is not input", "POST", "/v1/users/dan/contacts", js, `{"online":true}`, 400, "online"},
		{"address of another contact", "POST", "/v1/users/dan/contacts", js, `{"addresses":["tel:+8613800000007"]}`, 409, "c1"},
		{"no such user", "POST", "/v1/users/nobody/contacts", js, `{"display":"X"}`, 404, ""},
		{"static user", "POST", "/v1/users/carol/contacts", js, `{"display":"X"}`, 409, "static"},
		{"static user's book", "GET", "/v1/users/carol/contacts", "", "", 200, `"contacts":[]`},
		{"list no such user", "GET", "/v1/users/nobody/contacts", "", "", 404, ""},
		{"list bad user", "GET", "/v1/users/a%23b/contacts", "", "", 400, ""},

		{"list", "GET", "/v1/users/dan/contacts", "", "", 200, `"id":"c2","display":"Frank","addresses":["sip:frank@other.example"],"online":false`},
		{"get", "GET", "/v1/users/dan/contacts/c1", "", "", 200, `"display":"Erin"`},
		{"get missing", "GET", "/v1/users/dan/contacts/c99", "", "", 404, "c99"},
		{"get no such user", "GET", "/v1/users/nobody/contacts/c1", "", "", 404, ""},
		{"other users do not share books", "GET", "/v1/users/erin/contacts/c1", "", "", 404, ""},

		{"put replaces", "PUT", "/v1/users/dan/contacts/c2", js, `{"display":"Frank B","addresses":["sip:frank@other.example","13800000009"]}`, 200, `"display":"Frank B"`},
		{"put same id", "PUT", "/v1/users/dan/contacts/c2", js, `{"id":"c2","display":"Frank B","addresses":["+8613800000009"]}`, 200, `"addresses":["+8613800000009"]`},
		{"put creates", "PUT", "/v1/users/dan/contacts/work-1", js, `{"display":"Desk","addresses":["sip:desk@other.example"]}`, 201, `"id":"work-1"`},
		{"put id differs", "PUT", "/v1/users/dan/contacts/c2", js, `{"id":"c3"}`, 400, "differs"},
		{"put bad id", "PUT", "/v1/users/dan/contacts/a%20b", js, `{"display":"X"}`, 400, "contact id"},
		{"put held address", "PUT", "/v1/users/dan/contacts/c2", js, `{"addresses":["sip:desk@other.example"]}`, 409, "work-1"},
		{"put no such user", "PUT", "/v1/users/nobody/contacts/c1", js, `{"display":"X"}`, 404, ""},

		{"bind", "POST", "/v1/users/dan/contacts/c2/addresses", js, `{"address":"social:weibo:Frank"}`, 200, `"addresses":["+8613800000009","social:weibo:Frank"]`},
		{"bind again", "POST", "/v1/users/dan/contacts/c2/addresses", js, `{"address":"social:weibo:Frank"}`, 200, `"addresses":["+8613800000009","social:weibo:Frank"]`},
		{"bind held", "POST", "/v1/users/dan/contacts/work-1/addresses", js, `{"address":"+8613800000009"}`, 409, "c2"},
		{"bind bad", "POST", "/v1/users/dan/contacts/c2/addresses", js, `{"address":"ftp:x"}`, 400, "unsupported scheme"},
		{"bind no contact", "POST", "/v1/users/dan/contacts/c99/addresses", js, `{"address":"+8613800000010"}`, 404, ""},
		{"bind no user", "POST", "/v1/users/nobody/contacts/c2/addresses", js, `{"address":"+8613800000010"}`, 404, ""},
		{"unbind", "DELETE", "/v1/users/dan/contacts/c2/addresses/13800000009", "", "", 200, `"addresses":["social:weibo:Frank"]`},
		{"unbind again", "DELETE", "/v1/users/dan/contacts/c2/addresses/13800000009", "", "", 404, ""},
		{"unbind bad", "DELETE", "/v1/users/dan/contacts/c2/addresses/nothing", "", "", 400, ""},
		{"unbind no contact", "DELETE", "/v1/users/dan/contacts/c99/addresses/+8613800000009", "", "", 404, ""},

		{"delete", "DELETE", "/v1/users/dan/contacts/c2", "", "", 204, ""},
		{"deleted", "GET", "/v1/users/dan/contacts/c2", "", "", 404, ""},
		{"delete again", "DELETE", "/v1/users/dan/contacts/c2", "", "", 404, ""},
		{"delete no user", "DELETE", "/v1/users/nobody/contacts/c1", "", "", 404, ""},
		{"405", "PUT", "/v1/users/dan/contacts", js, `{}`, 405, "GET or POST"},
	})

	// Presence: erin registers her own AOR; contact c1 names her by
	// number and JID, so it is online where she is. A contact whose
	// address has a binding of its own (not a user) is online there.
	run(t, e, []tc{
		{"erin online", "PUT", "/v1/presence/sip:erin@im.example", js, `{"contact":"sip:erin@10.0.0.7:5060","expires_in":300}`, 200, ""},
		{"desk online", "PUT", "/v1/presence/sip:desk@other.example", js, `{"contact":"sip:desk@10.0.0.9:5060","expires_in":300}`, 200, ""},
	})
	_, body, _ = e.do(t, "GET", "/v1/users/dan/contacts/c1", "", "")
	if v := contactView(t, body); !v.Online || !slices.Equal(v.Where, []Where{{Address: "sip:erin@im.example", Via: "sip"}}) {
		t.Fatalf("contact of a registered user: %s", body)
	}
	if !strings.Contains(body, `"online":true,"where":[{"address":"sip:erin@im.example","via":"sip"}]`) {
		t.Errorf("contact JSON %s", body)
	}
	_, body, _ = e.do(t, "GET", "/v1/users/dan/contacts", "", "")
	var list ContactsView
	if err := json.Unmarshal([]byte(body), &list); err != nil || list.User != "dan" || len(list.Contacts) != 3 {
		t.Fatalf("list %s: %v", body, err)
	}
	online := map[string][]Where{}
	for _, c := range list.Contacts {
		if c.Online != (len(c.Where) > 0) {
			t.Errorf("contact %s: online %v where %v", c.ID, c.Online, c.Where)
		}
		online[c.ID] = c.Where
	}
	if len(online["c1"]) != 1 || len(online["c3"]) != 0 || !slices.Equal(online["work-1"], []Where{{Address: "sip:desk@other.example", Via: "sip"}}) {
		t.Fatalf("presence in the list: %v", online)
	}
	// Offline again once erin unregisters.
	run(t, e, []tc{
		{"erin offline", "DELETE", "/v1/presence/sip:erin@im.example", "", "", 204, ""},
		{"contact offline", "GET", "/v1/users/dan/contacts/c1", "", "", 200, `"online":false`},
	})
	// Deleting the user deletes the book.
	run(t, e, []tc{
		{"delete dan", "DELETE", "/v1/users/dan", "", "", 204, ""},
		{"gone", "GET", "/v1/users/dan/contacts", "", "", 404, ""},
		{"new dan", "PUT", "/v1/users/dan", js, `{"password":"pw"}`, 201, ""},
		{"empty book", "GET", "/v1/users/dan/contacts", "", "", 200, `"contacts":[]`},
	})
}

// loginSIP logs user in on device and returns the SIP credential issued.
func loginSIP(t *testing.T, e *env, user, password, device string) (name, sipPassword, gotDevice string) {
	t.Helper()
	req, _ := json.Marshal(LoginRequest{User: user, Password: password, Device: device})
	code, body, _ := e.do(t, "POST", "/v1/login", js, string(req))
	if code != 200 {
		t.Fatalf("login %s on %q: %d %s", user, device, code, body)
	}
	var lr struct {
		User string
		SIP  struct{ Password, Device string }
	}
	if err := json.Unmarshal([]byte(body), &lr); err != nil || lr.SIP.Password == "" || lr.SIP.Device == "" {
		t.Fatalf("login result %s", body)
	}
	if device != "" && (lr.SIP.Device != device || !strings.Contains(body, `"device":"`+device+`"`)) {
		t.Fatalf("login on %q answered device %q: %s", device, lr.SIP.Device, body)
	}
	return lr.User, lr.SIP.Password, lr.SIP.Device
}

// ticket asks for an SSO ticket with user's SIP password.
func ticket(t *testing.T, e *env, user, password string) int {
	t.Helper()
	req, _ := json.Marshal(TicketRequest{Service: "wiki", User: user, Password: password})
	code, _, _ := e.do(t, "POST", "/v1/sso/tickets", js, string(req))
	return code
}

// TestLoginDevices: each device of a partner user holds its own SIP
// password; logging one device out leaves the others working.
func TestLoginDevices(t *testing.T) {
	e := startEnv(t)
	user, phone, _ := loginSIP(t, e, "alice#shop", "wonderland", "phone")
	if user != "alice~shop" {
		t.Fatalf("IM user %q", user)
	}
	_, laptop, _ := loginSIP(t, e, "alice#shop", "wonderland", "laptop")
	_, random, dev := loginSIP(t, e, "alice#shop", "wonderland", "")
	if phone == laptop || laptop == random || dev == "phone" || dev == "laptop" {
		t.Fatalf("devices share a password or a name: %q %q %q (%s)", phone, laptop, random, dev)
	}
	for _, pw := range []string{phone, laptop, random} {
		if code := ticket(t, e, user, pw); code != 200 {
			t.Fatalf("ticket before logout: %d", code)
		}
	}
	// The partner user is in the directory.
	if u := getUser(t, e, "alice~shop"); u.Kind != directory.KindPartner || !slices.Contains(u.Addresses, "partner:shop:alice") {
		t.Fatalf("partner user %+v", u)
	}

	run(t, e, []tc{
		{"logout phone", "DELETE", "/v1/login/alice~shop/phone", "", "", 204, ""},
		{"logout phone again", "DELETE", "/v1/login/alice~shop/phone", "", "", 204, ""},
		{"bad device", "DELETE", "/v1/login/alice~shop/" + strings.Repeat("d", 65), "", "", 400, "device"},
		{"bad device on login", "POST", "/v1/login", js, `{"user":"alice#shop","password":"wonderland","device":"my phone"}`, 400, "device"},
		{"login name is not the IM user", "DELETE", "/v1/login/alice%23shop/laptop", "", "", 400, "user"},
		{"405", "GET", "/v1/login/alice~shop/phone", "", "", 405, "DELETE"},
	})
	if code := ticket(t, e, user, phone); code != 403 {
		t.Fatalf("ticket with the phone's password after its logout: %d, want 403", code)
	}
	if code := ticket(t, e, user, laptop); code != 200 {
		t.Fatalf("ticket with the laptop's password: %d, want 200", code)
	}
	// The user name is normalized as everywhere else in the API.
	run(t, e, []tc{
		{"logout other spelling", "DELETE", "/v1/login/ALICE~Shop/" + dev, "", "", 204, ""},
	})
	if code := ticket(t, e, user, random); code != 403 {
		t.Fatalf("ticket after logout as ALICE~Shop: %d, want 403", code)
	}
	// Logging in again on the phone issues a new password; the old one
	// stays dead.
	_, phone2, _ := loginSIP(t, e, "alice#shop", "wonderland", "phone")
	if code := ticket(t, e, user, phone2); code != 200 || phone2 == phone {
		t.Fatalf("phone logged in again: %d", code)
	}
	if code := ticket(t, e, user, phone); code != 403 {
		t.Fatalf("old phone password: %d", code)
	}
	// Logging every device out.
	run(t, e, []tc{
		{"logout all", "DELETE", "/v1/login/alice~shop", "", "", 204, ""},
		{"logout all of nobody", "DELETE", "/v1/login/nobody", "", "", 204, ""},
	})
	for _, pw := range []string{laptop, phone2} {
		if code := ticket(t, e, user, pw); code != 403 {
			t.Fatalf("ticket after logging every device out: %d, want 403", code)
		}
	}
}
