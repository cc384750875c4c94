package postgres_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/cli"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/recording"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/server"
	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

func TestMain(m *testing.M) {
	if cfg := os.Getenv(crashGatewayEnv); cfg != "" {
		runCrashGateway(cfg)
		return
	}
	os.Exit(testenv.Main(m))
}

// env is one gateway in front of the package's PostgreSQL, with a target
// database reached through connection "appdb" by a dedicated login role
// whose password only the gateway knows.
type env struct {
	gw         *server.Gateway
	pg         *testenv.PostgresServer
	dataDir    string
	targetDB   string
	targetPW   string
	alice, eve string // tokens: alice may use appdb, eve may not
	bob        string // token of a dba whose results are not masked (group unmasked)
	carol      string // token of another dba
	expired    string
	// hooks receives the gateway's review webhook deliveries.
	hooks *hookReceiver
}

var (
	envOnce sync.Once
	shared  *env
	envErr  error
)

// sharedEnv starts the package's gateway once.
func sharedEnv(t *testing.T) *env {
	t.Helper()
	pg := testenv.Postgres(t)
	envOnce.Do(func() { shared, envErr = newEnv(pg, server.Config{}) })
	if envErr != nil {
		t.Fatal(envErr)
	}
	return shared
}

func newEnv(pg *testenv.PostgresServer, cfg server.Config) (*env, error) {
	ctx := context.Background()
	e := &env{pg: pg, targetPW: "TargetPw-" + fmt.Sprint(time.Now().UnixNano())}
	e.targetDB = fmt.Sprintf("appdb_%d", time.Now().UnixNano())
	if err := pg.Exec("postgres", "CREATE DATABASE "+e.targetDB); err != nil {
		return nil, err
	}
	role := "app_" + e.targetDB
	if err := pg.Exec("postgres", fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'; GRANT ALL ON DATABASE %s TO %s; ALTER DATABASE %s OWNER TO %s",
		role, e.targetPW, e.targetDB, role, e.targetDB, role)); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "gatehouse-pgengine-")
	if err != nil {
		return nil, err
	}
	e.dataDir = dir
	cfg.DataDir, cfg.APIAddr, cfg.PostgresAddr = dir, "127.0.0.1:0", "127.0.0.1:0"
	cfg.Log = quietLog()
	cfg.Stdout = io.Discard
	e.hooks = newHookReceiver()
	cfg.ReviewWebhook, cfg.ReviewWebhookSecret = e.hooks.url, hookSecret
	if e.gw, err = server.Start(ctx, cfg); err != nil {
		return nil, err
	}
	st := e.gw.Store
	st.PutIdentity(ctx, resource.Identity{Name: "alice", Type: resource.IdentityUser, Groups: []string{"dba"}})
	st.PutIdentity(ctx, resource.Identity{Name: "eve", Type: resource.IdentityUser})
	st.PutIdentity(ctx, resource.Identity{Name: "bob", Type: resource.IdentityUser, Groups: []string{"dba", "unmasked"}})
	st.PutIdentity(ctx, resource.Identity{Name: "carol", Type: resource.IdentityUser, Groups: []string{"dba"}})
	put := func(name, addr string) error {
		sealed, err := e.gw.MasterKey.Seal([]byte(e.targetPW), secret.ConnectionAAD(name))
		if err != nil {
			return err
		}
		_, err = st.PutConnection(ctx, storeRecord(name, addr, e.targetDB, role, sealed, e))
		return err
	}
	if err := put("appdb", pg.Addr()); err != nil {
		return nil, err
	}
	if err := put("guarded", pg.Addr()); err != nil {
		return nil, err
	}
	for _, name := range []string{"masked", "reviewed", "reviewed-quorum", "reviewed-fast", "granted"} {
		if err := put(name, pg.Addr()); err != nil {
			return nil, err
		}
	}
	port, _ := testenv.FreePort()
	if err := put("deadtarget", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
		return nil, err
	}
	docs, err := resource.Decode([]byte(testPolicies))
	if err != nil {
		return nil, err
	}
	for _, d := range docs {
		if _, err := st.PutPolicy(ctx, *d.Policy); err != nil {
			return nil, err
		}
	}
	if err := e.gw.ReloadPolicies(ctx); err != nil {
		return nil, err
	}
	mint := func(who string, ttl time.Duration, at time.Time) string {
		tok, rec, _ := identity.NewToken(who, resource.RoleUser, ttl, "", at)
		st.CreateToken(ctx, rec)
		return tok
	}
	e.alice = mint("alice", time.Hour, time.Now())
	e.bob = mint("bob", time.Hour, time.Now())
	e.carol = mint("carol", time.Hour, time.Now())
	e.eve = mint("eve", time.Hour, time.Now())
	e.expired = mint("alice", time.Minute, time.Now().Add(-time.Hour))
	return e, nil
}

