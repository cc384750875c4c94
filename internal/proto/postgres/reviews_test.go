package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatehouse-dev/gatehouse/internal/review"
	"github.com/gatehouse-dev/gatehouse/internal/server"
	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

const hookSecret = "review-hook-secret"

// hookReceiver is an HTTP server on loopback keeping the review webhook
// deliveries it gets.
type hookReceiver struct {
	url string
	mu  sync.Mutex
	got []hookDelivery
}

type hookDelivery struct {
	body      []byte
	signature string
}

func newHookReceiver() *hookReceiver {
	h := &hookReceiver{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	h.url = "http://" + l.Addr().String() + "/hook"
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.got = append(h.got, hookDelivery{body, r.Header.Get(review.SignatureHeader)})
		h.mu.Unlock()
	}))
	return h
}

// find waits for a delivery about review id's change.
func (h *hookReceiver) find(t *testing.T, id, event string) hookDelivery {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		h.mu.Lock()
		for _, d := range h.got {
			var p review.Payload
			if json.Unmarshal(d.body, &p) == nil && p.Review.ID == id && p.Event == event {
				h.mu.Unlock()
				return d
			}
		}
		h.mu.Unlock()
	}
	t.Fatalf("no %s webhook delivery for review %s within 5 s", event, id)
	return hookDelivery{}
}

var reviewIDRE = regexp.MustCompile(`\br-[0-9a-f]{10}\b`)

// pendingReview polls `gatehouse reviews list` as token until a pending
// review by requester on connection shows, and returns its id and how long
// after since it showed.
func (e *env) pendingReview(t *testing.T, token, requester, connection string, since time.Time) (string, time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		code, out := e.cliAs(t, token, "reviews", "list", "--json")
		if code != 0 {
			t.Fatalf("reviews list: %s", out)
		}
		var rs []review.Review
		if err := json.Unmarshal([]byte(out), &rs); err != nil {
			t.Fatalf("reviews list --json: %v\n%s", err, out)
		}
		for _, r := range rs {
			if r.Requester == requester && r.Connection == connection && r.State == review.Pending {
				return r.ID, time.Since(since)
			}
		}
	}
	t.Fatalf("no pending review by %s on %s within 10 s", requester, connection)
	return "", 0
}

func (e *env) reviewState(t *testing.T, id string) review.Review {
	t.Helper()
	code, out := e.cli(t, "reviews", "show", id, "--json")
	var r review.Review
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil {
		t.Fatalf("reviews show %s: %s", id, out)
	}
	return r
}

// reviewTable makes a table of 3 rows, as the target's role, so it belongs
// to the gateway's login.
func (e *env) reviewTable(t *testing.T, name string) {
	t.Helper()
	c := e.connect(t, e.direct())
	if _, err := c.Exec(context.Background(), "DROP TABLE IF EXISTS "+name+"; CREATE TABLE "+name+" (id int PRIMARY KEY, v int); INSERT INTO "+name+" SELECT g, 0 FROM generate_series(1, 3) g"); err != nil {
		t.Fatal(err)
	}
}

