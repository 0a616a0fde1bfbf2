package smstext

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// ReceiptTextRunes is how much of the original text a receipt quotes
// ("text:", SMPP 3.4 Appendix B).
const ReceiptTextRunes = 20

// ReceiptText is the start of s that a receipt quotes.
func ReceiptText(s string) string {
	n := 0
	for i := range s {
		if n == ReceiptTextRunes {
			return s[:i]
		}
		n++
	}
	return s
}

// ErrReceipt marks text that is not a delivery receipt.
var ErrReceipt = errors.New("smstext: not a delivery receipt")

// Receipt is a delivery receipt in the SMPP 3.4 Appendix B text form.
type Receipt struct {
	ID           string
	Sub, Dlvrd   int
	Submit, Done time.Time // minute (or second) precision, UTC
	Stat         string    // DELIVRD, EXPIRED, ... (upper case when parsed)
	Err          string    // network specific error code, e.g. "000"
	Text         string    // first 20 characters of the message
}

const receiptDate = "0601021504"

// FormatReceipt renders r as
//
//	id:ID sub:001 dlvrd:001 submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD err:000 text:...
//
// Dates are in UTC; a zero time renders as 0000000000. Err is zero-padded to
// three digits when numeric ("000" if empty). Text is cut to 20 characters.
func FormatReceipt(r Receipt) string {
	e := r.Err
	if e == "" {
		e = "000"
	} else if n, err := strconv.Atoi(e); err == nil && n >= 0 && len(e) < 3 {
		e = fmt.Sprintf("%03d", n)
	}
	return fmt.Sprintf("id:%s sub:%03d dlvrd:%03d submit date:%s done date:%s stat:%s err:%s text:%s",
		r.ID, r.Sub, r.Dlvrd, fmtReceiptDate(r.Submit), fmtReceiptDate(r.Done), r.Stat, e, ReceiptText(r.Text))
}

// MaxReceiptOctets is what short_message holds.
const MaxReceiptOctets = 254

// EncodeReceipt renders r (FormatReceipt) in the cheapest alphabet that
// holds it exactly (Encode with Auto) and within max octets: when it does
// not fit, the quoted text is shortened, a character at a time, down to
// nothing. The fields before text: are ASCII, so the receipt always fits
// in the alphabet it declares; it is never cut mid-character.
func EncodeReceipt(r Receipt, max int) (dcs byte, body []byte) {
	quote := []rune(ReceiptText(r.Text))
	for n := len(quote); ; n-- {
		r.Text = string(quote[:n])
		dcs, body, err := Encode(FormatReceipt(r), Auto)
		if err == nil && len(body) <= max {
			return dcs, body
		}
		if n == 0 { // an ID too long for any receipt: cut what is ASCII
			s := FormatReceipt(r)
			return DCSDefault, encodeGSM7Prefix(s, max)
		}
	}
}

// encodeGSM7Prefix encodes the longest prefix of s within max septets that
// is all GSM 7-bit (the receipt's fields are).
func encodeGSM7Prefix(s string, max int) []byte {
	var out []byte
	for _, c := range s {
		_, b, err := Encode(string(c), Auto)
		if err != nil || len(out)+len(b) > max {
			break
		}
		out = append(out, b...)
	}
	return out
}

func fmtReceiptDate(t time.Time) string {
	if t.IsZero() {
		return "0000000000"
	}
	return t.UTC().Format(receiptDate)
}

// receiptKeys are the field names ParseReceipt knows, longest first so that
// "submit date" wins over "sub". Matching is ASCII case-insensitive.
var receiptKeys = []string{"submit date", "submit_date", "submitdate", "done date", "done_date", "donedate",
	"dlvrd", "stat", "text", "sub", "err", "id"}

// ParseReceipt parses the Appendix B text form tolerantly: fields in any
// order, keys in any case, missing fields, "submit_date"/"done_date", dates
// with 10 (YYMMDDhhmm) or 12 (YYMMDDhhmmss) digits, any amount of space
// around fields and after the colon. text runs to the next known field not
// seen yet, normally the end. Unparsable numbers and dates are left zero. An
// id is required.
func ParseReceipt(s string) (Receipt, error) {
	var r Receipt
	seen := map[string]bool{}
	haveID := false
	i := 0
	for i < len(s) {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		key, after := matchKey(s, i)
		if key == "" {
			// Not a field: skip this word.
			for i < len(s) && !isSpace(s[i]) {
				i++
			}
			continue
		}
		seen[key] = true
		i = after
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		var val string
		if key == "text" {
			end := len(s)
			for j := i; j < len(s); j++ {
				if isSpace(s[j]) {
					if k, _ := matchKey(s, j+1); k != "" && k != "text" && !seen[k] {
						end = j
						break
					}
				}
			}
			val = s[i:end]
			i = end
		} else if k, _ := matchKey(s, i); k != "" {
			val = "" // "id: sub:001": id is empty, sub comes next
		} else {
			j := i
			for j < len(s) && !isSpace(s[j]) {
				j++
			}
			val = s[i:j]
			i = j
		}
		switch key {
		case "id":
			r.ID, haveID = val, val != ""
		case "sub":
			r.Sub, _ = strconv.Atoi(val)
		case "dlvrd":
			r.Dlvrd, _ = strconv.Atoi(val)
		case "submit date":
			r.Submit = parseReceiptDate(val)
		case "done date":
			r.Done = parseReceiptDate(val)
		case "stat":
			r.Stat = strings.ToUpper(val)
		case "err":
			r.Err = val
		case "text":
			r.Text = strings.TrimRight(val, " \t\r\n")
		}
	}
	if !haveID {
		return Receipt{}, fmt.Errorf("parse receipt %q: %w: no id", truncate(s, 64), ErrReceipt)
	}
	return r, nil
}

