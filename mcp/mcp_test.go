package mcp

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/msg"
	"github.com/smsbridge/bridge/presence"
)

func rReq(user, callID, cseq, x, auth string) *Message {
	m := &Message{Method: "R", Target: domain, Version: Version}
	m.Add("F", user)
	m.Add("I", callID)
	m.Add("Q", cseq+" R")
	if x != "" {
		m.Add("X", x)
	}
	if auth != "" {
		m.Add("A", auth)
	}
	return m
}

var nonceRE = regexp.MustCompile(`^Digest algorithm="MD5-sess",nonce="([0-9A-F]{32})"$`)

func TestRegisterDigest(t *testing.T) {
	b := startBridge(t, nil)
	h := b.dial(t, true)
	user := "13800000001"
	aor := msg.Address("+8613800000001")

	r, err := h.Request(ctx(t), rReq(user, "1", "1", "30", ""))
	if err != nil {
		t.Fatal(err)
	}
	sub := nonceRE.FindStringSubmatch(r.Get("W"))
	if r.Code != 401 || sub == nil || r.Get("I") != "1" || r.Get("Q") != "1 R" {
		t.Fatalf("want 401 with a challenge, got %s", r)
	}
	if _, ok := b.pres.Lookup(aor); ok {
		t.Fatal("present before authenticating")
	}
	answer := DigestResponse(HA1(user, domain, passwords[user]), sub[1], "ABCDEF")
	r, err = h.Request(ctx(t), rReq(user, "1", "2", "30", `Digest algorithm="SHA1-sess",response="`+answer+`",cnonce="ABCDEF",salt="5FE81000"`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Code != 200 || r.Get("X") != "60" {
		t.Fatalf("want 200 with X clamped to 60, got %s", r)
	}
	bd, ok := b.pres.Lookup(aor)
	if !ok || bd.Via != "mcp" || !strings.HasPrefix(bd.Contact, "mcp:") {
		t.Fatalf("binding = %+v, %v", bd, ok)
	}
	if b.srv.Conns() != 1 {
		t.Fatalf("Conns = %d", b.srv.Conns())
	}
	// The same answer again is a replay of a used nonce: refused.
	r, err = h.Request(ctx(t), rReq(user, "1", "3", "30", `Digest response="`+answer+`",cnonce="ABCDEF"`))
	if err != nil || r.Code != 401 {
		t.Fatalf("replayed answer: %v %v", r, err)
	}
	// Keepalive (same call id, no body, no A) refreshes.
	r, err = h.Request(ctx(t), rReq(user, "1", "4", "", ""))
	if err != nil || r.Code != 200 || r.Get("X") != "600" {
		t.Fatalf("keepalive: %v %v", r, err)
	}
	if _, ok := b.pres.Lookup(aor); !ok {
		t.Fatal("binding lost after keepalive")
	}
	// A new call id without A is a new registration: challenged.
	r, err = h.Request(ctx(t), rReq(user, "9", "1", "", ""))
	if err != nil || r.Code != 401 {
		t.Fatalf("new call id without A: %v %v", r, err)
	}

	h.Close()
	testutil.WaitFor(t, "binding removed on disconnect", 10*time.Second, func() bool {
		_, ok := b.pres.Lookup(aor)
		return !ok && b.srv.Conns() == 0
	})

	// A new connection starts with fresh codec state on both sides.
	h2 := b.login(t, user)
	if err := h2.Keepalive(ctx(t)); err != nil {
		t.Fatal(err)
	}
	bd2, ok := b.pres.Lookup(aor)
	if !ok || bd2.Contact == bd.Contact {
		t.Fatalf("after reconnect binding = %+v (old %s)", bd2, bd.Contact)
	}
	// X: 0 unregisters.
	if err := h2.Register(ctx(t), user, passwords[user], domain, 0); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.pres.Lookup(aor); ok {
		t.Fatal("still present after X: 0")
	}
}

func TestRegisterWrongPassword(t *testing.T) {
	b := startBridge(t, nil)
	h := b.dial(t, true)
	var se *StatusError
	for i, want := range []int{401, 401, 403, 403} {
		err := h.Register(ctx(t), "13800000001", "wrong", domain, 600)
		if !errors.As(err, &se) || se.Code != want {
			t.Fatalf("attempt %d: want %d, got %v", i+1, want, err)
		}
	}
	// Locked out on this connection even with the right password.
	err := h.Register(ctx(t), "13800000001", passwords["13800000001"], domain, 600)
	if !errors.As(err, &se) || se.Code != 403 {
		t.Fatalf("after lock-out: %v", err)
	}
	// Unknown users fail the same way as a wrong password.
	h2 := b.dial(t, true)
	if err := h2.Register(ctx(t), "nobody", "x", domain, 600); !errors.As(err, &se) || se.Code != 401 {
		t.Fatalf("unknown user: %v", err)
	}
	if _, ok := b.pres.Lookup("+8613800000001"); ok {
		t.Fatal("present without the right password")
	}
}

func TestOpenRegistration(t *testing.T) {
	b := startBridge(t, func(c *Config) { c.OpenRegistration = true; c.HA1 = nil })
	h := b.dial(t, true)
	r, err := h.Request(ctx(t), rReq("bob", "1", "1", "", ""))
	if err != nil || r.Code != 200 {
		t.Fatalf("open registration: %v %v", r, err)
	}
	if bd, ok := b.pres.Lookup("sip:bob@" + domain); !ok || bd.Via != "mcp" {
		t.Fatalf("bob not present: %+v", bd)
	}
}

func TestHandsetToHandset(t *testing.T) {
	b := startBridge(t, nil)
	h1 := b.login(t, "13800000001")
	h2 := b.login(t, "13800000002")
	text := "你好，世界 👋🏽 <b>&amp;</b>\r\n\r\nsecond line"
	code, err := h1.SendMessage(ctx(t), "sip:13800000002@fetion.com.cn;p=5017", text, false)
	if err != nil || code != 200 {
		t.Fatalf("send: %d %v", code, err)
	}
	in := recvIM(t, h2)
	if in.Text != text || in.From != "tel:+8613800000001" || in.ID == "" {
		t.Fatalf("received %+v", in)
	}
	// Reply to whatever F said, as a handset would.
	code, err = h2.SendMessage(ctx(t), in.From, "回复 ✓", false)
	if err != nil || code != 200 {
		t.Fatalf("reply: %d %v", code, err)
	}
	back := recvIM(t, h1)
	if back.Text != "回复 ✓" || back.From != "tel:+8613800000002" {
		t.Fatalf("reply received as %+v", back)
	}
	testutil.WaitFor(t, "both counted as IM deliveries", 10*time.Second, func() bool { return b.rt.Stats().IMDelivered.Load() == 2 })
	select {
	case m := <-b.sms:
		t.Fatalf("online recipient got an SMS: %+v", m)
	default:
	}
}

func TestIMUserAndHTMLFragment(t *testing.T) {
	b := startBridge(t, nil)
	h1 := b.login(t, "13800000001")
	ha := b.login(t, "alice")
	m := &Message{Method: "M", Target: domain, Version: Version}
	m.Add("F", "13800000001")
	m.Add("I", "77")
	m.Add("Q", "2 M")
	m.Add("T", "sip:alice@fetion.com.cn")
	m.Add("C", "text/html-fragment")
	m.SetBody([]byte(`<Font Face='Arial' Color='-16777216' Size='10.5'>a &lt;b&gt; &amp; 中文<br/>ok</Font>`))
	r, err := h1.Request(ctx(t), m)
	if err != nil || r.Code != 200 || r.Get("I") != "77" || r.Get("Q") != "2 M" || r.Get("T") != "sip:alice@fetion.com.cn" || r.Get("XI") == "" {
		t.Fatalf("M to alice: %v %v", r, err)
	}
	in := recvIM(t, ha)
	if in.Text != "a <b> & 中文\nok" || in.From != "tel:+8613800000001" {
		t.Fatalf("alice got %+v", in)
	}
	// alice has no number: the reply's F is her SIP URI.
	if code, err := ha.SendMessage(ctx(t), "13800000001", "hi", false); err != nil || code != 200 {
		t.Fatalf("alice reply: %d %v", code, err)
	}
	if in := recvIM(t, h1); in.From != "sip:alice@"+domain || in.Text != "hi" {
		t.Fatalf("h1 got %+v", in)
	}
}

func TestOfflineNumberGoesSMS(t *testing.T) {
	b := startBridge(t, nil)
	h := b.login(t, "13800000001")
	text := "短信 📱 test"
	code, err := h.SendMessage(ctx(t), "13900000009", text, true)
	if err != nil || code != 280 {
		t.Fatalf("SendCatSMS: %d %v", code, err)
	}
	m := recvSMS(t, b)
	if m.To != "+8613900000009" || m.From != "+8613800000001" || m.Text != text ||
		m.Origin.Kind != msg.FromMCP || m.Origin.Account != "+8613800000001" || m.ID == "" {
		t.Fatalf("SMS route got %+v", m)
	}
	// Without SendCatSMS, a number that is not online still gets 280.
	for _, to := range []string{"tel:+8613900000010", "sip:13900000010@fetion.com.cn;p=1"} {
		code, err = h.SendMessage(ctx(t), to, "x", false)
		if err != nil || code != 280 {
			t.Fatalf("%s: %d %v", to, code, err)
		}
		if m := recvSMS(t, b); m.To != "+8613900000010" {
			t.Fatalf("%s routed to %s", to, m.To)
		}
	}
	// The real Fetion sample M (html fragment, F/T of other users) from
	// this registered handset: the text inside <Font> is what is sent.
	r, err := h.Exchange(ctx(t), samples(t)["016.sipc"])
	if err != nil || r.Code != 280 || r.Get("I") != "17" {
		t.Fatalf("sample 016: %v %v", r, err)
	}
	if m := recvSMS(t, b); m.Text != "a" || m.To != "+86678345136" || m.From != "+8613800000001" {
		t.Fatalf("sample 016 became %+v", m)
	}
	r, err = h.Exchange(ctx(t), samples(t)["020.sipc"])
	if err != nil || r.Code != 280 || r.Reason != "Send SMS OK" || r.Get("T") != "sip:678345136@fetion.com.cn;p=5017" {
		t.Fatalf("sample 020: %v %v", r, err)
	}
	recvSMS(t, b)
}

func TestNotRegistered(t *testing.T) {
	b := startBridge(t, nil)
	h := b.dial(t, true)
	code, err := h.SendMessage(ctx(t), "13900000009", "x", true)
	if err != nil || code != 401 {
		t.Fatalf("M before R: %d %v", code, err)
	}
	r, err := h.Exchange(ctx(t), samples(t)["005.sipc"])
	if err != nil || r.Code != 401 {
		t.Fatalf("S before R: %v %v", r, err)
	}
	select {
	case m := <-b.sms:
		t.Fatalf("unregistered handset's message was routed: %+v", m)
	default:
	}
}

func TestServicesAndOtherMethods(t *testing.T) {
	b := startBridge(t, nil)
	h := b.login(t, "13800000001")
	r, err := h.Exchange(ctx(t), samples(t)["005.sipc"])
	if err != nil || r.Code != 200 || string(r.Body) != `<results><contacts version="0"><buddies /></contacts></results>` {
		t.Fatalf("GetContactList: %v %v", r, err)
	}
	r, err = h.Exchange(ctx(t), samples(t)["010.sipc"])
	if err != nil || r.Code != 200 || len(r.Body) != 0 {
		t.Fatalf("SetPresence: %v %v", r, err)
	}
	for _, s := range []string{"007.sipc", "012.sipc", "015.sipc", "022.sipc"} {
		r, err = h.Exchange(ctx(t), samples(t)[s])
		if err != nil || r.Code != 200 {
			t.Fatalf("%s: %v %v", s, err, r)
		}
	}
	r, err = h.Exchange(ctx(t), []byte("ZZ fetion.com.cn SIP-C/2.0\r\nI: 5\r\nQ: 1 ZZ\r\n\r\n"))
	if err != nil || r.Code != 501 || r.Reason != "Not Implemented" {
		t.Fatalf("unknown method: %v %v", r, err)
	}
}

func TestMalformedKeepsConnection(t *testing.T) {
	b := startBridge(t, nil)
	h := b.login(t, "13800000001")
	bad := []string{
		"M fetion.com.cn SIP-C/2.0\r\nI: 40\r\nQ: 1 M\r\nT: 13900000009\r\nL: 9\r\n\r\nshort",
		"M fetion.com.cn SIP-C/2.0\r\nI: 41\r\nQ: 1 M\r\nT: 13900000009\r\n\r\nbody without L",
		"M fetion.com.cn SIP-C/2.0\nI: 42\nQ: 1 M\n\n",
		"M fetion.com.cn SIP-C/2.0\r\nI: 43\r\nQ: 1 M\r\nthis is no header\r\n\r\n",
		"M fetion.com.cn SIP-C/9.9\r\nI: 44\r\nQ: 1 M\r\n\r\n",
		"M fetion.com.cn SIP-C/2.0\r\nI: 45\r\nQ: 1 R\r\nT: 13900000009\r\n\r\n",                          // Q of another method
		"M fetion.com.cn SIP-C/2.0\r\nI: 46\r\nQ: 1 M\r\nT: not a number\r\nL: 1\r\n\r\nx",                // bad target
		"M fetion.com.cn SIP-C/2.0\r\nI: 47\r\nQ: 1 M\r\nT: 13900000009\r\nL: 2\r\n\r\n\xff\xfe",          // not UTF-8
		"R fetion.com.cn SIP-C/2.0\r\nI: 48\r\nQ: 1 R\r\nF: 13800000001\r\nX: soon\r\n\r\n",               // bad X
		"M fetion.com.cn SIP-C/2.0\r\nI: 49\r\nQ: 1 M\r\nT: 13900000009\r\nC: image/png\r\nL: 1\r\n\r\nx", // 415
	}
	for i, raw := range bad {
		r, err := h.Exchange(ctx(t), []byte(raw))
		want := 400
		if i == len(bad)-1 {
			want = 415
		}
		if err != nil || r.Code != want || r.Get("I") != fmt.Sprint(40+i) {
			t.Fatalf("malformed %d: want %d, got %v %v", i, want, r, err)
		}
	}
	code, err := h.SendMessage(ctx(t), "13900000009", "still here", true)
	if err != nil || code != 280 {
		t.Fatalf("after malformed input: %d %v", code, err)
	}
	if m := recvSMS(t, b); m.Text != "still here" {
		t.Fatalf("got %+v", m)
	}
	if !strings.Contains(b.logs.String(), "malformed SIP-C") {
		t.Fatal("malformed input not logged")
	}
}

func TestGarbageFrameClosesStatefulConnection(t *testing.T) {
	b := startBridge(t, nil)
	h := b.login(t, "13800000001")
	if err := h.WriteFrame([]byte{0x5a, 0xde, 0xad, 0xbe, 0xef, 0x01}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Done():
	case <-ctx(t).Done():
		t.Fatal("connection not closed after a garbage frame")
	}
	testutil.WaitFor(t, "binding removed", 10*time.Second, func() bool {
		_, ok := b.pres.Lookup("+8613800000001")
		return !ok && b.srv.Conns() == 0
	})
	// The connection is logged as closed after it is gone from Conns.
	testutil.WaitForState(t, 10*time.Second, func() bool { return strings.Contains(b.logs.String(), "codec state mismatch") },
		func() string { return "no logged reason:\n" + b.logs.String() })
}

func TestGarbageFrameStateless(t *testing.T) {
	b := startBridge(t, func(c *Config) { c.Stateless = true })
	h := b.dial(t, false)
	if err := h.Register(ctx(t), "13800000001", passwords["13800000001"], domain, 600); err != nil {
		t.Fatal(err)
	}
	if err := h.WriteFrame([]byte{0x00, 0x01, 0x02}); err != nil {
		t.Fatal(err)
	}
	code, err := h.SendMessage(ctx(t), "13900000009", "stateless ok", true)
	if err != nil || code != 280 {
		t.Fatalf("after garbage, stateless: %d %v", code, err)
	}
	if m := recvSMS(t, b); m.Text != "stateless ok" {
		t.Fatalf("got %+v", m)
	}
	if !strings.Contains(b.logs.String(), "undecodable frame") {
		t.Fatal("garbage frame not logged")
	}
}

// A stateless handset on a stateful server (or the reverse) cannot talk:
// the mismatch is caught, not mis-decoded.
func TestModeMismatchDetected(t *testing.T) {
	b := startBridge(t, nil)
	h := b.dial(t, false)
	if err := h.Register(ctx(t), "13800000001", passwords["13800000001"], domain, 600); err == nil {
		t.Fatal("stateless handset registered on a stateful link")
	}
	<-h.Done()
}

func TestSendIMVanished(t *testing.T) {
	b := startBridge(t, nil)
	h := b.login(t, "13800000001")
	bd, ok := b.pres.Lookup("+8613800000001")
	if !ok {
		t.Fatal("not present")
	}
	m := &msg.Message{ID: "x1", From: "+8613900000009", To: "+8613800000001", Text: "hi"}
	if err := b.srv.SendIM(ctx(t), m, bd); err != nil {
		t.Fatalf("live SendIM: %v", err)
	}
	if in := recvIM(t, h); in.Text != "hi" || in.ID != "x1" || in.From != "tel:+8613900000009" {
		t.Fatalf("got %+v", in)
	}
	// A binding naming this connection but another user is refused.
	other := bd
	other.AOR = "+8613800000002"
	if err := b.srv.SendIM(ctx(t), m, other); !errors.Is(err, ErrGone) {
		t.Fatalf("SendIM for another user on this connection: %v", err)
	}
	h.Close()
	testutil.WaitFor(t, "connection gone", 10*time.Second, func() bool { return b.srv.Conns() == 0 })
	if err := b.srv.SendIM(ctx(t), m, bd); !errors.Is(err, ErrGone) {
		t.Fatalf("SendIM to a vanished connection: %v", err)
	}
}

func TestConcurrentSendIM(t *testing.T) {
	b := startBridge(t, nil)
	h := b.login(t, "13800000001")
	// The handset refuses odd messages: each SendIM must get its own answer.
	h.SetAnswer(func(in Incoming) int {
		if strings.HasPrefix(in.Text, "odd") {
			return 486
		}
		return 200
	})
	bd, _ := b.pres.Lookup("+8613800000001")
	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kind := "even"
			if i%2 == 1 {
				kind = "odd"
			}
			m := &msg.Message{ID: fmt.Sprint("id-", i), From: "sip:bob@example.org", To: bd.AOR, Text: fmt.Sprintf("%s %d 🙂", kind, i)}
			errs[i] = b.srv.SendIM(context.Background(), m, bd)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		var se *StatusError
		if i%2 == 0 && err != nil {
			t.Errorf("even %d: %v", i, err)
		}
		if i%2 == 1 && (!errors.As(err, &se) || se.Code != 486) {
			t.Errorf("odd %d: want 486, got %v", i, err)
		}
	}
	seen := make(map[string]bool)
	for len(seen) < n/2 {
		in := recvIM(t, h)
		var i int
		if _, err := fmt.Sscanf(in.Text, "even %d", &i); err != nil || in.ID != fmt.Sprint("id-", i) || in.From != "sip:bob@example.org" {
			t.Fatalf("unexpected delivery %+v", in)
		}
		seen[in.ID] = true
	}
}

func TestSendIMTimeout(t *testing.T) {
	b := startBridge(t, func(c *Config) { c.MessageTimeout = 50e6 })
	h := b.login(t, "13800000001")
	release := make(chan struct{})
	h.SetAnswer(func(Incoming) int { <-release; return 200 })
	defer close(release)
	bd, _ := b.pres.Lookup("+8613800000001")
	err := b.srv.SendIM(ctx(t), &msg.Message{ID: "t", From: "+8613900000009", To: bd.AOR, Text: "x"}, bd)
	if err == nil || !strings.Contains(err.Error(), "no answer") {
		t.Fatalf("want timeout error, got %v", err)
	}
}

func TestMaxConns(t *testing.T) {
	b := startBridge(t, func(c *Config) { c.MaxConns = 1 })
	b.login(t, "13800000001")
	h2 := b.dial(t, true)
	select {
	case <-h2.Done():
	case <-ctx(t).Done():
		t.Fatal("connection over MaxConns not closed")
	}
}

func TestParseTarget(t *testing.T) {
	cases := map[string]msg.Address{
		"sip:678345136@fetion.com.cn;p=5017": "+86678345136",
		"sip:13800000001@x":                  "+8613800000001",
		"tel:+8613800000001":                 "+8613800000001",
		"tel:+8613800000001;phone-context=x": "+8613800000001",
		"13800000001":                        "+8613800000001",
		"+447700900123":                      "+447700900123",
		"sip:Alice@Fetion.com.cn":            "sip:alice@fetion.com.cn",
	}
	for in, want := range cases {
		got, err := ParseTarget(in, "86")
		if err != nil || got != want {
			t.Errorf("%q → %q %v, want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "tel:", "abc", "sip:@x", "tel:+12ab"} {
		if got, err := ParseTarget(in, "86"); err == nil {
			t.Errorf("%q accepted as %q", in, got)
		}
	}
}

func TestFragmentText(t *testing.T) {
	cases := map[string]string{
		`<Font Face='Arial' Color='-16777216' Size='10.5'>a</Font>`: "a",
		`<Font>x &amp; y &#20013; &lt;z&gt;</Font>`:                 "x & y 中 <z>",
		`a<br>b<BR />c`: "a\nb\nc",
		`1 < 2`:         "1 < 2",
		`plain`:         "plain",
	}
	for in, want := range cases {
		if got := FragmentText(in); got != want {
			t.Errorf("%q → %q, want %q", in, got, want)
		}
	}
}

var _ interface {
	SendIM(context.Context, *msg.Message, presence.Binding) error
} = (*Server)(nil)

func TestIdleTimeoutDropsHandset(t *testing.T) {
	b := startBridge(t, func(c *Config) { c.IdleTimeout = 100e6 })
	h := b.login(t, "13800000001")
	select {
	case <-h.Done():
	case <-ctx(t).Done():
		t.Fatal("silent handset never dropped")
	}
	testutil.WaitFor(t, "binding removed after idle drop", 10*time.Second, func() bool {
		_, ok := b.pres.Lookup("+8613800000001")
		return !ok && b.srv.Conns() == 0
	})
	// The close is logged after the connection is forgotten: wait for it too.
	testutil.WaitFor(t, "idle drop logged with its reason", 10*time.Second, func() bool {
		return strings.Contains(b.logs.String(), "idle timeout")
	})
}

// A handset speaking SIP names (REGISTER, From, Call-ID, CSeq) over the
// link gets the same SIP-C digest and is answered in its version.
func TestSIPNamesRegister(t *testing.T) {
	b := startBridge(t, nil)
	h := b.dial(t, true)
	reg := func(cseq, auth string) *Message {
		m := &Message{Method: "REGISTER", Target: "sip:" + domain, Version: "SIP/2.0"}
		m.Add("From", "<sip:alice@"+domain+">;tag=1")
		m.Add("Call-ID", "abc@h")
		m.Add("CSeq", cseq+" REGISTER")
		m.Add("Expires", "120")
		if auth != "" {
			m.Add("Authorization", auth)
		}
		return m
	}
	r, err := h.Request(ctx(t), reg("1", ""))
	if err != nil || r.Code != 401 || r.Version != "SIP/2.0" {
		t.Fatalf("REGISTER: %v %v", r, err)
	}
	sub := nonceRE.FindStringSubmatch(r.Get("W"))
	if sub == nil {
		t.Fatalf("challenge %q", r.Get("W"))
	}
	ans := DigestResponse(HA1("alice", domain, passwords["alice"]), sub[1], "c1")
	r, err = h.Request(ctx(t), reg("2", `Digest response="`+ans+`",cnonce="c1"`))
	if err != nil || r.Code != 200 || r.Get("X") != "120" {
		t.Fatalf("REGISTER with answer: %v %v", r, err)
	}
	if _, ok := b.pres.Lookup("sip:alice@" + domain); !ok {
		t.Fatal("alice not present")
	}
}

// Notify reaches every connection registered as the user, and only those.
func TestNotifyPushesToTheUsersHandsets(t *testing.T) {
	b := startBridge(t, nil)
	h1, h2 := b.login(t, "alice"), b.login(t, "alice")
	other := b.login(t, "13800000001")
	aor, err := msg.FromAOR("sip:alice@"+domain, "86")
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`<results><contacts version="2"/></results>`)
	if n := b.srv.Notify(ctx(t), aor, "contact", body); n != 2 {
		t.Fatalf("Notify reached %d handsets, want alice's 2", n)
	}
	for i, h := range []*Handset{h1, h2} {
		select {
		case nt := <-h.Notifications():
			if nt.Event != "contact" || string(nt.Body) != string(body) {
				t.Fatalf("handset %d got %q %q", i, nt.Event, nt.Body)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("handset %d got no BN", i)
		}
	}
	select {
	case nt := <-other.Notifications():
		t.Fatalf("another user's handset got %q", nt.Event)
	default:
	}
}
