package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

func TestFederatedExchange(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	ci := testenv.NewJWTIssuer(t)
	other := testenv.NewJWTIssuer(t)
	for _, id := range []resource.Identity{
		{Name: "api-deployer", Type: resource.IdentityService, Groups: []string{"deployers"}, Federation: &resource.Federation{
			Issuer: ci.URL, Audience: "gatehouse", TokenTTL: "15m",
			Condition: `claims.repository == "acme/api" && claims.ref == "refs/heads/main"`}},
		{Name: "web-deployer", Type: resource.IdentityService, Federation: &resource.Federation{
			Issuer: ci.URL, Audience: "gatehouse-web", Condition: `claims.repository == "acme/web"`}},
		{Name: "retired-bot", Type: resource.IdentityService, Disabled: true, Federation: &resource.Federation{
			Issuer: other.URL, Audience: "gatehouse", Condition: `true`}},
	} {
		if err := id.Validate(); err != nil {
			t.Fatal(err)
		}
		if _, err := st.PutIdentity(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	var events []audit.Event
	f := &Federator{Store: st, Audit: func(e audit.Event) uint64 { events = append(events, e); return 0 }}
	main := map[string]any{"sub": "repo:acme/api:ref:refs/heads/main", "aud": "gatehouse", "repository": "acme/api", "ref": "refs/heads/main"}

	t.Run("accepted", func(t *testing.T) {
		out, err := f.Exchange(ctx, ci.Sign(t, main, nil), "", "10.0.0.1:5")
		if err != nil {
			t.Fatal(err)
		}
		if out.Identity != "api-deployer" || out.Role != resource.RoleUser {
			t.Errorf("issued %+v", out)
		}
		if ttl := time.Until(out.ExpiresAt); ttl < 14*time.Minute || ttl > 15*time.Minute {
			t.Errorf("token lives %s, want the identity's 15m", ttl)
		}
		p, err := (&Authenticator{Store: st}).Authenticate(ctx, out.Token)
		if err != nil || p.Identity.Name != "api-deployer" || p.Identity.Groups[0] != "deployers" {
			t.Errorf("the issued token authenticates as %+v, %v", p.Identity, err)
		}
		last := events[len(events)-1]
		if last.Type != audit.TypeLogin || last.Identity != "api-deployer" || !strings.Contains(last.Command, "subject repo:acme/api") {
			t.Errorf("audit event = %+v", last)
		}
		// The audience may be a list.
		multi := copyClaims(main, "aud", []string{"sts.amazonaws.com", "gatehouse"})
		if _, err := f.Exchange(ctx, ci.Sign(t, multi, nil), "", ""); err != nil {
			t.Errorf("audience list holding gatehouse: %v", err)
		}
	})

	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	unknown := testenv.NewJWTIssuer(t)
	for _, tc := range []struct {
		name  string
		token string
		want  string // identity asked for
		err   string // what the caller is told
		audit string // what only the audit log says
	}{
		{"wrong audience", ci.Sign(t, copyClaims(main, "aud", "someone-else"), nil), "", `audience [someone-else] is not one this gateway accepts from issuer ` + ci.URL, `identity api-deployer wants audience "gatehouse"`},
		{"wrong issuer", unknown.Sign(t, main, nil), "", "no identity trusts tokens from issuer " + unknown.URL, ""},
		{"expired", ci.Sign(t, copyClaims(main, "exp", time.Now().Add(-time.Minute).Unix()), nil), "", "the token expired at", ""},
		{"bad signature", ci.Sign(t, main, stranger), "", "signature does not verify", ""},
		{"condition false", ci.Sign(t, copyClaims(main, "ref", "refs/heads/feature"), nil), "", "do not satisfy the federation condition of any identity that trusts issuer " + ci.URL, `condition claims.repository == "acme/api" && claims.ref == "refs/heads/main" is false`},
		{"claim missing", ci.Sign(t, copyClaims(main, "ref", nil), nil), "", "do not satisfy the federation condition", "no such key: ref"},
		{"identity named that does not trust it", ci.Sign(t, main, nil), "web-deployer", "audience [gatehouse] is not one this gateway accepts", "identity web-deployer wants audience"},
		{"identity that trusts another issuer", ci.Sign(t, main, nil), "retired-bot", `identity "retired-bot" does not trust tokens from issuer`, ""},
		{"disabled identity", other.Sign(t, main, nil), "", "the identity is disabled", ""},
		{"not a JWT", "abc.def", "", "not a JWT", ""},
		{"issuer claim missing", ci.Sign(t, copyClaims(main, "iss", nil), nil), "", "no iss (issuer) claim", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(events)
			_, err := f.Exchange(ctx, tc.token, tc.want, "")
			var le *LoginError
			var ae *AuthError
			if err == nil || !(errors.As(err, &le) || errors.As(err, &ae)) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Exchange = %v; want a refusal naming %q", err, tc.err)
			}
			if tc.audit != "" && strings.Contains(err.Error(), tc.audit) {
				t.Errorf("the caller is told %q: that is for the audit log only", tc.audit)
			}
			if len(events) != before+1 || events[before].Type != audit.TypeLoginFailed || !strings.Contains(events[before].Error, tc.audit) {
				t.Errorf("refusal not audited with %q: %+v", tc.audit, events[before:])
			}
		})
	}
}

