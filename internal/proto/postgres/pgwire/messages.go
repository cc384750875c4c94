package pgwire

import (
	"bytes"
	"encoding/binary"
	"strconv"
)

// Message type bytes the gateway looks at.
const (
	// Frontend.
	MsgQuery    byte = 'Q'
	MsgParse    byte = 'P'
	MsgBind     byte = 'B'
	MsgExecute  byte = 'E'
	MsgDescribe byte = 'D'
	// MsgFunctionCall is the fast-path protocol's call of a function by
	// OID.
	MsgFunctionCall byte = 'F'
	MsgClose        byte = 'C'
	MsgSync         byte = 'S'
	MsgTerminate    byte = 'X'
	MsgPassword     byte = 'p'
	MsgCopyData     byte = 'd'
	MsgCopyDone     byte = 'c'
	MsgCopyFail     byte = 'f'

	// Backend.
	MsgAuthentication   byte = 'R'
	MsgParameterStatus  byte = 'S'
	MsgBackendKeyData   byte = 'K'
	MsgReadyForQuery    byte = 'Z'
	MsgCommandComplete  byte = 'C'
	MsgDataRow          byte = 'D'
	MsgErrorResponse    byte = 'E'
	MsgNoticeResponse   byte = 'N'
	MsgEmptyQuery       byte = 'I'
	MsgPortalSuspended  byte = 's'
	MsgCopyInResponse   byte = 'G'
	MsgCopyOutResponse  byte = 'H'
	MsgCopyBothResponse byte = 'W'
	MsgParseComplete    byte = '1'
	MsgBindComplete     byte = '2'
	MsgCloseComplete    byte = '3'
	MsgRowDescription   byte = 'T'
	MsgNoData           byte = 'n'
)

// HeaderLen is a message's type byte plus its length word.
const HeaderLen = 5

// Header decodes a frame header: the type and the total frame length
// (type byte included). ok is false when b holds fewer than 5 bytes.
func Header(b []byte) (typ byte, total int, ok bool) {
	if len(b) < HeaderLen {
		return 0, 0, false
	}
	return b[0], 1 + int(binary.BigEndian.Uint32(b[1:5])), true
}

// CheckLength validates a frame length from Header against a limit.
func CheckLength(typ byte, total, limit int) error {
	if total < HeaderLen {
		return protoErr("invalid message length %d for message type %q", total-1, typ)
	}
	if total > limit {
		return &TooLargeError{Type: typ, Size: total, Limit: limit}
	}
	return nil
}

// TooLargeError is a message over the configured size limit.
type TooLargeError struct {
	Type        byte
	Size, Limit int
}

func (e *TooLargeError) Error() string {
	return "message of type " + strconv.QuoteRune(rune(e.Type)) + " is " + strconv.Itoa(e.Size) +
		" bytes, over the gateway's limit of " + strconv.Itoa(e.Limit) + " bytes"
}

// QueryText returns the SQL of a Query frame (whole frame, header included).
func QueryText(frame []byte) ([]byte, error) {
	s, _, ok := cbytes(frame[HeaderLen:])
	if !ok {
		return nil, protoErr("invalid Query message: missing terminator")
	}
	return s, nil
}

// ParseFields returns the statement name and SQL of a Parse frame.
func ParseFields(frame []byte) (name, query []byte, err error) {
	name, rest, ok := cbytes(frame[HeaderLen:])
	if !ok {
		return nil, nil, protoErr("invalid Parse message: bad statement name")
	}
	query, _, ok = cbytes(rest)
	if !ok {
		return nil, nil, protoErr("invalid Parse message: bad query string")
	}
	return name, query, nil
}

// BindNames returns the portal and statement names of a Bind frame.
func BindNames(frame []byte) (portal, statement []byte, err error) {
	portal, rest, ok := cbytes(frame[HeaderLen:])
	if !ok {
		return nil, nil, protoErr("invalid Bind message: bad portal name")
	}
	statement, _, ok = cbytes(rest)
	if !ok {
		return nil, nil, protoErr("invalid Bind message: bad statement name")
	}
	return portal, statement, nil
}

