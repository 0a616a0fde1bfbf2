package codec

// Static tables of format version 3, shared by every encoder and decoder
// and part of the wire format (changing one needs a new format version).
// Methods, versions and reason phrases are those of version 2.

// names3 are header names with their own symbol; the first ones have
// their own model contexts (nameCtx), so the frequent names come first.
var names3 = []string{
	// SIP-C (Fetion).
	"F", "T", "I", "Q", "L", "N", "K", "C", "X", "A", "W", "XI", "D", "CN", "CL", "AK", "SV",
	// RFC 3261, the frequent ones.
	"Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Length", "Content-Type",
	"Max-Forwards", "Expires", "User-Agent", "Server", "Allow", "Supported", "Event",
	"Subscription-State", "Authorization", "WWW-Authenticate", "Proxy-Authorization",
	"Proxy-Authenticate", "Record-Route", "Route", "Accept", "Date", "Require", "Allow-Events",
	"SIP-ETag", "SIP-If-Match", "Min-Expires", "Reason", "Warning", "P-Asserted-Identity",
	// The rest share a context.
	"CI", "GI", "AL", "OI", "RQ", "RA", "XC", "E", "M", "U", "P",
	"Content-Encoding", "Accept-Encoding", "Accept-Language", "Content-Disposition", "Organization",
	"Priority", "Subject", "Timestamp", "Unsupported", "Alert-Info", "Call-Info", "Error-Info",
	"In-Reply-To", "MIME-Version", "Proxy-Require", "Reply-To", "Retry-After", "Refer-To",
	"Referred-By", "Session-Expires", "Min-SE", "P-Preferred-Identity", "Privacy", "Path",
	"Service-Route", "Content-Language", "Authentication-Info", "RSeq", "RAck",
	"v", "f", "t", "i", "m", "l", "c", "k", "e", "s", "o", "u", "r", "x", "y", "b", "a",
}

// tokens3 are whole header values (or request URIs) sent as one symbol:
// the same list as format 2's, whose frames must keep decoding with it.
var tokens3 = tokens

var (
	name3Index  = tableIndex(names3)
	token3Index = tableIndex(tokens3)
)

func init() {
	if len(names3) > 256-op3Name || len(tokens3) > 256 || len(methods) > 31 || len(versions) > 3 {
		panic("codec: version 3 tables overflow their symbol alphabets")
	}
}
