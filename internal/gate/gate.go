// Package gate is the protocol-agnostic checkpoint every engine calls. An
// engine turns wire messages into Commands; the gate decides (allow, block,
// review), and records each session and command in the audit log. Engines
// never evaluate policy themselves; the gate never knows a wire format.
package gate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/mask"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/recording"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/review"
	"github.com/gatehouse-dev/gatehouse/internal/sqlparse"
)

// Action is what a decision tells the engine to do.
type Action string

// Actions.
const (
	Allow  Action = "allow"
	Block  Action = "block"
	Review Action = "review"
)

// Decision is the gate's answer for one command.
type Decision struct {
	Action  Action
	Rule    string // the rule that decided; "" for the default
	Message string // shown to the client when blocked
	// Event is the sequence number of the audit event recording the
	// decision, written before Decide returns.
	Event uint64
	// Mask holds the mask rules in force for the command's results.
	Mask []*policy.Rule
	// Text is the command as the audit log and the recording keep it:
	// with the values the mask rules' detectors find redacted. "" when it
	// is the command's text unchanged.
	Text string
	// Review is the review that decided (Await), or that granted the
	// access (Connect); Cancelled is set when the client cancelled the
	// command or left while it waited.
	Review    string
	Cancelled bool
	// Until is when the access grant that let a session open ends (zero
	// when no grant was needed).
	Until time.Time

	review      *resource.ReviewSpec // the review rule's settings
	endSessions bool                 // end the session at Until
}

// Command types.
const (
	CommandConnect = policy.CommandConnect
	CommandQuery   = policy.CommandQuery
)

// Command is the unit policy judges.
type Command struct {
	Type string
	// Text is the command as the client sent it (a SQL statement or
	// several, for a simple query).
	Text string
	// LegacyStrings is set when the target reads backslashes in string
	// literals as escapes (standard_conforming_strings off).
	LegacyStrings bool
	// SQL is the classification Decide judged; nil until then, and for
	// commands judged with no rules in force.
	SQL *sqlparse.Result
}

// Result is what a command did.
type Result struct {
	Rows     int64
	SQLState string // "" on success
	Error    string
	Duration time.Duration
}

// Session is one identity using one connection over one client connection.
// Decide and Done are called from one goroutine per session.
type Session struct {
	ID         string
	Identity   resource.Identity
	Connection resource.Connection
	Protocol   string
	Client     string
	Start      time.Time
	// TokenID is the token the session authenticated with: revoking it
	// (or disabling the identity) ends the session; see EndRevoked.
	TokenID string

	// The rules in force and decisions kept per classification; rebuilt
	// when the policy set changes.
	loaded    bool
	gen       uint64
	rules     []*policy.Rule
	fallback  Decision // the connection's default, when no rule applies
	cacheable bool
	masks     bool // some rule in force masks
	decisions map[*sqlparse.Result]Decision
	input     policy.Input
	// prepared holds the session's SQL-level prepared statements.
	prepared sqlparse.Prepared

	// Rec records the session; nil (which records nothing) when the
	// gateway keeps no recordings or the session was refused.
	Rec *recording.Recorder
	// Masked counts the values masked in the session's results, by
	// detector name or "column schema.table.column"; the engine sets it
	// before Close, which records it.
	Masked map[string]int64

	// End, set by the engine, ends the session with a message to its
	// client (a grant ran out, the identity was revoked); it may be
	// called from any goroutine.
	End   func(reason string)
	ender *time.Timer
}

// Auditor receives audit events; *audit.Log is one. Append returns the
// event's sequence number once the event is durable against a crash of the
// process.
type Auditor interface {
	Append(e audit.Event) uint64
}

// Gate decides and records.
type Gate struct {
	Audit Auditor
	Log   *slog.Logger
	// Classifier classifies SQL; nil means one of ClassifierEntries.
	Classifier *sqlparse.Classifier
	// Recordings records the sessions allowed to open; nil records none.
	Recordings *recording.Writer
	// Masker masks result values; its key makes hash masking this
	// gateway's own. Nil means a masker with no key.
	Masker *mask.Masker
	// Reviews keeps reviews and grants; nil refuses what needs review.
	Reviews *review.Service

	classifierOnce sync.Once
	policies       atomic.Pointer[policy.Set]

	liveMu sync.Mutex
	live   map[*Session]struct{} // sessions open and allowed
}

