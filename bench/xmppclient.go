package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The bench's XMPP user client: STARTTLS, SASL PLAIN inside TLS, resource
// binding and initial presence, then a reader over encoding/xml's raw
// tokens that keeps only what XMPPPool acts on. The generator shares the
// machine with the bridge and Prosody it measures, so its users spend no
// CPU decoding stanzas into structures by reflection.

const (
	nsStream = "http://etherx.jabber.org/streams"
	nsTLS    = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL   = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsBind   = "urn:ietf:params:xml:ns:xmpp-bind"
	nsPing   = "urn:xmpp:ping"
)

// xmppStanzaLimit bounds the bytes a user reads for one stanza (Prosody's
// own c2s_stanza_size_limit is 256 KiB): past it the stream fails, so a bad
// server cannot make the decoder buffer without bound.
const xmppStanzaLimit = 256 << 10

// xmppLoginTimeout bounds a login from the dial to the initial presence.
const xmppLoginTimeout = 10 * time.Second

var errXMPPTooLarge = errors.New("xmpp stanza exceeds the size limit")

// meter counts the bytes read since the last reset and fails reads past
// limit. It sits under the bufio.Reader, so a decoder buffers at most
// limit plus one buffer's worth for a stanza.
type meter struct {
	r     io.Reader
	n     int
	limit int
}

func (m *meter) Read(b []byte) (int, error) {
	if m.n >= m.limit {
		return 0, errXMPPTooLarge
	}
	n, err := m.r.Read(b)
	m.n += n
	return n, err
}

// xmppClient is one logged-in user: its connection, written one stanza (or
// one stanza and its ping) at a time, and the reader's state.
type xmppClient struct {
	jid  string   // the bound full JID
	conn net.Conn // the TLS connection
	wmu  sync.Mutex
	in   *stanzaReader
	done chan struct{} // closed when the reader has stopped
	// out is the reader's buffer for its answers (pongs, approvals): only
	// the reader goroutine writes with it.
	out []byte
}

func (u *xmppClient) write(b []byte) error {
	u.wmu.Lock()
	defer u.wmu.Unlock()
	_, err := u.conn.Write(b)
	return err
}

