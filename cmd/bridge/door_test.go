package main

// Validation at the door: what the bridge could never deliver is refused at
// submission, with the reason, by HTTP and by SMPP, and nothing is stored.

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/linxGnu/gosmpp"
	"github.com/linxGnu/gosmpp/data"
	gpdu "github.com/linxGnu/gosmpp/pdu"

	"github.com/smsbridge/bridge/bridge"
	"github.com/smsbridge/bridge/config"
	"github.com/smsbridge/bridge/smstext"
)

func TestTooLongForSMSRefusedAtSubmission(t *testing.T) {
	sc := startSMSC(t)
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--api-token", "tok", "--smsc", sc.url())
	api := "http://" + b.addrs.HTTP

	// 60,000 GSM characters are 393 parts of 153: a 400 that says so.
	var answer struct{ Error, ID string }
	code := postJSON(t, api+"/v1/messages", "tok", map[string]string{"from": "+8613900000081", "to": "+8613700000081", "text": strings.Repeat("a", 60000)}, &answer)
	if code != 400 || !strings.Contains(answer.Error, "255 SMS parts") || answer.ID != "" {
		t.Fatalf("60,000 characters: %d %+v, want 400 naming the 255 parts", code, answer)
	}
	// The longest text that fits (255 parts of 153 septets) is accepted.
	code = postJSON(t, api+"/v1/messages", "tok", map[string]string{"from": "+8613900000081", "to": "+8613700000082", "text": strings.Repeat("b", 255*153)}, &answer)
	if code != 202 || answer.ID == "" {
		t.Fatalf("255 parts: %d %+v", code, answer)
	}
	// An IM address never needs SMS: a long text to it is not refused.
	code = postJSON(t, api+"/v1/messages", "tok", map[string]string{"from": "+8613900000081", "to": "sip:carol@" + testDomain, "text": strings.Repeat("c", 60000)}, &answer)
	if code != 202 {
		t.Fatalf("long text to an IM user: %d %+v", code, answer)
	}

	// SMPP: Chinese text in message_payload goes out as UCS-2, 67 characters
	// a part: 256 parts' worth is ESME_RINVMSGLEN, not an id; 255 fit.
	resps := make(chan *gpdu.SubmitSMResp, 4)
	sess, err := gosmpp.NewSession(
		gosmpp.TXConnector(gosmpp.NonTLSDialer, gosmpp.Auth{SMSC: b.addrs.SMPP, SystemID: "esme2", Password: "secret2"}),
		gosmpp.Settings{ReadTimeout: 10 * time.Second, EnquireLink: 5 * time.Second,
			OnPDU: func(p gpdu.PDU, _ bool) {
				if r, ok := p.(*gpdu.SubmitSMResp); ok {
					resps <- r
				}
			}}, 5*time.Second)
	if err != nil {
		t.Fatalf("gosmpp bind: %v", err)
	}
	defer sess.Close()
	submit := func(text string) *gpdu.SubmitSMResp {
		t.Helper()
		sm := gpdu.NewSubmitSM().(*gpdu.SubmitSM)
		src, dst := gpdu.NewAddress(), gpdu.NewAddress()
		src.SetTon(1)
		src.SetNpi(1)
		src.SetAddress("8613900000083")
		dst.SetTon(1)
		dst.SetNpi(1)
		dst.SetAddress("8613700000083")
		sm.SourceAddr, sm.DestAddr = src, dst
		if err := sm.Message.SetMessageWithEncoding("", data.UCS2); err != nil {
			t.Fatal(err)
		}
		payload, err := data.UCS2.Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		sm.RegisterOptionalParam(gpdu.Field{Tag: gpdu.TagMessagePayload, Data: payload})
		if err := sess.Transceiver().Submit(sm); err != nil {
			t.Fatalf("submit: %v", err)
		}
		select {
		case r := <-resps:
			return r
		case <-time.After(10 * time.Second):
			t.Fatal("no submit_sm_resp")
		}
		return nil
	}
	tooLong := strings.Repeat("汉", 256*67)
	if r := submit(tooLong); r.CommandStatus != data.ESME_RINVMSGLEN || r.MessageID != "" {
		t.Fatalf("%d UCS-2 characters: status %v id %q, want ESME_RINVMSGLEN", 256*67, r.CommandStatus, r.MessageID)
	}
	fits := strings.Repeat("字", 255*67)
	if r := submit(fits); r.CommandStatus != data.ESME_ROK || r.MessageID == "" {
		t.Fatalf("%d UCS-2 characters: status %v id %q, want accepted", 255*67, r.CommandStatus, r.MessageID)
	}

	// Only what was accepted reached the SMSC: the two messages that fit.
	got := func() map[string]string { return sc.texts(t) }
	whole := func(m map[string]string) bool { // every part of both, which come in any order
		return len(m["8613700000082"]) == 255*153 && len([]rune(m["8613700000083"])) == 255*67
	}
	deadline := time.Now().Add(20 * time.Second)
	for !whole(got()) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	texts := got()
	if len(texts) != 2 || texts["8613700000082"] != strings.Repeat("b", 255*153) || texts["8613700000083"] != fits {
		t.Fatalf("the SMSC got %d messages to %v", len(texts), keysOf(texts))
	}
	for _, p := range sc.received() {
		if c, ok := udhConcat(p.ShortMessage, p.ESMClass); ok && c.Total != 255 {
			t.Fatalf("a part of %d, want 255", c.Total)
		}
	}

}

