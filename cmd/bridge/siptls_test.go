package main

import (
	"context"
	"crypto/tls"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/smsbridge/bridge/internal/testutil"
	"github.com/smsbridge/bridge/internal/tlsconf/tlstest"
)

// tlsUA is a sipgo client that reaches the bridge over TLS only.
type tlsUA struct {
	user, password string
	cli            *sipgo.Client
}

func startTLSUA(t *testing.T, user, password string, conf *tls.Config) *tlsUA {
	t.Helper()
	agent, err := sipgo.NewUA(sipgo.WithUserAgent(user), sipgo.WithUserAgenTLSConfig(conf))
	if err != nil {
		t.Fatal(err)
	}
	cli, err := sipgo.NewClient(agent, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Close() })
	return &tlsUA{user: user, password: password, cli: cli}
}

// do sends req over TLS to addr, answering a digest challenge.
func (u *tlsUA) do(addr string, req *sipmsg.Request) (int, error) {
	req.SetTransport("TLS")
	req.SetDestination(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := u.cli.Do(ctx, req)
	if err != nil {
		return 0, err
	}
	if res.StatusCode == 401 || res.StatusCode == 407 {
		if res, err = u.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: u.user, Password: u.password}); err != nil {
			return 0, err
		}
	}
	return int(res.StatusCode), nil
}

func (u *tlsUA) register(addr string) (int, error) {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	req := sipmsg.NewRequest(sipmsg.REGISTER, sipmsg.Uri{Scheme: "sip", Host: host, Port: p, UriParams: sipmsg.HeaderParams{{K: "transport", V: "tls"}}})
	aor := "<sip:" + u.user + "@" + testDomain + ">"
	req.AppendHeader(sipmsg.NewHeader("From", aor+";tag=regtls"))
	req.AppendHeader(sipmsg.NewHeader("To", aor))
	req.AppendHeader(sipmsg.NewHeader("Contact", "<sip:"+u.user+"@127.0.0.1:5061;transport=tls>"))
	req.AppendHeader(sipmsg.NewHeader("Expires", "3600"))
	return u.do(addr, req)
}

func (u *tlsUA) message(addr, toUser, text string) (int, error) {
	req := sipmsg.NewRequest(sipmsg.MESSAGE, sipmsg.Uri{Scheme: "sip", User: toUser, Host: testDomain})
	req.AppendHeader(sipmsg.NewHeader("From", "<sip:"+u.user+"@"+testDomain+">;tag=mtls"))
	req.AppendHeader(sipmsg.NewHeader("To", "<sip:"+toUser+"@"+testDomain+">"))
	req.AppendHeader(sipmsg.NewHeader("Content-Type", "text/plain;charset=UTF-8"))
	req.SetBody([]byte(text))
	return u.do(addr, req)
}

// SIP over TLS (--sip-tls-listen): a sipgo client that trusts the CA
// registers with digest authentication and sends a MESSAGE that reaches a
// user registered over UDP; a client that does not trust the CA gets no
// answer; openssl s_client carries an OPTIONS and its 200 (the Debian sipp
// is built without TLS, so it cannot be the peer here).
func TestSIPOverTLS(t *testing.T) {
	f := newTLSFiles(t)
	args := append(f.args(), "--sip-tls-listen", "127.0.0.1:0")
	args = append(args, sipUserFlag("8613800000011", "pw11")...)
	args = append(args, sipUserFlag("8613800000012", "pw12")...)
	b := startBridge(t, t.TempDir(), args...)
	if b.addrs.SIPTLS == "" {
		t.Fatal("no SIP TLS address")
	}
	bob := startUA(t, "8613800000012", "pw12")
	if code := bob.register(t, b, 3600); code != 200 {
		t.Fatalf("bob REGISTER over UDP: %d", code)
	}

	alice := startTLSUA(t, "8613800000011", "pw11", f.ca.ClientConfig(""))
	if code, err := alice.register(b.addrs.SIPTLS); err != nil || code != 200 {
		t.Fatalf("REGISTER over TLS: %d %v", code, err)
	}
	if code, err := alice.message(b.addrs.SIPTLS, "8613800000012", "over sip tls"); err != nil || code != 202 && code != 200 {
		t.Fatalf("MESSAGE over TLS: %d %v", code, err)
	}
	testutil.WaitFor(t, "the MESSAGE at bob", 10*time.Second, func() bool { return len(bob.received()) == 1 })
	if got := bob.received()[0]; got != "over sip tls" {
		t.Fatalf("bob got %q", got)
	}

	stranger := startTLSUA(t, "8613800000011", "pw11", tlstest.NewCA(t).ClientConfig(""))
	if code, err := stranger.register(b.addrs.SIPTLS); err == nil {
		t.Fatalf("REGISTER over TLS to an untrusted certificate answered %d", code)
	}

	needCommand(t, "openssl")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "openssl", "s_client", "-connect", b.addrs.SIPTLS, "-CAfile", f.ca.File,
		"-verify_return_error", "-quiet", "-ign_eof")
	cmd.Stdin = strings.NewReader("OPTIONS sip:" + testDomain + " SIP/2.0\r\n" +
		"Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK-openssl-1\r\n" +
		"From: <sip:probe@" + testDomain + ">;tag=1\r\nTo: <sip:" + testDomain + ">\r\n" +
		"Call-ID: openssl-probe-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
	out, _ := cmd.CombinedOutput() // ended by the timeout: -ign_eof waits for the server
	if !strings.Contains(string(out), "SIP/2.0 200") {
		t.Fatalf("OPTIONS through openssl s_client got no 200:\n%s", out)
	}
}
