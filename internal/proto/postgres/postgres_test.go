package postgres_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/proto/postgres/pgwire"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/server"
	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

func storeRecord(name, addr, db, user string, sealed []byte, _ *env) store.ConnectionRecord {
	return store.ConnectionRecord{
		Connection: resource.Connection{Name: name, Type: resource.TypePostgres, Address: addr, Database: db, User: user,
			DefaultAction: resource.ActionAllow},
		Credential: resource.Credential{Source: resource.CredentialInline},
		Sealed:     sealed,
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

var ctx = context.Background()

// TestQueriesMatchDirect runs the same statements directly and through the
// gateway, in both query protocols, and compares the results.
func TestQueriesMatchDirect(t *testing.T) {
	e := sharedEnv(t)
	direct := e.connect(t, e.direct())
	direct.Exec(ctx, "CREATE TABLE IF NOT EXISTS items (id int primary key, name text, price numeric)")
	direct.Exec(ctx, "TRUNCATE items")
	direct.Exec(ctx, "INSERT INTO items SELECT g, 'item '||g, g*1.5 FROM generate_series(1,100) g")

	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
		for _, sslmode := range []string{"disable", "verify-full"} {
			t.Run(fmt.Sprintf("%v/%s", mode, sslmode), func(t *testing.T) {
				gw := e.connect(t, e.dsn(e.alice, "appdb", sslmode))
				q := "SELECT id, name, price FROM items WHERE id > $1 ORDER BY id"
				want := collect(t, direct, mode, q, 90)
				got := collect(t, gw, mode, q, 90)
				if want != got || !strings.Contains(got, "item 100") {
					t.Errorf("through gateway:\n%s\ndirect:\n%s", got, want)
				}
				if _, isTLS := gw.PgConn().Conn().(*tls.Conn); isTLS != (sslmode == "verify-full") {
					t.Errorf("sslmode=%s: connection TLS = %v", sslmode, isTLS)
				}
			})
		}
	}
}

func collect(t *testing.T, c *pgx.Conn, mode pgx.QueryExecMode, q string, args ...any) string {
	t.Helper()
	rows, err := c.Query(ctx, q, append([]any{mode}, args...)...)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	defer rows.Close()
	var sb strings.Builder
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(&sb, vals...)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return sb.String()
}

func TestPipelineWithErrorMatchesDirect(t *testing.T) {
	e := sharedEnv(t)
	run := func(c *pgx.Conn) string {
		b := &pgx.Batch{}
		b.Queue("SELECT 1")
		b.Queue("SELECT 1/0")
		b.Queue("SELECT 3")
		res := c.SendBatch(ctx, b)
		var out []string
		for i := 0; i < 3; i++ {
			var n int
			err := res.QueryRow().Scan(&n)
			out = append(out, fmt.Sprint(n, sqlstate(err)))
		}
		res.Close()
		var after int
		err := c.QueryRow(ctx, "SELECT 42").Scan(&after)
		return strings.Join(out, ",") + fmt.Sprint(" then ", after, err)
	}
	want := run(e.connect(t, e.direct()))
	got := run(e.connect(t, e.dsn(e.alice, "appdb", "disable")))
	if got != want || !strings.Contains(got, "22012") {
		t.Errorf("pipeline through gateway = %q, direct = %q", got, want)
	}
}

func sqlstate(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

func TestCopyInAndOut(t *testing.T) {
	e := sharedEnv(t)
	gw := e.connect(t, e.dsn(e.alice, "appdb", "verify-full"))
	if _, err := gw.Exec(ctx, "CREATE TEMP TABLE c (id int, payload text)"); err != nil {
		t.Fatal(err)
	}
	var rows [][]any
	for i := 0; i < 5000; i++ {
		rows = append(rows, []any{i, strings.Repeat("p", i%300)})
	}
	n, err := gw.CopyFrom(ctx, pgx.Identifier{"c"}, []string{"id", "payload"}, pgx.CopyFromRows(rows))
	if err != nil || n != 5000 {
		t.Fatalf("COPY FROM = %d, %v", n, err)
	}
	var out strings.Builder
	tag, err := gw.PgConn().CopyTo(ctx, &out, "COPY (SELECT id, payload FROM c ORDER BY id) TO STDOUT")
	if err != nil || tag.RowsAffected() != 5000 || strings.Count(out.String(), "\n") != 5000 {
		t.Fatalf("COPY TO = %v rows, %d lines, %v", tag.RowsAffected(), strings.Count(out.String(), "\n"), err)
	}
	// A failing COPY FROM leaves the session usable.
	_, err = gw.PgConn().CopyFrom(ctx, strings.NewReader("not-a-number\tx\n"), "COPY c FROM STDIN")
	if sqlstate(err) != "22P02" {
		t.Errorf("bad COPY = %v, want 22P02", err)
	}
	var count int
	if err := gw.QueryRow(ctx, "SELECT count(*) FROM c").Scan(&count); err != nil || count != 5000 {
		t.Errorf("after failed COPY: count = %d, %v", count, err)
	}
}

func TestListenNotify(t *testing.T) {
	e := sharedEnv(t)
	listener := e.connect(t, e.dsn(e.alice, "appdb", "disable"))
	if _, err := listener.Exec(ctx, "LISTEN jobs"); err != nil {
		t.Fatal(err)
	}
	notifier := e.connect(t, e.dsn(e.alice, "appdb", "verify-full"))
	if _, err := notifier.Exec(ctx, "SELECT pg_notify('jobs', 'job-17')"); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	n, err := listener.WaitForNotification(wctx)
	if err != nil || n.Channel != "jobs" || n.Payload != "job-17" {
		t.Fatalf("notification = %+v, %v", n, err)
	}
	// Notices reach the client too.
	var notices []string
	cfg, _ := pgx.ParseConfig(e.dsn(e.alice, "appdb", "disable"))
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message) }
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	c.Exec(ctx, "DO $$ BEGIN RAISE NOTICE 'hello from plpgsql'; END $$")
	if len(notices) != 1 || notices[0] != "hello from plpgsql" {
		t.Errorf("notices = %q", notices)
	}
}

