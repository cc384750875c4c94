// Package review is Gatehouse's approval machinery: reviews of one command
// (one-shot) or of access to a connection for a time window (a grant),
// their state machine with separation of duties and quorum, their
// persistence, waiting for a decision, and notifiers (webhook, Slack).
//
// A review moves pending → approved | denied | expired | cancelled, and an
// approved command review → executed when the command runs (or expired when
// its approval goes unused). Every change is an audit event.
package review

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Kind tells what a review approves.
type Kind string

// Kinds.
const (
	KindCommand Kind = "command" // one command, once
	KindAccess  Kind = "access"  // opening sessions on a connection for a window
)

// State is where a review is in its life.
type State string

// States.
const (
	Pending   State = "pending"
	Approved  State = "approved"
	Denied    State = "denied"
	Expired   State = "expired"
	Cancelled State = "cancelled"
	Executed  State = "executed"
)

// Defaults for rules that leave them out.
const (
	DefaultTimeout     = 15 * time.Minute
	DefaultMaxDuration = 12 * time.Hour
)

// Vote is one approver's decision.
type Vote struct {
	Identity string    `json:"identity"`
	Approve  bool      `json:"approve"`
	Reason   string    `json:"reason,omitempty"`
	Time     time.Time `json:"time"`
}

// Review is a request for approval.
type Review struct {
	ID         string `json:"id"`
	Kind       Kind   `json:"kind"`
	State      State  `json:"state"`
	Requester  string `json:"requester"`
	Connection string `json:"connection"`
	// Session is the session whose command waits (command reviews).
	Session string `json:"session,omitempty"`
	// Command is the statement, as the audit log keeps it, with its
	// parameters when it has any; Fingerprint identifies its shape.
	Command     string `json:"command,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	// Match is the SHA-256 (hex) of the exact command, parameters and
	// all: a later identical command by the requester on the connection
	// may use an unused approval.
	Match  string `json:"match,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Rule is the policy rule that asked for the review.
	Rule string `json:"rule,omitempty"`
	// Approvers are the groups whose members may decide; empty means
	// identities with the admin role.
	Approvers []string `json:"approvers,omitempty"`
	Quorum    int      `json:"quorum"`
	// Timeout is how long the review waits for a decision and how long
	// an unused command approval stays valid.
	Timeout time.Duration `json:"timeout"`
	Created time.Time     `json:"created"`
	// Expires is when the current state lapses: a pending review's
	// deadline; an approved command review's use-by; an approved access
	// review's end of grant.
	Expires time.Time `json:"expires"`
	// Window is the length of access asked for (access reviews);
	// EndSessions ends the sessions the grant let open when it ends.
	Window      time.Duration `json:"window,omitempty"`
	EndSessions bool          `json:"endSessions,omitempty"`
	Votes       []Vote        `json:"votes,omitempty"`
	// Outcome says why the review ended: who denied it and why, what
	// cancelled it.
	Outcome string    `json:"outcome,omitempty"`
	Updated time.Time `json:"updated"`

	version int64
}

// Final reports whether no further change can happen.
func (r *Review) Final() bool {
	return r.State != Pending && r.State != Approved
}

// Approvals counts the distinct identities that approved.
func (r *Review) Approvals() int {
	var seen []string
	for _, v := range r.Votes {
		if v.Approve && !slices.Contains(seen, v.Identity) {
			seen = append(seen, v.Identity)
		}
	}
	return len(seen)
}

// Approver is an identity deciding a review.
type Approver struct {
	Name   string
	Groups []string
	Admin  bool // holds the admin role
}

// Errors a decision can meet; each is wrapped in a message naming the
// review.
var (
	// ErrForbidden: the identity may not decide this review (its own,
	// or not in an approver group).
	ErrForbidden = errors.New("not allowed to decide this review")
	// ErrNotPending: the review is decided, expired or cancelled.
	ErrNotPending = errors.New("review is not pending")
)

// vote applies one approver's decision to a pending review at now.
func (r *Review) vote(who Approver, approve bool, reason string, now time.Time) error {
	if r.State != Pending {
		return fmt.Errorf("review %s is %s: %w", r.ID, r.State, ErrNotPending)
	}
	if who.Name == r.Requester {
		return fmt.Errorf("%s requested review %s and cannot decide it; another approver must: %w", who.Name, r.ID, ErrForbidden)
	}
	if !r.mayDecide(who) {
		if len(r.Approvers) == 0 {
			return fmt.Errorf("review %s is decided by admins, and %s is not one: %w", r.ID, who.Name, ErrForbidden)
		}
		return fmt.Errorf("review %s is decided by members of %v, and %s is in none: %w", r.ID, r.Approvers, who.Name, ErrForbidden)
	}
	for _, v := range r.Votes {
		if v.Identity == who.Name {
			return fmt.Errorf("%s has already approved review %s; it needs %d approvals from distinct approvers: %w", who.Name, r.ID, r.Quorum, ErrNotPending)
		}
	}
	r.Votes = append(r.Votes, Vote{Identity: who.Name, Approve: approve, Reason: reason, Time: now})
	r.Updated = now
	switch {
	case !approve:
		r.State, r.Outcome = Denied, "denied by "+who.Name
		if reason != "" {
			r.Outcome += ": " + reason
		}
	case r.Approvals() >= r.Quorum:
		r.State = Approved
		r.Outcome = "approved by " + approverNames(r.Votes)
		if r.Kind == KindAccess {
			r.Expires = now.Add(r.Window)
		} else {
			r.Expires = now.Add(r.Timeout)
		}
	}
	return nil
}

func (r *Review) mayDecide(who Approver) bool {
	if len(r.Approvers) == 0 {
		return who.Admin
	}
	for _, g := range who.Groups {
		if slices.Contains(r.Approvers, g) {
			return true
		}
	}
	return false
}

func approverNames(votes []Vote) string {
	s := ""
	for _, v := range votes {
		if v.Approve {
			if s != "" {
				s += ", "
			}
			s += v.Identity
		}
	}
	return s
}

// lapse ends a review whose state has run out at now; it reports whether it
// changed anything.
func (r *Review) lapse(now time.Time) bool {
	if now.Before(r.Expires) {
		return false
	}
	switch {
	case r.State == Pending:
		r.Outcome = "no decision before " + r.Expires.UTC().Format(time.RFC3339)
	case r.State == Approved && r.Kind == KindCommand:
		r.Outcome = "approval not used before " + r.Expires.UTC().Format(time.RFC3339)
	case r.State == Approved && r.Kind == KindAccess:
		r.Outcome = "grant ended at " + r.Expires.UTC().Format(time.RFC3339)
	default:
		return false
	}
	r.State, r.Updated = Expired, now
	return true
}