// BindValues returns the parameter values of a Bind frame in DataRow's
// layout (an int16 count, then per value an int32 length, -1 for NULL, and
// the bytes); ok is false for a malformed frame.
func BindValues(frame []byte) (values []byte, ok bool) {
	_, rest, ok := cbytes(frame[HeaderLen:])
	if !ok {
		return nil, false
	}
	if _, rest, ok = cbytes(rest); !ok || len(rest) < 2 {
		return nil, false
	}
	skip := 2 + 2*int(binary.BigEndian.Uint16(rest))
	if len(rest) < skip+2 {
		return nil, false
	}
	rest = rest[skip:]
	n, p := int(binary.BigEndian.Uint16(rest)), 2
	for range n {
		if len(rest) < p+4 {
			return nil, false
		}
		l := int32(binary.BigEndian.Uint32(rest[p:]))
		p += 4
		if l > 0 {
			if int(l) > len(rest)-p {
				return nil, false
			}
			p += int(l)
		}
	}
	return rest[:p], true
}

// AppendColumnNames appends the column names of a RowDescription frame in
// DataRow's layout; ok is false for a malformed frame.
func AppendColumnNames(b []byte, frame []byte) (_ []byte, ok bool) {
	body := frame[HeaderLen:]
	if len(body) < 2 {
		return b, false
	}
	n := int(binary.BigEndian.Uint16(body))
	body = body[2:]
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	for range n {
		name, rest, ok := cbytes(body)
		if !ok || len(rest) < 18 {
			return b, false
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(name)))
		b = append(b, name...)
		body = rest[18:]
	}
	return b, true
}

// ExecutePortal returns the portal name of an Execute frame.
func ExecutePortal(frame []byte) ([]byte, error) {
	p, _, ok := cbytes(frame[HeaderLen:])
	if !ok {
		return nil, protoErr("invalid Execute message: bad portal name")
	}
	return p, nil
}

// CloseTarget returns the kind ('S' statement or 'P' portal) and name of a
// Close frame.
func CloseTarget(frame []byte) (kind byte, name []byte, err error) {
	body := frame[HeaderLen:]
	if len(body) < 2 {
		return 0, nil, protoErr("invalid Close message")
	}
	name, _, ok := cbytes(body[1:])
	if !ok {
		return 0, nil, protoErr("invalid Close message: bad name")
	}
	return body[0], name, nil
}

// ParameterStatusFields returns the name and value of a ParameterStatus
// frame; ok is false for a malformed one.
func ParameterStatusFields(frame []byte) (name, value []byte, ok bool) {
	name, rest, ok := cbytes(frame[HeaderLen:])
	if !ok {
		return nil, nil, false
	}
	value, _, ok = cbytes(rest)
	return name, value, ok
}

// PasswordText returns the password of a PasswordMessage frame.
func PasswordText(frame []byte) (string, error) {
	s, _, ok := cbytes(frame[HeaderLen:])
	if !ok {
		return "", protoErr("invalid password packet")
	}
	return string(s), nil
}

// CommandRows returns the row count at the end of a CommandComplete tag
// ("SELECT 5", "INSERT 0 3", "UPDATE 2"); -1 when the tag has none.
func CommandRows(frame []byte) int64 {
	tag, _, ok := cbytes(frame[HeaderLen:])
	if !ok {
		return -1
	}
	i := bytes.LastIndexByte(tag, ' ')
	if i < 0 {
		return -1
	}
	var n int64
	digits := tag[i+1:]
	if len(digits) == 0 {
		return -1
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// ErrorFields returns the SQLSTATE and message of an ErrorResponse or
// NoticeResponse frame.
func ErrorFields(frame []byte) (code, message []byte) {
	body := frame[HeaderLen:]
	for len(body) > 0 && body[0] != 0 {
		f := body[0]
		v, rest, ok := cbytes(body[1:])
		if !ok {
			return code, message
		}
		switch f {
		case 'C':
			code = v
		case 'M':
			message = v
		}
		body = rest
	}
	return code, message
}

// ReadyStatus returns the transaction status of a ReadyForQuery frame
// ('I' idle, 'T' in a transaction, 'E' in a failed transaction).
func ReadyStatus(frame []byte) byte {
	if len(frame) < HeaderLen+1 {
		return 0
	}
	return frame[HeaderLen]
}

func cbytes(b []byte) (s, rest []byte, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil, nil, false
	}
	return b[:i], b[i+1:], true
}

// Builders for the messages the gateway sends itself.

func begin(b []byte, typ byte) ([]byte, int) {
	b = append(b, typ, 0, 0, 0, 0)
	return b, len(b) - 4
}

func finish(b []byte, at int) []byte {
	binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at))
	return b
}