func TestLargeResultStreams(t *testing.T) {
	e := sharedEnv(t)
	gw := e.connect(t, e.dsn(e.alice, "appdb", "disable"))
	rows, err := gw.Query(ctx, "SELECT g, repeat('x', 1000) FROM generate_series(1, 100000) g")
	if err != nil {
		t.Fatal(err)
	}
	n, sum := 0, 0
	for rows.Next() {
		var g int
		var s string
		rows.Scan(&g, &s)
		n++
		sum += len(s)
	}
	if rows.Err() != nil || n != 100000 || sum != 100000*1000 {
		t.Fatalf("streamed %d rows, %d bytes, %v", n, sum, rows.Err())
	}
	// One value larger than the relay buffers and the message limit for
	// inspected messages: DataRows stream regardless of size.
	var big string
	if err := gw.QueryRow(ctx, "SELECT repeat('y', 20*1024*1024)").Scan(&big); err != nil || len(big) != 20<<20 {
		t.Fatalf("20 MiB value: %d bytes, %v", len(big), err)
	}
}

func TestCancelRequestReachesTarget(t *testing.T) {
	e := sharedEnv(t)
	gw := e.connect(t, e.dsn(e.alice, "appdb", "verify-full"))
	qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := gw.Exec(qctx, "SELECT pg_sleep(30)")
	if sqlstate(err) != "57014" && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled pg_sleep = %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancel took %v", d)
	}
	// pgx closes a connection whose query it cancelled; the cancel itself
	// must have reached the backend: the target shows no pg_sleep running.
	direct := e.connect(t, e.direct())
	var running int
	for i := 0; i < 50; i++ {
		direct.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'").Scan(&running)
		if running == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if running != 0 {
		t.Errorf("pg_sleep still running on the target after cancel")
	}
}

func TestCancelWithPgconn(t *testing.T) {
	e := sharedEnv(t)
	assertCancels(t, e.dsn(e.alice, "appdb", "disable"))
}

