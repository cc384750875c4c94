// Package pgwire is a pure codec for the parts of the PostgreSQL
// frontend/backend protocol (version 3.0) the gateway reads and writes:
// startup packets, message frame headers, the few fields it inspects, and
// the messages it builds itself. It works on bytes only: no sockets,
// policy or logging.
package pgwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Startup packet codes (the 4 bytes after the length).
const (
	ProtocolVersion30 = 3<<16 | 0
	SSLRequestCode    = 1234<<16 | 5679
	GSSENCRequestCode = 1234<<16 | 5680
	CancelRequestCode = 1234<<16 | 5678
)

// MaxStartupLen is PostgreSQL's own limit on a startup packet.
const MaxStartupLen = 10000

// StartupKind tells the startup packets apart.
type StartupKind int

// Startup packet kinds.
const (
	StartupMessage StartupKind = iota
	SSLRequest
	GSSENCRequest
	CancelRequest
)

// Startup is a decoded startup packet.
type Startup struct {
	Kind StartupKind
	// Params are the StartupMessage's parameters in the order sent.
	Params []Param
	// ProcessID and SecretKey identify the backend of a CancelRequest.
	ProcessID, SecretKey uint32
}

// Param is one startup parameter.
type Param struct{ Name, Value string }

// Get returns a startup parameter's value.
func (s *Startup) Get(name string) string {
	for _, p := range s.Params {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// ProtocolError is a malformed message from the peer; its text is safe to
// send back in an ErrorResponse.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return e.Msg }

func protoErr(format string, args ...any) error {
	return &ProtocolError{Msg: fmt.Sprintf(format, args...)}
}

// ReadStartup reads one startup packet (which has no type byte).
func ReadStartup(r io.Reader) (Startup, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Startup{}, err
	}
	n := int(binary.BigEndian.Uint32(hdr[:]))
	if n < 8 || n > MaxStartupLen {
		return Startup{}, protoErr("invalid startup packet length %d (want 8 to %d bytes)", n, MaxStartupLen)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Startup{}, err
	}
	return ParseStartup(body)
}

// ParseStartup decodes a startup packet body (after the length word).
func ParseStartup(body []byte) (Startup, error) {
	if len(body) < 4 {
		return Startup{}, protoErr("startup packet too short")
	}
	code := binary.BigEndian.Uint32(body)
	rest := body[4:]
	switch code {
	case SSLRequestCode, GSSENCRequestCode:
		if len(rest) != 0 {
			return Startup{}, protoErr("invalid length of SSL/GSS request")
		}
		if code == SSLRequestCode {
			return Startup{Kind: SSLRequest}, nil
		}
		return Startup{Kind: GSSENCRequest}, nil
	case CancelRequestCode:
		if len(rest) != 8 {
			return Startup{}, protoErr("invalid length of cancel request")
		}
		return Startup{Kind: CancelRequest, ProcessID: binary.BigEndian.Uint32(rest), SecretKey: binary.BigEndian.Uint32(rest[4:])}, nil
	}
	if code>>16 != 3 {
		return Startup{}, protoErr("unsupported frontend protocol %d.%d: server supports 3.0", code>>16, code&0xffff)
	}
	s := Startup{Kind: StartupMessage}
	for {
		name, r, ok := cstring(rest)
		if !ok {
			return Startup{}, protoErr("invalid startup packet layout: expected terminator as last byte")
		}
		rest = r
		if name == "" {
			break
		}
		value, r, ok := cstring(rest)
		if !ok {
			return Startup{}, protoErr("invalid startup packet layout: missing value for %q", name)
		}
		rest = r
		s.Params = append(s.Params, Param{name, value})
	}
	if len(rest) != 0 {
		return Startup{}, protoErr("invalid startup packet layout: data after terminator")
	}
	return s, nil
}

// cstring splits a NUL-terminated string off b.
func cstring(b []byte) (s string, rest []byte, ok bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", nil, false
}

// AppendCancelRequest builds a CancelRequest packet.
func AppendCancelRequest(b []byte, pid, key uint32) []byte {
	b = binary.BigEndian.AppendUint32(b, 16)
	b = binary.BigEndian.AppendUint32(b, CancelRequestCode)
	b = binary.BigEndian.AppendUint32(b, pid)
	return binary.BigEndian.AppendUint32(b, key)
}
