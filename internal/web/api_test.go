package web

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/gate"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/review"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

type fixture struct {
	api                                  *API
	srv                                  *httptest.Server
	store                                store.Store
	admin, user, expired, revoked, other string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, _, err := secret.LoadOrCreateMasterKeyFile(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: st}
	identity.Bootstrap(ctx, st, time.Now(), func(tok string) error { f.admin = tok; return nil })
	st.PutIdentity(ctx, resource.Identity{Name: "alice", Type: resource.IdentityUser, Groups: []string{"dba"}})
	st.PutIdentity(ctx, resource.Identity{Name: "bob", Type: resource.IdentityUser})
	mint := func(who string, role resource.Role, ttl time.Duration, at time.Time) (string, store.Token) {
		tok, rec, err := identity.NewToken(who, role, ttl, "", at)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.CreateToken(ctx, rec); err != nil {
			t.Fatal(err)
		}
		return tok, rec
	}
	f.user, _ = mint("alice", resource.RoleUser, time.Hour, time.Now())
	f.other, _ = mint("bob", resource.RoleUser, time.Hour, time.Now())
	f.expired, _ = mint("alice", resource.RoleAdmin, time.Minute, time.Now().Add(-time.Hour))
	var rec store.Token
	f.revoked, rec = mint("alice", resource.RoleAdmin, 0, time.Now())
	st.RevokeToken(ctx, rec.ID, time.Now())
	g := &gate.Gate{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	g.Reviews = &review.Service{Store: st}
	f.api = &API{Reviews: g.Reviews, Federator: &identity.Federator{Store: st}, RequestAccess: g.RequestAccess, Store: st, Auth: &identity.Authenticator{Store: st}, Key: key, Version: "test",
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Access: func(id resource.Identity, c resource.Connection) bool { return g.Access(id, c).Action == gate.Allow },
		PoliciesChanged: func(ctx context.Context) error {
			set, err := policy.Load(ctx, st)
			if err == nil {
				g.SetPolicies(set)
			}
			return err
		}}
	f.srv = httptest.NewServer(f.api.Handler())
	t.Cleanup(f.srv.Close)
	return f
}

// call sends a request and returns the status and decoded body.
func (f *fixture) call(t *testing.T, method, path, token, body string) (int, map[string]any, string) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	json.Unmarshal(raw, &m)
	return resp.StatusCode, m, string(raw)
}

