// Package audit records what happened: one versioned Event per login,
// session and command, appended to a per-node, hash-chained log. Each
// event's canonical JSON carries the SHA-256 of the previous event's; the
// events are also the leaves of an RFC 6962 Merkle tree whose root is
// signed in checkpoints (signed-note format), so anyone holding the public
// key can verify the log offline and one event's inclusion can be proven
// without the rest. Appends are write-ahead: an event is in a memory-mapped
// journal, which survives the process being killed, before Append returns,
// and reaches the store in batches.
package audit

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// Version is the event format version.
const Version = 1

// Event types.
const (
	TypeLoginFailed = "login.failed"
	// TypeLogin records a token handed out by an OIDC sign-on, a refresh
	// or a federated exchange; command says how, and names the token.
	TypeLogin        = "login"
	TypeSessionOpen  = "session.open"
	TypeSessionClose = "session.close"
	// TypeCommand is written when a command is decided, before it is
	// forwarded (write-ahead): what was asked and the decision.
	TypeCommand = "command"
	// TypeResult is written when the command's result is known, before
	// the client sees it: rows, error, duration; ref names the command
	// event.
	TypeResult = "result"
	// TypeRecording attests a closed chunk of a session's recording: its
	// number and the SHA-256 of its stored bytes.
	TypeRecording = "recording"
	// TypeReview records a change of a review: its request, each vote,
	// and its end (approved, denied, expired, cancelled, executed);
	// decision holds the change, review the review's id.
	TypeReview = "review"
	// TypeAdmin records a change through the API: apply, delete, token
	// create and revoke; command says what.
	TypeAdmin = "admin"
)

// Event is one audit record. Fields are documented because auditors read
// them directly:
//
//	v           format version (1)
//	seq         position in this node's log, from 1, gap-free
//	prev        SHA-256 (hex) of the previous event's canonical JSON; 64 zeros for seq 1
//	time        UTC with nanoseconds, when the event was appended
//	node        gateway node that wrote it
//	type        login (a token issued by sign-on, refresh or federation),
//	            login.failed, session.open, session.close, admin, review, command (written
//	            before the command is forwarded), result (written before the
//	            client sees the result of a command that failed or was
//	            refused; every result is in the session's recording) or
//	            recording (a closed recording chunk)
//	identity    who acted ("" for a failed login)
//	session     session id
//	connection  connection name
//	protocol    postgres, …
//	client      client address
//	command     command text (statement text for SQL)
//	ref         for a result: the seq of its command event (for a prepared
//	            statement, the event of its Parse)
//	decision    allow, block or review; on review events the change:
//	            requested, approve (a vote short of quorum), approved, denied,
//	            expired, cancelled or executed
//	rule        rule that decided ("" for the default)
//	review      review id: on review events, and on the command event of a
//	            statement that ran by a review's approval
//	rows        rows returned or affected (recording: by the statements that
//	            finished in the chunk)
//	sqlstate    error code of a failed command ("" on success)
//	error       error message of a failed command or login
//	duration_us duration in microseconds (commands: until the result; sessions: whole session)
//	masked      session.close: values masked in the session's results, by
//	            detector or column ("column public.users.ssn=3, email=12");
//	            never the values
//	chunk       recording: the chunk's number in its session, from 1
//	sha256      recording: SHA-256 (hex) of the chunk's stored bytes
//	bytes       recording: the chunk's stored size
type Event struct {
	Seq        uint64
	Prev       [32]byte
	Time       time.Time
	Node       string
	Type       string
	Identity   string
	Session    string
	Connection string
	Protocol   string
	Client     string
	Command    string
	Ref        uint64
	Decision   string
	Rule       string
	Review     string
	Rows       int64
	SQLState   string
	Error      string
	Duration   time.Duration
	Masked     string
	Chunk      uint64
	Digest     string
	Bytes      int64
}

// AppendJSON appends e as one JSON object, without allocating.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, Version, 10)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"prev":"`...)
	b = appendHex(b, e.Prev[:])
	b = append(b, `","time":"`...)
	b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendField(b, "node", e.Node)
	b = appendField(b, "type", e.Type)
	b = appendField(b, "identity", e.Identity)
	b = appendField(b, "session", e.Session)
	b = appendField(b, "connection", e.Connection)
	b = appendField(b, "protocol", e.Protocol)
	b = appendField(b, "client", e.Client)
	b = appendField(b, "command", e.Command)
	if e.Ref > 0 {
		b = append(b, `,"ref":`...)
		b = strconv.AppendUint(b, e.Ref, 10)
	}
	b = appendField(b, "decision", e.Decision)
	b = appendField(b, "rule", e.Rule)
	b = appendField(b, "review", e.Review)
	if e.Type == TypeResult || e.Type == TypeRecording {
		b = append(b, `,"rows":`...)
		b = strconv.AppendInt(b, e.Rows, 10)
	}
	b = appendField(b, "sqlstate", e.SQLState)
	b = appendField(b, "error", e.Error)
	if e.Duration > 0 {
		b = append(b, `,"duration_us":`...)
		b = strconv.AppendInt(b, e.Duration.Microseconds(), 10)
	}
	b = appendField(b, "masked", e.Masked)
	if e.Type == TypeRecording {
		b = append(b, `,"chunk":`...)
		b = strconv.AppendUint(b, e.Chunk, 10)
		b = appendField(b, "sha256", e.Digest)
		b = append(b, `,"bytes":`...)
		b = strconv.AppendInt(b, e.Bytes, 10)
	}
	return append(b, '}')
}

func appendHex(b []byte, v []byte) []byte {
	for _, c := range v {
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return b
}

func appendField(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

const hexDigits = "0123456789abcdef"

// appendString writes a JSON string; invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		// Copy a run of bytes that need no escaping at once.
		j := i
		for j < len(s) && s[j] >= 0x20 && s[j] < 0x7f && s[j] != '"' && s[j] != '\\' {
			j++
		}
		b = append(b, s[i:j]...)
		if i = j; i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
