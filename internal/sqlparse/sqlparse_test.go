package sqlparse

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	type want struct {
		kinds     []string // every statement's kind, nested included, in order
		tables    []string
		where     []bool // HasWhere per statement, when given
		writes    bool
		ddl       bool
		dynamic   bool
		dangerous bool
		unknown   bool
		object    string // first statement's object
	}
	cases := []struct {
		name string
		sql  string
		want want
	}{
		{"select", "SELECT abalance FROM pgbench_accounts WHERE aid = 1",
			want{kinds: []string{"SELECT"}, tables: []string{"pgbench_accounts"}, where: []bool{true}}},
		{"column named drop", `SELECT "drop" FROM t`, want{kinds: []string{"SELECT"}, tables: []string{"t"}}},
		{"literal holding DELETE", `SELECT 'DELETE FROM accounts'`, want{kinds: []string{"SELECT"}}},
		{"mixed case", "dElEtE FrOm Accounts", want{kinds: []string{"DELETE"}, tables: []string{"accounts"}, where: []bool{false}, writes: true}},
		{"quoted identifier keeps case", `DELETE FROM "Accounts" WHERE id = 1`, want{kinds: []string{"DELETE"}, tables: []string{"Accounts"}, where: []bool{true}, writes: true}},
		{"schema qualified", "UPDATE billing.invoices SET paid = true", want{kinds: []string{"UPDATE"}, tables: []string{"billing.invoices"}, where: []bool{false}, writes: true}},
		{"where true is unbounded", "DELETE FROM t WHERE true", want{kinds: []string{"DELETE"}, tables: []string{"t"}, where: []bool{false}, writes: true}},
		{"where 1=1 is unbounded", "DELETE FROM t WHERE 1 = 1", want{kinds: []string{"DELETE"}, tables: []string{"t"}, where: []bool{false}, writes: true}},
		{"where current of", "DELETE FROM t WHERE CURRENT OF c", want{kinds: []string{"DELETE"}, tables: []string{"t"}, where: []bool{true}, writes: true}},
		{"comment inside keyword position", "DEL/**/ETE FROM t", want{kinds: []string{"UNKNOWN"}, writes: true, ddl: true, dynamic: true, dangerous: true, unknown: true}},
		{"comments around", "/* hi */ DELETE /* x */ FROM t -- bye", want{kinds: []string{"DELETE"}, tables: []string{"t"}, where: []bool{false}, writes: true}},
		{"multi statement", "SELECT 1; DROP TABLE t", want{kinds: []string{"SELECT", "DROP"}, tables: nil, ddl: true, object: ""}},
		{"drop object", "DROP TABLE t, u", want{kinds: []string{"DROP"}, ddl: true, object: "TABLE"}},
		{"delete in CTE", "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
			want{kinds: []string{"SELECT", "DELETE"}, tables: []string{"t"}, where: []bool{false, false}, writes: true}},
		{"CTE shadowing a table is not a table", "WITH secrets AS (SELECT 1) SELECT * FROM secrets", want{kinds: []string{"SELECT"}}},
		{"non-recursive CTE body sees the real table", "WITH secrets AS (SELECT * FROM secrets) SELECT * FROM secrets",
			want{kinds: []string{"SELECT"}, tables: []string{"secrets"}}},
		{"DO block", "DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$", want{kinds: []string{"DO"}, writes: true, ddl: true, dynamic: true, dangerous: true}},
		{"prepare delete", "PREPARE p AS DELETE FROM t", want{kinds: []string{"PREPARE", "DELETE"}, tables: []string{"t"}, writes: true}},
		{"explain analyze runs", "EXPLAIN ANALYZE DELETE FROM t", want{kinds: []string{"EXPLAIN", "DELETE"}, tables: []string{"t"}, writes: true}},
		{"explain (analyze false)", "EXPLAIN (ANALYZE false) SELECT * FROM t", want{kinds: []string{"EXPLAIN"}, tables: []string{"t"}}},
		{"copy program", "COPY t TO PROGRAM 'rm -rf /'", want{kinds: []string{"COPY"}, tables: []string{"t"}, dangerous: true}},
		{"copy from stdin writes", "COPY t FROM STDIN", want{kinds: []string{"COPY"}, tables: []string{"t"}, writes: true}},
		{"copy to stdout reads", "COPY (SELECT * FROM t) TO STDOUT", want{kinds: []string{"COPY"}, tables: []string{"t"}}},
		{"copy of a delete", "COPY (DELETE FROM t RETURNING *) TO STDOUT", want{kinds: []string{"COPY", "DELETE"}, tables: []string{"t"}, writes: true}},
		{"dangerous function", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
			want{kinds: []string{"SELECT"}, tables: []string{"pg_stat_activity"}, dangerous: true}},
		{"qualified quoted function", `SELECT pg_catalog."pg_read_file"('/etc/passwd')`, want{kinds: []string{"SELECT"}, dangerous: true}},
		{"function in FROM", "SELECT * FROM lo_import('/etc/passwd')", want{kinds: []string{"SELECT"}, dangerous: true}},
		{"dblink is dynamic", "SELECT dblink_exec('dbname=x', 'DROP TABLE t')", want{kinds: []string{"SELECT"}, writes: true, ddl: true, dynamic: true, dangerous: true}},
		{"grant", "GRANT ALL ON t TO bob", want{kinds: []string{"GRANT"}, ddl: true, object: "TABLE"}},
		{"revoke role", "REVOKE admin FROM bob", want{kinds: []string{"REVOKE"}, ddl: true, object: "ROLE"}},
		{"create role", "CREATE ROLE x SUPERUSER", want{kinds: []string{"CREATE"}, ddl: true, object: "ROLE"}},
		{"alter system", "ALTER SYSTEM SET fsync = off", want{kinds: []string{"ALTER"}, ddl: true, object: "SYSTEM"}},
		{"truncate", "TRUNCATE t", want{kinds: []string{"TRUNCATE"}, tables: []string{"t"}, writes: true}},
		{"select into", "SELECT * INTO copy FROM t", want{kinds: []string{"CREATE"}, tables: []string{"copy", "t"}, writes: true, ddl: true, object: "TABLE"}},
		{"untrusted language", "CREATE FUNCTION f() RETURNS int LANGUAGE plpython3u AS 'return 1'", want{kinds: []string{"CREATE"}, ddl: true, dangerous: true, object: "FUNCTION"}},
		{"set", "SET search_path = public", want{kinds: []string{"SET"}}},
		{"begin", "BEGIN", want{kinds: []string{"TRANSACTION"}}},
		{"listen", "LISTEN x", want{kinds: []string{"LISTEN"}}},
		{"unparsable", "SELEC 1", want{kinds: []string{"UNKNOWN"}, writes: true, ddl: true, dynamic: true, dangerous: true, unknown: true}},
		{"empty", " ; ", want{}},
		{"merge", "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", want{kinds: []string{"MERGE"}, tables: []string{"t", "s"}, where: []bool{true}, writes: true}},
		{"unicode escape identifier", `DELETE FROM U&"\0061ccounts"`, want{kinds: []string{"DELETE"}, tables: []string{"accounts"}, where: []bool{false}, writes: true}},
		{"load", "LOAD 'plpgsql'", want{kinds: []string{"LOAD"}, dangerous: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Postgres(tc.sql)
			var kinds []string
			var where []bool
			for _, s := range r.Statements {
				kinds = append(kinds, s.Kind)
				where = append(where, s.HasWhere)
			}
			w := tc.want
			if !slices.Equal(kinds, w.kinds) {
				t.Errorf("kinds = %v, want %v", kinds, w.kinds)
			}
			if w.tables != nil && !slices.Equal(r.Tables, w.tables) {
				t.Errorf("tables = %v, want %v", r.Tables, w.tables)
			}
			if w.where != nil && !slices.Equal(where, w.where) {
				t.Errorf("has_where = %v, want %v", where, w.where)
			}
			got := [5]bool{r.Writes, r.DDL, r.Dynamic, r.Dangerous, r.Unknown}
			exp := [5]bool{w.writes, w.ddl, w.dynamic, w.dangerous, w.unknown}
			if got != exp {
				t.Errorf("writes,ddl,dynamic,dangerous,unknown = %v, want %v", got, exp)
			}
			if w.object != "" && r.Statements[0].Object != w.object {
				t.Errorf("object = %q, want %q", r.Statements[0].Object, w.object)
			}
		})
	}
}