// testPolicies: only the dba group may open sessions, and connection
// "guarded" (the same target as appdb) runs under postgres-production.
const testPolicies = `
kind: Policy
name: access
connections: {names: ["*"]}
rules:
  - name: dba-only
    action: block
    when: command.type == "connect" && !("dba" in identity.groups)
    message: only the dba group may connect
---
kind: Policy
name: production
connections: {names: [guarded]}
presets: [postgres-production]
rules:
  - name: no-secrets
    action: block
    when: '"secrets" in command.sql.tables || "public.secrets" in command.sql.tables'
    message: the secrets table is off limits
---
kind: Policy
name: masking
connections: {names: [masked]}
rules:
  - name: pii
    action: mask
    when: '!("unmasked" in identity.groups)'
    mask: {detectors: [email, card, ssn]}
  - name: ssn-column
    action: mask
    when: '!("unmasked" in identity.groups)'
    mask: {columns: [public.people.ssn, public.people.salary], strategy: partial, keep: 4}
---
kind: Policy
name: reviews
connections: {names: [reviewed]}
rules:
  - name: unbounded-writes
    action: review
    when: command.sql.statements.exists(s, s.kind in ["UPDATE", "DELETE"] && !s.has_where)
    review: {approvers: [dba], timeout: 60s}
---
kind: Policy
name: reviews-quorum
connections: {names: [reviewed-quorum]}
rules:
  - name: unbounded-writes
    action: review
    when: command.sql.statements.exists(s, s.kind in ["UPDATE", "DELETE"] && !s.has_where)
    review: {approvers: [dba], quorum: 2, timeout: 60s}
---
kind: Policy
name: reviews-fast
connections: {names: [reviewed-fast]}
rules:
  - name: unbounded-writes
    action: review
    when: command.sql.statements.exists(s, s.kind in ["UPDATE", "DELETE"] && !s.has_where)
    review: {approvers: [dba], timeout: 2s}
---
kind: Policy
name: grants
connections: {names: [granted]}
rules:
  - name: needs-grant
    action: review
    when: command.type == "connect"
    review: {approvers: [dba], maxDuration: 1h, endSessions: true}
`

// quietLog discards the gateway's log, unless GATEHOUSE_TEST_LOG is set.
func quietLog() *slog.Logger {
	if os.Getenv("GATEHOUSE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// dsn is a client connection string to the gateway.
func (e *env) dsn(token, connection, sslmode string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword("whoever", token), Host: e.gw.Addr("postgres"), Path: "/" + connection}
	q := url.Values{"sslmode": {sslmode}}
	if sslmode == "verify-full" {
		q.Set("sslrootcert", filepath.Join(e.dataDir, "ca.pem"))
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// direct is a connection string straight to the target, as the gateway
// logs in.
func (e *env) direct() string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword("app_"+e.targetDB, e.targetPW), Host: e.pg.Addr(), Path: "/" + e.targetDB, RawQuery: "sslmode=disable"}
	return u.String()
}

func (e *env) connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", redactDSN(dsn), err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "?"
	}
	return u.Redacted()
}