// AppendAuthCleartext asks the client for a password.
func AppendAuthCleartext(b []byte) []byte {
	b, at := begin(b, MsgAuthentication)
	b = binary.BigEndian.AppendUint32(b, 3)
	return finish(b, at)
}

// AppendAuthOK tells the client it is authenticated.
func AppendAuthOK(b []byte) []byte {
	b, at := begin(b, MsgAuthentication)
	b = binary.BigEndian.AppendUint32(b, 0)
	return finish(b, at)
}

// AppendParameterStatus reports a run-time parameter.
func AppendParameterStatus(b []byte, name, value string) []byte {
	b, at := begin(b, MsgParameterStatus)
	b = append(append(b, name...), 0)
	b = append(append(b, value...), 0)
	return finish(b, at)
}

// AppendQuery builds a simple-protocol Query.
func AppendQuery(b []byte, sql string) []byte {
	b, at := begin(b, MsgQuery)
	b = append(append(b, sql...), 0)
	return finish(b, at)
}

// AppendExecute builds an Execute of portal, returning at most maxRows
// rows (0: all).
func AppendExecute(b []byte, portal string, maxRows uint32) []byte {
	b, at := begin(b, MsgExecute)
	b = append(append(b, portal...), 0)
	b = binary.BigEndian.AppendUint32(b, maxRows)
	return finish(b, at)
}

// AppendParse builds a Parse of sql as statement name, with no parameter
// types.
func AppendParse(b []byte, name []byte, sql string) []byte {
	b, at := begin(b, MsgParse)
	b = append(append(b, name...), 0)
	b = append(append(b, sql...), 0)
	b = append(b, 0, 0)
	return finish(b, at)
}

// AppendBackendKeyData gives the client its cancellation key.
func AppendBackendKeyData(b []byte, pid, key uint32) []byte {
	b, at := begin(b, MsgBackendKeyData)
	b = binary.BigEndian.AppendUint32(b, pid)
	b = binary.BigEndian.AppendUint32(b, key)
	return finish(b, at)
}

// AppendReadyForQuery tells the client the server is idle.
func AppendReadyForQuery(b []byte, status byte) []byte {
	b, at := begin(b, MsgReadyForQuery)
	b = append(b, status)
	return finish(b, at)
}

// Severity of an error or notice.
type Severity string

// Severities.
const (
	SeverityError  Severity = "ERROR"
	SeverityFatal  Severity = "FATAL"
	SeverityNotice Severity = "NOTICE"
)

// AppendError builds an ErrorResponse (or, with SeverityNotice, a
// NoticeResponse) with SQLSTATE code and message.
func AppendError(b []byte, sev Severity, code, message, detail, hint string) []byte {
	typ := MsgErrorResponse
	if sev == SeverityNotice {
		typ = MsgNoticeResponse
	}
	b, at := begin(b, typ)
	b = appendErrField(b, 'S', string(sev))
	b = appendErrField(b, 'V', string(sev))
	b = appendErrField(b, 'C', code)
	b = appendErrField(b, 'M', message)
	if detail != "" {
		b = appendErrField(b, 'D', detail)
	}
	if hint != "" {
		b = appendErrField(b, 'H', hint)
	}
	b = append(b, 0)
	return finish(b, at)
}

func appendErrField(b []byte, f byte, v string) []byte {
	b = append(b, f)
	// A NUL inside a value would end the field early: drop it.
	for i := 0; i < len(v); i++ {
		if v[i] != 0 {
			b = append(b, v[i])
		}
	}
	return append(b, 0)
}
