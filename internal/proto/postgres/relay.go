package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/gate"
	"github.com/gatehouse-dev/gatehouse/internal/proto/postgres/pgwire"
)

// session is one client connection relayed to one target backend.
type session struct {
	engine *Engine
	opts   Options
	client net.Conn
	target net.Conn
	gs     *gate.Session

	// The client's BackendKeyData holds targetPID (the backend's real
	// process id) and key (the gateway's); targetKey never leaves the
	// gateway.
	key                  uint32
	targetAddr           string
	targetPID, targetKey uint32
	cancelable           bool

	// in reads the client; waiting cancels the review a held statement
	// waits on (nil when none waits).
	in      *clientReader
	waiting atomic.Pointer[context.CancelCauseFunc]

	clientMu   sync.Mutex // serialises writes to the client
	closeOnce  sync.Once
	clientGone atomic.Bool // the client side ended first
	// endedBy is why the gateway ended the session (end), which the
	// session's close event records instead of the disconnect it causes.
	endedBy atomic.Pointer[string]

	// Owned by the client→target goroutine.
	stmts   map[string]statement // prepared statement name → statement
	portals map[string]statement // portal name → its statement
	intern  map[string]string
	ended   string // why the client side ended
	// sent counts the messages forwarded since the last Sync that the
	// server answers with one completion each (Parse, Bind, Describe,
	// Execute, Close).
	sent int

	// Owned by the target→client goroutine: DataRows since the last
	// statement ended, and completions since the last ReadyForQuery.
	// Counting them takes no lock.
	dataRows  int64
	completed int
	names     []byte // scratch for recording column names

	// legacyStrings: the target's standard_conforming_strings is off.
	legacyStrings atomic.Bool

	// masking: mask rules apply to the connection; columns are their
	// columns' identities in the target's catalog. mask and out are owned
	// by the target→client goroutine.
	masking bool
	columns map[colKey]string
	mask    masker
	out     []byte // masked output waiting to be written
	sub     substitute
	// describedKeys are the statements and portals ("S:…", "P:…") described
	// since they were last defined (client→target goroutine).
	describedKeys map[string]bool

	// Shared: statements sent and not yet answered, oldest first.
	mu      sync.Mutex
	pending []pendingCmd
	head    int
}

type pendingKind uint8

const (
	kindSimple  pendingKind = iota // a Query message: one or more statements, answered by ReadyForQuery
	kindExecute                    // an Execute of the extended protocol
	kindSync                       // a Sync, answered by ReadyForQuery
	// kindDescribe is a Describe, tracked only when masking: its
	// RowDescription tells the columns of later Executes (portalKey holds
	// "S:name" or "P:name").
	kindDescribe
	// kindBlockedParse is a Parse the gate refused. A Parse that cannot
	// succeed went to the server in its place, so the server fails it
	// and skips to Sync exactly as for any failed message, keeping the
	// pipeline and transaction state right; its ErrorResponse is
	// replaced by the gate's.
	kindBlockedParse
)

// statement is a parsed statement and the gate's decision on it.
type statement struct {
	name     string
	text     string
	decision gate.Decision
	// params are a portal's bound values as a reviewer reads them, kept
	// only for statements that need review.
	params string
}

// pendingCmd is a statement sent and not yet answered.
type pendingCmd struct {
	kind  pendingKind
	text  string
	start time.Time
	rows  int64 // finished statements' rows
	code  string
	msg   string
	// decision is the gate's; for a refused statement the server's
	// ErrorResponse to the stand-in is replaced by refusal.
	decision gate.Decision
	refusal  []byte
	// after is, for kindBlockedParse, how many completions the server
	// sends in this batch before answering the stand-in Parse.
	after int
	// When masking, an Execute's portal and statement ("P:…", "S:…"),
	// whose Describe answers tell its columns.
	portalKey, stmtKey string
}