// dialXMPP logs the user local@host in at addr over STARTTLS (cfg verifies
// the server) with SASL PLAIN, binds resource and sends initial presence.
// The stream is then open with nothing read past the bind's answer.
func dialXMPP(ctx context.Context, addr, local, host, password, resource string, cfg *tls.Config) (_ *xmppClient, err error) {
	ctx, cancel := context.WithTimeout(ctx, xmppLoginTimeout)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			raw.Close()
		}
	}()
	// A login that outlives ctx fails on its next read or write.
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Now()) })
	defer stop()

	m := &meter{r: raw, limit: xmppStanzaLimit}
	br := bufio.NewReaderSize(m, 16<<10)
	var conn net.Conn = raw
	// open starts a stream (again) and reads the server's header and
	// features with a new decoder, which then reads the rest of the stream.
	open := func(from string) (*xml.Decoder, *xmlNode, error) {
		if _, err := fmt.Fprintf(conn, "<?xml version='1.0'?><stream:stream %sto='%s' xmlns='jabber:client' "+
			"xmlns:stream='%s' version='1.0'>", from, xmlEscaper.Replace(host), nsStream); err != nil {
			return nil, nil, err
		}
		d := xml.NewDecoder(br)
		if _, err := readStreamHeader(d); err != nil {
			return nil, nil, err
		}
		f, err := readNode(d)
		if err != nil {
			return nil, nil, fmt.Errorf("stream features: %w", err)
		}
		if f.name != "features" {
			return nil, nil, fmt.Errorf("expected <stream:features>, got %s", f)
		}
		return d, f, nil
	}

	d, f, err := open("")
	if err != nil {
		return nil, err
	}
	if f.child("starttls") == nil {
		return nil, errors.New("the server does not offer STARTTLS")
	}
	if _, err := io.WriteString(conn, "<starttls xmlns='"+nsTLS+"'/>"); err != nil {
		return nil, err
	}
	p, err := readNode(d)
	if err != nil {
		return nil, fmt.Errorf("starttls: %w", err)
	}
	if p.name != "proceed" || br.Buffered() > 0 {
		return nil, fmt.Errorf("starttls: got %s", p)
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("starttls handshake: %w", err)
	}
	conn, m.r, m.n = tc, tc, 0
	br.Reset(m)

	from := "from='" + xmlEscaper.Replace(local+"@"+host) + "' "
	if d, f, err = open(from); err != nil {
		return nil, err
	}
	if mechs := f.child("mechanisms"); mechs == nil || !mechs.hasText("mechanism", "PLAIN") {
		return nil, fmt.Errorf("the server does not offer PLAIN inside TLS: %s", f)
	}
	cred := base64.StdEncoding.EncodeToString([]byte("\x00" + local + "\x00" + password))
	if _, err := io.WriteString(conn, "<auth xmlns='"+nsSASL+"' mechanism='PLAIN'>"+cred+"</auth>"); err != nil {
		return nil, err
	}
	if a, err := readNode(d); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	} else if a.name != "success" {
		return nil, fmt.Errorf("auth failure: %s", a)
	}

	m.n = 0
	if d, f, err = open(from); err != nil {
		return nil, err
	}
	if f.child("bind") == nil {
		return nil, fmt.Errorf("the server does not offer resource binding: %s", f)
	}
	if _, err := io.WriteString(conn, "<iq type='set' id='bind'><bind xmlns='"+nsBind+"'><resource>"+
		xmlEscaper.Replace(resource)+"</resource></bind></iq>"); err != nil {
		return nil, err
	}
	b, err := readNode(d)
	if err != nil {
		return nil, fmt.Errorf("bind: %w", err)
	}
	jid := ""
	if bb := b.child("bind"); bb != nil && bb.child("jid") != nil {
		jid = bb.child("jid").text
	}
	if b.name != "iq" || b.attr("id") != "bind" || b.attr("type") != "result" || jid == "" {
		return nil, fmt.Errorf("bind: got %s", b)
	}
	if _, err := io.WriteString(conn, "<presence/>"); err != nil {
		return nil, err
	}
	if !stop() {
		return nil, ctx.Err()
	}
	m.n = 0
	return &xmppClient{jid: jid, conn: conn, in: &stanzaReader{d: d, m: m}, done: make(chan struct{})}, nil
}

// readStreamHeader reads the server's <stream:stream> opening and returns it.
func readStreamHeader(d *xml.Decoder) (xml.StartElement, error) {
	for {
		t, err := d.RawToken()
		if err != nil {
			return xml.StartElement{}, fmt.Errorf("stream header: %w", err)
		}
		if se, ok := t.(xml.StartElement); ok {
			if se.Name.Local != "stream" {
				return se, fmt.Errorf("stream header: got <%s>", se.Name.Local)
			}
			return se, nil
		}
	}
}

// xmlNode is an element the login reads whole: features, proceed, the
// SASL outcome, the bind result.
type xmlNode struct {
	name  string
	attrs []xml.Attr
	text  string
	kids  []*xmlNode
}

// readNode reads the next element at the stream's top level. The meter
// under d bounds it.
func readNode(d *xml.Decoder) (*xmlNode, error) {
	var stack []*xmlNode
	for {
		t, err := d.RawToken()
		if err != nil {
			return nil, err
		}
		switch t := t.(type) {
		case xml.StartElement:
			n := &xmlNode{name: t.Name.Local, attrs: t.Attr}
			if len(stack) > 0 {
				top := stack[len(stack)-1]
				top.kids = append(top.kids, n)
			}
			stack = append(stack, n)
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text += string(t)
			}
		case xml.EndElement:
			if len(stack) == 0 {
				return nil, io.ErrUnexpectedEOF // </stream:stream>
			}
			n := stack[len(stack)-1]
			if stack = stack[:len(stack)-1]; len(stack) == 0 {
				if n.name == "error" {
					return nil, fmt.Errorf("stream error: %s", n)
				}
				return n, nil
			}
		}
	}
}