func TestPreparedResolve(t *testing.T) {
	p := Prepared{}
	p.Update(Postgres("PREPARE wipe AS DELETE FROM t"))
	r := p.Resolve(Postgres("EXECUTE wipe"))
	if !r.Writes || len(r.Statements) != 2 || r.Statements[1].Kind != KindDelete || r.Statements[1].HasWhere {
		t.Fatalf("EXECUTE wipe = %+v, want the prepared DELETE nested", r.Statements)
	}
	if r := p.Resolve(Postgres("EXECUTE other")); !r.Dynamic {
		t.Errorf("EXECUTE of an unknown statement should be dynamic: %+v", r)
	}
	shared := Postgres("EXECUTE other")
	p.Resolve(shared)
	if shared.Dynamic {
		t.Error("Resolve modified its input")
	}
	p.Update(Postgres("DEALLOCATE wipe"))
	if r := p.Resolve(Postgres("EXECUTE wipe")); !r.Dynamic {
		t.Error("a deallocated statement is still known")
	}
}

func TestCacheKey(t *testing.T) {
	cases := []struct {
		text string
		key  string // "" means the text is its own key
	}{
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 12345;", "\x00SELECT abalance FROM pgbench_accounts WHERE aid = 0;"},
		{"SELECT * FROM t WHERE a = 'x''y' AND b IN (1, 2.5, 3e10)", "\x00SELECT * FROM t WHERE a = '' AND b IN (0, 0, 0)"},
		{"SELECT t1.a FROM t1", ""},
		{"SELECT E'\\x'", ""},
		{"SELECT 1 -- it's", ""},
		{"SELECT /* ' */ 1", ""},
		{`SELECT "a'b" FROM t WHERE x = '1'`, ""},
		{"SELECT $1", ""},
		{"SELECT $$'$$", ""},
		{"SELECT 0x1F", ""},
		{"SELECT 'unterminated", ""},
		{"SELECT x'1F'", ""},
	}
	for _, tc := range cases {
		key, ok := cacheKey(nil, tc.text)
		if tc.key == "" {
			if ok {
				t.Errorf("cacheKey(%q) = %q, want the text itself", tc.text, key)
			}
			continue
		}
		if !ok || string(key) != tc.key {
			t.Errorf("cacheKey(%q) = %q, %v; want %q", tc.text, key, ok, tc.key)
		}
	}
}