// inBatch reports pending kinds the server skips after an error until
// Sync.
func (p *pendingCmd) inBatch() bool {
	return p.kind == kindExecute || p.kind == kindBlockedParse || p.kind == kindDescribe
}

// blockedSQL stands in for a refused statement: a syntax error, so the
// server fails it without effect (aborting an open transaction, as a
// failed statement does), and its log says why.
const blockedSQL = "/* gatehouse: statement refused by policy */ )"

// substitute asks the relay to send bytes in place of the frame being
// visited.
type substitute struct{ with []byte }

func (*substitute) Error() string { return "substitute frame" }

func (s *session) push(p pendingCmd) {
	s.mu.Lock()
	if s.head > 0 && s.head == len(s.pending) {
		s.pending, s.head = s.pending[:0], 0
	}
	s.pending = append(s.pending, p)
	s.mu.Unlock()
}

// front returns the oldest unanswered command, or nil.
func (s *session) front() *pendingCmd {
	if s.head < len(s.pending) {
		return &s.pending[s.head]
	}
	return nil
}

// run relays until either side ends, then records the session's end.
func (s *session) run() {
	s.stmts, s.portals, s.intern = map[string]statement{}, map[string]statement{}, map[string]string{}
	s.describedKeys = map[string]bool{}
	s.in = &clientReader{conn: s.client}
	done := make(chan string, 1)
	go func() {
		reason := s.serverToClient()
		s.closeBoth()
		done <- reason
	}()
	clientReason := s.clientToServer()
	s.clientGone.Store(true)
	s.closeBoth()
	serverReason := <-done
	reason := clientReason
	if reason == "" {
		reason = serverReason
	}
	if why := s.endedBy.Load(); why != nil {
		reason = *why
	}
	s.flushPending("session ended before the result arrived")
	s.mask.invalidate() // counts the last result's masking
	s.gs.Masked = s.mask.counts
	s.engine.deps.Gate.Close(s.gs, reason)
}

func (s *session) closeBoth() {
	s.closeOnce.Do(func() {
		s.client.Close()
		// A grant's end may close a session still logging in.
		s.mu.Lock()
		t := s.target
		s.mu.Unlock()
		if t != nil {
			t.Close()
		}
	})
}

// shutdown ends the session because the gateway is stopping. A review the
// session waits on stays pending.
func (s *session) shutdown() {
	s.cancelWait(gate.ErrStopping)
	s.end(codeAdminShutdown, "terminating connection: the gateway is shutting down")
}

// end sends the client a FATAL error and closes the session.
func (s *session) end(code, msg string) {
	s.endedBy.CompareAndSwap(nil, &msg)
	s.clientMu.Lock()
	s.client.SetWriteDeadline(time.Now().Add(time.Second))
	s.client.Write(pgwire.AppendError(nil, pgwire.SeverityFatal, code, msg, "", ""))
	s.clientMu.Unlock()
	s.closeBoth()
}

func holdClient(t byte) bool { return t != pgwire.MsgCopyData }

func holdServer(t byte) bool { return t != pgwire.MsgDataRow && t != pgwire.MsgCopyData }

// holdAll: a masking session sees rows whole, to rewrite them.
func holdAll(byte) bool { return true }