func errorMessage(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

// wantRoles is the independent statement of who may call what: a route
// missing here, or registered with another role, fails the test.
var wantRoles = map[string]resource.Role{
	"GET /api/v1/whoami":                resource.RoleUser,
	"POST /api/v1/apply":                resource.RoleAdmin,
	"GET /api/v1/connections":           resource.RoleUser,
	"GET /api/v1/connections/{name}":    resource.RoleUser,
	"DELETE /api/v1/connections/{name}": resource.RoleAdmin,
	"GET /api/v1/policies":              resource.RoleAdmin,
	"GET /api/v1/policies/{name}":       resource.RoleAdmin,
	"DELETE /api/v1/policies/{name}":    resource.RoleAdmin,
	"GET /api/v1/audit/verify":          resource.RoleAdmin,
	"GET /api/v1/audit/export":          resource.RoleAdmin,
	"GET /api/v1/audit/events":          resource.RoleAdmin,
	"GET /api/v1/audit/proof":           resource.RoleAdmin,
	"GET /api/v1/audit/key":             resource.RoleUser,
	"GET /api/v1/sessions":              resource.RoleAdmin,
	"GET /api/v1/sessions/{id}":         resource.RoleAdmin,
	"GET /api/v1/identities":            resource.RoleAdmin,
	"GET /api/v1/identities/{name}":     resource.RoleAdmin,
	"DELETE /api/v1/identities/{name}":  resource.RoleAdmin,
	"GET /api/v1/groups":                resource.RoleAdmin,
	"POST /api/v1/tokens":               resource.RoleUser,
	"GET /api/v1/tokens":                resource.RoleUser,
	"DELETE /api/v1/tokens/{id}":        resource.RoleUser,
	"POST /api/v1/auth/logout":          resource.RoleUser,
	// Reviews check who may see and decide each review themselves
	// (TestReviewsAuthorization).
	"GET /api/v1/reviews":               resource.RoleUser,
	"POST /api/v1/reviews":              resource.RoleUser,
	"GET /api/v1/reviews/{id}":          resource.RoleUser,
	"POST /api/v1/reviews/{id}/approve": resource.RoleUser,
	"POST /api/v1/reviews/{id}/deny":    resource.RoleUser,
	"POST /api/v1/reviews/{id}/cancel":  resource.RoleUser,
}

// wantPublic lists the routes that take no token: the ways to get one.
// Each refuses with 401 naming the cause (internal/identity's tests).
var wantPublic = []string{
	"GET /api/v1/auth/config",
	"POST /api/v1/auth/oidc/start",
	"POST /api/v1/auth/oidc/finish",
	"POST /api/v1/auth/oidc/device",
	"POST /api/v1/auth/oidc/device/poll",
	"POST /api/v1/auth/refresh",
	"POST /api/v1/auth/federate",
}

func TestPublicRoutesAreOnlyTheSignOnRoutes(t *testing.T) {
	f := newFixture(t)
	var got []string
	for _, rt := range f.api.publicRoutes() {
		got = append(got, rt.pattern)
	}
	if !slices.Equal(got, wantPublic) {
		t.Errorf("public routes = %q, want %q", got, wantPublic)
	}
	// Without sign-on configured, the sign-on routes say so.
	status, m, _ := f.call(t, "POST", "/api/v1/auth/oidc/start", "", `{"redirectURI":"http://127.0.0.1:1/cb"}`)
	if status != http.StatusNotImplemented || !strings.Contains(errorMessage(m), "--oidc-issuer") {
		t.Errorf("oidc/start without sign-on = %d %q", status, errorMessage(m))
	}
	// A federated exchange with a token that is not a JWT is refused by name.
	status, m, _ = f.call(t, "POST", "/api/v1/auth/federate", "", `{"token":"not-a-jwt"}`)
	if status != http.StatusUnauthorized || !strings.Contains(errorMessage(m), "not a JWT") {
		t.Errorf("federate garbage = %d %q", status, errorMessage(m))
	}
}

// TestEveryRouteAuthenticates walks the route table, so a route added later
// without authentication or with the wrong role fails here.
func TestEveryRouteAuthenticates(t *testing.T) {
	f := newFixture(t)
	if got, want := len(f.api.routes()), len(wantRoles); got != want {
		t.Errorf("API registers %d routes, wantRoles lists %d: classify every route", got, want)
	}
	for _, rt := range f.api.routes() {
		want, ok := wantRoles[rt.pattern]
		if !ok || want != rt.role {
			t.Errorf("route %s is registered with role %q; wantRoles says %q", rt.pattern, rt.role, want)
		}
		method, path, _ := strings.Cut(rt.pattern, " ")
		path = strings.NewReplacer("{name}", "x", "{id}", "0123456789abcdef").Replace(path)
		t.Run(rt.pattern, func(t *testing.T) {
			for name, tc := range map[string]struct {
				token  string
				status int
				reason string
			}{
				"no token":      {"", 401, "no token was presented"},
				"garbage token": {"nope", 401, "malformed"},
				"expired token": {f.expired, 401, "expired"},
				"revoked token": {f.revoked, 401, "revoked"},
			} {
				status, m, _ := f.call(t, method, path, tc.token, "")
				if status != tc.status || !strings.Contains(errorMessage(m), tc.reason) {
					t.Errorf("%s: %s %s = %d %q; want %d naming %q", name, method, path, status, errorMessage(m), tc.status, tc.reason)
				}
			}
			status, m, _ := f.call(t, method, path, f.user, "")
			if want == resource.RoleAdmin {
				if status != http.StatusForbidden || !strings.Contains(errorMessage(m), "needs the admin role") {
					t.Errorf("user token: %s %s = %d %q; want 403", method, path, status, errorMessage(m))
				}
			} else if status == http.StatusUnauthorized || status == http.StatusForbidden {
				t.Errorf("user token: %s %s = %d; a user route must admit users", method, path, status)
			}
		})
	}
}

func TestHealthzAndMetricsNeedNoToken(t *testing.T) {
	f := newFixture(t)
	if status, m, _ := f.call(t, "GET", "/healthz", "", ""); status != 200 || m["status"] != "ok" || m["store"] != "sqlite" {
		t.Errorf("/healthz = %d %v", status, m)
	}
	f.call(t, "GET", "/api/v1/whoami", "", "")
	status, _, body := f.call(t, "GET", "/metrics", "", "")
	if status != 200 || !strings.Contains(body, `gatehouse_auth_failures_total{reason="no token was presented"} 1`) ||
		!strings.Contains(body, `gatehouse_api_requests_total{code="401",route="GET /api/v1/whoami"} 1`) {
		t.Errorf("/metrics = %d, missing counters:\n%s", status, body)
	}
	if status, _, _ := f.call(t, "GET", "/api/v1/nothing", f.admin, ""); status != 404 {
		t.Errorf("unknown API path = %d, want 404", status)
	}
}

const manifest = `kind: Identity
name: ci-bot
type: service
---
kind: Connection
name: orders-db
type: postgres
address: 127.0.0.1:5432
user: app
password: hunter2-inline
`

func TestApplyAndSecrecy(t *testing.T) {
	f := newFixture(t)
	status, m, raw := f.call(t, "POST", "/api/v1/apply", f.admin, manifest)
	if status != 200 || !strings.Contains(raw, `"action": "created"`) {
		t.Fatalf("apply = %d %s", status, raw)
	}
	if status, _, raw = f.call(t, "POST", "/api/v1/apply", f.admin, manifest); !strings.Contains(raw, `"action": "configured"`) {
		t.Errorf("re-apply = %d %s; want configured", status, raw)
	}
	for _, path := range []string{"/api/v1/connections", "/api/v1/connections/orders-db"} {
		status, _, raw = f.call(t, "GET", path, f.admin, "")
		if status != 200 || strings.Contains(raw, "hunter2") || !strings.Contains(raw, `"credentialSource": "inline"`) {
			t.Errorf("GET %s = %d %s; want the connection without its password", path, status, raw)
		}
	}
	rec, err := f.store.GetConnection(context.Background(), "orders-db")
	if err != nil || len(rec.Sealed) == 0 || strings.Contains(string(rec.Sealed), "hunter2") {
		t.Fatalf("stored record %+v, %v; want a sealed credential", rec, err)
	}
	pw, err := secret.Resolve(rec.Credential, rec.Sealed, f.api.Key, secret.ConnectionAAD("orders-db"))
	if err != nil || pw != "hunter2-inline" {
		t.Errorf("sealed credential resolves to %q, %v", pw, err)
	}
	_ = m

	// Re-applying without a password field keeps the credential;
	// password: "" clears it.
	noPassword := strings.Replace(manifest, "password: hunter2-inline\n", "", 1)
	if status, _, raw := f.call(t, "POST", "/api/v1/apply", f.admin, noPassword); status != 200 {
		t.Fatalf("apply without password = %d %s", status, raw)
	}
	rec, _ = f.store.GetConnection(context.Background(), "orders-db")
	if pw, err := secret.Resolve(rec.Credential, rec.Sealed, f.api.Key, secret.ConnectionAAD("orders-db")); err != nil || pw != "hunter2-inline" {
		t.Errorf("after apply without password the credential is %q, %v; want it kept", pw, err)
	}
	cleared := strings.Replace(manifest, "password: hunter2-inline", `password: ""`, 1)
	f.call(t, "POST", "/api/v1/apply", f.admin, cleared)
	if rec, _ = f.store.GetConnection(context.Background(), "orders-db"); rec.Credential.Source != resource.CredentialNone || len(rec.Sealed) != 0 {
		t.Errorf("password: \"\" left credential %+v", rec.Credential)
	}
}

func TestApplyWritesNothingOnError(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name, body, want string
		status           int
	}{
		{"malformed yaml", "kind: Identity\nname: x\n  bad: indent\n", "line 3", 400},
		{"unknown kind", manifest + "---\nkind: Database\nname: x\n", `line 12: unknown kind "Database"`, 400},
		{"duplicate name", manifest + "---\nkind: Identity\nname: ci-bot\n", `duplicate Identity "ci-bot"`, 400},
		{"invalid second doc", manifest + "---\nkind: Connection\nname: y\ntype: postgres\naddress: nope\n", "host:port", 400},
		{"policy that does not compile", manifest + "---\nkind: Policy\nname: p\nconnections: {names: ['*']}\nrules:\n  - name: r\n    action: block\n    when: command.sql.wrtes\n", `line 18: policy "p" rule "r": when: 1:12: undefined field 'wrtes'`, 400},
		{"policy not a bool", manifest + "---\nkind: Policy\nname: p\nconnections: {names: ['*']}\nrules:\n  - {name: r, action: block, when: identity.name}\n", "want bool", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m, _ := f.call(t, "POST", "/api/v1/apply", f.admin, tt.body)
			if status != tt.status || !strings.Contains(errorMessage(m), tt.want) {
				t.Errorf("apply = %d %q; want %d containing %q", status, errorMessage(m), tt.status, tt.want)
			}
			conns, _ := f.store.ListConnections(context.Background())
			pols, _ := f.store.ListPolicies(context.Background())
			if _, err := f.store.GetIdentity(context.Background(), "ci-bot"); err == nil || len(conns) != 0 || len(pols) != 0 {
				t.Errorf("a failed apply wrote something: %d connections, %d policies", len(conns), len(pols))
			}
		})
	}
	big := strings.Repeat("#", resource.MaxManifestBytes+10)
	if status, m, _ := f.call(t, "POST", "/api/v1/apply", f.admin, big); status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized apply = %d %v; want 413", status, m)
	}
}

