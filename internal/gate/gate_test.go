package gate

import (
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
)

type memAudit struct{ events []audit.Event }

func (m *memAudit) Append(e audit.Event) { m.events = append(m.events, e) }

func TestConnectFollowsAllowList(t *testing.T) {
	conn := resource.Connection{Name: "db", Allow: resource.AccessList{Groups: []string{"dba"}, Identities: []string{"bot"}}}
	tests := []struct {
		name string
		id   resource.Identity
		want Action
	}{
		{"group member", resource.Identity{Name: "alice", Groups: []string{"dba"}}, Allow},
		{"listed identity", resource.Identity{Name: "bot"}, Allow},
		{"stranger", resource.Identity{Name: "eve", Groups: []string{"web"}}, Block},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &memAudit{}
			g := &Gate{Audit: a}
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

func TestDoneRecordsResult(t *testing.T) {
	a := &memAudit{}
	g := &Gate{Audit: a}
	s := &Session{ID: "s1", Identity: resource.Identity{Name: "alice"}, Connection: resource.Connection{Name: "db"}}
	g.Done(s, &Command{Type: CommandQuery, Text: "SELECT 1/0"}, Decision{Action: Allow}, Result{SQLState: "22012", Error: "division by zero"})
	g.Close(s, "client terminated the session")
	if len(a.events) != 2 || a.events[0].Command != "SELECT 1/0" || a.events[0].SQLState != "22012" || a.events[1].Type != audit.TypeSessionClose {
		t.Errorf("events %+v", a.events)
	}
}
