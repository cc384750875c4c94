package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/sqlparse"
)

func compile(t testing.TB, manifest string) *Compiled {
	t.Helper()
	docs, err := resource.Decode([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Compile(*docs[0].Policy)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func query(id Identity, sql string) *Input {
	return &Input{Identity: id, Connection: Connection{Name: "orders", Type: "postgres"},
		Command: Command{Type: CommandQuery, Text: sql, SQL: *sqlparse.Postgres(sql)}, Time: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
}

const testPolicy = `
kind: Policy
name: prod
connections: {names: ["orders*"]}
presets: [postgres-production]
rules:
  - name: dba-only
    action: block
    when: command.type == "connect" && !("dba" in identity.groups)
    message: only dba may connect
  - name: bots-read-only
    action: block
    when: identity.kind == "service" && command.sql.writes
  - name: review-payments
    action: review
    when: '"payments" in command.sql.tables'
  - name: allow-reads
    action: allow
    when: command.sql.kinds.all(k, k == "SELECT")
  - name: office-hours
    action: block
    when: command.type == "query" && time.getHours() < 6
`

func TestEvaluate(t *testing.T) {
	c := compile(t, testPolicy)
	set := NewSet(1, []*Compiled{c})
	rules := set.For(resource.Connection{Name: "orders"})
	if len(rules) == 0 || len(set.For(resource.Connection{Name: "billing"})) != 0 {
		t.Fatal("selector: orders must have rules, billing none")
	}
	alice := Identity{Name: "alice", Kind: "user", Groups: []string{"dba"}}
	bot := Identity{Name: "ci", Kind: "service"}
	connect := func(id Identity) *Input {
		return &Input{Identity: id, Connection: Connection{Name: "orders"}, Command: Command{Type: CommandConnect}}
	}
	tests := []struct {
		name string
		in   *Input
		def  resource.RuleAction
		want resource.RuleAction
		rule string
	}{
		{"dba connects", connect(alice), resource.ActionBlock, resource.ActionAllow, "prod/allow-reads"}, // all() over no statements holds
		{"others may not connect", connect(bot), resource.ActionAllow, resource.ActionBlock, "prod/dba-only"},
		{"select allowed by rule", query(alice, "SELECT * FROM t"), resource.ActionBlock, resource.ActionAllow, "prod/allow-reads"},
		{"default decides the rest", query(alice, "INSERT INTO t VALUES (1)"), resource.ActionBlock, resource.ActionBlock, ""},
		{"preset blocks unbounded delete", query(alice, "DELETE FROM t"), resource.ActionAllow, resource.ActionBlock, "prod/postgres-production.unbounded-writes"},
		{"block beats review", query(alice, "DROP TABLE payments"), resource.ActionAllow, resource.ActionBlock, "prod/postgres-production.destructive-ddl"},
		{"review beats allow", query(alice, "SELECT * FROM payments"), resource.ActionAllow, resource.ActionReview, "prod/review-payments"},
		{"bots read only", query(bot, "UPDATE t SET a = 1 WHERE id = 2"), resource.ActionAllow, resource.ActionBlock, "prod/bots-read-only"},
		{"unparsable blocked", query(alice, "SELEC 1"), resource.ActionAllow, resource.ActionBlock, "prod/postgres-production.unparsable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Evaluate(rules, tt.in, tt.def)
			if d.Action != tt.want || d.Rule != tt.rule {
				t.Errorf("decision = %+v, want %s by %q", d, tt.want, tt.rule)
			}
			if d.Action == resource.ActionBlock && d.Message == "" {
				t.Error("a block decision has no message")
			}
		})
	}
	early := query(alice, "SELECT 1")
	early.Time = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	if d := Evaluate(rules, early, resource.ActionAllow); d.Rule != "prod/office-hours" {
		t.Errorf("time condition: decision = %+v", d)
	}
}

func TestVolatile(t *testing.T) {
	for when, want := range map[string]bool{
		`command.sql.writes`:                         false,
		`identity.name == "text"`:                    false,
		`command.text.contains("x")`:                 true,
		`time.getHours() < 6`:                        true,
		`command.sql.statements.exists(s, s.writes)`: false,
	} {
		c := compile(t, "kind: Policy\nname: p\nconnections: {names: ['*']}\nrules:\n  - {name: r, action: block, when: '"+strings.ReplaceAll(when, "'", "''")+"'}\n")
		if c.Rules[0].Volatile != want {
			t.Errorf("%s: volatile = %v, want %v", when, c.Rules[0].Volatile, want)
		}
	}
}

func TestEvaluateFailsClosed(t *testing.T) {
	c := compile(t, `
kind: Policy
name: p
connections: {names: ["*"]}
rules:
  - name: by-label
    action: block
    when: connection.labels["env"] == "prod"
  - name: allow-by-label
    action: allow
    when: connection.labels["team"] == "x"
`)
	in := query(Identity{Name: "a"}, "SELECT 1") // no labels: both conditions fail
	d := Evaluate(c.Rules, in, resource.ActionAllow)
	if d.Action != resource.ActionBlock || !strings.Contains(d.Message, "could not be evaluated") {
		t.Errorf("decision = %+v, want a fail-closed block", d)
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name, when string
		line, col  int
		contains   string
	}{
		{"syntax", `command.type ==`, 1, 16, "Syntax error"},
		{"unknown field", `identity.nme == "x"`, 1, 9, "undefined field 'nme'"},
		{"unknown variable", `user.name == "x"`, 1, 1, "undeclared reference to 'user'"},
		{"not bool", `identity.name`, 1, 1, "want bool"},
		{"type mismatch", `command.sql.writes == "yes"`, 1, 20, "no matching overload"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			manifest := "kind: Policy\nname: p\nconnections: {names: ['*']}\nrules:\n  - name: r\n    action: block\n    when: '" + strings.ReplaceAll(tt.when, "'", "''") + "'\n"
			docs, err := resource.Decode([]byte(manifest))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Compile(*docs[0].Policy)
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("Compile = %v, want a *CompileError", err)
			}
			if ce.Line != 7 || ce.CELLine != tt.line || ce.Column != tt.col || !strings.Contains(ce.Msg, tt.contains) {
				t.Errorf("error = %v (line %d, %d:%d), want line 7, %d:%d containing %q", ce, ce.Line, ce.CELLine, ce.Column, tt.line, tt.col, tt.contains)
			}
		})
	}
	if _, err := Compile(resource.Policy{Name: "p", Connections: resource.Selector{Names: []string{"*"}}, Presets: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), "unknown preset") {
		t.Errorf("unknown preset: %v", err)
	}
}

func TestCostLimit(t *testing.T) {
	c := compile(t, `
kind: Policy
name: p
connections: {names: ["*"]}
rules:
  - name: expensive
    action: allow
    when: command.text.size() > 0 && [1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, a+b+c+d+e > 0)))))
`)
	act := newActivation(query(Identity{}, "SELECT 1"))
	_, err := c.Rules[0].eval(&act)
	if err == nil || !strings.Contains(err.Error(), "cost limit") {
		t.Errorf("eval = %v, want the cost limit to stop it", err)
	}
}

// BenchmarkDecide measures classification plus evaluation of the
// postgres-production preset for a typical statement.
func BenchmarkDecide(b *testing.B) {
	c := compile(b, testPolicy)
	rules := NewSet(1, []*Compiled{c}).For(resource.Connection{Name: "orders"})
	const sql = "SELECT abalance FROM pgbench_accounts WHERE aid = 12345"
	id := Identity{Name: "alice", Kind: "user", Groups: []string{"dba"}}
	run := func(b *testing.B, classify func(string) *sqlparse.Result) {
		b.ReportAllocs()
		for b.Loop() {
			in := Input{Identity: id, Connection: Connection{Name: "orders", Type: "postgres"},
				Command: Command{Type: CommandQuery, Text: sql, SQL: *classify(sql)}, Time: time.Now()}
			if d := Evaluate(rules, &in, resource.ActionAllow); d.Action != resource.ActionAllow {
				b.Fatal(d)
			}
		}
	}
	b.Run("uncached", func(b *testing.B) { run(b, sqlparse.Postgres) })
	cl := sqlparse.NewClassifier(1000)
	b.Run("cached", func(b *testing.B) { run(b, func(s string) *sqlparse.Result { return cl.Classify(s, false) }) })
}
