package gate

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
)

type memAudit struct{ events []audit.Event }

func (m *memAudit) Append(e audit.Event) uint64 {
	m.events = append(m.events, e)
	return uint64(len(m.events))
}

func setPolicies(t *testing.T, g *Gate, manifest string) {
	t.Helper()
	docs, err := resource.Decode([]byte(manifest))
	if err != nil {
		t.Fatal(err)
	}
	var cs []*policy.Compiled
	for _, d := range docs {
		c, err := policy.Compile(*d.Policy)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	g.SetPolicies(policy.NewSet(g.Policies().Generation+1, cs))
}

const accessPolicy = `
kind: Policy
name: access
connections: {names: ["db"]}
rules:
  - name: dba-and-bot
    action: allow
    when: command.type == "connect" && ("dba" in identity.groups || identity.name == "bot")
  - name: no-drop
    action: block
    when: command.sql.statements.exists(s, s.kind == "DROP")
    message: no dropping
`

func TestConnectFollowsAccessRules(t *testing.T) {
	conn := resource.Connection{Name: "db", DefaultAction: resource.ActionBlock}
	tests := []struct {
		name string
		id   resource.Identity
		want Action
	}{
		{"group member", resource.Identity{Name: "alice", Groups: []string{"dba"}}, Allow},
		{"named identity", resource.Identity{Name: "bot"}, Allow},
		{"stranger", resource.Identity{Name: "eve", Groups: []string{"web"}}, Block},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &memAudit{}
			g := &Gate{Audit: a}
			setPolicies(t, g, accessPolicy)
			s := &Session{ID: "s1", Identity: tt.id, Connection: conn, Protocol: "postgres"}
			d := g.Connect(s)
			if d.Action != tt.want {
				t.Fatalf("Connect = %+v, want %s", d, tt.want)
			}
			if len(a.events) != 1 || a.events[0].Type != audit.TypeSessionOpen || a.events[0].Decision != string(tt.want) || a.events[0].Identity != tt.id.Name {
				t.Errorf("audit events %+v", a.events)
			}
			if tt.want == Block && d.Message == "" {
				t.Error("a refusal carries no message")
			}
		})
	}
}

func TestDecide(t *testing.T) {
	g := &Gate{Audit: &memAudit{}}
	s := &Session{ID: "s1", Identity: resource.Identity{Name: "alice", Groups: []string{"dba"}},
		Connection: resource.Connection{Name: "db", DefaultAction: resource.ActionAllow}}
	g.Connect(s)
	decide := func(sql string) Decision { return g.Decide(s, &Command{Type: CommandQuery, Text: sql}) }
	if d := decide("DROP TABLE t"); d.Action != Allow {
		t.Fatalf("no policy yet: %+v", d)
	}
	setPolicies(t, g, accessPolicy)
	if d := decide("DROP TABLE t"); d.Action != Block || d.Rule != "access/no-drop" || d.Message != "no dropping" {
		t.Fatalf("a new policy set is not picked up: %+v", d)
	}
	// A cached decision and a prepared statement run through EXECUTE.
	if d := decide("DROP TABLE u"); d.Action != Block {
		t.Fatalf("second DROP: %+v", d)
	}
	if d := decide("SELECT 1"); d.Action != Allow {
		t.Fatalf("SELECT: %+v", d)
	}
	if d := decide("PREPARE p AS SELECT 1"); d.Action != Allow {
		t.Fatalf("PREPARE: %+v", d)
	}
	if d := decide("EXECUTE p"); d.Action != Allow {
		t.Fatalf("EXECUTE of an allowed statement: %+v", d)
	}
	setPolicies(t, g, accessPolicy+"  - {name: no-dynamic, action: block, when: command.sql.dynamic}\n")
	if d := decide("EXECUTE nothing"); d.Action != Block || d.Rule != "access/no-dynamic" {
		t.Fatalf("EXECUTE of an unknown statement: %+v", d)
	}
}

