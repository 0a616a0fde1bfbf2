package api

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestNoTokenNoBodyRead: a request without a token that announces a large
// body gets its 401 as soon as its headers are in; the body is never
// waited for. One with the token and the same headers is waited for.
func TestNoTokenNoBodyRead(t *testing.T) {
	e := startEnv(t)
	addr := strings.TrimPrefix(e.base, "http://")
	send := func(auth string) (int, error) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// 512 KiB announced, none sent.
		req := "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + auth + "Content-Length: 524288\r\n\r\n"
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	code, err := send("")
	if err != nil || code != http.StatusUnauthorized {
		t.Fatalf("no token: %d %v, want 401 at once", code, err)
	}
	code, err = send("Authorization: Bearer wrong\r\n")
	if err != nil || code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d %v, want 401 at once", code, err)
	}
	if code, err := send("Authorization: Bearer " + testToken + "\r\n"); err == nil {
		t.Fatalf("with the token the body is not waited for: %d", code)
	}
}
