package postgres

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gatehouse-dev/gatehouse/internal/gate"
	"github.com/gatehouse-dev/gatehouse/internal/proto/postgres/pgwire"
	"github.com/gatehouse-dev/gatehouse/internal/review"
)

// A statement that needs review is held where it would run: a simple Query,
// or the Execute of a prepared statement (its Parse, Bind and Describe go
// through; preparing runs nothing). The relay forwards what came before,
// tells the client it waits (a NoticeResponse), and waits for the review
// with the client side still watched, so a client that disconnects or sends
// a CancelRequest cancels it. On approval the held message is forwarded and
// its real result reaches the client; otherwise a stand-in the server fails
// is sent in its place and its error replaced by the gate's, which keeps
// the protocol and transaction state exactly as for any failed statement.

const codeQueryCanceled = "57014"

// held is a message waiting for review; visitClient returns it, and
// clientToServer waits once what came before it is forwarded.
type held struct {
	frame  []byte // the message, copied out of the read buffer
	p      pendingCmd
	params string // the bound parameters, for the reviewers
}

func (*held) Error() string { return "statement held for review" }

// hold copies frame and returns it held.
func hold(frame []byte, p pendingCmd, params string) *held {
	return &held{frame: append([]byte(nil), frame...), p: p, params: params}
}

// awaitReview waits for the gate's review of h and returns what to send to
// the target in its place; nil when the session is ending.
func (s *session) awaitReview(h *held) []byte {
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	s.waiting.Store(&cancel)
	defer s.waiting.Store(nil)
	if s.engine.isStopping() {
		return nil
	}
	stop := s.in.watch(func() { cancel(gate.ErrClientGone) })
	s.waitAnswered(ctx)
	cmd := &gate.Command{Type: gate.CommandQuery, Text: h.p.text, LegacyStrings: s.legacyStrings.Load()}
	d := s.engine.deps.Gate.Await(ctx, s.gs, cmd, h.p.decision, h.params, s.noticeWaiting)
	stop()
	p := h.p
	p.decision, p.start = d, time.Now()
	s.gs.Rec.Statement(recorded(p.text, d), d.Event)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, gate.ErrClientCancelled) {
		// Gone or stopping: the session ends with the refusal recorded.
		p.msg = d.Message
		s.push(p)
		return nil
	}
	if d.Action == gate.Allow {
		s.push(p)
		return h.frame
	}
	p.refusal = refusal(d)
	s.push(p)
	if p.kind == kindExecute {
		// No such portal: the server fails the Execute and skips to Sync.
		return pgwire.AppendExecute(nil, "gatehouse: statement refused by review", 0)
	}
	return pgwire.AppendQuery(nil, blockedSQL)
}

// waitAnswered waits until the target has answered everything sent before
// the held message, so the client gets those results, and the notice
// after them at a message boundary.
func (s *session) waitAnswered(ctx context.Context) {
	for ctx.Err() == nil {
		s.mu.Lock()
		idle := s.head == len(s.pending)
		s.mu.Unlock()
		if idle {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// noticeWaiting tells the client its statement waits, and how to approve it.
func (s *session) noticeWaiting(r review.Review) {
	who := "an admin"
	if len(r.Approvers) > 0 {
		who = "a member of " + strings.Join(r.Approvers, " or ")
	}
	detail := "It needs " + strconv.Itoa(r.Quorum) + " approval(s) from " + who + " other than you, by " +
		r.Expires.UTC().Format(time.RFC3339) + ". Cancel the statement (Ctrl-C) to withdraw it."
	msg := pgwire.AppendError(nil, pgwire.SeverityNotice, "00000",
		"waiting for approval: review "+r.ID+", approve with: gatehouse reviews approve "+r.ID, detail, "")
	s.clientMu.Lock()
	s.client.Write(msg)
	s.clientMu.Unlock()
}

// cancelWait cancels the review the session waits on, if any, with cause;
// it reports whether there was one.
func (s *session) cancelWait(cause error) bool {
	if c := s.waiting.Load(); c != nil {
		(*c)(cause)
		return true
	}
	return false
}

// describeParams shows Bind values (DataRow layout) to a reviewer: text as
// a quoted literal, NULL, and binary values in hex.
func describeParams(values []byte) string {
	if len(values) < 2 {
		return ""
	}
	n, p := int(binary.BigEndian.Uint16(values)), 2
	var b strings.Builder
	for i := range n {
		if len(values) < p+4 {
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(i+1) + " = ")
		l := int32(binary.BigEndian.Uint32(values[p:]))
		p += 4
		if l < 0 {
			b.WriteString("NULL")
			continue
		}
		if int(l) > len(values)-p {
			b.WriteString("(malformed)")
			break
		}
		v := values[p : p+int(l)]
		p += int(l)
		if utf8.Valid(v) && !strings.ContainsFunc(string(v), func(r rune) bool { return r < ' ' && r != '\n' && r != '\t' }) {
			b.WriteString("'" + strings.ReplaceAll(string(v), "'", "''") + "'")
		} else {
			b.WriteString(`'\x` + hex.EncodeToString(v) + "' (binary)")
		}
	}
	return b.String()
}

// clientReader is the client connection as the relay reads it. While a
// statement waits for review the relay reads nothing, so watch reads ahead
// into a buffer to notice a client that leaves; Read returns what it read
// first.
type clientReader struct {
	conn  net.Conn
	ahead []byte
	err   error // the error that ended watching, after ahead
}

// maxReadAhead bounds what watch buffers; a client sending more while its
// statement waits is no longer watched (it is read again after the wait).
const maxReadAhead = 1 << 20

func (c *clientReader) Read(p []byte) (int, error) {
	if len(c.ahead) > 0 {
		n := copy(p, c.ahead)
		c.ahead = c.ahead[n:]
		return n, nil
	}
	if c.err != nil {
		return 0, c.err
	}
	return c.conn.Read(p)
}

// watch reads ahead until the returned stop is called, calling gone if
// the client disconnects meanwhile.
func (c *clientReader) watch(gone func()) (stop func()) {
	var stopping atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for len(c.ahead) < maxReadAhead && c.err == nil {
			n, err := c.conn.Read(buf)
			c.ahead = append(c.ahead, buf[:n]...)
			if err != nil {
				var ne net.Error
				if stopping.Load() && errors.As(err, &ne) && ne.Timeout() {
					return
				}
				c.err = err
				gone()
			}
		}
	}()
	return func() {
		stopping.Store(true)
		c.conn.SetReadDeadline(time.Now())
		<-done
		c.conn.SetReadDeadline(time.Time{})
	}
}