func TestClassifierCaches(t *testing.T) {
	c := NewClassifier(100)
	a := c.Classify("SELECT * FROM t WHERE id = 1", false)
	b := c.Classify("SELECT * FROM t WHERE id = 2", false)
	if a != b || c.Len() != 1 {
		t.Fatalf("texts differing in a literal should share one entry (len %d)", c.Len())
	}
	if r := c.Classify("SELECT 'a\\'; DROP TABLE t; --'", true); !r.Unknown {
		t.Error("a backslash with standard_conforming_strings off should be UNKNOWN")
	}
	for i := range 300 {
		c.Classify("SELECT c"+strings.Repeat("x", i)+" FROM t", false)
	}
	if c.Len() > 100 {
		t.Errorf("cache holds %d entries, over its bound of 100", c.Len())
	}
}

// FuzzClassify checks that classification never panics, that the cache
// returns what a fresh parse returns, and that the cache key never merges
// texts whose classifications differ: a text with literals rewritten must
// classify exactly like the original.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{"SELECT 1", "DELETE FROM t WHERE id = 'x'", "WITH d AS (DELETE FROM t) SELECT 1",
		"SELECT 'a' || 'b' FROM t WHERE c IN (1, 2.5e3)", "DO $$ BEGIN END $$", "SELECT \"x\" -- c", "PREPARE p AS SELECT 1"} {
		f.Add(s)
	}
	c := NewClassifier(1000)
	f.Fuzz(func(t *testing.T, text string) {
		if strings.IndexByte(text, 0) >= 0 {
			return
		}
		fresh := Postgres(text)
		cached := c.Classify(text, false)
		if !sameClass(fresh, cached) {
			t.Fatalf("cached classification differs for %q:\n%+v\n%+v", text, fresh, cached)
		}
		key, ok := cacheKey(nil, text)
		if !ok {
			return
		}
		if rewritten := Postgres(string(key[1:])); !sameClass(fresh, rewritten) {
			t.Fatalf("key %q merges a text classified differently:\n%q: %+v\nkey: %+v", key, text, fresh, rewritten)
		}
	})
}