// assertCancels connects to dsn, cancels a long pg_sleep with a
// CancelRequest, and checks the session goes on afterwards.
func assertCancels(t *testing.T, dsn string) {
	t.Helper()
	pc, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	go func() {
		time.Sleep(300 * time.Millisecond)
		pc.CancelRequest(ctx)
	}()
	_, err = pc.Exec(ctx, "SELECT pg_sleep(30)").ReadAll()
	if sqlstate(err) != "57014" {
		t.Fatalf("cancelled query = %v; want 57014 query_canceled", err)
	}
	res, err := pc.Exec(ctx, "SELECT 7").ReadAll()
	if err != nil || string(res[0].Rows[0][0]) != "7" {
		t.Errorf("after cancel: %v %v", res, err)
	}
}

// TestLoginErrors checks every refusal is a proper ErrorResponse with the
// right SQLSTATE, and that the gateway keeps serving afterwards.
func TestLoginErrors(t *testing.T) {
	e := sharedEnv(t)
	tests := []struct {
		name, dsn, code, msg string
	}{
		{"wrong token", e.dsn("gh1_0123456789abcdef_"+strings.Repeat("A", 43), "appdb", "disable"), "28P01", "the token is not valid"},
		{"not a token", e.dsn("hunter2", "appdb", "disable"), "28P01", "malformed"},
		{"expired token", e.dsn(e.expired, "appdb", "verify-full"), "28P01", "expired"},
		{"unknown connection", e.dsn(e.alice, "nosuchdb", "disable"), "3D000", `connection "nosuchdb" does not exist`},
		{"not permitted", e.dsn(e.eve, "appdb", "disable"), "28000", "only the dba group may connect"},
		{"unreachable target", e.dsn(e.alice, "deadtarget", "disable"), "08006", "could not connect to the target"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := pgconn.Connect(ctx, tt.dsn)
			if err == nil {
				c.Close(ctx)
				t.Fatal("login succeeded")
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != tt.code || !strings.Contains(pe.Message, tt.msg) {
				t.Errorf("login error = %v; want SQLSTATE %s containing %q", err, tt.code, tt.msg)
			}
			if pe != nil && pe.Severity != "FATAL" {
				t.Errorf("severity = %s, want FATAL", pe.Severity)
			}
		})
	}
	// Every refusal left evidence.
	events := e.auditEvents(t)
	var failed, blocked int
	unknownSeen := false
	for _, ev := range events {
		switch {
		case ev["type"] == "login.failed":
			failed++
			unknownSeen = unknownSeen || ev["connection"] == "nosuchdb"
		case ev["type"] == "session.open" && ev["decision"] == "block":
			blocked++
		}
	}
	if failed < 4 || blocked < 1 || !unknownSeen {
		t.Errorf("audit holds %d login.failed and %d blocked session.open events; want >= 4 (three bad tokens, one unknown connection) and >= 1", failed, blocked)
	}
	// Still serving.
	var n int
	if err := e.connect(t, e.dsn(e.alice, "appdb", "disable")).QueryRow(ctx, "SELECT 1").Scan(&n); err != nil || n != 1 {
		t.Errorf("gateway stopped serving after refusals: %v", err)
	}
}

// rawSession opens a TCP connection to the gateway's PostgreSQL listener.
func rawSession(t *testing.T, e *env) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", e.gw.Addr("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c, bufio.NewReader(c)
}

// readError reads one backend message and returns its SQLSTATE and message
// if it is an ErrorResponse.
func readError(t *testing.T, r *bufio.Reader) (string, string) {
	t.Helper()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(r, hdr); err != nil {
		t.Fatalf("read: %v", err)
	}
	typ, total, _ := pgwire.Header(hdr)
	frame := append(hdr, make([]byte, total-5)...)
	io.ReadFull(r, frame[5:])
	if typ != 'E' {
		t.Fatalf("got message %q, want ErrorResponse", typ)
	}
	code, msg := pgwire.ErrorFields(frame)
	return string(code), string(msg)
}

