package codec

import (
	"bytes"
	"compress/flate"
)

// baselineDict is the preset dictionary for the "DEFLATE with preset
// dictionary" baseline: our residual dictionary plus typical header text,
// so the baseline knows everything our codec knows about the protocol.
const baselineDict = presetDict +
	"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP \r\nFrom: <sip:>;tag=\r\nTo: <sip:>\r\nCall-ID: \r\nCSeq: 1 REGISTER\r\nContact: <sip:>\r\nMax-Forwards: 70\r\nExpires: 3600\r\nUser-Agent: \r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n" +
	"MESSAGE sip: SIP/2.0\r\n" +
	"SIP-C/2.0 401 Unauthorized\r\nW: Digest algorithm=\"MD5-sess;SHA1-sess\",nonce=\"\"\r\n" +
	"SIP-C/2.0 280 Send SMS OK\r\nSIP-C/2.0 100 Trying\r\n" +
	"BN  SIP-C/2.0\r\nN: presence\r\nX: 25200\r\n" +
	"I fetion.com.cn SIP-C/2.0\r\nK: text/html-fragment\r\nK: multiparty\r\nK: nudge\r\nK: share-background\r\n" +
	"S fetion.com.cn SIP-C/2.0\r\nN: GetContactList\r\nN: SetPresence\r\nN: SendCatSMS\r\n" +
	"SUB fetion.com.cn SIP-C/2.0\r\nQ: 1 SUB\r\n" +
	"R fetion.com.cn SIP-C/2.0\r\nQ: 1 R\r\nX: 600\r\n" +
	"SIP-C/2.0 200 OK\r\nD: Thu, 16 Apr 2009 14:38:02 GMT\r\nXI: \r\n" +
	"M fetion.com.cn SIP-C/2.0\r\nF: \r\nI: 1 \r\nQ: 1 M\r\nT: sip:@fetion.com.cn;p=\r\nC: text/plain\r\nC: text/html-fragment\r\nK: SaveHistory\r\nL: \r\n\r\n"

// DeflateSizes are the baseline sizes of a session in bytes.
type DeflateSizes struct {
	PerMessage int // each message alone, raw DEFLATE, best compression
	Dict       int // each message alone with baselineDict as preset dictionary
	Stream     int // one DEFLATE stream, sync flush after each message (trailing 00 00 FF FF not counted, as RFC 7692)
	StreamDict int // the same stream primed with baselineDict
}

// Baselines measures the DEFLATE baselines on a session.
func Baselines(msgs [][]byte) DeflateSizes {
	var s DeflateSizes
	var buf bytes.Buffer
	plain, _ := flate.NewWriter(&buf, flate.BestCompression)
	dict, _ := flate.NewWriterDict(&buf, flate.BestCompression, []byte(baselineDict))
	for _, m := range msgs {
		buf.Reset()
		plain.Reset(&buf)
		_, _ = plain.Write(m)
		_ = plain.Close()
		s.PerMessage += buf.Len()
		buf.Reset()
		dict.Reset(&buf)
		_, _ = dict.Write(m)
		_ = dict.Close()
		s.Dict += buf.Len()
	}
	stream := func(w *flate.Writer) int {
		n := 0
		for _, m := range msgs {
			buf.Reset()
			_, _ = w.Write(m)
			_ = w.Flush()
			n += buf.Len() - 4
		}
		return n
	}
	buf.Reset()
	plain.Reset(&buf)
	s.Stream = stream(plain)
	buf.Reset()
	dict.Reset(&buf)
	s.StreamDict = stream(dict)
	return s
}

// StreamBaseline is the DEFLATE stream of a session alone (the other
// baselines compress every message on its own, which costs more).
func StreamBaseline(msgs [][]byte) int {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	n := 0
	for _, m := range msgs {
		buf.Reset()
		_, _ = w.Write(m)
		_ = w.Flush()
		n += buf.Len() - 4
	}
	return n
}
