package gate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/review"
	"github.com/gatehouse-dev/gatehouse/internal/sqlparse"
)

// ErrStopping is the cause an engine gives a waiting command's context when
// the gateway stops: the review stays pending (it survives the restart and
// stays decidable) instead of being cancelled.
var ErrStopping = errors.New("the gateway is stopping")

// ErrClientCancelled and ErrClientGone are the causes an engine gives when
// the client cancels a waiting command or disconnects; the review is then
// cancelled.
var (
	ErrClientCancelled = errors.New("cancelled by the client")
	ErrClientGone      = errors.New("the client disconnected")
)

// Await holds a command the gate decided needs review (d.Action Review).
// When an approval of the same command (same identity, connection, text and
// parameters) is still unused it takes it; otherwise it opens a review,
// calls waiting with it so the engine can tell its client, and blocks until
// the review is decided or expires, or ctx ends (the review is then
// cancelled, unless ctx's cause is ErrStopping).
//
// It returns what to do: Allow, after writing the command event that lets
// the command run (write-ahead, with the review's id), or Block naming why
// (Cancelled set when the client cancelled or left). params is the
// command's bound parameters as text, shown to reviewers ("" for none).
func (g *Gate) Await(ctx context.Context, s *Session, c *Command, d Decision, params string, waiting func(review.Review)) Decision {
	if g.Reviews == nil {
		return refused(d, "", "this statement needs approval ("+d.Message+"), and this gateway keeps no reviews")
	}
	text := c.Text
	if d.Text != "" {
		text = d.Text
	}
	if params != "" {
		text += "\n-- parameters: " + params
	}
	match := matchKey(c.Text, params)
	r, ok, err := g.Reviews.Unused(ctx, s.Identity.Name, s.Connection.Name, match, s.ID)
	if err != nil {
		return g.reviewFailed(d, err)
	}
	if ok {
		return g.approved(s, c, d, r)
	}
	spec := reviewSpec(d.review)
	timeout, _ := time.ParseDuration(spec.Timeout)
	r, err = g.Reviews.Request(ctx, review.Review{Kind: review.KindCommand, Requester: s.Identity.Name,
		Connection: s.Connection.Name, Session: s.ID, Command: text, Fingerprint: sqlparse.Fingerprint(c.Text),
		Match: match, Rule: d.Rule, Approvers: spec.Approvers, Quorum: spec.Quorum, Timeout: timeout})
	if err != nil {
		return g.reviewFailed(d, err)
	}
	if waiting != nil {
		waiting(r)
	}
	id := r.ID
	r, err = g.Reviews.Wait(ctx, id)
	if err != nil {
		// Wait may fail before reading the review once: r is empty then.
		r.ID = id
		cause := context.Cause(ctx)
		if ctx.Err() == nil {
			return g.reviewFailed(d, err)
		}
		if !errors.Is(cause, ErrStopping) {
			// A fresh context: the waiting one is done.
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := g.Reviews.Cancel(cctx, r.ID, s.Identity.Name, cause.Error()); err != nil && !errors.Is(err, review.ErrNotPending) {
				g.Log.Warn("cancel review", "review", r.ID, "err", err)
			}
		}
		out := refused(d, r.ID, "review "+r.ID+" cancelled: "+cause.Error())
		out.Cancelled = true
		return out
	}
	switch r.State {
	case review.Approved:
		// This session takes the approval; if another session with the
		// same command took it first, the review is spent.
		if r, err = g.Reviews.Execute(ctx, r.ID, s.ID); err != nil {
			return g.reviewFailed(d, err)
		}
		return g.approved(s, c, d, r)
	case review.Denied:
		return refused(d, r.ID, "review "+r.ID+" "+r.Outcome)
	case review.Expired:
		return refused(d, r.ID, "review "+r.ID+" expired: "+r.Outcome)
	}
	return refused(d, r.ID, "review "+r.ID+" is "+string(r.State)+": "+r.Outcome)
}

// refused is the decision refusing a held command: the held decision's
// rule and event, the review that refused it, and why.
func refused(d Decision, review, msg string) Decision {
	return Decision{Action: Block, Rule: d.Rule, Event: d.Event, Review: review, Message: msg}
}

// approved writes the command event that runs a command by a review's
// approval, before the engine forwards it.
func (g *Gate) approved(s *Session, c *Command, d Decision, r review.Review) Decision {
	e := audit.Event{Type: audit.TypeCommand, Identity: s.Identity.Name, Session: s.ID, Connection: s.Connection.Name,
		Command: c.Text, Decision: string(Allow), Rule: d.Rule, Review: r.ID, Ref: d.Event}
	if d.Text != "" {
		e.Command = d.Text
	}
	out := Decision{Action: Allow, Rule: d.Rule, Review: r.ID, Mask: d.Mask, Text: d.Text,
		Message: "review " + r.ID + " " + r.Outcome}
	out.Event = g.Audit.Append(e)
	return out
}

func (g *Gate) reviewFailed(d Decision, err error) Decision {
	g.Log.Error("review", "err", err)
	return refused(d, "", fmt.Sprintf("this statement needs approval (%s), and the review could not be kept: %v", d.Message, err))
}

// matchKey identifies a command exactly, for one-shot reuse of approvals.
func matchKey(text, params string) string {
	h := sha256.New()
	h.Write([]byte(text))
	h.Write([]byte{0})
	h.Write([]byte(params))
	return hex.EncodeToString(h.Sum(nil))
}

func reviewSpec(s *resource.ReviewSpec) resource.ReviewSpec {
	if s == nil {
		return resource.ReviewSpec{}
	}
	return *s
}

// RequestAccess opens an access review: identity asks to use connection c
// for window. Only a connection whose access rules ask for review takes
// one; an identity that may connect already, or may never, is told so.
func (g *Gate) RequestAccess(ctx context.Context, id resource.Identity, c resource.Connection, window time.Duration, reason string) (review.Review, error) {
	if g.Reviews == nil {
		return review.Review{}, errors.New("this gateway keeps no reviews")
	}
	d := g.accessPolicy(id, c)
	switch d.Action {
	case Allow:
		return review.Review{}, &AccessError{Msg: fmt.Sprintf("%s may already use connection %s; no grant is needed", id.Name, c.Name)}
	case Block:
		return review.Review{}, &AccessError{Forbidden: true, Msg: fmt.Sprintf("%s may not use connection %s, grant or not (%s)", id.Name, c.Name, d.Message)}
	}
	spec := reviewSpec(d.review)
	maxWindow := review.DefaultMaxDuration
	if spec.MaxDuration != "" {
		maxWindow, _ = time.ParseDuration(spec.MaxDuration)
	}
	if window <= 0 || window > maxWindow {
		return review.Review{}, &AccessError{Msg: fmt.Sprintf("access to %s may be granted for up to %s; asked for %s", c.Name, maxWindow, window)}
	}
	timeout, _ := time.ParseDuration(spec.Timeout)
	return g.Reviews.Request(ctx, review.Review{Kind: review.KindAccess, Requester: id.Name, Connection: c.Name,
		Reason: reason, Rule: d.Rule, Approvers: spec.Approvers, Quorum: spec.Quorum, Timeout: timeout,
		Window: window, EndSessions: spec.EndSessions})
}

// AccessError is a request for access the gate turns down; Forbidden
// when the identity may never use the connection.
type AccessError struct {
	Forbidden bool
	Msg       string
}

func (e *AccessError) Error() string { return e.Msg }