func (e *env) sumOf(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := e.connect(t, e.direct()).QueryRow(context.Background(), "SELECT sum(v) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReviewPsqlApproved: psql's UPDATE without WHERE waits with a notice;
// the review shows in `reviews list` within 1 s; bob approves with the CLI
// and the UPDATE's row count reaches the waiting psql.
func TestReviewPsqlApproved(t *testing.T) {
	e := sharedEnv(t)
	e.reviewTable(t, "rv_psql")
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal("psql not found: install the Debian package postgresql-client")
	}
	cmd := exec.Command(psql, e.dsn(e.alice, "reviewed", "verify-full"), "-X", "-v", "ON_ERROR_STOP=1", "-c", "UPDATE rv_psql SET v = v + 1")
	out := &syncBuf{}
	cmd.Stdout, cmd.Stderr = out, out
	sent := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	id, after := e.pendingReview(t, e.bob, "alice", "reviewed", sent)
	t.Logf("review %s listed %.0f ms after psql started", id, after.Seconds()*1000)
	if after > time.Second {
		t.Errorf("the review showed in reviews list %v after the statement was sent, want within 1 s", after)
	}
	time.Sleep(100 * time.Millisecond)
	if e.sumOf(t, "rv_psql") != 0 {
		t.Fatal("the UPDATE ran before approval")
	}
	if code, msg := e.cliAs(t, e.bob, "reviews", "approve", id, "--reason", "maintenance window"); code != 0 || !strings.Contains(msg, "approved") {
		t.Fatalf("approve: %s", msg)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	if got := out.String(); !strings.Contains(got, "UPDATE 3") || !strings.Contains(got, "waiting for approval: review "+id+", approve with: gatehouse reviews approve "+id) {
		t.Errorf("psql printed:\n%s", got)
	}
	if n := e.sumOf(t, "rv_psql"); n != 3 {
		t.Errorf("sum after the approved UPDATE = %d, want 3", n)
	}
	if r := e.reviewState(t, id); r.State != review.Executed || r.Command != "UPDATE rv_psql SET v = v + 1" || r.Fingerprint == "" {
		t.Errorf("review after the run: %+v", r)
	}
	// The webhook receiver got the request, signed.
	d := e.hooks.find(t, id, "review.requested")
	if !review.VerifySignature([]byte(hookSecret), d.body, d.signature) {
		t.Errorf("webhook signature %q does not verify", d.signature)
	}
	// The audit log has the whole story, in order.
	var story []string
	for _, ev := range e.auditEvents(t) {
		if ev["review"] == id {
			story = append(story, ev["type"].(string)+":"+ev["decision"].(string))
		}
	}
	if strings.Join(story, " ") != "review:requested review:approved review:executed command:allow" {
		t.Errorf("audit events of review %s: %v", id, story)
	}
	// The session's timeline shows the statement held, then its approved run.
	session := e.reviewState(t, id).Session
	e.waitClosed(t, session)
	if code, out := e.cli(t, "sessions", "show", session); code != 0 || !strings.Contains(out, "HELD for review by reviews/unbounded-writes") ||
		!strings.Contains(out, "approved in review "+id+"; 3 rows") {
		t.Errorf("sessions show %s:\n%s", session, out)
	}
}

// TestReviewPgx drives the extended protocol: an approved UPDATE's row
// count reaches pgx; a denial reaches it with the reviewer's reason;
// self-approval is refused; a quorum of 2 waits for the second approver;
// an unanswered review expires.
func TestReviewPgx(t *testing.T) {
	e := sharedEnv(t)
	ctx := context.Background()
	type result struct {
		tag pgconn.CommandTag
		err error
	}
	start := func(conn, table string, args ...any) (chan result, time.Time) {
		c := e.connect(t, e.dsn(e.alice, conn, "verify-full"))
		ch := make(chan result, 1)
		sent := time.Now()
		go func() {
			tag, err := c.Exec(ctx, "UPDATE "+table+" SET v = v + 1", args...)
			ch <- result{tag, err}
		}()
		return ch, sent
	}
	waitFor := func(ch chan result) result {
		t.Helper()
		select {
		case r := <-ch:
			return r
		case <-time.After(20 * time.Second):
			t.Fatal("the waiting statement did not finish within 20 s")
		}
		return result{}
	}

	t.Run("approved", func(t *testing.T) {
		e.reviewTable(t, "rv_pgx")
		ch, sent := start("reviewed", "rv_pgx")
		id, _ := e.pendingReview(t, e.bob, "alice", "reviewed", sent)
		if code, msg := e.cliAs(t, e.alice, "reviews", "approve", id); code == 0 || !strings.Contains(msg, "alice requested review "+id+" and cannot decide it") {
			t.Errorf("self approval: exit %d: %s", code, msg)
		}
		if code, msg := e.cliAs(t, e.bob, "reviews", "approve", id); code != 0 {
			t.Fatalf("approve: %s", msg)
		}
		r := waitFor(ch)
		if r.err != nil || r.tag.RowsAffected() != 3 {
			t.Fatalf("Exec = %v, %v; want UPDATE 3", r.tag, r.err)
		}
	})

	t.Run("denied", func(t *testing.T) {
		e.reviewTable(t, "rv_deny")
		ch, sent := start("reviewed", "rv_deny")
		id, _ := e.pendingReview(t, e.bob, "alice", "reviewed", sent)
		if code, msg := e.cliAs(t, e.bob, "reviews", "deny", id, "--reason", "add a WHERE clause"); code != 0 {
			t.Fatalf("deny: %s", msg)
		}
		r := waitFor(ch)
		var pe *pgconn.PgError
		if !errors.As(r.err, &pe) || pe.Code != "42501" || !strings.Contains(pe.Message, "denied by bob: add a WHERE clause") {
			t.Fatalf("Exec after denial = %v", r.err)
		}
		if e.sumOf(t, "rv_deny") != 0 {
			t.Error("a denied UPDATE ran")
		}
	})

	t.Run("quorum", func(t *testing.T) {
		e.reviewTable(t, "rv_quorum")
		ch, sent := start("reviewed-quorum", "rv_quorum")
		id, _ := e.pendingReview(t, e.bob, "alice", "reviewed-quorum", sent)
		if code, msg := e.cliAs(t, e.bob, "reviews", "approve", id); code != 0 || !strings.Contains(msg, "1 of 2") {
			t.Fatalf("first approval: %s", msg)
		}
		if code, msg := e.cliAs(t, e.bob, "reviews", "approve", id); code == 0 || !strings.Contains(msg, "already approved") {
			t.Errorf("bob approving twice: exit %d: %s", code, msg)
		}
		select {
		case r := <-ch:
			t.Fatalf("ran after one approval of two: %v %v", r.tag, r.err)
		case <-time.After(300 * time.Millisecond):
		}
		if code, msg := e.cliAs(t, e.carol, "reviews", "approve", id); code != 0 {
			t.Fatalf("second approval: %s", msg)
		}
		if r := waitFor(ch); r.err != nil || r.tag.RowsAffected() != 3 {
			t.Fatalf("Exec = %v, %v", r.tag, r.err)
		}
	})

	t.Run("expired", func(t *testing.T) {
		e.reviewTable(t, "rv_expire")
		ch, _ := start("reviewed-fast", "rv_expire")
		r := waitFor(ch)
		var pe *pgconn.PgError
		if !errors.As(r.err, &pe) || pe.Code != "42501" || !strings.Contains(pe.Message, "expired") {
			t.Fatalf("Exec after expiry = %v", r.err)
		}
	})

	t.Run("parameters are shown", func(t *testing.T) {
		e.reviewTable(t, "rv_params")
		c := e.connect(t, e.dsn(e.alice, "reviewed", "verify-full"))
		ch := make(chan result, 1)
		sent := time.Now()
		go func() {
			tag, err := c.Exec(ctx, "UPDATE rv_params SET v = $1", "7")
			ch <- result{tag, err}
		}()
		id, _ := e.pendingReview(t, e.bob, "alice", "reviewed", sent)
		if r := e.reviewState(t, id); !strings.Contains(r.Command, "UPDATE rv_params SET v = $1") || !strings.Contains(r.Command, "$1 = ") {
			t.Errorf("review command = %q, want the statement and its parameter", r.Command)
		}
		e.cliAs(t, e.bob, "reviews", "approve", id)
		if r := waitFor(ch); r.err != nil || r.tag.RowsAffected() != 3 {
			t.Fatalf("Exec = %v, %v", r.tag, r.err)
		}
		if n := e.sumOf(t, "rv_params"); n != 21 {
			t.Errorf("sum = %d, want 21", n)
		}
	})
}

// TestReviewCancel: a CancelRequest, or the client leaving, cancels the
// review its statement waits on, and other sessions go on meanwhile.
func TestReviewCancel(t *testing.T) {
	e := sharedEnv(t)
	ctx := context.Background()
	e.reviewTable(t, "rv_cancel")

	t.Run("CancelRequest", func(t *testing.T) {
		c := e.connect(t, e.dsn(e.alice, "reviewed", "verify-full"))
		ch := make(chan error, 1)
		sent := time.Now()
		go func() {
			_, err := c.Exec(ctx, "UPDATE rv_cancel SET v = v + 1")
			ch <- err
		}()
		id, _ := e.pendingReview(t, e.bob, "alice", "reviewed", sent)
		// Another session of the same identity is unaffected.
		other := e.connect(t, e.dsn(e.alice, "reviewed", "verify-full"))
		var one int
		if err := other.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Errorf("another session while one waits: %v", err)
		}
		if err := c.PgConn().CancelRequest(ctx); err != nil {
			t.Fatal(err)
		}
		var pe *pgconn.PgError
		select {
		case err := <-ch:
			if !errors.As(err, &pe) || pe.Code != "57014" || !strings.Contains(pe.Message, "cancelled by the client") {
				t.Fatalf("Exec after CancelRequest = %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the cancelled statement did not return")
		}
		if r := e.reviewState(t, id); r.State != review.Cancelled {
			t.Errorf("review after CancelRequest: %s", r.State)
		}
		// The session is usable afterwards.
		if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			t.Errorf("session after the cancel: %v", err)
		}
		if code, msg := e.cliAs(t, e.bob, "reviews", "approve", id); code == 0 || !strings.Contains(msg, "cancelled") {
			t.Errorf("approving a cancelled review: exit %d: %s", code, msg)
		}
	})

	t.Run("disconnect", func(t *testing.T) {
		c, err := pgx.Connect(ctx, e.dsn(e.alice, "reviewed", "verify-full"))
		if err != nil {
			t.Fatal(err)
		}
		sent := time.Now()
		go c.Exec(ctx, "DELETE FROM rv_cancel")
		id, _ := e.pendingReview(t, e.bob, "alice", "reviewed", sent)
		c.PgConn().Conn().Close()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			// pgx sends a CancelRequest as it closes a broken connection;
			// whichever the gateway sees first cancels the review.
			r := e.reviewState(t, id)
			if r.State == review.Cancelled {
				if !strings.Contains(r.Outcome, "disconnected") && !strings.Contains(r.Outcome, "cancelled by the client") {
					t.Errorf("outcome = %q", r.Outcome)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the review was not cancelled within 5 s of the client leaving: %+v", r)
			}
		}
	})
	if n := e.sumOf(t, "rv_cancel"); n != 0 {
		t.Errorf("a cancelled statement ran: sum %d", n)
	}
}

// TestAccessGrant: a connection that needs a grant refuses alice until a
// dba approves her request, lets her in during the grant, ends her live
// session when it runs out and refuses her after.
func TestAccessGrant(t *testing.T) {
	e := sharedEnv(t)
	ctx := context.Background()
	_, err := pgx.Connect(ctx, e.dsn(e.alice, "granted", "verify-full"))
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28000" || !strings.Contains(pe.Message, "needs an approved grant") || !strings.Contains(pe.Message, "gatehouse request granted") {
		t.Fatalf("connect before a grant = %v", err)
	}
	if code, msg := e.cliAs(t, e.alice, "request", "granted", "--for", "3h", "--reason", "too long"); code == 0 || !strings.Contains(msg, "up to 1h0m0s") {
		t.Errorf("asking for more than maxDuration: exit %d: %s", code, msg)
	}
	code, msg := e.cliAs(t, e.alice, "request", "granted", "--for", "4s", "--reason", "incident 42")
	id := reviewIDRE.FindString(msg)
	if code != 0 || id == "" {
		t.Fatalf("request: exit %d: %s", code, msg)
	}
	if _, err := pgx.Connect(ctx, e.dsn(e.alice, "granted", "verify-full")); err == nil {
		t.Fatal("connected with the grant still pending")
	}
	if code, msg := e.cliAs(t, e.bob, "reviews", "approve", id); code != 0 {
		t.Fatalf("approve: %s", msg)
	}
	c, err := pgx.Connect(ctx, e.dsn(e.alice, "granted", "verify-full"))
	if err != nil {
		t.Fatalf("connect during the grant: %v", err)
	}
	defer c.Close(ctx)
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	// The grant runs out: the live session ends with a clear message.
	time.Sleep(time.Until(e.reviewState(t, id).Expires) + 300*time.Millisecond)
	err = c.QueryRow(ctx, "SELECT 1").Scan(&one)
	if err == nil || !strings.Contains(err.Error(), "access grant "+id) {
		t.Errorf("the live session after the grant ended: %v", err)
	}
	_, err = pgx.Connect(ctx, e.dsn(e.alice, "granted", "verify-full"))
	if !errors.As(err, &pe) || pe.Code != "28000" || !strings.Contains(pe.Message, "needs an approved grant") {
		t.Errorf("connect after the grant = %v", err)
	}
}