// ClassifierEntries bounds the shared classification cache.
const ClassifierEntries = 50_000

// SetPolicies replaces the policy set; sessions pick it up at their next
// command.
func (g *Gate) SetPolicies(s *policy.Set) { g.policies.Store(s) }

// Policies returns the policy set in force.
func (g *Gate) Policies() *policy.Set {
	if s := g.policies.Load(); s != nil {
		return s
	}
	return policy.NewSet(0, nil)
}

// NewSessionID returns a random session id.
func NewSessionID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Access decides whether an identity may open a session on a connection,
// by the access rules (command.type == "connect") in force and, where they
// ask for review, the identity's live access grant. It records nothing:
// Connect does, and the API uses Access to show each identity the
// connections it may use.
func (g *Gate) Access(id resource.Identity, c resource.Connection) Decision {
	d := g.accessPolicy(id, c)
	if d.Action != Review {
		return d
	}
	hint := " (" + d.Message + "): ask for one with: gatehouse request " + c.Name + " --for 1h --reason \"…\""
	if g.Reviews == nil {
		d.Action, d.Message = Block, "access to "+c.Name+" needs an approved grant"+hint+"; this gateway keeps no reviews"
		return d
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	grant, ok, err := g.Reviews.Grant(ctx, id.Name, c.Name)
	switch {
	case err != nil:
		g.Log.Error("look up access grant", "identity", id.Name, "connection", c.Name, "err", err)
		d.Action, d.Message = Block, "access to "+c.Name+" needs an approved grant, and grants cannot be read now; try again"
	case !ok:
		d.Action, d.Message = Block, "access to "+c.Name+" needs an approved grant"+hint
	default:
		d.Action, d.Message = Allow, ""
		d.Review, d.Until, d.endSessions = grant.ID, grant.Expires, grant.EndSessions
	}
	return d
}

// accessPolicy is the access rules' decision alone.
func (g *Gate) accessPolicy(id resource.Identity, c resource.Connection) Decision {
	in := policy.Input{Identity: policyIdentity(id), Connection: policyConnection(c),
		Command: policy.Command{Type: CommandConnect}, Time: policy.Now()}
	return fromPolicy(policy.Evaluate(g.Policies().For(c), &in, c.DefaultAction))
}

// Connect decides whether the session may open and records the decision.
func (g *Gate) Connect(s *Session) Decision {
	d := g.Access(s.Identity, s.Connection)
	if d.Action == Block && d.Message == "" {
		d.Message = "identity " + s.Identity.Name + " may not use connection " + s.Connection.Name
	}
	s.prepared = sqlparse.Prepared{}
	s.input = policy.Input{Identity: policyIdentity(s.Identity), Connection: policyConnection(s.Connection)}
	e := g.event(s, audit.TypeSessionOpen)
	e.Decision, e.Rule, e.Error, e.Review = string(d.Action), d.Rule, d.Message, d.Review
	g.Audit.Append(e)
	if d.Action == Allow {
		g.liveMu.Lock()
		if g.live == nil {
			g.live = map[*Session]struct{}{}
		}
		g.live[s] = struct{}{}
		g.liveMu.Unlock()
		s.Rec = g.Recordings.Start(recording.Session{ID: s.ID, Identity: s.Identity.Name,
			Connection: s.Connection.Name, Protocol: s.Protocol})
		if d.endSessions && s.End != nil {
			end := s.End
			s.ender = time.AfterFunc(time.Until(d.Until), func() {
				end("access grant " + d.Review + " to " + s.Connection.Name + " ended at " + d.Until.UTC().Format(time.RFC3339))
			})
		}
	}
	return d
}

func policyIdentity(id resource.Identity) policy.Identity {
	return policy.Identity{Name: id.Name, Kind: string(id.Type), Groups: id.Groups}
}

func policyConnection(c resource.Connection) policy.Connection {
	return policy.Connection{Name: c.Name, Type: string(c.Type), Labels: c.Labels}
}

func fromPolicy(d policy.Decision) Decision {
	return Decision{Action: Action(d.Action), Rule: d.Rule, Message: d.Message, review: d.Review}
}

// LoginFailed records a failed authentication; identity may be empty.
func (g *Gate) LoginFailed(protocol, client, connection, reason string) {
	g.Audit.Append(audit.Event{Type: audit.TypeLoginFailed, Protocol: protocol, Client: client, Connection: connection, Error: reason})
}

// maxSessionDecisions bounds one session's decision cache.
const maxSessionDecisions = 256

// Decide judges one command. For SQL it classifies the text (through the
// shared cache), resolves EXECUTE of the session's prepared statements and
// evaluates the rules in force for the session's connection. With no rules
// in force the connection's default decides without classifying.
func (g *Gate) Decide(s *Session, c *Command) Decision {
	d := g.decide(s, c)
	// Write-ahead: the decision is in the audit log before the engine
	// acts on it. Protocol and client address are in the session's
	// session.open event.
	e := audit.Event{Type: audit.TypeCommand, Identity: s.Identity.Name, Session: s.ID, Connection: s.Connection.Name}
	e.Command, e.Decision, e.Rule = c.Text, string(d.Action), d.Rule
	if len(d.Mask) > 0 {
		// A literal secret in the statement is not kept in clear.
		if d.Text = maskText(c.Text, d.Mask); d.Text != "" {
			e.Command = d.Text
		}
	}
	if d.Action != Allow {
		e.Error = d.Message
	}
	d.Event = g.Audit.Append(e)
	return d
}

func (g *Gate) decide(s *Session, c *Command) Decision {
	set := g.Policies()
	if !s.loaded || s.gen != set.Generation {
		s.loaded, s.gen, s.rules = true, set.Generation, set.For(s.Connection)
		s.cacheable = policy.Cacheable(s.rules)
		s.masks = false
		for _, r := range s.rules {
			s.masks = s.masks || r.Mask != nil
		}
		s.fallback = fromPolicy(policy.Evaluate(nil, &s.input, s.Connection.DefaultAction))
		clear(s.decisions)
	}
	if len(s.rules) == 0 {
		return s.fallback
	}
	cache := false
	if c.Type == CommandQuery && c.SQL == nil {
		shared := g.classifier().Classify(c.Text, c.LegacyStrings)
		c.SQL = s.prepared.Resolve(shared)
		// Shared classifications live as long as the classifier's
		// cache, so they key the session's decisions.
		cache = s.cacheable && c.SQL == shared
	}
	if cache {
		if d, ok := s.decisions[c.SQL]; ok {
			return d
		}
	}
	in := s.input
	in.Command = policy.Command{Type: c.Type, Text: c.Text}
	if c.SQL != nil {
		in.Command.SQL = *c.SQL
	}
	in.Time = policy.Now()
	d := fromPolicy(policy.Evaluate(s.rules, &in, s.Connection.DefaultAction))
	if s.masks {
		d.Mask = policy.Masks(s.rules, &in)
	}
	if d.Action == Allow && c.SQL != nil {
		s.prepared.Update(c.SQL)
	}
	if cache && !hasPrepare(c.SQL) {
		if s.decisions == nil || len(s.decisions) >= maxSessionDecisions {
			s.decisions = make(map[*sqlparse.Result]Decision, 16)
		}
		s.decisions[c.SQL] = d
	}
	return d
}

// hasPrepare reports statements whose allowing must update the session's
// prepared statements, so their decision is never taken from the cache.
func hasPrepare(r *sqlparse.Result) bool {
	for _, st := range r.Statements {
		switch st.Kind {
		case sqlparse.KindPrepare, "DEALLOCATE", "DISCARD":
			return true
		}
	}
	return false
}

func (g *Gate) classifier() *sqlparse.Classifier {
	g.classifierOnce.Do(func() {
		if g.Classifier == nil {
			g.Classifier = sqlparse.NewClassifier(ClassifierEntries)
		}
	})
	return g.Classifier
}

// Done records the result of a decided command; call it before the client
// sees the result. Every result goes into the session's recording; one of
// a command that failed or was refused is also an audit event, so the
// log alone shows every error and refusal.
func (g *Gate) Done(s *Session, d Decision, r Result) {
	if d.Action != Allow && r.Error == "" {
		r.Error = d.Message
	}
	s.Rec.Done(r.Rows, r.Duration, r.SQLState, r.Error)
	if r.SQLState == "" && r.Error == "" {
		return
	}
	// The command event (ref) names the identity and connection.
	e := audit.Event{Type: audit.TypeResult, Session: s.ID, Ref: d.Event}
	e.Rows, e.SQLState, e.Error, e.Duration = r.Rows, r.SQLState, r.Error, r.Duration
	g.Audit.Append(e)
}

// maskText redacts what the mask rules' detectors find in a command's
// text; "" when they find nothing.
func maskText(text string, rules []*policy.Rule) string {
	v := []byte(text)
	var found []mask.Match
	for _, r := range rules {
		if r.Mask.Scanner != nil {
			found = r.Mask.Scanner.Find(v, found[:0])
			if len(found) > 0 {
				v, _ = redactor.Apply(nil, v, found, mask.Action{Strategy: mask.Redact})
			}
		}
	}
	if string(v) == text {
		return ""
	}
	return string(v)
}

// redactor masks statement text; Redact uses no key.
var redactor = mask.NewMasker(nil)

// MaskColumns returns the columns (schema.table.column) the mask rules for
// a connection name, whatever their conditions, and whether any mask rule
// applies to it: an engine resolves the columns to the target's column
// identities when a session starts.
func (g *Gate) MaskColumns(c resource.Connection) (columns []string, any bool) {
	for _, r := range g.Policies().For(c) {
		if r.Mask != nil {
			any = true
			columns = append(columns, r.Mask.Columns...)
		}
	}
	return columns, any
}

// ResultMasker returns the masker for result values.
func (g *Gate) ResultMasker() *mask.Masker {
	if g.Masker == nil {
		return redactor
	}
	return g.Masker
}

// EndRevoked ends the live sessions whose token no longer stands: fallen
// (identity.Authenticator.Fallen) is asked once per token and returns why
// (revoked, identity disabled), or "" when it stands or cannot be checked
// now. It returns how many sessions it ended.
func (g *Gate) EndRevoked(ctx context.Context, fallen func(ctx context.Context, tokenID string) string) int {
	g.liveMu.Lock()
	byToken := map[string][]*Session{}
	for s := range g.live {
		if s.TokenID != "" && s.End != nil {
			byToken[s.TokenID] = append(byToken[s.TokenID], s)
		}
	}
	g.liveMu.Unlock()
	ended := 0
	for tok, sessions := range byToken {
		why := fallen(ctx, tok)
		if why == "" {
			continue
		}
		for _, s := range sessions {
			g.Log.Info("ending session: its token no longer stands", "session", s.ID, "identity", s.Identity.Name, "token_id", tok, "reason", why)
			s.End(why)
			ended++
		}
	}
	return ended
}

// Close records the end of a session.
func (g *Gate) Close(s *Session, reason string) {
	e := g.event(s, audit.TypeSessionClose)
	e.Error, e.Duration = reason, time.Since(s.Start)
	if len(s.Masked) > 0 {
		keys := make([]string, 0, len(s.Masked))
		for k := range s.Masked {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + strconv.FormatInt(s.Masked[k], 10)
		}
		e.Masked = strings.Join(parts, ", ")
	}
	if s.ender != nil {
		s.ender.Stop()
	}
	g.liveMu.Lock()
	delete(g.live, s)
	g.liveMu.Unlock()
	s.Rec.Close()
	g.Audit.Append(e)
}

func (g *Gate) event(s *Session, typ string) audit.Event {
	return audit.Event{Type: typ, Identity: s.Identity.Name, Session: s.ID,
		Connection: s.Connection.Name, Protocol: s.Protocol, Client: s.Client}
}