// TestDoneRecordsResult: a failed command's result is an audit event; a
// successful one's is only in the recording.
func TestDoneRecordsResult(t *testing.T) {
	a := &memAudit{}
	g := &Gate{Audit: a}
	s := &Session{ID: "s1", Identity: resource.Identity{Name: "alice"}, Connection: resource.Connection{Name: "db", DefaultAction: resource.ActionAllow}}
	ok := g.Decide(s, &Command{Type: CommandQuery, Text: "SELECT 1"})
	g.Done(s, ok, Result{Rows: 1})
	d := g.Decide(s, &Command{Type: CommandQuery, Text: "SELECT 1/0"})
	g.Done(s, d, Result{SQLState: "22012", Error: "division by zero"})
	g.Close(s, "client terminated the session")
	if len(a.events) != 4 || a.events[1].Type != audit.TypeCommand || a.events[1].Command != "SELECT 1/0" || d.Event != 2 ||
		a.events[2].Type != audit.TypeResult || a.events[2].Ref != 2 || a.events[2].SQLState != "22012" || a.events[3].Type != audit.TypeSessionClose {
		t.Errorf("events %+v", a.events)
	}
}

// BenchmarkDecide measures what the engine pays per statement: classify,
// resolve, evaluate the postgres-production preset plus rules. "cached" is
// a repeated statement shape (literals differ), "uncached" a new shape each
// time.
func BenchmarkDecide(b *testing.B) {
	g := &Gate{Audit: &memAudit{}}
	docs, err := resource.Decode([]byte(accessPolicy + "---\nkind: Policy\nname: prod\nconnections: {names: [db]}\npresets: [postgres-production]\nrules:\n  - {name: bots-read-only, action: block, when: 'identity.kind == \"service\" && command.sql.writes'}\n"))
	if err != nil {
		b.Fatal(err)
	}
	var cs []*policy.Compiled
	for _, d := range docs {
		c, err := policy.Compile(*d.Policy)
		if err != nil {
			b.Fatal(err)
		}
		cs = append(cs, c)
	}
	g.SetPolicies(policy.NewSet(1, cs))
	s := &Session{ID: "s", Identity: resource.Identity{Name: "alice", Type: resource.IdentityUser, Groups: []string{"dba"}},
		Connection: resource.Connection{Name: "db", DefaultAction: resource.ActionAllow}}
	g.Connect(s)
	texts := make([]string, 1024)
	for i := range texts {
		texts[i] = fmt.Sprintf("SELECT abalance FROM pgbench_accounts WHERE aid = %d", i*7919)
	}
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if d := g.Decide(s, &Command{Type: CommandQuery, Text: texts[i%len(texts)]}); d.Action != Allow {
				b.Fatal(d)
			}
			i++
		}
	})
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			// A new column alias is a new shape: parsed and evaluated.
			text := fmt.Sprintf("SELECT abalance AS a%d FROM pgbench_accounts WHERE aid = 1", i)
			if d := g.Decide(s, &Command{Type: CommandQuery, Text: text}); d.Action != Allow {
				b.Fatal(d)
			}
			i++
		}
	})
}

// TestEndRevoked: sessions whose token fell are ended with the reason,
// each token is checked once, and closed or standing sessions are left.
func TestEndRevoked(t *testing.T) {
	g := &Gate{Audit: &memAudit{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ended := map[string]string{}
	open := func(id, token string) *Session {
		s := &Session{ID: id, TokenID: token, Identity: resource.Identity{Name: "alice"},
			Connection: resource.Connection{Name: "db", DefaultAction: resource.ActionAllow}}
		s.End = func(reason string) { ended[id] = reason }
		if d := g.Connect(s); d.Action != Allow {
			t.Fatalf("connect %s: %+v", id, d)
		}
		return s
	}
	open("a1", "revoked")
	open("a2", "revoked")
	open("b", "fine")
	g.Close(open("c", "revoked"), "client disconnected")
	checks := map[string]int{}
	n := g.EndRevoked(context.Background(), func(_ context.Context, tok string) string {
		checks[tok]++
		if tok == "revoked" {
			return "the token has been revoked"
		}
		return ""
	})
	if n != 2 || ended["a1"] != "the token has been revoked" || ended["a2"] == "" || ended["b"] != "" || ended["c"] != "" {
		t.Errorf("ended %d: %v; want a1 and a2 only", n, ended)
	}
	if checks["revoked"] != 1 || checks["fine"] != 1 {
		t.Errorf("checks per token = %v, want one each", checks)
	}
}
