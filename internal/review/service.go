package review

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// Notifier is told of every change of a review; it must not block.
type Notifier interface {
	Notify(r Review, change string)
}

// Service keeps reviews in the store and lets sessions wait on them. Every
// change is a compare-and-swap on the stored review, so approvers deciding
// at once, on this gateway node or another, never lose a vote; a waiter on
// this node wakes at once, one on another node at its next poll.
type Service struct {
	Store store.Store
	// Audit records every change (nil: none).
	Audit func(audit.Event) uint64
	// Notify is told of every change (nil: nobody).
	Notify Notifier
	Log    *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Poll is how often a waiter rereads its review, to see decisions
	// taken on other nodes (default 500 ms).
	Poll time.Duration

	mu       sync.Mutex
	wake     map[string]chan struct{} // closed when the review changes
	settling map[string]int           // changes stored but not yet recorded
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Request stores a new pending review, filling its id, state, times and
// defaults, and records it.
func (s *Service) Request(ctx context.Context, r Review) (Review, error) {
	now := s.now()
	r.State, r.Created, r.Updated, r.Votes, r.Outcome = Pending, now, now, nil, ""
	if r.Quorum <= 0 {
		r.Quorum = 1
	}
	if r.Timeout <= 0 {
		r.Timeout = DefaultTimeout
	}
	r.Expires = now.Add(r.Timeout)
	for attempt := 0; ; attempt++ {
		r.ID = newID()
		err := s.Store.CreateReview(ctx, record(&r))
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrConflict) || attempt == 3 {
			return Review{}, err
		}
	}
	r.version = 1
	s.changed(r, r.Requester, "requested", r.Reason)
	return r, nil
}

func newID() string {
	b := make([]byte, 5)
	rand.Read(b)
	return "r-" + hex.EncodeToString(b)
}

func record(r *Review) store.ReviewRecord {
	body, _ := json.Marshal(r) // a Review always marshals
	return store.ReviewRecord{ID: r.ID, Kind: string(r.Kind), State: string(r.State), Requester: r.Requester,
		Connection: r.Connection, Created: r.Created, Version: r.version, Body: body}
}

func decode(rec store.ReviewRecord) (Review, error) {
	var r Review
	if err := json.Unmarshal(rec.Body, &r); err != nil {
		return r, fmt.Errorf("review %s: stored document: %w", rec.ID, err)
	}
	r.version = rec.Version
	return r, nil
}

// Get returns a review as stored, lapsing it first if its time ran out.
func (s *Service) Get(ctx context.Context, id string) (Review, error) {
	r, err := s.stored(ctx, id)
	if err != nil {
		return r, err
	}
	return s.lapse(ctx, r)
}

// stored reads and decodes a review, as it is in the store.
func (s *Service) stored(ctx context.Context, id string) (Review, error) {
	rec, err := s.Store.GetReview(ctx, id)
	if err != nil {
		return Review{}, err
	}
	return decode(rec)
}

// Filter selects reviews for List.
type Filter = store.ReviewFilter

