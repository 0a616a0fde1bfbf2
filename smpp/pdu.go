package smpp

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// CommandID is an SMPP command_id.
type CommandID uint32

// Command ids (SMPP 3.4 §5.1.2.1).
const (
	GenericNack         CommandID = 0x80000000
	BindReceiver        CommandID = 0x00000001
	BindReceiverResp    CommandID = 0x80000001
	BindTransmitter     CommandID = 0x00000002
	BindTransmitterResp CommandID = 0x80000002
	QuerySM             CommandID = 0x00000003
	QuerySMResp         CommandID = 0x80000003
	SubmitSM            CommandID = 0x00000004
	SubmitSMResp        CommandID = 0x80000004
	DeliverSM           CommandID = 0x00000005
	DeliverSMResp       CommandID = 0x80000005
	Unbind              CommandID = 0x00000006
	UnbindResp          CommandID = 0x80000006
	ReplaceSM           CommandID = 0x00000007
	ReplaceSMResp       CommandID = 0x80000007
	CancelSM            CommandID = 0x00000008
	CancelSMResp        CommandID = 0x80000008
	BindTransceiver     CommandID = 0x00000009
	BindTransceiverResp CommandID = 0x80000009
	Outbind             CommandID = 0x0000000B
	EnquireLink         CommandID = 0x00000015
	EnquireLinkResp     CommandID = 0x80000015
	SubmitMulti         CommandID = 0x00000021
	SubmitMultiResp     CommandID = 0x80000021
	AlertNotification   CommandID = 0x00000102
	DataSM              CommandID = 0x00000103
	DataSMResp          CommandID = 0x80000103
)

// IsResponse reports whether id is a response (including generic_nack).
func (id CommandID) IsResponse() bool { return id&0x80000000 != 0 }

// Resp is the response command id for request id.
func (id CommandID) Resp() CommandID { return id | 0x80000000 }

// IsBind reports whether id is one of the three bind requests.
func (id CommandID) IsBind() bool {
	return id == BindReceiver || id == BindTransmitter || id == BindTransceiver
}

func (id CommandID) String() string {
	switch id {
	case GenericNack:
		return "generic_nack"
	case BindReceiver:
		return "bind_receiver"
	case BindReceiverResp:
		return "bind_receiver_resp"
	case BindTransmitter:
		return "bind_transmitter"
	case BindTransmitterResp:
		return "bind_transmitter_resp"
	case BindTransceiver:
		return "bind_transceiver"
	case BindTransceiverResp:
		return "bind_transceiver_resp"
	case QuerySM:
		return "query_sm"
	case QuerySMResp:
		return "query_sm_resp"
	case SubmitSM:
		return "submit_sm"
	case SubmitSMResp:
		return "submit_sm_resp"
	case DeliverSM:
		return "deliver_sm"
	case DeliverSMResp:
		return "deliver_sm_resp"
	case Unbind:
		return "unbind"
	case UnbindResp:
		return "unbind_resp"
	case ReplaceSM:
		return "replace_sm"
	case ReplaceSMResp:
		return "replace_sm_resp"
	case CancelSM:
		return "cancel_sm"
	case CancelSMResp:
		return "cancel_sm_resp"
	case Outbind:
		return "outbind"
	case EnquireLink:
		return "enquire_link"
	case EnquireLinkResp:
		return "enquire_link_resp"
	case SubmitMulti:
		return "submit_multi"
	case AlertNotification:
		return "alert_notification"
	case DataSM:
		return "data_sm"
	case DataSMResp:
		return "data_sm_resp"
	}
	return "command_0x" + strconv.FormatUint(uint64(id), 16)
}