func (n *xmlNode) child(local string) *xmlNode {
	for _, k := range n.kids {
		if k.name == local {
			return k
		}
	}
	return nil
}

func (n *xmlNode) hasText(local, text string) bool {
	for _, k := range n.kids {
		if k.name == local && k.text == text {
			return true
		}
	}
	return false
}

func (n *xmlNode) attr(name string) string {
	return attr(xml.StartElement{Attr: n.attrs}, name)
}

// String shows the element's name and its children's, enough to tell a
// failure's condition.
func (n *xmlNode) String() string {
	s := "<" + n.name
	if t := n.attr("type"); t != "" {
		s += " type='" + t + "'"
	}
	s += ">"
	for _, k := range n.kids {
		s += k.String()
	}
	return s
}

// xmppIn is what a user's reader keeps of an incoming stanza.
type xmppIn struct {
	kind, typ, id, from string
	body                []byte // a message's first <body>, bounded by the stanza limit
	ping                bool   // an iq carrying XEP-0199's <ping/>
	errType, errCond    string // of an error stanza (errCond: a stream error's too)
}

// stanzaError is the error an error stanza answers with.
func (in *xmppIn) stanzaError() *xmppStanzaError {
	e := &xmppStanzaError{Kind: in.kind, Type: in.errType, Condition: in.errCond}
	if e.Condition == "" {
		e.Condition = "undefined-condition"
	}
	return e
}

// stanzaReader reads a client stream's stanzas with raw tokens: no
// namespace bookkeeping, no reflection, one xmppIn reused.
type stanzaReader struct {
	d  *xml.Decoder
	m  *meter
	in xmppIn
}

// next reads the next stanza; the xmppIn is valid until the next call. At
// the server's </stream:stream> it returns io.EOF.
func (r *stanzaReader) next() (*xmppIn, error) {
	in := &r.in
	var depth int
	var inBody, bodyDone, inErr bool
	for {
		t, err := r.d.RawToken()
		if err != nil {
			return nil, err
		}
		switch t := t.(type) {
		case xml.StartElement:
			depth++
			switch depth {
			case 1:
				*in = xmppIn{kind: t.Name.Local, body: in.body[:0]}
				for _, a := range t.Attr {
					if a.Name.Space != "" {
						continue
					}
					switch a.Name.Local {
					case "type":
						in.typ = a.Value
					case "id":
						in.id = a.Value
					case "from":
						in.from = a.Value
					}
				}
			case 2:
				switch {
				case in.kind == "error": // <stream:error>: the condition is its child
					if in.errCond == "" && t.Name.Local != "text" {
						in.errCond = t.Name.Local
					}
				case t.Name.Local == "body":
					inBody = in.kind == "message" && !bodyDone
				case t.Name.Local == "ping":
					in.ping = in.kind == "iq" && attr(t, "xmlns") == nsPing
				case t.Name.Local == "error":
					inErr, in.errType = true, attr(t, "type")
				}
			case 3:
				if inErr && in.errCond == "" && t.Name.Local != "text" {
					in.errCond = t.Name.Local
				}
			}
		case xml.CharData:
			switch depth {
			case 0: // whitespace between stanzas
				r.m.n = 0
			case 2:
				if inBody {
					in.body = append(in.body, t...)
				}
			}
		case xml.EndElement:
			switch depth {
			case 0:
				return nil, io.EOF // </stream:stream>
			case 1:
				r.m.n = 0
				return in, nil
			case 2:
				if inBody {
					inBody, bodyDone = false, true
				}
				inErr = false
			}
			depth--
		}
	}
}

// appendEscaped appends s escaped for an XML attribute or element.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b = append(b, "&amp;"...)
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		case '\'':
			b = append(b, "&apos;"...)
		case '"':
			b = append(b, "&quot;"...)
		default:
			b = append(b, c)
		}
	}
	return b
}