func udhConcat(sm []byte, esm byte) (smstext.Concat, bool) {
	if esm&0x40 == 0 {
		return smstext.Concat{}, false
	}
	_, _, c, err := smstext.ParseUDH(sm)
	return c, err == nil && c.Ok
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Configuration that could never work stops the start, each value named
// with what is wrong with it, all at once.
func TestBadConfigurationRefusedAtStart(t *testing.T) {
	var out, errOut strings.Builder
	code := run([]string{"serve", "--data-dir", "", "--dedup-window", "-5m", "--smpp-listen", ":99999", "--outbound-proxy", "notauri"},
		strings.NewReader(""), &out, &errOut)
	if code != 2 {
		t.Fatalf("exit %d, want 2; stderr:\n%s", code, errOut.String())
	}
	for _, want := range []string{`--dedup-window: "-5m": must not be negative`, `--smpp-listen: ":99999": port must be 0-65535`,
		`--outbound-proxy: "notauri": want a SIP URI (sip:HOST[:PORT]) or HOST:PORT`} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
		}
	}

	// A default SMS route to an ESME account nobody has: refused at start.
	cfg, err := config.Load("test", []string{"--data-dir", "", "--smpp-listen", "127.0.0.1:0", "--sip-listen", "127.0.0.1:0",
		"--http-listen", "", "--mcp-listen", "", "--sms-route", "esme:nobody"}, func(string) string { return "" }, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	if br, err := bridge.New(cfg, testLogger(t)); err == nil || !strings.Contains(err.Error(), "--sms-route esme:nobody names no SMPP account") {
		if br != nil {
			br.Close()
		}
		t.Fatalf("bridge.New: %v, want the route refused", err)
	}
}

// Routes are checked against what the bridge has: no SMSC, no route to it;
// no account, no route to it.
func TestRoutesCheckedAgainstTheBridge(t *testing.T) {
	b := startBridge(t, t.TempDir(), "--http-listen", "127.0.0.1:0", "--api-token", "tok")
	api := "http://" + b.addrs.HTTP
	put := func(body string) (int, string) {
		req, _ := http.NewRequest("PUT", api+"/v1/routes", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer tok")
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var v struct{ Error string }
		json.NewDecoder(res.Body).Decode(&v)
		return res.StatusCode, v.Error
	}
	for body, want := range map[string]string{
		`{"routes":[{"name":"up","target":"smsc"}]}`:                                                                     "no SMSC is configured",
		`{"routes":[{"name":"rx","target":"esme:ghost"}]}`:                                                               "names no SMPP account",
		`{"routes":[{"name":"a","target":"esme:esme1","prefix":"86"},{"name":"b","target":"esme:esme2","prefix":"86"}]}`: "route a's already",
	} {
		if code, msg := put(body); code != 400 || !strings.Contains(msg, want) {
			t.Errorf("%s: %d %q, want 400 saying %q", body, code, msg, want)
		}
	}
	// The accounts of --smpp-account are routes' targets too.
	if code, msg := put(`{"routes":[{"name":"rx","target":"esme:esme2","prefix":"86138"}]}`); code != 200 {
		t.Fatalf("route to a configured account: %d %s", code, msg)
	}
}