// clientToServer forwards client messages, judging each statement on the
// way. It returns why the client side ended ("" when the target ended it).
func (s *session) clientToServer() string {
	ch := pgwire.NewChunker(s.in, s.opts.BufferSize, s.opts.MaxMessageBytes, holdClient)
	visit := s.visitClient
	for {
		run, err := ch.Next(visit)
		if len(run) > 0 {
			if _, werr := s.target.Write(run); werr != nil {
				return ""
			}
		}
		if sub, ok := err.(*substitute); ok {
			ch.Discard()
			if _, werr := s.target.Write(sub.with); werr != nil {
				return ""
			}
			continue
		}
		if h, ok := err.(*held); ok {
			ch.Discard()
			out := s.awaitReview(h)
			if out == nil {
				return "client disconnected while a statement waited for review"
			}
			if _, werr := s.target.Write(out); werr != nil {
				return ""
			}
			continue
		}
		if err != nil {
			var tl *pgwire.TooLargeError
			var pe *pgwire.ProtocolError
			switch {
			case errors.As(err, &tl):
				s.failClient(codeProgramLimit, tl.Error())
				return "client message over the size limit"
			case errors.As(err, &pe):
				s.failClient(codeProtocolViolation, pe.Msg)
				return "client protocol violation: " + pe.Msg
			case s.ended != "":
				return s.ended
			}
			return "client disconnected"
		}
	}
}

func (s *session) visitClient(frame []byte, whole bool) error {
	switch frame[0] {
	case pgwire.MsgQuery:
		text, err := pgwire.QueryText(frame)
		if err != nil {
			return err
		}
		s.sent = 0
		return s.simpleQuery(s.internText(text), frame)
	case pgwire.MsgFunctionCall:
		// The fast-path protocol calls a function by OID, with no SQL
		// to classify: the gate judges it as text the parser rejects
		// (UNKNOWN), the most dangerous class.
		if len(frame) < pgwire.HeaderLen+4 {
			return &pgwire.ProtocolError{Msg: "invalid FunctionCall message"}
		}
		return s.simpleQuery("-- fast-path FunctionCall of function OID "+
			strconv.FormatUint(uint64(binary.BigEndian.Uint32(frame[pgwire.HeaderLen:])), 10)+"\n<FunctionCall>", frame)
	case pgwire.MsgParse:
		name, text, err := pgwire.ParseFields(frame)
		if err != nil {
			return err
		}
		sql := s.internText(text)
		d := s.decide(sql)
		s.sent++
		if d.Action == gate.Block {
			delete(s.stmts, string(name))
			s.gs.Rec.Statement(recorded(sql, d), d.Event)
			s.push(pendingCmd{kind: kindBlockedParse, text: sql, start: time.Now(), decision: d,
				refusal: refusal(d), after: s.sent - 1})
			return &substitute{with: pgwire.AppendParse(nil, name, blockedSQL)}
		}
		s.stmts[string(name)] = statement{name: string(name), text: sql, decision: d}
		if s.masking {
			delete(s.describedKeys, "S:"+string(name))
		}
	case pgwire.MsgBind:
		portal, stmt, err := pgwire.BindNames(frame)
		if err != nil {
			return err
		}
		s.sent++
		st := s.stmts[string(stmt)]
		if st.decision.Action == gate.Review {
			if v, ok := pgwire.BindValues(frame); ok {
				st.params = describeParams(v)
			}
		}
		s.portals[string(portal)] = st
		if s.masking {
			delete(s.describedKeys, "P:"+string(portal))
		}
		if s.gs.Rec != nil {
			if v, ok := pgwire.BindValues(frame); ok {
				s.gs.Rec.Params(v)
			}
		}
	case pgwire.MsgDescribe:
		s.sent++
		if s.masking {
			kind, name, err := pgwire.CloseTarget(frame) // the same layout
			if err != nil {
				return err
			}
			key := string(kind) + ":" + string(name)
			s.describedKeys[key] = true
			s.push(pendingCmd{kind: kindDescribe, portalKey: key})
		}
	case pgwire.MsgExecute:
		portal, err := pgwire.ExecutePortal(frame)
		if err != nil {
			return err
		}
		s.sent++
		st := s.portals[string(portal)]
		p := pendingCmd{kind: kindExecute, text: st.text, decision: st.decision, start: time.Now()}
		if s.masking {
			// Only a Describe since the portal or statement was defined
			// tells its columns.
			if k := "P:" + string(portal); s.describedKeys[k] {
				p.portalKey = k
			}
			if k := "S:" + st.name; s.describedKeys[k] {
				p.stmtKey = k
			}
		}
		if st.decision.Action == gate.Review {
			return hold(frame, p, st.params)
		}
		s.gs.Rec.Statement(recorded(st.text, st.decision), st.decision.Event)
		s.push(p)
	case pgwire.MsgSync:
		s.sent = 0
		s.push(pendingCmd{kind: kindSync})
	case pgwire.MsgClose:
		kind, name, err := pgwire.CloseTarget(frame)
		if err != nil {
			return err
		}
		s.sent++
		if kind == 'S' {
			delete(s.stmts, string(name))
		} else {
			delete(s.portals, string(name))
		}
	case pgwire.MsgCopyData:
		if s.gs.Rec != nil {
			s.recordData(frame, whole, true)
		}
	case pgwire.MsgTerminate:
		s.ended = "client terminated the session"
	}
	return nil
}