func TestConnectionVisibility(t *testing.T) {
	f := newFixture(t)
	f.call(t, "POST", "/api/v1/apply", f.admin, manifest+"---\nkind: Connection\nname: dba-db\ntype: postgres\naddress: h:5432\n"+`---
kind: Policy
name: access
connections: {names: ["*"]}
rules:
  - name: dba-db-for-dba
    action: block
    when: 'command.type == "connect" && (connection.name == "dba-db") != ("dba" in identity.groups)'
`)
	_, _, raw := f.call(t, "GET", "/api/v1/connections", f.user, "")
	if !strings.Contains(raw, "dba-db") || strings.Contains(raw, "orders-db") {
		t.Errorf("alice (group dba) lists %s; want only dba-db", raw)
	}
	if status, _, _ := f.call(t, "GET", "/api/v1/connections/orders-db", f.user, ""); status != 404 {
		t.Errorf("alice GET orders-db = %d; want 404 for a connection she may not use", status)
	}
}

func TestTokenRules(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name, token, body string
		status            int
		want              string
	}{
		{"admin for bob", f.admin, `{"identity":"bob","ttl":"1h"}`, 201, ""},
		{"admin never-expiring admin", f.admin, `{"identity":"bob","role":"admin","ttl":"0"}`, 201, ""},
		{"admin for missing identity", f.admin, `{"identity":"nobody"}`, 404, "does not exist"},
		{"bad ttl", f.admin, `{"identity":"bob","ttl":"soon"}`, 400, "ttl"},
		{"bad role", f.admin, `{"identity":"bob","role":"root"}`, 400, "role"},
		{"unknown field", f.admin, `{"identity":"bob","scope":"all"}`, 400, "unknown field"},
		{"user for self", f.user, `{"ttl":"30m"}`, 201, ""},
		{"user for other", f.user, `{"identity":"bob","ttl":"30m"}`, 403, "another identity"},
		{"user admin role", f.user, `{"role":"admin","ttl":"30m"}`, 403, "admin tokens"},
		{"user outliving", f.user, `{"ttl":"48h"}`, 403, "outlive"},
		{"user never-expiring", f.user, `{"ttl":"0"}`, 403, "outlive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, m, raw := f.call(t, "POST", "/api/v1/tokens", tt.token, tt.body)
			if status != tt.status || (tt.want != "" && !strings.Contains(errorMessage(m), tt.want)) {
				t.Fatalf("POST /api/v1/tokens %s = %d %s; want %d %q", tt.body, status, raw, tt.status, tt.want)
			}
			if status == 201 {
				tok, _ := m["token"].(string)
				if _, _, err := identity.ParseToken(tok); err != nil {
					t.Errorf("created token %q does not parse: %v", tok, err)
				}
			}
		})
	}

	// Users see and revoke only their own tokens.
	_, _, raw := f.call(t, "GET", "/api/v1/tokens", f.user, "")
	if strings.Contains(raw, `"identity": "bob"`) || !strings.Contains(raw, `"identity": "alice"`) {
		t.Errorf("alice's token list shows others' tokens: %s", raw)
	}
	if status, _, _ := f.call(t, "GET", "/api/v1/tokens?identity=bob", f.user, ""); status != 403 {
		t.Errorf("alice listing bob's tokens = %d; want 403", status)
	}
	bobToks, _ := f.store.ListTokens(context.Background(), "bob")
	if status, _, _ := f.call(t, "DELETE", "/api/v1/tokens/"+bobToks[0].ID, f.user, ""); status != 404 {
		t.Errorf("alice revoking bob's token = %d; want 404", status)
	}
	id, _, _ := identity.ParseToken(f.other)
	if status, _, raw := f.call(t, "DELETE", "/api/v1/tokens/"+id, f.other, ""); status != 200 || !strings.Contains(raw, `"status": "revoked"`) {
		t.Errorf("bob revoking his own token = %d %s", status, raw)
	}
	if status, m, _ := f.call(t, "GET", "/api/v1/whoami", f.other, ""); status != 401 || !strings.Contains(errorMessage(m), "revoked") {
		t.Errorf("revoked token still works: %d %v", status, m)
	}
}

func TestDeleteRules(t *testing.T) {
	f := newFixture(t)
	f.call(t, "POST", "/api/v1/apply", f.admin, manifest)
	if status, _, _ := f.call(t, "DELETE", "/api/v1/connections/orders-db", f.admin, ""); status != 200 {
		t.Errorf("delete connection = %d", status)
	}
	if status, m, _ := f.call(t, "DELETE", "/api/v1/connections/orders-db", f.admin, ""); status != 404 || !strings.Contains(errorMessage(m), `connection "orders-db": not found`) {
		t.Errorf("second delete = %d %v", status, m)
	}
	if status, m, _ := f.call(t, "DELETE", "/api/v1/identities/admin", f.admin, ""); status != 400 || !strings.Contains(errorMessage(m), "calling token") {
		t.Errorf("self-delete = %d %v; want 400", status, m)
	}
}
