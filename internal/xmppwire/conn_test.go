package xmppwire

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

func TestMeteredConn(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go io.Copy(b, strings.NewReader(strings.Repeat("x", 64)))
	c := NewMeteredConn(a, 10, "role")
	buf := make([]byte, 8)
	read := 0
	var err error
	for err == nil {
		var n int
		n, err = c.Read(buf)
		read += n
	}
	if !errors.Is(err, ErrTooLarge) || err.Error() != "role: stanza exceeds the size limit" || read < 10 || read > 16 {
		t.Fatalf("read %d bytes, then %v", read, err)
	}
	c.Reset()
	if n, err := c.Read(buf); err != nil || n == 0 {
		t.Fatalf("after Reset: %d, %v", n, err)
	}
}