func startup(params ...string) []byte {
	b := binary.BigEndian.AppendUint32(nil, 0)
	b = binary.BigEndian.AppendUint32(b, pgwire.ProtocolVersion30)
	for _, p := range params {
		b = append(append(b, p...), 0)
	}
	b = append(b, 0)
	binary.BigEndian.PutUint32(b, uint32(len(b)))
	return b
}

func TestMalformedInput(t *testing.T) {
	e := sharedEnv(t)
	t.Run("bad startup length", func(t *testing.T) {
		c, r := rawSession(t, e)
		c.Write([]byte{0, 1, 0, 0, 0, 3, 0, 0})
		if code, msg := readError(t, r); code != "08P01" || !strings.Contains(msg, "invalid startup packet length") {
			t.Errorf("= %s %q", code, msg)
		}
	})
	t.Run("protocol 2", func(t *testing.T) {
		c, r := rawSession(t, e)
		c.Write([]byte{0, 0, 0, 8, 0, 2, 0, 0})
		if code, msg := readError(t, r); code != "08P01" || !strings.Contains(msg, "unsupported frontend protocol") {
			t.Errorf("= %s %q", code, msg)
		}
	})
	t.Run("gssenc refused then startup", func(t *testing.T) {
		c, r := rawSession(t, e)
		c.Write([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30})
		if b, _ := r.ReadByte(); b != 'N' {
			t.Fatalf("GSSENCRequest answer %q, want N", b)
		}
		c.Write(startup("user", "x", "database", "appdb"))
		hdr := make([]byte, 9)
		io.ReadFull(r, hdr)
		if hdr[0] != 'R' || binary.BigEndian.Uint32(hdr[5:]) != 3 {
			t.Errorf("after GSSENC refusal got %q, want a cleartext password request", hdr)
		}
	})
	t.Run("wrong message instead of password", func(t *testing.T) {
		c, r := rawSession(t, e)
		c.Write(startup("user", "x", "database", "appdb"))
		io.ReadFull(r, make([]byte, 9))
		c.Write([]byte{'Q', 0, 0, 0, 9, 'x', 'x', 'x', 0})
		if code, msg := readError(t, r); code != "08P01" || !strings.Contains(msg, "expected a password response") {
			t.Errorf("= %s %q", code, msg)
		}
	})
	t.Run("oversized password message", func(t *testing.T) {
		c, r := rawSession(t, e)
		c.Write(startup("user", "x", "database", "appdb"))
		io.ReadFull(r, make([]byte, 9))
		c.Write([]byte{'p', 0x7f, 0, 0, 0})
		if code, _ := readError(t, r); code != "08P01" {
			t.Errorf("= %s", code)
		}
	})
	var n int
	if err := e.connect(t, e.dsn(e.alice, "appdb", "disable")).QueryRow(ctx, "SELECT 1").Scan(&n); err != nil {
		t.Errorf("gateway stopped serving after malformed input: %v", err)
	}
}

func TestOversizedMessage(t *testing.T) {
	pg := testenv.Postgres(t)
	e, err := newEnv(pg, server.Config{PostgresMaxMessage: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.gw.Shutdown(ctx) })
	c := e.connect(t, e.dsn(e.alice, "appdb", "disable"))
	_, err = c.Exec(ctx, "SELECT '"+strings.Repeat("a", 100<<10)+"'", pgx.QueryExecModeSimpleProtocol)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "54000" || !strings.Contains(pe.Message, "over the gateway's limit of 65536 bytes") {
		t.Fatalf("oversized query = %v; want 54000 naming the limit", err)
	}
	var n int
	if err := e.connect(t, e.dsn(e.alice, "appdb", "disable")).QueryRow(ctx, "SELECT 1").Scan(&n); err != nil || n != 1 {
		t.Errorf("gateway stopped serving: %v", err)
	}
}