// List returns matching reviews, newest first.
func (s *Service) List(ctx context.Context, f Filter) ([]Review, error) {
	recs, err := s.Store.ListReviews(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]Review, 0, len(recs))
	for _, rec := range recs {
		r, err := decode(rec)
		if err != nil {
			return nil, err
		}
		if r, err = s.lapse(ctx, r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// update applies change to the stored review, retrying on a concurrent
// update, and records the change change returns ("" records nothing).
func (s *Service) update(ctx context.Context, id, actor string, change func(r *Review) (what, reason string, err error)) (Review, error) {
	for attempt := 0; ; attempt++ {
		r, err := s.stored(ctx, id)
		if err != nil {
			return r, err
		}
		what, reason, err := change(&r)
		if err != nil || what == "" {
			return r, err
		}
		s.settle(id, +1)
		err = s.Store.UpdateReview(ctx, record(&r))
		if err != nil {
			s.settle(id, -1)
			if errors.Is(err, store.ErrConflict) && attempt < 10 {
				continue
			}
			return Review{}, err
		}
		r.version++
		s.changed(r, actor, what, reason)
		return r, nil
	}
}

// lapse expires r if its time ran out (storing the change) and returns it.
func (s *Service) lapse(ctx context.Context, r Review) (Review, error) {
	if r.Final() || s.now().Before(r.Expires) {
		return r, nil
	}
	return s.update(ctx, r.ID, "", func(r *Review) (string, string, error) {
		if r.lapse(s.now()) {
			return string(Expired), r.Outcome, nil
		}
		return "", "", nil
	})
}

// Decide records one approver's vote. A denial ends the review; approvals
// from Quorum distinct approvers approve it.
func (s *Service) Decide(ctx context.Context, id string, who Approver, approve bool, reason string) (Review, error) {
	return expiredIsError(s.update(ctx, id, who.Name, func(r *Review) (string, string, error) {
		if r.lapse(s.now()) {
			// Store the expiry; the vote is refused below.
			return string(Expired), r.Outcome, nil
		}
		if err := r.vote(who, approve, reason, s.now()); err != nil {
			return "", "", err
		}
		switch r.State {
		case Pending:
			return "approve", reason, nil
		case Approved:
			return string(Approved), reason, nil
		}
		return string(Denied), reason, nil
	}))
}

// expiredIsError turns a review that lapsed while being changed into an
// error naming it.
func expiredIsError(r Review, err error) (Review, error) {
	if err == nil && r.State == Expired {
		err = fmt.Errorf("review %s expired (%s): %w", r.ID, r.Outcome, ErrNotPending)
	}
	return r, err
}

// Cancel ends a pending review; why says what cancelled it.
func (s *Service) Cancel(ctx context.Context, id, actor, why string) (Review, error) {
	return s.update(ctx, id, actor, func(r *Review) (string, string, error) {
		if r.State != Pending {
			return "", "", fmt.Errorf("review %s is %s: %w", r.ID, r.State, ErrNotPending)
		}
		r.State, r.Outcome, r.Updated = Cancelled, why, s.now()
		return string(Cancelled), why, nil
	})
}

// Execute marks an approved command review as used: an approval runs its
// command once. It fails if another session used the approval first.
func (s *Service) Execute(ctx context.Context, id, session string) (Review, error) {
	return expiredIsError(s.update(ctx, id, "", func(r *Review) (string, string, error) {
		if r.lapse(s.now()) {
			return string(Expired), r.Outcome, nil
		}
		if r.State != Approved || r.Kind != KindCommand {
			return "", "", fmt.Errorf("review %s is %s: %w", r.ID, r.State, ErrNotPending)
		}
		r.State, r.Updated = Executed, s.now()
		if session != "" {
			r.Session = session
		}
		return string(Executed), "", nil
	}))
}

// Unused finds an approved, unused command review matching a command of
// requester on connection and takes it (Execute), so the command runs
// without a new review; ok is false when there is none.
func (s *Service) Unused(ctx context.Context, requester, connection, match, session string) (r Review, ok bool, err error) {
	list, err := s.List(ctx, Filter{Kind: string(KindCommand), Requester: requester, Connection: connection, States: []string{string(Approved)}})
	if err != nil {
		return Review{}, false, err
	}
	for _, c := range list {
		if c.State != Approved || c.Match != match {
			continue
		}
		r, err := s.Execute(ctx, c.ID, session)
		if errors.Is(err, ErrNotPending) {
			continue // used or lapsed meanwhile
		}
		if err != nil {
			return Review{}, false, err
		}
		return r, true, nil
	}
	return Review{}, false, nil
}

// Grant returns requester's live access grant on connection, the one that
// lasts longest; ok is false when there is none.
func (s *Service) Grant(ctx context.Context, requester, connection string) (r Review, ok bool, err error) {
	list, err := s.List(ctx, Filter{Kind: string(KindAccess), Requester: requester, Connection: connection, States: []string{string(Approved)}})
	if err != nil {
		return Review{}, false, err
	}
	for _, g := range list {
		if g.State == Approved && (!ok || g.Expires.After(r.Expires)) {
			r, ok = g, true
		}
	}
	return r, ok, nil
}

// Wait blocks until the review leaves the pending state (or its time runs
// out) and returns it. When ctx ends first it returns ctx's error.
func (s *Service) Wait(ctx context.Context, id string) (Review, error) {
	poll := s.Poll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	for {
		woken := s.waker(id)
		r, err := s.Get(ctx, id)
		if err != nil {
			return r, err
		}
		if r.State != Pending {
			if !s.isSettling(id) {
				return r, nil
			}
			// Stored here but not yet in the audit log: wait for its
			// event so that the waiter's own events follow it.
			select {
			case <-ctx.Done():
				return r, ctx.Err()
			case <-woken:
			}
			continue
		}
		wait := min(poll, time.Until(r.Expires)+time.Millisecond)
		t := time.NewTimer(max(wait, time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return r, ctx.Err()
		case <-woken:
		case <-t.C:
		}
		t.Stop()
	}
}

func (s *Service) waker(id string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wake == nil {
		s.wake = map[string]chan struct{}{}
	}
	ch, ok := s.wake[id]
	if !ok {
		ch = make(chan struct{})
		s.wake[id] = ch
	}
	return ch
}

// settle counts a change of review id being stored (+1) and its end (-1),
// which wakes the review's waiters.
func (s *Service) settle(id string, delta int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.settling == nil {
		s.settling = map[string]int{}
	}
	if s.settling[id] += delta; s.settling[id] <= 0 {
		delete(s.settling, id)
	}
	if delta < 0 {
		if ch, ok := s.wake[id]; ok {
			close(ch)
			delete(s.wake, id)
		}
	}
}

// isSettling reports whether a change of review id is stored but not yet
// recorded.
func (s *Service) isSettling(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settling[id] > 0
}

// changed records a stored change, then wakes waiters (ending the
// settling update began) and notifies.
func (s *Service) changed(r Review, actor, what, reason string) {
	// The event goes into the log before any waiter wakes, so a waiter's
	// own events (executed, the command it runs) always follow it.
	if s.Audit != nil {
		e := audit.Event{Type: audit.TypeReview, Identity: actor, Session: r.Session, Connection: r.Connection,
			Review: r.ID, Decision: what, Rule: r.Rule, Error: reason}
		if what == "requested" {
			e.Command = r.Command
			if r.Kind == KindAccess {
				e.Command = fmt.Sprintf("access to %s for %s", r.Connection, r.Window)
			}
		}
		s.Audit(e)
	}
	s.settle(r.ID, -1)
	if s.Notify != nil {
		s.Notify.Notify(r, what)
	}
}

// Sweep expires reviews whose time ran out: pending ones nobody decided,
// unused approvals, ended grants.
func (s *Service) Sweep(ctx context.Context) error {
	_, err := s.List(ctx, Filter{States: []string{string(Pending), string(Approved)}}) // List lapses what it reads
	return err
}

// Run sweeps every interval until ctx ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Sweep(ctx); err != nil && ctx.Err() == nil && s.Log != nil {
				s.Log.Warn("review sweep", "err", err)
			}
		}
	}
}
