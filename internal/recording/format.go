// Package recording keeps the timed stream of every session, both
// directions: what the client sent (statements and their parameters) and
// what it received (column names, result rows up to configurable caps, and
// each statement's result). A session's records fill a chunk in memory; a
// closed chunk is compressed (zstd), stored, and the SHA-256 of its stored
// bytes goes into the node's audit chain as a "recording" event, so a chunk
// changed or removed in the store no longer matches the log. Recordings
// hold what the client saw.
//
// A chunk, before compression, is a sequence of records:
//
//	kind (1 byte) | Δt (uvarint, ns since the previous record) | length (uvarint) | payload
//
// The first record is a header (kind 'H', JSON) naming the session, the
// chunk number and the time Δt counts from. Rows, parameters and column
// names share one layout, the one PostgreSQL's DataRow uses: a big-endian
// int16 count, then per value an int32 length (-1 for NULL) and the bytes.
package recording

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Record kinds.
const (
	kindHeader    = 'H' // JSON header, first in every chunk
	kindStatement = 'Q' // client: uvarint audit seq of its command event, then the text
	kindParams    = 'B' // client: parameter values (row layout)
	kindCopyIn    = 'i' // client: COPY data
	kindColumns   = 'T' // server: column names (row layout)
	kindRow       = 'D' // server: one row (row layout)
	kindCopyOut   = 'd' // server: COPY data
	kindOmitted   = 'O' // rows and bytes over the caps: uvarint rows, uvarint bytes
	kindDone      = 'C' // the statement's result: uvarint rows, uvarint ns, sqlstate, error (uvarint-length strings)
)

// header is the first record of every chunk.
type header struct {
	Session    string    `json:"session"`
	Chunk      uint64    `json:"chunk"`
	Start      time.Time `json:"start"` // Δt of the first record counts from here
	Node       string    `json:"node"`
	Protocol   string    `json:"protocol,omitempty"`
	Identity   string    `json:"identity,omitempty"`
	Connection string    `json:"connection,omitempty"`
}

// appendHead starts a record whose payload, n bytes, the caller appends.
func appendHead(b []byte, kind byte, dt time.Duration, n int) []byte {
	b = append(b, kind)
	b = binary.AppendUvarint(b, uint64(max(dt, 0)))
	return binary.AppendUvarint(b, uint64(n))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// AppendRow appends values in the row layout; a nil value is NULL.
func AppendRow(b []byte, values ...[]byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(values)))
	for _, v := range values {
		if v == nil {
			b = binary.BigEndian.AppendUint32(b, 0xFFFFFFFF)
			continue
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		b = append(b, v...)
	}
	return b
}

var errCorrupt = errors.New("corrupt recording chunk")

// record is one decoded record.
type record struct {
	kind    byte
	at      time.Time
	payload []byte
}

// decode splits a chunk into records, resolving their times.
func decode(raw []byte) (header, []record, error) {
	var h header
	var out []record
	var at time.Time
	for len(raw) > 0 {
		kind := raw[0]
		dt, n := binary.Uvarint(raw[1:])
		if n <= 0 {
			return h, nil, errCorrupt
		}
		size, m := binary.Uvarint(raw[1+n:])
		if m <= 0 || size > uint64(len(raw)-1-n-m) {
			return h, nil, errCorrupt
		}
		payload := raw[1+n+m : 1+n+m+int(size)]
		raw = raw[1+n+m+int(size):]
		if len(out) == 0 && h.Session == "" {
			if kind != kindHeader {
				return h, nil, fmt.Errorf("%w: no header", errCorrupt)
			}
			if err := json.Unmarshal(payload, &h); err != nil {
				return h, nil, fmt.Errorf("%w: header: %v", errCorrupt, err)
			}
			at = h.Start
			continue
		}
		at = at.Add(time.Duration(dt))
		out = append(out, record{kind: kind, at: at, payload: payload})
	}
	if h.Session == "" {
		return h, nil, fmt.Errorf("%w: empty", errCorrupt)
	}
	return h, out, nil
}

// Value is one decoded value: text as it was, bytes that are not UTF-8 as
// \x followed by hex (PostgreSQL's bytea output); nil is NULL.
type Value = *string

// decodeRow reads values in the row layout.
func decodeRow(p []byte) ([]Value, error) {
	if len(p) < 2 {
		return nil, errCorrupt
	}
	n := int(binary.BigEndian.Uint16(p))
	p = p[2:]
	out := make([]Value, n)
	for i := range n {
		if len(p) < 4 {
			return nil, errCorrupt
		}
		l := int32(binary.BigEndian.Uint32(p))
		p = p[4:]
		if l < 0 {
			continue
		}
		if int(l) > len(p) {
			return nil, errCorrupt
		}
		s := text(p[:l])
		out[i] = &s
		p = p[l:]
	}
	return out, nil
}

func text(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	const hexDigits = "0123456789abcdef"
	out := make([]byte, 2, 2+2*len(b))
	out[0], out[1] = '\\', 'x'
	for _, c := range b {
		out = append(out, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return string(out)
}

func readString(p []byte) (string, []byte, error) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)-k) {
		return "", nil, errCorrupt
	}
	return string(p[k : k+int(n)]), p[k+int(n):], nil
}