// TestClientNeverSeesTargetPassword records every byte the client receives
// during login and a session: the target password appears nowhere.
func TestClientNeverSeesTargetPassword(t *testing.T) {
	e := sharedEnv(t)
	rec := newRelay(t, e.gw.Addr("postgres"))
	dsn := strings.Replace(e.dsn(e.alice, "appdb", "disable"), e.gw.Addr("postgres"), rec.l.Addr().String(), 1)
	c := e.connect(t, dsn)
	var user string
	c.QueryRow(ctx, "SELECT current_user").Scan(&user)
	c.Exec(ctx, "SELECT * FROM pg_settings")
	c.Exec(ctx, "SELECT 1/0")
	c.Close(ctx)
	got := rec.bytes()
	if len(got) < 1000 || !contains(got, "app_") {
		t.Fatalf("recorded only %d bytes (current_user %q): the recorder sees the wrong stream", len(got), user)
	}
	if contains(got, e.targetPW) {
		t.Fatal("the target password reached the client")
	}
}

func TestAuditRecordsStatements(t *testing.T) {
	e := sharedEnv(t)
	c := e.connect(t, e.dsn(e.alice, "appdb", "disable"))
	marker := fmt.Sprintf("audit_marker_%d", time.Now().UnixNano())
	c.Exec(ctx, "SELECT '"+marker+"' FROM generate_series(1,3)", pgx.QueryExecModeSimpleProtocol)
	c.Exec(ctx, "SELECT $1::text, '"+marker+"x' FROM generate_series(1,2)", pgx.QueryExecModeExec, "p")
	c.Exec(ctx, "SELECT 1/0, '"+marker+"y'")
	var found int
	var session string
	refs := map[float64]string{}
	for _, ev := range e.auditEvents(t) {
		cmd, _ := ev["command"].(string)
		if ev["type"] != "command" || !strings.Contains(cmd, marker) {
			continue
		}
		found++
		if ev["identity"] != "alice" || ev["connection"] != "appdb" || ev["session"] == "" || ev["decision"] != "allow" {
			t.Errorf("event %v lacks identity/connection/session/decision", ev)
		}
		res, _ := ev["result"].(map[string]any)
		failed := strings.Contains(cmd, marker+"y")
		switch {
		case failed && (res == nil || res["seq"].(float64) <= ev["seq"].(float64) || res["sqlstate"] != "22012"):
			t.Errorf("failed statement's result event %v; want a later one with sqlstate 22012", res)
		case !failed && res != nil:
			t.Errorf("successful statement %q has a result event %v; its result belongs in the recording", cmd, res)
		}
		session, _ = ev["session"].(string)
		refs[ev["seq"].(float64)] = cmd
	}
	c.Close(ctx)
	// Every result is in the session's recording, with the rows the
	// client received.
	want := map[string]struct {
		rows   int64
		params string
		state  string
	}{marker: {rows: 3}, marker + "x": {rows: 2, params: "p"}, marker + "y": {state: "22012"}}
	seen := 0
	for _, st := range e.recorded(t, session) {
		if !strings.Contains(st.Text, marker) {
			continue
		}
		seen++
		if refs[float64(st.Ref)] != st.Text {
			t.Errorf("recorded statement %q refers to audit event %d, which is %q", st.Text, st.Ref, refs[float64(st.Ref)])
		}
		key := marker
		for _, k := range []string{marker + "x", marker + "y"} {
			if strings.Contains(st.Text, k) {
				key = k
			}
		}
		w := want[key]
		if !st.Done || st.Result != w.rows || st.SQLState != w.state || int64(len(st.Rows)) != w.rows || (w.rows > 0 && st.Duration <= 0) {
			t.Errorf("recorded %q: done %v, %d rows (%d kept), sqlstate %q, %v; want %d rows, sqlstate %q",
				st.Text, st.Done, st.Result, len(st.Rows), st.SQLState, st.Duration, w.rows, w.state)
		}
		if w.params != "" && (len(st.Params) != 1 || st.Params[0] == nil || *st.Params[0] != w.params) {
			t.Errorf("recorded %q with parameters %v, want [%s]", st.Text, st.Params, w.params)
		}
		if w.rows > 0 && (len(st.Columns) == 0 || st.Rows[0][len(st.Rows[0])-1] == nil || !strings.HasPrefix(*st.Rows[0][len(st.Rows[0])-1], marker)) {
			t.Errorf("recorded %q: columns %v, first row %v; want the marker", st.Text, st.Columns, st.Rows[0])
		}
	}
	if seen != 3 {
		t.Errorf("recording holds %d of the 3 marker statements", seen)
	}
	if found != 3 {
		t.Errorf("found %d command events for the marker, want 3", found)
	}

	// The chain and the checkpoints verify.
	bodies, notes, err := audit.ReadStore(ctx, e.gw.Store, e.gw.Audit.Node())
	if err != nil {
		t.Fatal(err)
	}
	v, err := audit.NewVerifier(e.gw.SigningKey.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if r := audit.Verify(e.gw.Audit.Node(), bodies, notes, v); !r.OK() {
		t.Errorf("the gateway's audit log does not verify: %v", r)
	}
}

func TestPsql(t *testing.T) {
	e := sharedEnv(t)
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal("psql not found: install the Debian package postgresql-client (scripts/install-deps)")
	}
	for _, sslmode := range []string{"disable", "verify-full"} {
		t.Run(sslmode, func(t *testing.T) {
			cmd := exec.Command(psql, e.dsn(e.alice, "appdb", sslmode), "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
				"-c", "CREATE TEMP TABLE t (x int)",
				"-c", "\\copy t FROM PROGRAM 'seq 1 1000'",
				"-c", "SELECT count(*), sum(x) FROM t",
				"-c", "\\copy (SELECT x FROM t WHERE x <= 3) TO STDOUT")
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "1000|500500") || !strings.Contains(string(out), "1\n2\n3") {
				t.Errorf("psql = %v\n%s", err, out)
			}
		})
	}
}

