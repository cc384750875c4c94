// Package gate is the protocol-agnostic checkpoint every engine calls. An
// engine turns wire messages into Commands; the gate decides (allow, block,
// review), and records each session and command in the audit log. Engines
// never evaluate policy themselves; the gate never knows a wire format.
package gate

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
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
}

// Command types.
const (
	CommandConnect = "connect"
	CommandQuery   = "query"
)

// Command is the unit policy judges.
type Command struct {
	Type string
	// Text is the command as the client sent it (a SQL statement or
	// several, for a simple query).
	Text string
}

// Result is what a command did.
type Result struct {
	Rows     int64
	SQLState string // "" on success
	Error    string
	Duration time.Duration
}

// Session is one identity using one connection over one client connection.
type Session struct {
	ID         string
	Identity   resource.Identity
	Connection resource.Connection
	Protocol   string
	Client     string
	Start      time.Time
}

// Auditor receives audit events; *audit.Log is one.
type Auditor interface {
	Append(e audit.Event)
}

// Gate decides and records.
type Gate struct {
	Audit Auditor
	Log   *slog.Logger
}

// NewSessionID returns a random session id.
func NewSessionID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Connect decides whether the session may open. Until access rules arrive
// with policy, a connection's allow list decides; the decision is audited.
func (g *Gate) Connect(s *Session) Decision {
	d := Decision{Action: Allow, Rule: "connection.allow"}
	if !s.Connection.Allow.Permits(s.Identity) {
		d = Decision{Action: Block, Rule: "connection.allow",
			Message: "identity " + s.Identity.Name + " may not use connection " + s.Connection.Name}
	}
	e := g.event(s, audit.TypeSessionOpen)
	e.Decision, e.Rule, e.Error = string(d.Action), d.Rule, d.Message
	g.Audit.Append(e)
	return d
}

// LoginFailed records a failed authentication; identity may be empty.
func (g *Gate) LoginFailed(protocol, client, connection, reason string) {
	g.Audit.Append(audit.Event{Type: audit.TypeLoginFailed, Protocol: protocol, Client: client, Connection: connection, Error: reason})
}

// Decide judges one command. Until the policy issue lands it allows all.
func (g *Gate) Decide(s *Session, c *Command) Decision {
	return Decision{Action: Allow}
}

// Done records a decided command and its result.
func (g *Gate) Done(s *Session, c *Command, d Decision, r Result) {
	e := g.event(s, audit.TypeCommand)
	e.Command, e.Decision, e.Rule = c.Text, string(d.Action), d.Rule
	e.Rows, e.SQLState, e.Error, e.Duration = r.Rows, r.SQLState, r.Error, r.Duration
	g.Audit.Append(e)
}

// Close records the end of a session.
func (g *Gate) Close(s *Session, reason string) {
	e := g.event(s, audit.TypeSessionClose)
	e.Error, e.Duration = reason, time.Since(s.Start)
	g.Audit.Append(e)
}

func (g *Gate) event(s *Session, typ string) audit.Event {
	return audit.Event{Type: typ, Identity: s.Identity.Name, Session: s.ID,
		Connection: s.Connection.Name, Protocol: s.Protocol, Client: s.Client}
}