func sameClass(a, b *Result) bool {
	x, y := *a, *b
	x.Error, y.Error = "", ""
	return reflect.DeepEqual(x, y)
}

func BenchmarkClassify(b *testing.B) {
	const q = "SELECT abalance FROM pgbench_accounts WHERE aid = 12345"
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Postgres(q)
		}
	})
	b.Run("cached", func(b *testing.B) {
		c := NewClassifier(1000)
		c.Classify(q, false)
		b.ReportAllocs()
		for b.Loop() {
			c.Classify(q, false)
		}
	})
}

func TestPreparedInOneText(t *testing.T) {
	p := Prepared{}
	r := p.Resolve(Postgres("PREPARE a AS SELECT 1; EXECUTE a"))
	if r.Dynamic || len(r.Statements) != 4 || r.Statements[3].Kind != KindSelect {
		t.Errorf("EXECUTE of a statement prepared earlier in the text: %+v", r.Statements)
	}
	if r := p.Resolve(Postgres("PREPARE b AS DELETE FROM t; EXECUTE b")); !r.Writes {
		t.Errorf("the prepared DELETE was not seen: %+v", r.Statements)
	}
	if r := p.Resolve(Postgres("PREPARE c AS SELECT 1; DEALLOCATE c; EXECUTE c")); !r.Dynamic {
		t.Errorf("EXECUTE after DEALLOCATE in the same text should be unknown: %+v", r.Statements)
	}
	if len(p) != 0 {
		t.Errorf("Resolve changed the session's statements: %v", p)
	}
}

func TestFunctionsAnywhere(t *testing.T) {
	for _, sql := range []string{
		"SELECT 1 ORDER BY pg_read_file('/etc/passwd')",
		"SELECT 1 GROUP BY pg_read_file('/etc/passwd')",
		"SELECT pg_read_file('/etc/passwd')::text",
		"SELECT CAST(pg_read_file('/etc/passwd') AS text)",
		"SELECT ARRAY[pg_read_file('/etc/passwd')]",
		"SELECT 1 WHERE 'a' = ANY(ARRAY[pg_read_file('x')])",
		"INSERT INTO t VALUES (pg_read_file('x'))",
		"SELECT count(*) FILTER (WHERE pg_read_file('x') IS NULL) FROM t",
		"SELECT * FROM t JOIN u ON pg_read_file('x') IS NULL",
		"SELECT 1 HAVING pg_read_file('x') IS NULL",
		"VALUES (pg_read_file('x'))",
		"SELECT row_number() OVER (ORDER BY pg_read_file('x'))",
	} {
		if r := Postgres(sql); !r.Dangerous {
			t.Errorf("%s: the dangerous call was not seen: %+v", sql, r.Statements)
		}
	}
}
