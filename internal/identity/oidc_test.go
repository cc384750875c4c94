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
		testenv.OIDCUser{Username: "ann", Password: "pw", Email: "ann@example.com", Groups: []string{"dba", "Ops Team", "admins"}},
		// Another account to which the provider later gave ann's address.
		testenv.OIDCUser{Username: "ann-new", Password: "pw", Email: "ann@example.com", Groups: []string{"admins"}})
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

	signInAs := func(user string) (Issued, error) {
		t.Helper()
		start, err := so.Start(ctx, "http://"+l.Addr().String()+"/callback")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := op.Browse(ctx, start.AuthURL, user, "pw"); err != nil {
			t.Fatal(err)
		}
		rd := <-got
		if rd.state != start.State {
			t.Fatalf("redirect state %q, want %q", rd.state, start.State)
		}
		return so.Finish(ctx, start.Handle, rd.state, rd.code, "127.0.0.1:1")
	}
	signIn := func() Issued {
		t.Helper()
		out, err := signInAs("ann")
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
	id, _ = st.GetIdentity(ctx, "ann@example.com")
	if strings.Join(id.Groups, ",") != "dev" || id.OIDCSubject != op.Issuer+" user-1" {
		t.Errorf("after the second sign-on: groups %v, bound to %q", id.Groups, id.OIDCSubject)
	}
	// The address now names another account at the provider: refused.
	if _, err := signInAs("ann-new"); err == nil || !strings.Contains(err.Error(), "belongs to another account") {
		t.Errorf("another account with ann's address: %v", err)
	}
	if last := events[len(events)-1]; last.Type != audit.TypeLoginFailed || !strings.Contains(last.Error, "bound to "+op.Issuer+" user-1") {
		t.Errorf("refusal audited as %+v", last)
	}
	events = events[:2]
	if len(events) != 2 || events[0].Type != audit.TypeLogin || !strings.Contains(events[0].Command, "role admin") {
		t.Errorf("audit events: %+v", events)
	}
}