// TestShutdownClosesSessionsAndLogins stops a gateway holding one live
// session and one client idle in the startup phase: both end at once and
// the live client is told why.
func TestShutdownClosesSessionsAndLogins(t *testing.T) {
	pg := testenv.Postgres(t)
	e, err := newEnv(pg, server.Config{})
	if err != nil {
		t.Fatal(err)
	}
	live := e.connect(t, e.dsn(e.alice, "appdb", "disable"))
	idle, err := net.Dial("tcp", e.gw.Addr("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	start := time.Now()
	if err := e.gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v with a client idle in startup", d)
	}
	_, err = live.Exec(ctx, "SELECT 1")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "57P01" {
		// The notice may race the close; a closed connection is acceptable.
		if err == nil {
			t.Error("the live session still works after shutdown")
		}
	}
}

// TestLostTargetIsReported cuts the network between the gateway and the
// target mid-session: the client gets a FATAL 08006 naming the connection,
// not a bare closed socket.
func TestLostTargetIsReported(t *testing.T) {
	e := sharedEnv(t)
	cut := newRelay(t, e.pg.Addr())
	rec, err := e.gw.Store.GetConnection(ctx, "appdb")
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := e.gw.MasterKey.Seal([]byte(e.targetPW), secret.ConnectionAAD("flaky"))
	rec.Name, rec.Address, rec.Sealed = "flaky", cut.l.Addr().String(), sealed
	if _, err := e.gw.Store.PutConnection(ctx, rec); err != nil {
		t.Fatal(err)
	}
	c := e.connect(t, e.dsn(e.alice, "flaky", "disable"))
	if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	cut.cut()
	time.Sleep(200 * time.Millisecond)
	_, err = c.Exec(ctx, "SELECT 1")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "08006" || !strings.Contains(pe.Message, "connection flaky") {
		t.Fatalf("after the target was cut: %v; want FATAL 08006 naming the connection", err)
	}
}

// TestSessionsReplay replays a real session from the audit log and its
// recording with the CLI: its statements, their results, the rows the
// client received, and refusals, in order.
func TestSessionsReplay(t *testing.T) {
	e := sharedEnv(t)
	c := e.connect(t, e.dsn(e.alice, "appdb", "disable"))
	marker := fmt.Sprintf("replay_marker_%d", time.Now().UnixNano())
	c.Exec(ctx, "SELECT '"+marker+"' FROM generate_series(1,2)", pgx.QueryExecModeSimpleProtocol)
	c.Exec(ctx, "SELECT 1/0, '"+marker+"'", pgx.QueryExecModeSimpleProtocol)
	c.Close(ctx)
	var session string
	for _, ev := range e.auditEvents(t) {
		if cmd, _ := ev["command"].(string); strings.Contains(cmd, marker) {
			session, _ = ev["session"].(string)
		}
	}
	if session == "" {
		t.Fatal("no command event for the marker")
	}
	e.waitClosed(t, session)
	run := func(args ...string) string {
		code, out := e.cli(t, args...)
		if code != 0 {
			t.Fatalf("gatehouse %v = %d: %s", args, code, out)
		}
		return out
	}
	if out := run("sessions", "list"); !strings.Contains(out, session) || !strings.Contains(out, "alice") {
		t.Errorf("sessions list lacks %s:\n%s", session, out)
	}
	for _, verb := range [][]string{{"sessions", "show", session}, {"sessions", "replay", session, "--no-wait"}} {
		out := run(verb...)
		i1, i2 := strings.Index(out, "FROM generate_series(1,2)"), strings.Index(out, "SELECT 1/0")
		// The rows the client received come from the recording.
		snapshot := "│ ?column?\n               │ " + marker + "\n               │ " + marker + "\n"
		if i1 < 0 || i2 < i1 || !strings.Contains(out, "→ 2 rows") || !strings.Contains(out, snapshot) || !strings.Contains(out, "error 22012") ||
			!strings.Contains(out, "closed: client terminated the session") {
			t.Errorf("%v:\n%s", verb, out)
		}
	}
}

// TestRecordingTamperIsNamed changes a stored recording chunk: audit verify
// names the chunk, and the session's replay warns and stops before it.
func TestRecordingTamperIsNamed(t *testing.T) {
	e := sharedEnv(t)
	c := e.connect(t, e.dsn(e.alice, "appdb", "disable"))
	marker := fmt.Sprintf("tamper_marker_%d", time.Now().UnixNano())
	if _, err := c.Exec(ctx, "SELECT '"+marker+"'"); err != nil {
		t.Fatal(err)
	}
	var session string
	for _, ev := range e.auditEvents(t) {
		if cmd, _ := ev["command"].(string); strings.Contains(cmd, marker) {
			session, _ = ev["session"].(string)
		}
	}
	c.Close(ctx)
	if len(e.recorded(t, session)) != 1 {
		t.Fatal("the session's recording does not hold its statement")
	}
	if code, out := e.cli(t, "audit", "verify"); code != 0 || !strings.Contains(out, "recording chunks match their events") {
		t.Fatalf("audit verify before tampering = %d:\n%s", code, out)
	}

	db, err := sql.Open("sqlite", filepath.Join(e.dataDir, store.DefaultSQLiteFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var body []byte
	if err := db.QueryRow("SELECT body FROM recording_chunks WHERE session = ? AND chunk = 1", session).Scan(&body); err != nil {
		t.Fatal(err)
	}
	edited := append([]byte(nil), body...)
	edited[len(edited)/2] ^= 0x20
	if _, err := db.Exec("UPDATE recording_chunks SET body = ? WHERE session = ? AND chunk = 1", edited, session); err != nil {
		t.Fatal(err)
	}
	defer db.Exec("UPDATE recording_chunks SET body = ? WHERE session = ? AND chunk = 1", body, session)

	want := "recording chunk 1 of session " + session + ": modified"
	if code, out := e.cli(t, "audit", "verify"); code == 0 || !strings.Contains(out, want) {
		t.Errorf("audit verify after tampering = %d:\n%s\nwant a failure naming %q", code, out, want)
	}
	code, out := e.cli(t, "sessions", "show", session)
	if code != 0 || !strings.Contains(out, "WARNING: "+want) || strings.Contains(out, marker+"\n               │") {
		t.Errorf("sessions show of a tampered recording = %d:\n%s\nwant a warning and no recorded rows", code, out)
	}
}