// Command status values (SMPP 3.4 §5.1.3).
const (
	ESME_ROK              uint32 = 0x00
	ESME_RINVMSGLEN       uint32 = 0x01
	ESME_RINVCMDLEN       uint32 = 0x02
	ESME_RINVCMDID        uint32 = 0x03
	ESME_RINVBNDSTS       uint32 = 0x04
	ESME_RALYBND          uint32 = 0x05
	ESME_RINVPRTFLG       uint32 = 0x06
	ESME_RINVREGDLVFLG    uint32 = 0x07
	ESME_RSYSERR          uint32 = 0x08
	ESME_RINVSRCADR       uint32 = 0x0A
	ESME_RINVDSTADR       uint32 = 0x0B
	ESME_RINVMSGID        uint32 = 0x0C
	ESME_RBINDFAIL        uint32 = 0x0D
	ESME_RINVPASWD        uint32 = 0x0E
	ESME_RINVSYSID        uint32 = 0x0F
	ESME_RCANCELFAIL      uint32 = 0x11
	ESME_RREPLACEFAIL     uint32 = 0x13
	ESME_RMSGQFUL         uint32 = 0x14
	ESME_RINVSERTYP       uint32 = 0x15
	ESME_RINVESMCLASS     uint32 = 0x43
	ESME_RINVSRCTON       uint32 = 0x48
	ESME_RINVSRCNPI       uint32 = 0x49
	ESME_RINVDSTTON       uint32 = 0x50
	ESME_RINVDSTNPI       uint32 = 0x51
	ESME_RINVSYSTYP       uint32 = 0x53
	ESME_RSUBMITFAIL      uint32 = 0x45
	ESME_RTHROTTLED       uint32 = 0x58
	ESME_RINVSCHED        uint32 = 0x61
	ESME_RINVEXPIRY       uint32 = 0x62
	ESME_RX_T_APPN        uint32 = 0x64
	ESME_RX_P_APPN        uint32 = 0x65
	ESME_RX_R_APPN        uint32 = 0x66
	ESME_RQUERYFAIL       uint32 = 0x67
	ESME_RINVOPTPARSTREAM uint32 = 0xC0
	ESME_ROPTPARNOTALLWD  uint32 = 0xC1
	ESME_RINVPARLEN       uint32 = 0xC2
	ESME_RMISSINGOPTPARAM uint32 = 0xC3
	ESME_RINVOPTPARAMVAL  uint32 = 0xC4
	ESME_RDELIVERYFAILURE uint32 = 0xFE
	ESME_RUNKNOWNERR      uint32 = 0xFF
	ESME_RINVDCS          uint32 = 0x104 // SMPP 5.0 value, widely used by 3.4 SMSCs
)

// Optional parameter tags (SMPP 3.4 §5.3.2).
const (
	TagReceiptedMessageID uint16 = 0x001E
	TagSARMsgRefNum       uint16 = 0x020C
	TagSARTotalSegments   uint16 = 0x020E
	TagSARSegmentSeqnum   uint16 = 0x020F
	TagSCInterfaceVersion uint16 = 0x0210
	TagMessagePayload     uint16 = 0x0424
	TagMessageState       uint16 = 0x0427
	TagNetworkErrorCode   uint16 = 0x0423
)

// TLV is one optional parameter. Value aliases the PDU's buffer after Decode.
type TLV struct {
	Tag   uint16
	Value []byte
}

// HeaderLen is the size of the PDU header; MaxPDU the largest PDU accepted
// unless a session says otherwise (a 64 KiB message_payload plus fields).
const (
	HeaderLen = 16
	MaxPDU    = 70 * 1024
)

// PDU is any SMPP 3.4 PDU as one flat struct: only the fields of its command
// are encoded. A PDU is reusable (Reset) so a session decodes into the same
// values again and again; Decode keeps strings that did not change, which
// makes steady traffic from one peer almost allocation-free.
type PDU struct {
	ID     CommandID
	Status uint32
	Seq    uint32

	// bind_*, outbind
	SystemID         string
	Password         string
	SystemType       string
	InterfaceVersion byte
	AddrTON, AddrNPI byte
	AddressRange     string

	// submit_sm, deliver_sm, data_sm; query_sm, cancel_sm and replace_sm
	// some of them
	ServiceType                              string
	SourceAddrTON, SourceAddrNPI             byte
	SourceAddr                               string
	DestAddrTON, DestAddrNPI                 byte
	DestAddr                                 string
	ESMClass, ProtocolID, PriorityFlag       byte
	ScheduleDeliveryTime, ValidityPeriod     string
	RegisteredDelivery, ReplaceIfPresentFlag byte
	DataCoding, SMDefaultMsgID               byte
	ShortMessage                             []byte

	// *_sm_resp, query_sm, cancel_sm, replace_sm
	MessageID string
	// query_sm_resp
	FinalDate    string
	MessageState byte
	ErrorCode    byte

	TLVs []TLV

	buf []byte // decoded body; ShortMessage and TLV values alias it
}

