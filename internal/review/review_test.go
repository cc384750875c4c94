package review_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/review"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type auditTrail struct {
	mu     sync.Mutex
	events []audit.Event
}

func (a *auditTrail) append(e audit.Event) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, e)
	return uint64(len(a.events))
}

func (a *auditTrail) changes(id string) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, e := range a.events {
		if e.Review == id {
			out = append(out, e.Decision)
		}
	}
	return out
}

func newService(t *testing.T) (*review.Service, *clock, *auditTrail) {
	t.Helper()
	st, err := store.Open(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c := &clock{t: time.Date(2026, 11, 22, 9, 0, 0, 0, time.UTC)}
	trail := &auditTrail{}
	return &review.Service{Store: st, Now: c.now, Audit: trail.append, Poll: 20 * time.Millisecond}, c, trail
}

var (
	ctx   = context.Background()
	alice = review.Approver{Name: "alice", Groups: []string{"dev"}}
	bob   = review.Approver{Name: "bob", Groups: []string{"dba"}}
	carol = review.Approver{Name: "carol", Groups: []string{"dba", "dev"}}
	admin = review.Approver{Name: "root", Admin: true}
)

func request(t *testing.T, s *review.Service, quorum int, approvers ...string) review.Review {
	t.Helper()
	r, err := s.Request(ctx, review.Review{Kind: review.KindCommand, Requester: "alice", Connection: "db",
		Command: "UPDATE t SET x = 1", Match: "m1", Approvers: approvers, Quorum: quorum, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDecisions(t *testing.T) {
	type vote struct {
		who     review.Approver
		approve bool
		wantErr error
	}
	tests := []struct {
		name      string
		quorum    int
		approvers []string
		votes     []vote
		want      review.State
		changes   []string
	}{
		{"one approval", 1, []string{"dba"}, []vote{{bob, true, nil}}, review.Approved, []string{"requested", "approved"}},
		{"self approval refused", 1, []string{"dev"}, []vote{{alice, true, review.ErrForbidden}}, review.Pending, []string{"requested"}},
		{"not an approver", 1, []string{"dba"}, []vote{{review.Approver{Name: "dave", Groups: []string{"dev"}}, true, review.ErrForbidden}}, review.Pending, []string{"requested"}},
		{"admins when no groups", 1, nil, []vote{{bob, true, review.ErrForbidden}, {admin, true, nil}}, review.Approved, []string{"requested", "approved"}},
		{"quorum of two", 2, []string{"dba"}, []vote{{bob, true, nil}, {carol, true, nil}}, review.Approved, []string{"requested", "approve", "approved"}},
		{"quorum counts distinct approvers", 2, []string{"dba"}, []vote{{bob, true, nil}, {bob, true, review.ErrNotPending}}, review.Pending, []string{"requested", "approve"}},
		{"deny ends it", 2, []string{"dba"}, []vote{{bob, true, nil}, {carol, false, nil}, {admin, true, review.ErrNotPending}}, review.Denied, []string{"requested", "approve", "denied"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, trail := newService(t)
			r := request(t, s, tt.quorum, tt.approvers...)
			for i, v := range tt.votes {
				_, err := s.Decide(ctx, r.ID, v.who, v.approve, "because")
				if (tt.votes[i].wantErr == nil) != (err == nil) || (v.wantErr != nil && !errors.Is(err, v.wantErr)) {
					t.Fatalf("vote %d by %s: err = %v, want %v", i, v.who.Name, err, v.wantErr)
				}
			}
			got, err := s.Get(ctx, r.ID)
			if err != nil || got.State != tt.want {
				t.Fatalf("state = %s, %v; want %s", got.State, err, tt.want)
			}
			if c := trail.changes(r.ID); strings.Join(c, ",") != strings.Join(tt.changes, ",") {
				t.Errorf("audited changes = %v, want %v", c, tt.changes)
			}
		})
	}
}

func TestDenialReasonAndSelfApprovalMessage(t *testing.T) {
	s, _, _ := newService(t)
	r := request(t, s, 1, "dev", "dba")
	_, err := s.Decide(ctx, r.ID, alice, true, "")
	if err == nil || !strings.Contains(err.Error(), "alice requested review "+r.ID+" and cannot decide it") {
		t.Errorf("self approval: %v", err)
	}
	got, err := s.Decide(ctx, r.ID, bob, false, "use a WHERE clause")
	if err != nil || got.Outcome != "denied by bob: use a WHERE clause" {
		t.Errorf("deny: %+v, %v", got, err)
	}
}

func TestExpiry(t *testing.T) {
	s, clk, trail := newService(t)
	r := request(t, s, 1, "dba")
	clk.add(time.Minute)
	if _, err := s.Decide(ctx, r.ID, bob, true, ""); !errors.Is(err, review.ErrNotPending) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("approving an expired review: %v", err)
	}
	got, _ := s.Get(ctx, r.ID)
	if got.State != review.Expired {
		t.Errorf("state = %s, want expired", got.State)
	}
	if c := trail.changes(r.ID); len(c) != 2 || c[1] != "expired" {
		t.Errorf("changes = %v", c)
	}
}

func TestApprovalRunsOnce(t *testing.T) {
	s, clk, _ := newService(t)
	r := request(t, s, 1, "dba")
	if _, err := s.Decide(ctx, r.ID, bob, true, ""); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Unused(ctx, "alice", "db", "other statement", "s2"); ok || err != nil {
		t.Errorf("another statement used the approval: %v %v", ok, err)
	}
	if _, ok, err := s.Unused(ctx, "bob", "db", "m1", "s2"); ok || err != nil {
		t.Errorf("another identity used the approval: %v %v", ok, err)
	}
	got, ok, err := s.Unused(ctx, "alice", "db", "m1", "s2")
	if !ok || err != nil || got.State != review.Executed || got.Session != "s2" {
		t.Fatalf("Unused = %+v %v %v", got, ok, err)
	}
	if _, ok, _ := s.Unused(ctx, "alice", "db", "m1", "s3"); ok {
		t.Error("an approval ran twice")
	}
	// An approval left unused lapses after the review's timeout.
	r2 := request(t, s, 1, "dba")
	if _, err := s.Decide(ctx, r2.ID, bob, true, ""); err != nil {
		t.Fatal(err)
	}
	clk.add(time.Minute)
	if _, ok, _ := s.Unused(ctx, "alice", "db", "m1", "s4"); ok {
		t.Error("an approval was used after its use-by time")
	}
	if got, _ := s.Get(ctx, r2.ID); got.State != review.Expired {
		t.Errorf("unused approval: state %s, want expired", got.State)
	}
}

func TestGrant(t *testing.T) {
	s, clk, _ := newService(t)
	r, err := s.Request(ctx, review.Review{Kind: review.KindAccess, Requester: "alice", Connection: "db", Window: time.Hour, Approvers: []string{"dba"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Grant(ctx, "alice", "db"); ok {
		t.Error("a pending grant counts")
	}
	if _, err := s.Decide(ctx, r.ID, bob, true, "ok"); err != nil {
		t.Fatal(err)
	}
	g, ok, err := s.Grant(ctx, "alice", "db")
	if !ok || err != nil || !g.Expires.Equal(clk.now().Add(time.Hour)) {
		t.Fatalf("Grant = %+v %v %v", g, ok, err)
	}
	clk.add(time.Hour)
	if _, ok, _ := s.Grant(ctx, "alice", "db"); ok {
		t.Error("a grant outlived its window")
	}
}

func TestWaitWakesOnDecisionAndCancel(t *testing.T) {
	s, _, _ := newService(t)
	r := request(t, s, 1, "dba")
	go func() {
		time.Sleep(50 * time.Millisecond)
		s.Decide(ctx, r.ID, bob, true, "")
	}()
	got, err := s.Wait(ctx, r.ID)
	if err != nil || got.State != review.Approved {
		t.Fatalf("Wait = %s, %v", got.State, err)
	}
	r2 := request(t, s, 1, "dba")
	c, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.Wait(c, r2.ID); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait with a deadline = %v", err)
	}
	if got, err := s.Cancel(ctx, r2.ID, "alice", "client disconnected"); err != nil || got.State != review.Cancelled {
		t.Errorf("Cancel = %+v, %v", got, err)
	}
	if _, err := s.Decide(ctx, r2.ID, bob, true, ""); !errors.Is(err, review.ErrNotPending) {
		t.Errorf("approving a cancelled review = %v", err)
	}
}

// TestWaitReturnsAfterTheDecisionIsLogged: a waiter that polls the store
// and finds the decision stored before the decider has logged it still
// returns only after the decision's event is in the log, so the events the
// waiter writes next (executed, the command) follow it.
func TestWaitReturnsAfterTheDecisionIsLogged(t *testing.T) {
	s, _, trail := newService(t)
	s.Poll = time.Millisecond
	slowLog := make(chan struct{})
	s.Audit = func(e audit.Event) uint64 {
		if e.Decision == string(review.Approved) {
			<-slowLog // the decider is slow to log
		}
		return trail.append(e)
	}
	r := request(t, s, 1, "dba")
	go s.Decide(ctx, r.ID, bob, true, "")
	done := make(chan review.Review)
	go func() {
		got, _ := s.Wait(ctx, r.ID)
		done <- got
	}()
	select {
	case got := <-done:
		t.Fatalf("Wait returned %s before the decision was logged", got.State)
	case <-time.After(100 * time.Millisecond): // many polls see it stored
	}
	close(slowLog)
	if got := <-done; got.State != review.Approved {
		t.Fatalf("Wait = %s", got.State)
	}
	if got := trail.changes(r.ID); strings.Join(got, " ") != "requested approved" {
		t.Errorf("logged %v", got)
	}
}

// TestWaitSeesOtherNodes: a decision taken through another Service on the
// same store (another gateway node) reaches a waiter by polling.
func TestWaitSeesOtherNodes(t *testing.T) {
	s, clk, _ := newService(t)
	other := &review.Service{Store: s.Store, Now: clk.now}
	r := request(t, s, 1, "dba")
	go func() {
		time.Sleep(30 * time.Millisecond)
		other.Decide(ctx, r.ID, bob, false, "no")
	}()
	got, err := s.Wait(ctx, r.ID)
	if err != nil || got.State != review.Denied {
		t.Fatalf("Wait = %s, %v", got.State, err)
	}
}

func TestConcurrentApprovalsAllCount(t *testing.T) {
	s, _, _ := newService(t)
	r := request(t, s, 3, "dba")
	var wg sync.WaitGroup
	for _, name := range []string{"b1", "b2", "b3"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Decide(ctx, r.ID, review.Approver{Name: name, Groups: []string{"dba"}}, true, ""); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got, _ := s.Get(ctx, r.ID); got.State != review.Approved || got.Approvals() != 3 {
		t.Errorf("after 3 concurrent approvals: %s with %d", got.State, got.Approvals())
	}
}

// TestWebhook: a receiver gets a signed payload; a failed delivery is
// retried.
func TestWebhook(t *testing.T) {
	secret := []byte("hook secret")
	type got struct {
		status int
		body   []byte
		sig    string
	}
	var mu sync.Mutex
	var calls []got
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		status := http.StatusOK
		if len(calls) == 0 {
			status = http.StatusServiceUnavailable // the first delivery fails
		}
		calls = append(calls, got{status, body, r.Header.Get(review.SignatureHeader)})
		w.WriteHeader(status)
	}))
	defer srv.Close()
	hook := &review.Webhook{URL: srv.URL, Secret: secret, Backoff: 10 * time.Millisecond, PublicURL: "https://gw.example:8443"}
	s, _, _ := newService(t)
	s.Notify = hook
	r := request(t, s, 1, "dba")
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	hook.Close(c)

	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 2 || calls[0].status != 503 || string(calls[0].body) != string(calls[1].body) {
		t.Fatalf("deliveries: %d, want a failed one and its retry", len(calls))
	}
	if !review.VerifySignature(secret, calls[1].body, calls[1].sig) {
		t.Errorf("signature %q does not verify", calls[1].sig)
	}
	if review.VerifySignature([]byte("other"), calls[1].body, calls[1].sig) {
		t.Error("signature verifies under another secret")
	}
	var p review.Payload
	if err := json.Unmarshal(calls[1].body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Event != "review.requested" || p.Review.ID != r.ID || p.Review.Command != "UPDATE t SET x = 1" ||
		p.Approve != "gatehouse reviews approve "+r.ID || p.URL != "https://gw.example:8443/api/v1/reviews/"+r.ID || p.Review.Match != "" {
		t.Errorf("payload = %+v", p)
	}
}

func TestSlackMessage(t *testing.T) {
	hook := &review.Webhook{Format: review.FormatSlack, PublicURL: "https://gw.example:8443"}
	body, err := hook.Body(review.Review{ID: "r-1", Kind: review.KindCommand, State: review.Pending, Requester: "alice",
		Connection: "db", Command: "DELETE FROM t", Quorum: 1, Approvers: []string{"dba"}}, "requested")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"alice", "DELETE FROM t", "gatehouse reviews approve r-1", "gatehouse reviews deny r-1", "a member of dba", "<https://gw.example:8443/api/v1/reviews/r-1|"} {
		if !strings.Contains(m["text"], want) {
			t.Errorf("slack text lacks %q:\n%s", want, m["text"])
		}
	}
}