// recordData records a DataRow or CopyData message, fromClient telling
// CopyData's direction; one seen only by its first piece is counted.
func (s *session) recordData(frame []byte, whole, fromClient bool) {
	rec := s.gs.Rec
	switch {
	case !whole:
		if _, total, ok := pgwire.Header(frame); ok {
			rec.Omit(total - pgwire.HeaderLen)
		}
	case frame[0] == pgwire.MsgDataRow:
		rec.Row(frame[pgwire.HeaderLen:])
	case fromClient:
		rec.CopyIn(frame[pgwire.HeaderLen:])
	default:
		rec.CopyOut(frame[pgwire.HeaderLen:])
	}
}

// simpleQuery judges a message answered by ReadyForQuery (Query,
// FunctionCall) and queues it; a refused one is replaced by a stand-in
// the server fails, one that needs review is held.
func (s *session) simpleQuery(text string, frame []byte) error {
	d := s.decide(text)
	p := pendingCmd{kind: kindSimple, text: text, start: time.Now(), decision: d}
	if d.Action == gate.Review {
		return hold(frame, p, "")
	}
	s.gs.Rec.Statement(recorded(text, d), d.Event)
	if d.Action == gate.Allow {
		s.push(p)
		return nil
	}
	p.refusal = refusal(d)
	s.push(p)
	return &substitute{with: pgwire.AppendQuery(nil, blockedSQL)}
}

// recorded is a statement's text as the recording keeps it: with what
// the mask rules' detectors find redacted.
func recorded(text string, d gate.Decision) string {
	if d.Text != "" {
		return d.Text
	}
	return text
}

// decide asks the gate about SQL text.
func (s *session) decide(sql string) gate.Decision {
	return s.engine.deps.Gate.Decide(s.gs, &gate.Command{Type: gate.CommandQuery, Text: sql, LegacyStrings: s.legacyStrings.Load()})
}

// refusal is the ErrorResponse a client gets for a refused statement:
// 42501, or 57014 when the client cancelled it while it waited for review.
func refusal(d gate.Decision) []byte {
	code, msg := codeInsufficientPrivilege, "gatehouse refused this statement: "+d.Message
	if d.Cancelled {
		code, msg = codeQueryCanceled, "canceling statement: "+d.Message
	}
	detail := ""
	if d.Rule != "" {
		detail = "policy rule " + d.Rule
	}
	return pgwire.AppendError(nil, pgwire.SeverityError, code, msg, detail, "")
}

// internText returns the statement as a string, sharing one copy among
// repeats so prepared and repeated statements cost a map lookup.
func (s *session) internText(b []byte) string {
	if t, ok := s.intern[string(b)]; ok {
		return t
	}
	t := string(b)
	if len(s.intern) >= 512 {
		clear(s.intern)
	}
	if len(t) <= 4096 {
		s.intern[t] = t
	}
	return t
}