// Reset clears p for reuse, keeping its buffers.
func (p *PDU) Reset() {
	buf, sm, tlvs := p.buf[:0], p.ShortMessage[:0], p.TLVs[:0]
	*p = PDU{buf: buf, ShortMessage: sm, TLVs: tlvs}
}

// TLV returns the value of the first optional parameter with tag.
func (p *PDU) TLV(tag uint16) ([]byte, bool) {
	for i := range p.TLVs {
		if p.TLVs[i].Tag == tag {
			return p.TLVs[i].Value, true
		}
	}
	return nil, false
}

// SetTLV sets (replacing) the optional parameter tag.
func (p *PDU) SetTLV(tag uint16, v []byte) {
	for i := range p.TLVs {
		if p.TLVs[i].Tag == tag {
			p.TLVs[i].Value = v
			return
		}
	}
	p.TLVs = append(p.TLVs, TLV{Tag: tag, Value: v})
}

// ErrMalformed wraps every decode failure; the session answers generic_nack.
var ErrMalformed = errors.New("smpp: malformed pdu")

// DecodeError is a malformed PDU with the status to answer it with.
type DecodeError struct {
	Status uint32
	Reason string
}

func (e *DecodeError) Error() string { return "smpp: malformed pdu: " + e.Reason }
func (e *DecodeError) Unwrap() error { return ErrMalformed }

func malformed(status uint32, format string, a ...any) error {
	return &DecodeError{Status: status, Reason: fmt.Sprintf(format, a...)}
}