// matchKey reports the canonical key of the field starting at s[i] (key,
// optional spaces, colon) and the index after the colon.
func matchKey(s string, i int) (string, int) {
	for _, k := range receiptKeys {
		if len(s)-i < len(k) || !strings.EqualFold(s[i:i+len(k)], k) {
			continue
		}
		j := i + len(k)
		for j < len(s) && s[j] == ' ' {
			j++
		}
		if j < len(s) && s[j] == ':' {
			switch k {
			case "submit_date", "submitdate":
				k = "submit date"
			case "done_date", "donedate":
				k = "done date"
			}
			return k, j + 1
		}
	}
	return "", i
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func parseReceiptDate(v string) time.Time {
	layout := receiptDate
	if len(v) == 12 {
		layout = "060102150405"
	} else if len(v) != 10 {
		return time.Time{}
	}
	t, err := time.Parse(layout, v)
	if err != nil {
		return time.Time{}
	}
	return t
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// NormalizeMessageID returns a comparison key for an SMSC message id:
// surrounding space trimmed, lower-cased, a "0x" prefix removed, leading
// zeros stripped; an all-decimal id stays decimal, and an id with hex
// letters (a-f, all hex digits) is converted to its decimal value. Other ids
// (UUIDs, ids with '-' or other letters) are only trimmed and lower-cased.
//
// SMSCs commonly return the submit_sm_resp id in hex and the receipt id in
// decimal (or the other way round), so the gateway normalizes both the
// stored submit id and the receipt id before comparing. An all-digit id is
// ambiguous (it could be hex without letters); this rule reads it as
// decimal, so a hex id that happens to have no letters will not match its
// decimal twin. Use SameMessageID where both readings should be tried.
func NormalizeMessageID(id string) string {
	id = strings.ToLower(strings.TrimSpace(id))
	hex := false
	if strings.HasPrefix(id, "0x") && len(id) > 2 {
		id, hex = id[2:], true
	}
	if d, ok := parseBase(id, 10); ok && !hex {
		return d.String()
	}
	if h, ok := parseBase(id, 16); ok {
		return h.String()
	}
	return id
}

// SameMessageID reports whether a and b name the same message: equal after
// trimming and lower-casing, or equal as numbers when each is read as
// decimal or as hex (leading zeros ignored). So "0A1B" and "2587" match, and
// so do "10" and "16" (hex 10 is 16): the price of SMSCs not saying which
// base they use.
func SameMessageID(a, b string) bool {
	a, b = strings.ToLower(strings.TrimSpace(a)), strings.ToLower(strings.TrimSpace(b))
	if a == b {
		return a != ""
	}
	ra, rb := readings(a), readings(b)
	for _, x := range ra {
		for _, y := range rb {
			if x.Cmp(y) == 0 {
				return true
			}
		}
	}
	return false
}

func readings(id string) []*big.Int {
	if strings.HasPrefix(id, "0x") && len(id) > 2 {
		if h, ok := parseBase(id[2:], 16); ok {
			return []*big.Int{h}
		}
		return nil
	}
	var out []*big.Int
	if d, ok := parseBase(id, 10); ok {
		out = append(out, d)
	}
	if h, ok := parseBase(id, 16); ok {
		out = append(out, h)
	}
	return out
}

// parseBase parses s as an unsigned number with digits only (no sign, no
// prefix, no underscores, which big.Int.SetString would otherwise accept).
func parseBase(s string, base int) (*big.Int, bool) {
	if s == "" {
		return nil, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
		case base == 16 && (c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'):
		default:
			return nil, false
		}
	}
	n, ok := new(big.Int).SetString(s, base)
	return n, ok
}

// SMPP 3.4 §5.2.28 message_state values.
var statWords = [...]string{1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD"}

// MessageStateOf maps a receipt stat word to the SMPP message_state value:
// ENROUTE 1, DELIVRD 2, EXPIRED 3, DELETED 4, UNDELIV 5, ACCEPTD 6,
// UNKNOWN 7, REJECTD 8. Case is ignored and the long forms (DELIVERED,
// UNDELIVERABLE, ACCEPTED, REJECTED) are accepted. An unrecognized word
// returns 0, so the caller can tell it from an explicit UNKNOWN.
func MessageStateOf(stat string) byte {
	switch strings.ToUpper(strings.TrimSpace(stat)) {
	case "ENROUTE":
		return 1
	case "DELIVRD", "DELIVERED":
		return 2
	case "EXPIRED":
		return 3
	case "DELETED":
		return 4
	case "UNDELIV", "UNDELIVERABLE":
		return 5
	case "ACCEPTD", "ACCEPTED":
		return 6
	case "UNKNOWN":
		return 7
	case "REJECTD", "REJECTED":
		return 8
	}
	return 0
}

// StatOf maps a message_state value to its receipt stat word; values
// outside 1..8 give "UNKNOWN".
func StatOf(state byte) string {
	if state >= 1 && int(state) < len(statWords) {
		return statWords[state]
	}
	return "UNKNOWN"
}