// failClient sends a FATAL error to the client; the session then ends.
func (s *session) failClient(code, msg string) {
	s.clientMu.Lock()
	s.client.Write(pgwire.AppendError(nil, pgwire.SeverityFatal, code, msg, "", ""))
	s.clientMu.Unlock()
}

// serverToClient forwards target messages, matching results to the
// statements that caused them. It returns why the target side ended.
func (s *session) serverToClient() string {
	hold := holdServer
	if s.masking {
		hold = holdAll
	}
	ch := pgwire.NewChunker(s.target, s.opts.BufferSize, s.opts.MaxMessageBytes, hold)
	visit := s.visitServer
	for {
		run, err := ch.Next(visit)
		if sub, ok := err.(*substitute); ok {
			ch.Discard()
			// Gather replaced messages while more are ready, so masked
			// rows go out in one write, not one each.
			s.out = append(append(s.out, run...), sub.with...)
			if ch.Ready() && len(s.out) < 64<<10 {
				continue
			}
			run, err = s.out, nil
		} else if len(s.out) > 0 {
			run = append(s.out, run...)
		}
		s.out = s.out[:0]
		if len(run) > 0 {
			s.clientMu.Lock()
			_, werr := s.client.Write(run)
			s.clientMu.Unlock()
			if werr != nil {
				return "client disconnected"
			}
		}
		if err != nil {
			var tl *pgwire.TooLargeError
			if errors.As(err, &tl) {
				s.failClient(codeProgramLimit, "the server sent a "+tl.Error())
				return "server message over the size limit"
			}
			// The target went away without a word (PostgreSQL itself sends
			// a FATAL first). Tell the client, unless a message is half
			// forwarded: a torn stream is all it can get then.
			if ch.AtBoundary() && !s.clientGone.Load() {
				s.failClient(codeConnectionFailure, "lost the connection to the target of connection "+s.gs.Connection.Name)
			}
			return "target closed the connection"
		}
	}
}

func (s *session) visitServer(frame []byte, whole bool) error {
	switch frame[0] {
	case pgwire.MsgDataRow, pgwire.MsgCopyData:
		if frame[0] == pgwire.MsgDataRow {
			s.dataRows++
		}
		var sub error
		if s.masking && whole {
			if masked := s.maskData(frame); masked != nil {
				s.sub.with = masked
				frame, sub = masked, &s.sub
			}
		}
		if s.gs.Rec != nil {
			s.recordData(frame, whole, false)
		}
		return sub
	case pgwire.MsgRowDescription:
		s.completed++
		if s.gs.Rec != nil {
			var ok bool
			if s.names, ok = pgwire.AppendColumnNames(s.names[:0], frame); ok {
				s.gs.Rec.Columns(s.names)
			}
		}
		if s.masking {
			s.described(parseFields(frame))
		}
		return nil
	case pgwire.MsgNoData:
		s.completed++
		if s.masking {
			s.described(nil)
		}
		return nil
	case pgwire.MsgParseComplete, pgwire.MsgBindComplete, pgwire.MsgCloseComplete:
		s.completed++
		return nil
	case pgwire.MsgParameterStatus:
		if name, value, ok := pgwire.ParameterStatusFields(frame); ok && string(name) == "standard_conforming_strings" {
			s.legacyStrings.Store(string(value) == "off")
		}
		return nil
	case pgwire.MsgCommandComplete:
		s.completed++
		// The tag's count is authoritative (it covers writes, which
		// return no rows); without one, count the rows sent.
		n := pgwire.CommandRows(frame)
		if n < 0 {
			n = s.dataRows
		}
		s.mu.Lock()
		if p := s.front(); p != nil && p.kind != kindSync && p.kind != kindBlockedParse {
			p.rows += n
			if p.kind == kindExecute {
				s.completeFront()
			}
		}
		s.mu.Unlock()
	case pgwire.MsgEmptyQuery, pgwire.MsgPortalSuspended:
		s.completed++
		s.mu.Lock()
		if p := s.front(); p != nil && p.kind == kindExecute {
			p.rows += s.dataRows
			s.completeFront()
		}
		s.mu.Unlock()
	case pgwire.MsgErrorResponse:
		code, msg := pgwire.ErrorFields(frame)
		var sub error
		s.mu.Lock()
		p := s.front()
		switch {
		case p == nil || p.kind == kindSync:
		case p.kind == kindBlockedParse:
			// The stand-in's error, if nothing before it failed; an
			// earlier message's error passes through and the server
			// skips the stand-in.
			if s.completed == p.after {
				p.code, p.msg = codeInsufficientPrivilege, p.decision.Message
				sub = &substitute{with: p.refusal}
				s.completeFront()
			}
		case p.code == "":
			p.code, p.msg = string(code), string(msg)
			if p.refusal != nil { // a refused simple query's stand-in
				p.code, p.msg = codeInsufficientPrivilege, p.decision.Message
				sub = &substitute{with: p.refusal}
			}
			if p.kind == kindExecute || p.kind == kindDescribe {
				s.completeFront()
			}
		}
		s.mu.Unlock()
		s.dataRows = 0
		s.mask.invalidate()
		return sub
	case pgwire.MsgReadyForQuery:
		s.completed = 0
		s.mu.Lock()
		// Everything up to the Sync or Query this answers is finished;
		// batch entries still queued were skipped after an error.
		for p := s.front(); p != nil; p = s.front() {
			inBatch := p.inBatch()
			if inBatch && p.code == "" {
				p.msg = "not executed: an earlier message in the pipeline failed"
				if p.kind == kindBlockedParse {
					p.code, p.msg = codeInsufficientPrivilege, p.decision.Message
				}
			}
			s.completeFront()
			if !inBatch {
				break
			}
		}
		s.mu.Unlock()
	default:
		return nil
	}
	// Every case above ends a statement (or the target's answer to one).
	s.dataRows = 0
	s.mask.invalidate()
	s.mask.curFields = nil
	return nil
}

