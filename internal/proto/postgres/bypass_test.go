package postgres_test

import (
	"errors"
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