// auditEvents reads the gateway's audit log from its store once every
// event appended so far has landed there. A command event carries its
// result event under "result".
func (e *env) auditEvents(t *testing.T) []map[string]any {
	t.Helper()
	e.gw.Audit.Sync()
	stored, err := e.gw.Store.AuditEvents(context.Background(), e.gw.Audit.Node(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	bySeq := map[float64]map[string]any{}
	for _, ev := range stored {
		var m map[string]any
		if err := jsonUnmarshal(ev.Body, &m); err != nil {
			t.Fatalf("audit event %q: %v", ev.Body, err)
		}
		bySeq[m["seq"].(float64)] = m
		if m["type"] == "result" {
			ref, _ := m["ref"].(float64)
			if cmd, ok := bySeq[ref]; ok {
				cmd["result"] = m
			}
			continue
		}
		out = append(out, m)
	}
	return out
}

// cli runs the gatehouse CLI against the gateway as its admin.
func (e *env) cli(t *testing.T, args ...string) (int, string) {
	t.Helper()
	admin, err := os.ReadFile(filepath.Join(e.dataDir, "admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	return e.cliAs(t, strings.TrimSpace(string(admin)), args...)
}

// cliAs runs the gatehouse CLI with a token.
func (e *env) cliAs(t *testing.T, token string, args ...string) (int, string) {
	t.Helper()
	var out strings.Builder
	args = append(args, "--server", "https://"+e.gw.APIAddr(), "--ca", filepath.Join(e.dataDir, "ca.pem"), "--token", token)
	code := cli.Run(context.Background(), args, nil, &out, &out)
	return code, out.String()
}

// waitClosed waits until the gateway has recorded the session's end.
func (e *env) waitClosed(t *testing.T, session string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, ev := range e.auditEvents(t) {
			if ev["type"] == "session.close" && ev["session"] == session {
				return
			}
		}
	}
	t.Fatalf("session %s did not end within 5 s", session)
}

// recorded returns a session's recorded statements once its closed chunks
// are stored, after checking them against the audit log.
func (e *env) recorded(t *testing.T, session string) []recording.Statement {
	t.Helper()
	e.waitClosed(t, session)
	e.gw.Recordings.Sync()
	e.gw.Audit.Sync()
	chunks, err := e.gw.Store.RecordingChunks(context.Background(), session)
	if err != nil {
		t.Fatal(err)
	}
	bodies, _, err := audit.ReadStore(context.Background(), e.gw.Store, e.gw.Audit.Node())
	if err != nil {
		t.Fatal(err)
	}
	if p := recording.Check(e.gw.Audit.Node(), chunks, recording.Attestations(bodies, session)); len(p) > 0 {
		t.Fatalf("recording of session %s: %v", session, p)
	}
	stmts, err := recording.Statements(chunks)
	if err != nil {
		t.Fatal(err)
	}
	return stmts
}

// relay is a TCP relay to upstream for tests: it keeps every byte the
// client receives, and can cut all its connections at once (standing for a
// network failure).
type relay struct {
	l        net.Listener
	mu       sync.Mutex
	conns    []net.Conn
	received bytes.Buffer
}

func newRelay(t *testing.T, upstream string) *relay {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{l: l}
	t.Cleanup(func() { l.Close(); r.cut() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", upstream)
			if err != nil {
				in.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, in, out)
			r.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(io.MultiWriter(in, lockedWriter{r}), out); in.Close() }()
		}
	}()
	return r
}

type lockedWriter struct{ r *relay }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	return w.r.received.Write(p)
}

// bytes is everything clients have received so far.
func (r *relay) bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.received.Bytes())
}

// cut resets every connection.
func (r *relay) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
	r.conns = nil
}

func contains(b []byte, s string) bool {
	return bytes.Contains(b, []byte(s)) || strings.Contains(string(b), s)
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