// TestReviewSurvivesRestart: a pending review outlives its gateway; once
// approved after the restart, the same statement by the same identity on
// the same connection runs without a new review, once.
func TestReviewSurvivesRestart(t *testing.T) {
	pg := testenv.Postgres(t)
	e, err := newEnv(pg, server.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e.reviewTable(t, "rv_restart")
	c, err := pgx.Connect(ctx, e.dsn(e.alice, "reviewed", "verify-full"))
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan error, 1)
	sent := time.Now()
	go func() {
		_, err := c.Exec(ctx, "UPDATE rv_restart SET v = v + 1", pgx.QueryExecModeSimpleProtocol)
		ch <- err
	}()
	id, _ := e.pendingReview(t, e.bob, "alice", "reviewed", sent)

	shutdownCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := e.gw.Shutdown(shutdownCtx); err != nil {
		t.Fatal(err)
	}
	if err := <-ch; err == nil {
		t.Fatal("the waiting statement succeeded across a shutdown")
	}
	cfg := server.Config{DataDir: e.dataDir, APIAddr: "127.0.0.1:0", PostgresAddr: "127.0.0.1:0", Log: quietLog(), Stdout: io.Discard}
	if e.gw, err = server.Start(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	defer e.gw.Shutdown(context.Background())
	if r := e.reviewState(t, id); r.State != review.Pending {
		t.Fatalf("review after restart: %s", r.State)
	}
	if code, msg := e.cliAs(t, e.bob, "reviews", "approve", id); code != 0 {
		t.Fatalf("approve after restart: %s", msg)
	}
	c2 := e.connect(t, e.dsn(e.alice, "reviewed", "verify-full"))
	tag, err := c2.Exec(ctx, "UPDATE rv_restart SET v = v + 1", pgx.QueryExecModeSimpleProtocol)
	if err != nil || tag.RowsAffected() != 3 {
		t.Fatalf("re-sent approved statement = %v, %v", tag, err)
	}
	if r := e.reviewState(t, id); r.State != review.Executed {
		t.Errorf("review after its run: %s", r.State)
	}
	// Once: the same statement again needs a new review.
	ch2 := make(chan error, 1)
	sent = time.Now()
	go func() {
		_, err := c2.Exec(ctx, "UPDATE rv_restart SET v = v + 1", pgx.QueryExecModeSimpleProtocol)
		ch2 <- err
	}()
	id2, _ := e.pendingReview(t, e.bob, "alice", "reviewed", sent)
	if id2 == id {
		t.Fatal("the spent review was reused")
	}
	e.cliAs(t, e.bob, "reviews", "deny", id2, "--reason", "once is enough")
	if err := <-ch2; err == nil || !strings.Contains(err.Error(), "once is enough") {
		t.Errorf("second run = %v", err)
	}
	if n := e.sumOf(t, "rv_restart"); n != 3 {
		t.Errorf("sum = %d, want 3 (one approved run)", n)
	}
}