// AppendTo appends p's wire form to dst.
func (p *PDU) AppendTo(dst []byte) ([]byte, error) {
	start := len(dst)
	dst = binary.BigEndian.AppendUint32(dst, 0) // length, fixed below
	dst = binary.BigEndian.AppendUint32(dst, uint32(p.ID))
	dst = binary.BigEndian.AppendUint32(dst, p.Status)
	dst = binary.BigEndian.AppendUint32(dst, p.Seq)
	errorResp := p.Status != ESME_ROK
	switch p.ID {
	case BindReceiver, BindTransmitter, BindTransceiver:
		dst = cstr(dst, p.SystemID)
		dst = cstr(dst, p.Password)
		dst = cstr(dst, p.SystemType)
		dst = append(dst, p.InterfaceVersion, p.AddrTON, p.AddrNPI)
		dst = cstr(dst, p.AddressRange)
	case Outbind:
		dst = cstr(dst, p.SystemID)
		dst = cstr(dst, p.Password)
	case BindReceiverResp, BindTransmitterResp, BindTransceiverResp:
		if !errorResp {
			dst = cstr(dst, p.SystemID)
			dst = appendTLVs(dst, p.TLVs)
		}
	case SubmitSM, DeliverSM:
		if len(p.ShortMessage) > 254 {
			return dst[:start], fmt.Errorf("smpp: %v short_message of %d octets (max 254; use message_payload)", p.ID, len(p.ShortMessage))
		}
		dst = cstr(dst, p.ServiceType)
		dst = append(dst, p.SourceAddrTON, p.SourceAddrNPI)
		dst = cstr(dst, p.SourceAddr)
		dst = append(dst, p.DestAddrTON, p.DestAddrNPI)
		dst = cstr(dst, p.DestAddr)
		dst = append(dst, p.ESMClass, p.ProtocolID, p.PriorityFlag)
		dst = cstr(dst, p.ScheduleDeliveryTime)
		dst = cstr(dst, p.ValidityPeriod)
		dst = append(dst, p.RegisteredDelivery, p.ReplaceIfPresentFlag, p.DataCoding, p.SMDefaultMsgID, byte(len(p.ShortMessage)))
		dst = append(dst, p.ShortMessage...)
		dst = appendTLVs(dst, p.TLVs)
	case DataSM:
		dst = cstr(dst, p.ServiceType)
		dst = append(dst, p.SourceAddrTON, p.SourceAddrNPI)
		dst = cstr(dst, p.SourceAddr)
		dst = append(dst, p.DestAddrTON, p.DestAddrNPI)
		dst = cstr(dst, p.DestAddr)
		dst = append(dst, p.ESMClass, p.RegisteredDelivery, p.DataCoding)
		dst = appendTLVs(dst, p.TLVs)
	case SubmitSMResp, DeliverSMResp:
		if !errorResp {
			dst = cstr(dst, p.MessageID)
		}
	case DataSMResp:
		if !errorResp {
			dst = cstr(dst, p.MessageID)
			dst = appendTLVs(dst, p.TLVs)
		}
	case QuerySM:
		dst = cstr(dst, p.MessageID)
		dst = append(dst, p.SourceAddrTON, p.SourceAddrNPI)
		dst = cstr(dst, p.SourceAddr)
	case QuerySMResp:
		// The body goes on errors too: clients (gosmpp) drop a bodiless one.
		dst = cstr(dst, p.MessageID)
		dst = cstr(dst, p.FinalDate)
		dst = append(dst, p.MessageState, p.ErrorCode)
	case CancelSM:
		dst = cstr(dst, p.ServiceType)
		dst = cstr(dst, p.MessageID)
		dst = append(dst, p.SourceAddrTON, p.SourceAddrNPI)
		dst = cstr(dst, p.SourceAddr)
		dst = append(dst, p.DestAddrTON, p.DestAddrNPI)
		dst = cstr(dst, p.DestAddr)
	case ReplaceSM:
		if len(p.ShortMessage) > 254 {
			return dst[:start], fmt.Errorf("smpp: replace_sm short_message of %d octets (max 254)", len(p.ShortMessage))
		}
		dst = cstr(dst, p.MessageID)
		dst = append(dst, p.SourceAddrTON, p.SourceAddrNPI)
		dst = cstr(dst, p.SourceAddr)
		dst = cstr(dst, p.ScheduleDeliveryTime)
		dst = cstr(dst, p.ValidityPeriod)
		dst = append(dst, p.RegisteredDelivery, p.SMDefaultMsgID, byte(len(p.ShortMessage)))
		dst = append(dst, p.ShortMessage...)
	case GenericNack, Unbind, UnbindResp, EnquireLink, EnquireLinkResp,
		CancelSMResp, ReplaceSMResp:
	default:
		return dst[:start], fmt.Errorf("smpp: cannot encode %v", p.ID)
	}
	if len(dst)-start > MaxPDU {
		return dst[:start], fmt.Errorf("smpp: %v of %d octets exceeds %d", p.ID, len(dst)-start, MaxPDU)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start))
	return dst, nil
}

func cstr(dst []byte, s string) []byte {
	dst = append(dst, s...)
	return append(dst, 0)
}

func appendTLVs(dst []byte, tlvs []TLV) []byte {
	for _, t := range tlvs {
		dst = binary.BigEndian.AppendUint16(dst, t.Tag)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(t.Value)))
		dst = append(dst, t.Value...)
	}
	return dst
}

// Decode parses one whole PDU (header included) into p. On error p.ID and
// p.Seq are still set when the header was readable, so the caller can
// answer with generic_nack for the right sequence number. p keeps no
// reference to b.
func (p *PDU) Decode(b []byte) error {
	if len(b) < HeaderLen {
		return malformed(ESME_RINVCMDLEN, "%d octets, shorter than a header", len(b))
	}
	n := binary.BigEndian.Uint32(b)
	p.ID = CommandID(binary.BigEndian.Uint32(b[4:]))
	p.Status = binary.BigEndian.Uint32(b[8:])
	p.Seq = binary.BigEndian.Uint32(b[12:])
	if int(n) != len(b) {
		return malformed(ESME_RINVCMDLEN, "command_length %d but %d octets", n, len(b))
	}
	p.buf = append(p.buf[:0], b[HeaderLen:]...)
	return p.decodeBody()
}

