package postgres_test

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

var peopleOnce sync.Once

// people creates the masking tests' table and a view over it, once.
func people(t *testing.T, e *env) {
	t.Helper()
	var err error
	peopleOnce.Do(func() {
		direct := e.connect(t, e.direct())
		_, err = direct.Exec(ctx, `
CREATE TABLE people (id int PRIMARY KEY, name text, email text, ssn text, card text, note text, salary int);
INSERT INTO people VALUES
  (1, 'Ann Lee', 'ann.lee@example.com', '123-45-6789', '4111 1111 1111 1111', 'order 4111111111111112 shipped', 90000),
  (2, 'Bob Roe', 'bob@example.org', '219-09-9999', '5555555555554444', 'mail me at bob@example.org', NULL);
CREATE VIEW people_v AS SELECT id, ssn, name FROM people;`)
		direct.Close(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// rows runs q and renders every value as text, NULL as "NULL".
func rows(t *testing.T, c *pgx.Conn, q string, mode pgx.QueryExecMode) [][]string {
	t.Helper()
	rs, err := c.Query(ctx, q, mode)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rs.Close()
	var out [][]string
	for rs.Next() {
		vals, err := rs.Values()
		if err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = "NULL"
			if v != nil {
				row[i] = fmt.Sprint(v)
			}
		}
		out = append(out, row)
	}
	if err := rs.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// rawRows runs q and returns every value's bytes as the client received
// them (NULL as nil).
func rawRows(t *testing.T, c *pgx.Conn, q string, mode pgx.QueryExecMode) [][][]byte {
	t.Helper()
	rs, err := c.Query(ctx, q, mode)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rs.Close()
	var out [][][]byte
	for rs.Next() {
		var row [][]byte
		for _, v := range rs.RawValues() {
			row = append(row, append([]byte(nil), v...))
		}
		out = append(out, row)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMaskingInResults: content detectors and column rules rewrite result
// values in the simple and extended protocols (text and binary formats),
// through an alias and a view, in computed expressions and in COPY TO
// STDOUT; an exempt identity and other connections see the values as
// stored, byte for byte.
func TestMaskingInResults(t *testing.T) {
	e := sharedEnv(t)
	people(t, e)
	const q = "SELECT id, name, email, ssn AS x, card, note, salary FROM people ORDER BY id"
	want := [][]string{
		{"1", "Ann Lee", "[email]", "***-**-6789", "[card]", "order 4111111111111112 shipped", "NULL"},
		{"2", "Bob Roe", "[email]", "***-**-9999", "[card]", "mail me at [email]", "NULL"},
	}
	c := e.connect(t, e.dsn(e.alice, "masked", "disable"))
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement, pgx.QueryExecModeDescribeExec} {
		t.Run(mode.String(), func(t *testing.T) {
			// salary is an int under a column rule: a string would not be
			// a valid int, so it becomes NULL.
			if got := rows(t, c, q, mode); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("masked rows\n got %v\nwant %v", got, want)
			}
			if got := rows(t, c, "SELECT ssn, name FROM people_v WHERE id = 1", mode); fmt.Sprint(got) != "[[***-**-6789 Ann Lee]]" {
				t.Errorf("through the view: %v", got)
			}
			if got := rows(t, c, "SELECT 'ssn ' || ssn, upper(email) FROM people WHERE id = 1", mode); fmt.Sprint(got) != "[[ssn [ssn] [email]]]" {
				t.Errorf("computed expressions: %v", got)
			}
		})
	}

	// Every result column in binary format: text values carry the same
	// bytes, and the masked int becomes NULL.
	t.Run("binary", func(t *testing.T) {
		rs, err := c.Query(ctx, q, pgx.QueryResultFormats{pgx.BinaryFormatCode})
		if err != nil {
			t.Fatal(err)
		}
		var got [][]string
		for rs.Next() {
			var id int32
			var name, email, x, card, note string
			var salary *int32
			if err := rs.Scan(&id, &name, &email, &x, &card, &note, &salary); err != nil {
				t.Fatal(err)
			}
			if rs.FieldDescriptions()[2].Format != pgx.BinaryFormatCode {
				t.Fatal("the text column did not come in binary format")
			}
			sal := "NULL"
			if salary != nil {
				sal = fmt.Sprint(*salary)
			}
			got = append(got, []string{fmt.Sprint(id), name, email, x, card, note, sal})
		}
		if rs.Err() != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("binary rows %v, %v; want %v", got, rs.Err(), want)
		}
	})

	// COPY TO STDOUT, with psql.
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql not installed")
	}
	out, err := exec.Command(psql, e.dsn(e.alice, "masked", "disable"), "-Atc", "COPY (SELECT id, email, card FROM people ORDER BY id) TO STDOUT").CombinedOutput()
	if err != nil || string(out) != "1\t[email]\t[card]\n2\t[email]\t[card]\n" {
		t.Errorf("COPY through psql = %q, %v", out, err)
	}
	out, err = exec.Command(psql, e.dsn(e.alice, "masked", "disable"), "-Atc", "SELECT email FROM people WHERE id = 1").CombinedOutput()
	if err != nil || string(out) != "[email]\n" {
		t.Errorf("psql = %q, %v", out, err)
	}

	// Unmasked: an exempt identity, a connection without mask rules, and
	// columns no rule touches get exactly the bytes the target sends, in
	// text and binary formats.
	direct := e.connect(t, e.direct())
	for name, tc := range map[string]struct{ dsn, q string }{
		"exempt identity":   {e.dsn(e.bob, "masked", "disable"), q},
		"other connection":  {e.dsn(e.alice, "appdb", "disable"), q},
		"untouched columns": {e.dsn(e.alice, "masked", "disable"), "SELECT id, name, note FROM people WHERE id = 1"},
	} {
		c := e.connect(t, tc.dsn)
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
			want := rawRows(t, direct, tc.q, mode)
			if got := rawRows(t, c, tc.q, mode); fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) || len(want) == 0 {
				t.Errorf("%s, %v: %q, want the target's bytes %q", name, mode, got, want)
			}
		}
	}
}