func TestFederationMatchingSeveralIdentities(t *testing.T) {
	ctx := context.Background()
	st := newStore(t)
	ci := testenv.NewJWTIssuer(t)
	for _, name := range []string{"bot-a", "bot-b"} {
		st.PutIdentity(ctx, resource.Identity{Name: name, Type: resource.IdentityService, Federation: &resource.Federation{
			Issuer: ci.URL, Audience: "gatehouse", Condition: `claims.sub.startsWith("repo:acme/")`}})
	}
	f := &Federator{Store: st}
	tok := ci.Sign(t, map[string]any{"sub": "repo:acme/x", "aud": "gatehouse"}, nil)
	if _, err := f.Exchange(ctx, tok, "", ""); err == nil || !strings.Contains(err.Error(), "matches several identities (bot-a, bot-b): name one with --identity") {
		t.Errorf("ambiguous exchange = %v", err)
	}
	if out, err := f.Exchange(ctx, tok, "bot-b", ""); err != nil || out.Identity != "bot-b" {
		t.Errorf("exchange naming bot-b = %+v, %v", out, err)
	}
}

func TestCompileCondition(t *testing.T) {
	for _, tc := range []struct {
		expr string
		ok   bool
	}{
		{`claims.repository == "acme/api"`, true},
		{`claims["kubernetes.io"].namespace == "ci"`, true},
		{`claims.repository ==`, false},
		{`claims.repository`, true}, // dyn: checked at evaluation
		{`1 + 1`, false},
		{`unknown_var == 1`, false},
	} {
		_, err := CompileCondition(tc.expr)
		if (err == nil) != tc.ok {
			t.Errorf("CompileCondition(%q) = %v, want ok=%v", tc.expr, err, tc.ok)
		}
	}
}

func copyClaims(c map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for key, val := range c {
		out[key] = val
	}
	if v == nil {
		delete(out, k)
		if k == "iss" {
			out["iss"] = ""
		}
	} else {
		out[k] = v
	}
	return out
}

// FuzzExchangeInput: whatever a caller presents as a workload token or a
// sign-on handle is refused with a *LoginError (or, for a token whose
// issuer no identity trusts, the same), never a panic or another error.
func FuzzExchangeInput(f *testing.F) {
	f.Add("eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJodHRwczovL2NpLmV4YW1wbGUifQ.c2ln")
	f.Add("a.b.c")
	f.Add("..")
	f.Add("")
	f.Add("eyJ9.eyJpc3MiOjF9.")
	st := newStore(f)
	key := testMasterKey(f)
	fed := &Federator{Store: st}
	so := sealer{key}
	f.Fuzz(func(t *testing.T, token string) {
		_, err := fed.Exchange(context.Background(), token, "", "")
		var le *LoginError
		if !errors.As(err, &le) {
			t.Fatalf("Exchange(%q) = %v (%T), want a *LoginError", token, err, err)
		}
		var h refreshHandle
		if err := so.open("oidc refresh", token, &h); !errors.As(err, &le) {
			t.Fatalf("open(%q) = %v, want a *LoginError", token, err)
		}
	})
}

func testMasterKey(t testing.TB) *secret.MasterKey {
	t.Helper()
	raw := make([]byte, 32)
	rand.Read(raw)
	k, err := secret.NewMasterKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