func (p *PDU) decodeBody() error {
	d := decoder{b: p.buf}
	p.TLVs = p.TLVs[:0]
	p.ShortMessage = p.ShortMessage[:0]
	errorResp := p.ID.IsResponse() && p.Status != ESME_ROK
	switch p.ID {
	case BindReceiver, BindTransmitter, BindTransceiver:
		d.str(&p.SystemID, 16)
		d.str(&p.Password, 9)
		d.str(&p.SystemType, 13)
		p.InterfaceVersion = d.byte()
		p.AddrTON = d.byte()
		p.AddrNPI = d.byte()
		d.str(&p.AddressRange, 41)
	case Outbind:
		d.str(&p.SystemID, 16)
		d.str(&p.Password, 9)
	case BindReceiverResp, BindTransmitterResp, BindTransceiverResp:
		if errorResp && len(d.b) == 0 {
			break
		}
		d.str(&p.SystemID, 16)
		d.tlvs(p)
	case SubmitSM, DeliverSM:
		d.str(&p.ServiceType, 6)
		p.SourceAddrTON = d.byte()
		p.SourceAddrNPI = d.byte()
		d.str(&p.SourceAddr, 21)
		p.DestAddrTON = d.byte()
		p.DestAddrNPI = d.byte()
		d.str(&p.DestAddr, 21)
		p.ESMClass = d.byte()
		p.ProtocolID = d.byte()
		p.PriorityFlag = d.byte()
		d.str(&p.ScheduleDeliveryTime, 17)
		d.str(&p.ValidityPeriod, 17)
		p.RegisteredDelivery = d.byte()
		p.ReplaceIfPresentFlag = d.byte()
		p.DataCoding = d.byte()
		p.SMDefaultMsgID = d.byte()
		smLen := int(d.byte())
		if d.err == nil && smLen > len(d.b) {
			d.fail(ESME_RINVMSGLEN, "sm_length %d beyond the PDU", smLen)
		}
		if d.err == nil {
			p.ShortMessage = d.b[:smLen:smLen]
			d.b = d.b[smLen:]
		}
		d.tlvs(p)
	case DataSM:
		d.str(&p.ServiceType, 6)
		p.SourceAddrTON = d.byte()
		p.SourceAddrNPI = d.byte()
		d.str(&p.SourceAddr, 65)
		p.DestAddrTON = d.byte()
		p.DestAddrNPI = d.byte()
		d.str(&p.DestAddr, 65)
		p.ESMClass = d.byte()
		p.RegisteredDelivery = d.byte()
		p.DataCoding = d.byte()
		d.tlvs(p)
	case SubmitSMResp, DeliverSMResp, DataSMResp:
		if len(d.b) == 0 {
			// Error responses carry no body; some peers omit it on success.
			p.MessageID = ""
			break
		}
		d.str(&p.MessageID, 65)
		d.tlvs(p)
	case QuerySM:
		d.str(&p.MessageID, 65)
		p.SourceAddrTON = d.byte()
		p.SourceAddrNPI = d.byte()
		d.str(&p.SourceAddr, 21)
	case QuerySMResp:
		if errorResp && len(d.b) == 0 {
			break
		}
		d.str(&p.MessageID, 65)
		d.str(&p.FinalDate, 17)
		p.MessageState = d.byte()
		p.ErrorCode = d.byte()
	case CancelSM:
		d.str(&p.ServiceType, 6)
		d.str(&p.MessageID, 65)
		p.SourceAddrTON = d.byte()
		p.SourceAddrNPI = d.byte()
		d.str(&p.SourceAddr, 21)
		p.DestAddrTON = d.byte()
		p.DestAddrNPI = d.byte()
		d.str(&p.DestAddr, 21)
	case ReplaceSM:
		d.str(&p.MessageID, 65)
		p.SourceAddrTON = d.byte()
		p.SourceAddrNPI = d.byte()
		d.str(&p.SourceAddr, 21)
		d.str(&p.ScheduleDeliveryTime, 17)
		d.str(&p.ValidityPeriod, 17)
		p.RegisteredDelivery = d.byte()
		p.SMDefaultMsgID = d.byte()
		smLen := int(d.byte())
		if d.err == nil && smLen > len(d.b) {
			d.fail(ESME_RINVMSGLEN, "sm_length %d beyond the PDU", smLen)
		}
		if d.err == nil {
			p.ShortMessage = d.b[:smLen:smLen]
			d.b = d.b[smLen:]
		}
	case GenericNack, Unbind, UnbindResp, EnquireLink, EnquireLinkResp,
		CancelSMResp, ReplaceSMResp:
		// Header only; a stray body is tolerated.
		d.b = nil
	default:
		return malformed(ESME_RINVCMDID, "unknown command_id 0x%08x", uint32(p.ID))
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail(ESME_RINVCMDLEN, "%d trailing octets", len(d.b))
	}
	return d.err
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(status uint32, format string, a ...any) {
	if d.err == nil {
		d.err = malformed(status, format, a...)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail(ESME_RINVCMDLEN, "body ends inside a fixed field")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// str reads a C-Octet String of at most max octets including the NUL. It
// keeps *dst when the bytes are unchanged, so steady traffic does not
// allocate (the comparison below does not allocate).
func (d *decoder) str(dst *string, max int) {
	if d.err != nil {
		*dst = ""
		return
	}
	for i, c := range d.b {
		if c == 0 {
			if i >= max {
				d.fail(ESME_RINVPARLEN, "field of %d octets exceeds %d", i+1, max)
				return
			}
			if string(d.b[:i]) != *dst {
				*dst = string(d.b[:i])
			}
			d.b = d.b[i+1:]
			return
		}
	}
	d.fail(ESME_RINVCMDLEN, "C-string without terminating NUL")
}

func (d *decoder) tlvs(p *PDU) {
	for d.err == nil && len(d.b) > 0 {
		if len(d.b) < 4 {
			d.fail(ESME_RINVOPTPARSTREAM, "truncated optional parameter header")
			return
		}
		tag := binary.BigEndian.Uint16(d.b)
		n := int(binary.BigEndian.Uint16(d.b[2:]))
		if 4+n > len(d.b) {
			d.fail(ESME_RINVPARLEN, "optional parameter 0x%04x length %d beyond the PDU", tag, n)
			return
		}
		p.TLVs = append(p.TLVs, TLV{Tag: tag, Value: d.b[4 : 4+n : 4+n]})
		d.b = d.b[4+n:]
	}
}

// ReadPDU reads one PDU from r into p, using p's buffer. A PDU whose length
// is below the header size or above limit cannot be framed: the stream is then
// unusable and the error says so (ErrFraming). A PDU that frames but does not
// decode returns a *DecodeError with p.ID and p.Seq set, and the stream stays
// in sync.
func ReadPDU(r *bufio.Reader, p *PDU, limit int) error {
	hdr, err := r.Peek(HeaderLen)
	if err != nil {
		if len(hdr) > 0 && errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	n := binary.BigEndian.Uint32(hdr)
	if n < HeaderLen || int64(n) > int64(limit) {
		return fmt.Errorf("%w: command_length %d", ErrFraming, n)
	}
	p.ID = CommandID(binary.BigEndian.Uint32(hdr[4:]))
	p.Status = binary.BigEndian.Uint32(hdr[8:])
	p.Seq = binary.BigEndian.Uint32(hdr[12:])
	if _, err := r.Discard(HeaderLen); err != nil {
		return err
	}
	body := int(n) - HeaderLen
	if cap(p.buf) < body {
		p.buf = make([]byte, body, max(body, 256))
	}
	p.buf = p.buf[:body]
	if _, err := io.ReadFull(r, p.buf); err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	return p.decodeBody()
}

// ErrFraming: the byte stream no longer frames into PDUs.
var ErrFraming = errors.New("smpp: cannot frame pdu")
