package main

import (
	"bytes"
	"io"
	"net"
	"regexp"
	"sync"
	"testing"
)

// routeProxy stands in front of one node's NATS route port. The node
// advertises the proxy, so every route to it passes here whoever dialed,
// and the test can cut the routes of chosen peers: the proxy learns who
// dialed from the server_name in the dialer's INFO.
type routeProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   map[string]bool           // peers whose routes are cut
	conns map[net.Conn]*proxiedConn // open connections, by the dialer's end
}

type proxiedConn struct {
	peer     string // the dialer's server name, "" until its INFO passed
	upstream net.Conn
}

var serverNameRE = regexp.MustCompile(`"server_name":"([^"]+)"`)

func startRouteProxy(t *testing.T, target string) *routeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &routeProxy{ln: ln, target: target, cut: map[string]bool{}, conns: map[net.Conn]*proxiedConn{}}
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for c, pc := range p.conns {
			c.Close()
			pc.upstream.Close()
		}
	})
	go p.serve()
	return p
}

func (p *routeProxy) addr() string { return p.ln.Addr().String() }

func (p *routeProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		pc := &proxiedConn{upstream: up}
		p.mu.Lock()
		p.conns[c] = pc
		p.mu.Unlock()
		go func() {
			io.Copy(c, up)
			c.Close()
		}()
		go p.forward(c, pc)
	}
}

// forward copies the dialer's bytes upstream, reading the dialer's name
// from its first kilobytes; a connection from a cut peer is closed.
func (p *routeProxy) forward(c net.Conn, pc *proxiedConn) {
	defer func() {
		c.Close()
		pc.upstream.Close()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	var head []byte
	named := false
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if !named && len(head) < 16<<10 {
				head = append(head, buf[:n]...)
				if m := serverNameRE.FindSubmatch(head); m != nil && bytes.Contains(head, []byte("INFO")) {
					named = true
					p.mu.Lock()
					pc.peer, head = string(m[1]), nil
					cut := p.cut[pc.peer]
					p.mu.Unlock()
					if cut {
						return
					}
				}
			}
			if _, werr := pc.upstream.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// peers are the names of the nodes whose routes pass this proxy now.
func (p *routeProxy) peers() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := map[string]int{}
	for _, pc := range p.conns {
		if pc.peer != "" {
			m[pc.peer]++
		}
	}
	return m
}

// setCut cuts (or restores) the routes between this proxy's node and the
// named peer, as far as they pass this proxy: open ones are closed.
func (p *routeProxy) setCut(peer string, cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut[peer] = cut
	if !cut {
		return
	}
	for c, pc := range p.conns {
		if pc.peer == peer {
			c.Close()
			pc.upstream.Close()
		}
	}
}
