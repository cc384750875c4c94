package identity

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

// TestSignOnPublicClient drives SignOn as a public client (PKCE only, no
// secret) against a real OpenID provider: the code lands on a loopback
// listener standing in for the CLI's; the user is created with the
// provider's groups; a second sign-on replaces them.
func TestSignOnPublicClient(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	op, err := testenv.StartOIDCProvider(ctx,
		testenv.OIDCUser{Username: "ann", Password: "pw", Email: "ann@example.com", Groups: []string{"dba", "Ops Team", "admins"}})
	if err != nil {
		t.Fatal(err)
	}
	st := newStore(t)
	var events []audit.Event
	cfg := OIDCConfig{Issuer: op.Issuer, ClientID: op.PublicClientID, AdminGroup: "admins"}
	if err := cfg.CheckAndSetDefaults(); err != nil {
		t.Fatal(err)
	}
	so := &SignOn{Config: cfg, Store: st, Key: testMasterKey(t), Audit: func(e audit.Event) uint64 { events = append(events, e); return 0 }}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	type redirect struct{ code, state string }
	got := make(chan redirect, 1)
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- redirect{r.URL.Query().Get("code"), r.URL.Query().Get("state")}
	}))
	defer l.Close()

	signIn := func() Issued {
		t.Helper()
		start, err := so.Start(ctx, "http://"+l.Addr().String()+"/callback")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := op.Browse(ctx, start.AuthURL, "ann", "pw"); err != nil {
			t.Fatal(err)
		}
		rd := <-got
		if rd.state != start.State {
			t.Fatalf("redirect state %q, want %q", rd.state, start.State)
		}
		out, err := so.Finish(ctx, start.Handle, rd.state, rd.code, "127.0.0.1:1")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	out := signIn()
	// "Ops Team" cannot name a group and is skipped.
	if out.Identity != "ann@example.com" || out.Role != resource.RoleAdmin || strings.Join(out.Groups, ",") != "admins,dba" || out.Refresh == "" {
		t.Errorf("issued %+v", out)
	}
	id, err := st.GetIdentity(ctx, "ann@example.com")
	if err != nil || id.Type != resource.IdentityUser || strings.Join(id.Groups, ",") != "admins,dba" {
		t.Errorf("identity = %+v, %v", id, err)
	}
	op.SetGroups("ann", []string{"dev"})
	if out := signIn(); out.Role != resource.RoleUser || strings.Join(out.Groups, ",") != "dev" {
		t.Errorf("second sign-on: %+v", out)
	}
	if id, _ := st.GetIdentity(ctx, "ann@example.com"); strings.Join(id.Groups, ",") != "dev" {
		t.Errorf("groups after the second sign-on: %v", id.Groups)
	}
	if len(events) != 2 || events[0].Type != audit.TypeLogin || !strings.Contains(events[0].Command, "role admin") {
		t.Errorf("audit events: %+v", events)
	}
}