// described takes a RowDescription's fields (nil for NoData): the answer
// to a tracked Describe, or the columns of the result under way.
func (s *session) described(fields []field) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.front(); p != nil && p.kind == kindDescribe {
		if s.mask.described == nil || len(s.mask.described) >= 256 {
			s.mask.described = map[string][]field{}
		}
		s.mask.described[p.portalKey] = fields
		s.head++ // answered; nothing to record
		return
	}
	s.mask.curFields = fields
	s.mask.invalidate()
}

// maskData returns a DataRow or CopyData with the mask rules of the
// statement it answers applied, or nil when nothing in it changes.
func (s *session) maskData(frame []byte) []byte {
	m := &s.mask
	if !m.valid {
		s.mu.Lock()
		m.plan = s.planFor(s.front())
		s.mu.Unlock()
		m.valid = true
	}
	if m.plan == nil {
		return nil
	}
	if frame[0] == pgwire.MsgCopyData {
		return s.maskCopy(frame, m.plan)
	}
	if !m.plan.any {
		return nil
	}
	return s.maskRow(frame, m.plan)
}

// completeFront records and drops the oldest pending command. Sync
// entries record nothing. Callers hold s.mu.
func (s *session) completeFront() {
	p := &s.pending[s.head]
	s.head++
	if p.kind == kindSync || p.kind == kindDescribe {
		return
	}
	s.record(p, time.Since(p.start))
}

func (s *session) record(p *pendingCmd, d time.Duration) {
	s.engine.deps.Gate.Done(s.gs, p.decision, gate.Result{Rows: p.rows, SQLState: p.code, Error: p.msg, Duration: d})
}

// flushPending records commands that never got an answer.
func (s *session) flushPending(why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p := s.front(); p != nil; p = s.front() {
		if p.kind != kindSync && p.msg == "" {
			p.msg = why
		}
		s.completeFront()
	}
}
