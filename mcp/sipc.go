package mcp

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Version is the protocol string of SIP-C/2.0 messages.
const Version = "SIP-C/2.0"

// maxHeaders bounds the header lines of one message so a frame full of
// tiny headers cannot make us build a huge slice.
const maxHeaders = 64

// ErrMalformed is wrapped by every Parse error.
var ErrMalformed = errors.New("malformed SIP-C")

// Header is one "Name: value" line; Value is trimmed of surrounding blanks.
type Header struct {
	Name, Value string
}

// Message is one SIP-C request or response.
type Message struct {
	// Request: Method ("R", "M", ...) and Target; Code is 0.
	Method, Target string
	// Response: Code (100..699) and Reason; Method is "".
	Code    int
	Reason  string
	Version string // "SIP-C/2.0" (or "SIP/2.0" when a handset speaks SIP)
	Headers []Header
	Body    []byte
}

// IsResponse reports whether m is a response.
func (m *Message) IsResponse() bool { return m.Code != 0 }

// longNames maps RFC 3261 header names to SIP-C compact ones, so a handset
// speaking plain SIP over the link is understood.
var longNames = map[string]string{
	"from": "F", "to": "T", "call-id": "I", "cseq": "Q", "content-length": "L",
	"expires": "X", "content-type": "C", "authorization": "A", "www-authenticate": "W",
	"supported": "K", "date": "D",
}

// canon returns the compact upper-case name of a header name.
func canon(name string) string {
	if len(name) > 2 {
		if c, ok := longNames[strings.ToLower(name)]; ok {
			return c
		}
	} else if strings.EqualFold(name, "to") {
		return "T"
	}
	return strings.ToUpper(name)
}

// Get returns the value of the first header called name (compact or long
// form, any case), or "".
func (m *Message) Get(name string) string {
	v, _ := m.Lookup(name)
	return v
}

// Lookup is Get that also says whether the header is present.
func (m *Message) Lookup(name string) (string, bool) {
	want := canon(name)
	for _, h := range m.Headers {
		if canon(h.Name) == want {
			return h.Value, true
		}
	}
	return "", false
}

// Add appends a header.
func (m *Message) Add(name, value string) { m.Headers = append(m.Headers, Header{name, value}) }

// SetBody sets the body and the L header to match (removing L when empty).
func (m *Message) SetBody(b []byte) {
	m.Body = b
	hs := m.Headers[:0]
	for _, h := range m.Headers {
		if canon(h.Name) != "L" {
			hs = append(hs, h)
		}
	}
	m.Headers = hs
	if len(b) > 0 {
		m.Add("L", strconv.Itoa(len(b)))
	}
}

// CSeq splits the Q header into its number and method.
func (m *Message) CSeq() (n uint64, method string, err error) {
	q := m.Get("Q")
	num, meth, ok := strings.Cut(q, " ")
	if !ok {
		return 0, "", fmt.Errorf("%w: Q %q is not \"n METHOD\"", ErrMalformed, q)
	}
	n, err = strconv.ParseUint(num, 10, 32)
	if err != nil || !isToken(meth) {
		return 0, "", fmt.Errorf("%w: Q %q is not \"n METHOD\"", ErrMalformed, q)
	}
	return n, meth, nil
}

// AppendTo renders m as SIP-C text (headers in order, verbatim).
func (m *Message) AppendTo(dst []byte) []byte {
	v := m.Version
	if v == "" {
		v = Version
	}
	if m.Code != 0 {
		dst = append(dst, v...)
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, int64(m.Code), 10)
		dst = append(dst, ' ')
		dst = append(dst, m.Reason...)
	} else {
		dst = append(dst, m.Method...)
		dst = append(dst, ' ')
		dst = append(dst, m.Target...)
		dst = append(dst, ' ')
		dst = append(dst, v...)
	}
	dst = append(dst, "\r\n"...)
	for _, h := range m.Headers {
		dst = append(dst, h.Name...)
		dst = append(dst, ": "...)
		dst = append(dst, h.Value...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "\r\n"...)
	return append(dst, m.Body...)
}

// String renders m for logs and tests.
func (m *Message) String() string { return string(m.AppendTo(nil)) }

func isToken(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// validText rejects control characters (other than tab) in a start line or
// header value; CR and LF would let a value smuggle a header.
func validText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func errf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// Parse parses one SIP-C message, strictly: CRLF line ends only, a known
// version, token method and header names, no control characters, at most
// one L which must equal the body length, and no body without L. The
// returned message does not alias b.
func Parse(b []byte) (*Message, error) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, errf("no empty line after the headers")
	}
	head, body := string(b[:end+2]), b[end+4:]
	line, rest, _ := strings.Cut(head, "\r\n")
	if !validText(line) {
		return nil, errf("control character in start line")
	}
	m := &Message{}
	if strings.HasPrefix(line, "SIP") {
		ver, st, ok := strings.Cut(line, " ")
		if !ok || (ver != Version && ver != "SIP/2.0") {
			return nil, errf("bad status line %q", clip(line))
		}
		code, reason, _ := strings.Cut(st, " ")
		c, err := strconv.Atoi(code)
		if err != nil || len(code) != 3 || c < 100 || c > 699 {
			return nil, errf("bad status code %q", clip(code))
		}
		m.Version, m.Code, m.Reason = ver, c, reason
	} else {
		parts := strings.Split(line, " ")
		if len(parts) != 3 || !isToken(parts[0]) || parts[1] == "" || (parts[2] != Version && parts[2] != "SIP/2.0") {
			return nil, errf("bad request line %q", clip(line))
		}
		m.Method, m.Target, m.Version = parts[0], parts[1], parts[2]
	}
	bodyLen := -1
	for rest != "" {
		if len(m.Headers) == maxHeaders {
			return nil, errf("more than %d headers", maxHeaders)
		}
		var l string
		l, rest, _ = strings.Cut(rest, "\r\n")
		name, val, ok := strings.Cut(l, ":")
		if !ok || !isToken(name) {
			return nil, errf("bad header line %q", clip(l))
		}
		if !validText(val) {
			return nil, errf("control character in header %s", name)
		}
		val = strings.Trim(val, " \t")
		if canon(name) == "L" {
			if bodyLen >= 0 {
				return nil, errf("repeated L header")
			}
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 || len(val) > 9 || val[0] == '+' {
				return nil, errf("bad L %q", clip(val))
			}
			bodyLen = n
		}
		m.Headers = append(m.Headers, Header{name, val})
	}
	switch {
	case bodyLen < 0 && len(body) > 0:
		return nil, errf("%d body bytes without L", len(body))
	case bodyLen >= 0 && bodyLen != len(body):
		return nil, errf("L is %d but the body has %d bytes", bodyLen, len(body))
	}
	if len(body) > 0 {
		m.Body = append([]byte(nil), body...)
	}
	return m, nil
}

// sniff pulls I and Q out of a message Parse rejected, so the 400 can still
// be matched by the handset. It is lenient on purpose and used for nothing
// else.
func sniff(b []byte) (callID, cseq string) {
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		b = b[:i]
	}
	for _, l := range strings.Split(string(b), "\n") {
		name, val, ok := strings.Cut(strings.TrimRight(l, "\r"), ":")
		if !ok || !isToken(strings.TrimSpace(name)) {
			continue
		}
		val = strings.TrimSpace(val)
		if !validText(val) || len(val) > 128 {
			continue
		}
		switch canon(strings.TrimSpace(name)) {
		case "I":
			if callID == "" {
				callID = val
			}
		case "Q":
			if cseq == "" {
				cseq = val
			}
		}
	}
	return callID, cseq
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
