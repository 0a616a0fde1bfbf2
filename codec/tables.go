package codec

// Static tables of format version 2, which version 3 reuses for methods,
// versions and reason phrases (tables3.go has its own names and tokens).
// They are part of both wire formats: never change them. Never mutated
// after package initialization.

// methods are request methods, SIP-C first (one letter on the wire) and
// RFC 3261 after. Index 0xFF on the wire means a literal method.
var methods = []string{
	"R", "M", "S", "SUB", "BN", "I", "A", "B", "O", "IN", "N", "C",
	"REGISTER", "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "MESSAGE",
	"SUBSCRIBE", "NOTIFY", "INFO", "PRACK", "UPDATE", "REFER", "PUBLISH",
}

// versions are protocol versions of start lines.
var versions = []string{"SIP-C/2.0", "SIP/2.0", "SIP-C/4.0"}

// names are header names with their own opcode range; index
// nameExt means "extended name": an index into extNames follows.
var names = []string{
	"F", "T", "I", "Q", "L", "N", "K", "C", "X", "A", "W", "XI", "D", "CN", "CL",
	"Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Length", "Content-Type",
}

const nameExt = 23 // == len(names)

// extNames follow an opcode with name index nameExt; 0xFF means literal.
var extNames = []string{
	"Max-Forwards", "Expires", "User-Agent", "Allow", "Supported", "Event",
	"Subscription-State", "Authorization", "WWW-Authenticate",
	"Proxy-Authorization", "Proxy-Authenticate", "Record-Route", "Route",
	"Accept", "Server", "Date", "Require", "Content-Encoding", "Allow-Events",
	"Min-Expires", "Reason", "Warning", "P-Asserted-Identity", "Accept-Encoding",
	"Accept-Language", "Content-Disposition", "Organization", "Priority",
	"Subject", "Timestamp", "Unsupported", "Alert-Info", "Call-Info",
	"Error-Info", "In-Reply-To", "MIME-Version", "Proxy-Require", "Reply-To",
	"Retry-After", "Refer-To", "Referred-By", "Session-Expires", "Min-SE",
	"P-Preferred-Identity", "Privacy", "Path", "Service-Route", "SIP-ETag",
	"SIP-If-Match", "Content-Language", "Authentication-Info", "RSeq", "RAck",
	"AK", "RQ", "RA", "SV", "CI", "GI", "AL", "OI",
	"v", "f", "t", "i", "m", "l", "c", "k", "e", "s", "o", "u", "r", "x", "y", "b", "a",
}

// lengthNames are header names whose value may be implied by the body length.
func isLengthName(name []byte) bool {
	return string(name) == "L" || string(name) == "Content-Length" || string(name) == "l"
}

// tokens are whole header values (or request URIs) sent as one byte.
var tokens = []string{
	"fetion.com.cn", "text/html-fragment", "text/plain", "multiparty", "nudge",
	"share-background", "SaveHistory", "presence", "contact", "permission",
	"registration", "system-message", "GetContactList", "SetPresence",
	"SendCatSMS", "SendSMS", "GetPersonalInfo", "SetPersonalInfo",
	"GetContactsInfo", "AddBuddy", "DeleteBuddy", "SetContactInfo",
	"GetGroupList", "StartChat", "InviteBuddy", "KeepAlive", "PGGroup",
	"PGGetGroupList", "PGGetGroupInfo", "PGGetGroupMembers", "PGPresence",
	"SubPresence", "GetOfflineMessages", "SetUserInfo", "GetScore",
	"conversation", "SyncUserInfo", "AddMobileBuddy", "HandleContactRequest",
	"PresenceChanged", "BuddyApplication", "deregistered", "NoticeStatus",
	"text/xml", "application/sdp", "application/xml", "application/pidf+xml",
	"message/imdn+xml", "application/im-iscomposing+xml", "0", "600", "25200",
	"3600", "70", "1800", "7200", "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE",
	"INVITE, ACK, CANCEL, BYE, REFER, OPTIONS, NOTIFY, SUBSCRIBE, MESSAGE, INFO",
	"ACK, BYE, CANCEL, INFO, INVITE, MESSAGE, NOTIFY, OPTIONS, PRACK, REFER, UPDATE",
	"timer", "100rel", "path", "replaces", "norefersub", "eventlist",
	"active", "terminated", "pending", "message-summary", "dialog",
	"text/plain;charset=UTF-8", "text/html", "multipart/mixed", "SIP-C/2.0",
	"Fetion", "IIC", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10",
}

// reasons are the default reason phrases; a response whose phrase equals
// the default for its code sends no phrase.
var reasons = map[int]string{
	100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
	183: "Session Progress", 200: "OK", 202: "Accepted", 280: "Send SMS OK",
	281: "Send SMS OK", 300: "Multiple Choices", 301: "Moved Permanently",
	302: "Moved Temporarily", 305: "Use Proxy", 380: "Alternative Service",
	400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
	404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
	407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
	413: "Request Entity Too Large", 414: "Request-URI Too Long",
	415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
	421: "Extension Required", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
	481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
	484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
	488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
	500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
	503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
	513: "Message Too Large", 600: "Busy Everywhere", 603: "Decline",
	604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}

// strIndex looks a string up in a fixed list (the first index of equal
// entries): an open-addressed table hashed on the length and three bytes,
// cheaper than a map's hash of the whole key for the long header values
// that are never in it.
type strIndex struct {
	list   []string
	slot   []uint16 // index + 1 into list; 0: empty
	mask   uint32
	maxLen int
}

// tableIndex builds the lookup of list; built once at init.
func tableIndex(list []string) *strIndex {
	size := 4
	for size < 4*len(list) {
		size <<= 1
	}
	t := &strIndex{list: list, slot: make([]uint16, size), mask: uint32(size - 1)}
	for i, s := range list {
		if s == "" {
			panic("codec: empty string in a lookup table")
		}
		t.maxLen = max(t.maxLen, len(s))
		if _, dup := t.get([]byte(s)); !dup {
			h := strHash(s)
			for t.slot[h&t.mask] != 0 {
				h++
			}
			t.slot[h&t.mask] = uint16(i + 1)
		}
	}
	return t
}

func strHash[T string | []byte](b T) uint32 {
	n := len(b)
	return (uint32(n)*0x9E3779B1 ^ uint32(b[0]) ^ uint32(b[n/2])<<8 ^ uint32(b[n-1])<<16) * 0x85EBCA6B >> 11
}

// get returns the index of b in the list.
func (t *strIndex) get(b []byte) (uint8, bool) {
	if len(b) == 0 || len(b) > t.maxLen {
		return 0, false
	}
	for h := strHash(b); ; h++ {
		k := t.slot[h&t.mask]
		if k == 0 {
			return 0, false
		}
		if t.list[k-1] == string(b) {
			return uint8(k - 1), true
		}
	}
}

// reasonOf is the default reason phrase of code ("" for none).
func reasonOf(code uint64) string {
	if code < uint64(len(reasonTable)) {
		return reasonTable[code]
	}
	return ""
}

var reasonTable = func() (t [700]string) {
	for c, r := range reasons {
		t[c] = r
	}
	return t
}()

var (
	methodIndex  = tableIndex(methods)
	nameIndex    = tableIndex(names)
	extNameIndex = tableIndex(extNames)
	tokenIndex   = tableIndex(tokens)
	versionIndex = tableIndex(versions)
)
