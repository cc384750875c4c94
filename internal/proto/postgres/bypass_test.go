package postgres_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"gopkg.in/yaml.v3"
)

type bypassCase struct {
	Name   string `yaml:"name"`
	SQL    string `yaml:"sql"`
	Expect string `yaml:"expect"` // block or allow
	Multi  bool   `yaml:"multi"`
	Rule   string `yaml:"rule"`
}

const bypassSchema = `
DROP TABLE IF EXISTS accounts, secrets, "Orders";
DROP SCHEMA IF EXISTS billing CASCADE;
CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric, "drop" text);
INSERT INTO accounts SELECT g, 'owner ' || g, g * 10, 'd' FROM generate_series(1, 5) g;
CREATE TABLE secrets (id int, value text);
INSERT INTO secrets VALUES (1, 'top secret');
CREATE SCHEMA billing;
CREATE TABLE billing.invoices (id int, paid bool);
INSERT INTO billing.invoices VALUES (1, false);
CREATE TABLE "Orders" (id int, note text);
`

// TestBypassCorpus runs testdata/bypass.yaml through connection "guarded"
// (postgres-production) with psql and with pgx in the simple and the
// extended protocol: every dangerous case is refused with 42501 naming its
// rule and the session goes on; every benign case runs; and afterwards
// nothing a refused case would have changed has changed.
func TestBypassCorpus(t *testing.T) {
	e := sharedEnv(t)
	raw, err := os.ReadFile("testdata/bypass.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cases []bypassCase
	if err := yaml.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	blocks := 0
	for _, c := range cases {
		if c.Expect != "block" && c.Expect != "allow" {
			t.Fatalf("case %q: expect %q (want block or allow)", c.Name, c.Expect)
		}
		if c.Expect == "block" {
			blocks++
		}
	}
	if len(cases) < 60 || blocks < 30 || len(cases)-blocks < 20 {
		t.Fatalf("corpus holds %d cases (%d dangerous); want at least 60 with both kinds well represented", len(cases), blocks)
	}
	direct := e.connect(t, e.direct())
	if _, err := direct.Exec(ctx, bypassSchema, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal("psql not found: install the Debian package postgresql-client (scripts/install-deps)")
	}

	modes := []struct {
		name string
		run  func(t *testing.T, conn *pgconn.PgConn, sql string) error
	}{
		{"pgx-simple", func(t *testing.T, conn *pgconn.PgConn, sql string) error {
			_, err := conn.Exec(ctx, sql).ReadAll()
			return err
		}},
		{"pgx-extended", func(t *testing.T, conn *pgconn.PgConn, sql string) error {
			return conn.ExecParams(ctx, sql, nil, nil, nil, nil).Read().Err
		}},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			conn, err := pgconn.Connect(ctx, e.dsn(e.alice, "guarded", "disable"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			for _, c := range cases {
				if c.Multi && c.Expect == "allow" && m.name == "pgx-extended" {
					continue // PostgreSQL refuses several statements in one Parse
				}
				err := m.run(t, conn, c.SQL)
				checkCase(t, c, err)
				if err := conn.Exec(ctx, "SELECT 1").Close(); err != nil {
					t.Fatalf("case %q: the session did not go on: %v", c.Name, err)
				}
				if conn.TxStatus() != 'I' {
					t.Fatalf("case %q: transaction status %c after the case, want I", c.Name, conn.TxStatus())
				}
			}
		})
	}
	t.Run("psql", func(t *testing.T) {
		for _, c := range cases {
			cmd := exec.Command(psql, e.dsn(e.alice, "guarded", "disable"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", c.SQL)
			out, err := cmd.CombinedOutput()
			text := string(out)
			switch {
			case c.Expect == "allow" && err != nil:
				t.Errorf("case %q: psql failed on a benign statement: %v\n%s", c.Name, err, text)
			case c.Expect == "block" && (err == nil || !strings.Contains(text, "gatehouse refused this statement") || !strings.Contains(text, c.Rule)):
				t.Errorf("case %q: psql = %v\n%s\nwant a refusal naming rule %q", c.Name, err, text, c.Rule)
			}
		}
	})

	// Nothing a refused case would have done happened.
	var n int
	var balance float64
	if err := direct.QueryRow(ctx, "SELECT count(*), sum(balance) FROM accounts").Scan(&n, &balance); err != nil || n != 5 || balance != 150 {
		t.Errorf("accounts now holds %d rows with balance %v (%v); want 5 rows and 150 untouched", n, balance, err)
	}
	for _, q := range []string{"SELECT count(*) FROM secrets", `SELECT count(*) FROM "Orders"`, "SELECT count(*) FROM billing.invoices WHERE NOT paid"} {
		if err := direct.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Errorf("%s: %v (a refused DROP ran?)", q, err)
		}
	}
	var super bool
	if err := direct.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil || super {
		t.Errorf("the target role became superuser (%v)", err)
	}
}

func checkCase(t *testing.T, c bypassCase, err error) {
	t.Helper()
	var pe *pgconn.PgError
	errors.As(err, &pe)
	switch c.Expect {
	case "block":
		if pe == nil || pe.Code != "42501" || !strings.Contains(pe.Message, "gatehouse refused") || !strings.Contains(pe.Detail, c.Rule) {
			t.Errorf("case %q (%s): err = %v (detail %q); want 42501 refused by rule %q", c.Name, c.SQL, err, detail(pe), c.Rule)
		}
	case "allow":
		if err != nil {
			t.Errorf("case %q (%s): benign statement failed: %v", c.Name, c.SQL, err)
		}
	}
}

func detail(pe *pgconn.PgError) string {
	if pe == nil {
		return ""
	}
	return pe.Detail
}

// TestRefusalKeepsTransactionState checks that a refused statement inside
// an explicit transaction aborts it exactly as a failing statement does on
// PostgreSQL itself: status E, later statements 25P02, ROLLBACK recovers,
// and nothing of the transaction persists.
func TestRefusalKeepsTransactionState(t *testing.T) {
	e := sharedEnv(t)
	run := func(dsn, failing string) string {
		conn, err := pgconn.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var steps []string
		step := func(sql string) {
			_, err := conn.Exec(ctx, sql).ReadAll()
			steps = append(steps, fmt.Sprintf("%s:%s", codeOf(err), string(conn.TxStatus())))
		}
		step("BEGIN")
		step("INSERT INTO billing.invoices VALUES (77, false)")
		step(failing)
		step("SELECT 1")
		step("ROLLBACK")
		var n int64
		res, _ := conn.Exec(ctx, "SELECT count(*) FROM billing.invoices WHERE id = 77").ReadAll()
		if len(res) == 1 && len(res[0].Rows) == 1 {
			fmt.Sscan(string(res[0].Rows[0][0]), &n)
		}
		return strings.Join(steps, " ") + fmt.Sprintf(" kept=%d", n)
	}
	direct := e.connect(t, e.direct())
	if _, err := direct.Exec(ctx, bypassSchema, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}
	want := run(e.direct(), "SELECT 1/0")
	got := run(e.dsn(e.alice, "guarded", "disable"), "DELETE FROM accounts")
	want = strings.Replace(want, "22012", "42501", 1)
	if got != want || !strings.Contains(got, "42501:E 25P02:E") {
		t.Errorf("through the gateway: %s\ndirect with a failing statement: %s", got, want)
	}
}

// TestRefusalInPipeline checks the extended protocol: a refused Parse in a
// pipeline fails like a statement that fails to parse (the rest is skipped
// until Sync), a failure earlier in the pipeline still wins, and the
// connection goes on.
func TestRefusalInPipeline(t *testing.T) {
	e := sharedEnv(t)
	// run sends the statements as one pipeline (Parse, Bind, Describe,
	// Execute each, one Sync) and reports each result.
	run := func(conn *pgconn.PgConn, queries ...string) string {
		b := &pgconn.Batch{}
		for _, q := range queries {
			b.ExecParams(q, nil, nil, nil, nil)
		}
		results, err := conn.ExecBatch(ctx, b).ReadAll()
		var out []string
		for _, r := range results {
			out = append(out, fmt.Sprint(len(r.Rows), ":", codeOf(r.Err)))
		}
		_, after := conn.Exec(ctx, "SELECT 42").ReadAll()
		return fmt.Sprint(strings.Join(out, " "), " batch=", codeOf(err), " then=", codeOf(after), " tx=", string(conn.TxStatus()))
	}
	direct, err := pgconn.Connect(ctx, e.direct())
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close(ctx)
	gw, err := pgconn.Connect(ctx, e.dsn(e.alice, "guarded", "disable"))
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close(ctx)
	want := run(direct, "SELECT 1", "SELECT 1 FROM no_such_table", "SELECT 3")
	got := run(gw, "SELECT 1", "DELETE FROM accounts RETURNING 1", "SELECT 3")
	if strings.ReplaceAll(want, "42P01", "42501") != got || !strings.Contains(got, "42501") {
		t.Errorf("refused statement in a pipeline: %s\ndirect with one that fails to parse: %s", got, want)
	}
	want = run(direct, "SELECT 1/0", "SELECT 1 FROM no_such_table", "SELECT 3")
	got = run(gw, "SELECT 1/0", "DELETE FROM accounts RETURNING 1", "SELECT 3")
	if got != want || !strings.Contains(got, "22012") || strings.Contains(got, "42501") {
		t.Errorf("an earlier failure must win over a refusal: %s, direct %s", got, want)
	}

	conn := e.connect(t, e.dsn(e.alice, "guarded", "disable"))
	if _, err := conn.Prepare(ctx, "wipe", "DELETE FROM accounts"); codeOf(err) != "42501" {
		t.Errorf("Prepare of a refused statement = %v, want 42501", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM accounts").Scan(&n); err != nil || n != 5 {
		t.Errorf("after refusals: %d accounts, %v", n, err)
	}

	// Refusals are audited with their rule.
	found := false
	for _, ev := range e.auditEvents(t) {
		res, _ := ev["result"].(map[string]any)
		if ev["type"] == "command" && ev["decision"] == "block" && ev["command"] == "DELETE FROM accounts RETURNING 1" &&
			strings.HasSuffix(fmt.Sprint(ev["rule"]), "unbounded-writes") && res != nil && res["sqlstate"] == "42501" {
			found = true
		}
	}
	if !found {
		t.Error("no audit event records the refused DELETE with its rule")
	}
}

func codeOf(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	if err != nil {
		return "err"
	}
	return "ok"
}