// TestMaskingIsAuditedAndRecorded: the session's end counts what was
// masked (detectors and columns, never values); the recording holds the
// masked rows; a literal card number in a statement is not kept in clear.
func TestMaskingIsAuditedAndRecorded(t *testing.T) {
	e := sharedEnv(t)
	people(t, e)
	c := e.connect(t, e.dsn(e.alice, "masked", "disable"))
	marker := "mask_marker_" + fmt.Sprint(len(e.auditEvents(t)))
	got := rows(t, c, "SELECT '"+marker+"', email, ssn, '4111 1111 1111 1111' FROM people WHERE id = 1", pgx.QueryExecModeSimpleProtocol)
	if fmt.Sprint(got) != "[["+marker+" [email] ***-**-6789 [card]]]" {
		t.Fatalf("rows %v", got)
	}
	var session string
	for _, ev := range e.auditEvents(t) {
		if cmd, _ := ev["command"].(string); strings.Contains(cmd, marker) {
			session, _ = ev["session"].(string)
			if strings.Contains(cmd, "4111") || !strings.Contains(cmd, "'[card]'") {
				t.Errorf("command event keeps %q; want the card number redacted", cmd)
			}
		}
	}
	c.Close(ctx)
	e.waitClosed(t, session)
	for _, ev := range e.auditEvents(t) {
		if ev["type"] == "session.close" && ev["session"] == session {
			if m, _ := ev["masked"].(string); m != "card=1, column public.people.ssn=1, email=1" {
				t.Errorf("session.close masked = %q", m)
			}
		}
	}
	stmts := e.recorded(t, session)
	if len(stmts) != 1 || len(stmts[0].Rows) != 1 || strings.Contains(stmts[0].Text, "4111") {
		t.Fatalf("recording %+v", stmts)
	}
	var vals []string
	for _, v := range stmts[0].Rows[0] {
		vals = append(vals, *v)
	}
	if strings.Join(vals, "|") != marker+"|[email]|***-**-6789|[card]" {
		t.Errorf("recorded row %v; want the masked values", vals)
	}
}
