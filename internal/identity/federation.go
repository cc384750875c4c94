package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// MaxFederatedTokenBytes bounds a presented workload token.
const MaxFederatedTokenBytes = 16 << 10

// conditionCost bounds the work one condition may do per evaluation.
const conditionCost = 10_000

var claimsEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(cel.Variable("claims", cel.MapType(cel.StringType, cel.DynType)))
})

// CompileCondition compiles a federation condition: a CEL expression over
// claims, the external token's claims, that yields a bool.
func CompileCondition(expr string) (cel.Program, error) {
	env, err := claimsEnv()
	if err != nil {
		return nil, err
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("condition %q: %w", expr, iss.Err())
	}
	if ast.OutputType() != cel.BoolType && ast.OutputType() != cel.DynType {
		return nil, fmt.Errorf("condition %q yields %s, not bool", expr, ast.OutputType())
	}
	return env.Program(ast, cel.CostLimit(conditionCost))
}

// Federator exchanges a workload's token from a trusted external issuer
// (a CI job's OIDC token, a Kubernetes service-account token) for a
// short-lived Gatehouse token of the service identity that trusts it.
// Trust is declared on the identity (resource.Federation): issuer,
// audience, and a CEL condition over the token's claims. The token's
// signature is checked against the issuer's keys found by OpenID
// discovery (JWKS), and its expiry, issuer and audience are checked.
type Federator struct {
	Store store.Store
	// Audit records exchanges and refusals (nil: none).
	Audit func(audit.Event) uint64
	// HTTPClient reaches the issuers (nil: http.DefaultClient).
	HTTPClient *http.Client
	// Now is the clock (nil: time.Now).
	Now func() time.Time

	mu        sync.Mutex
	providers map[string]*oidc.Provider // by issuer
	programs  map[string]cel.Program    // by condition text
}

func (f *Federator) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// Exchange verifies a workload token and issues a Gatehouse token for the
// identity it maps to. want names the identity when several trust the
// same issuer ("" when one matches). Refusals are *LoginError with a
// message that names the cause.
func (f *Federator) Exchange(ctx context.Context, token, want, client string) (Issued, error) {
	out, err := f.exchange(ctx, token, want, client)
	if err != nil {
		loginFailed(f.Audit, want, "federated token exchange", client, err)
	}
	return out, err
}

func (f *Federator) exchange(ctx context.Context, token, want, client string) (Issued, error) {
	token = strings.TrimSpace(token)
	if len(token) > MaxFederatedTokenBytes {
		return Issued{}, refused("the token is larger than %d bytes", MaxFederatedTokenBytes)
	}
	iss, err := unverifiedIssuer(token)
	if err != nil {
		return Issued{}, err
	}
	candidates, err := f.trusting(ctx, iss, want)
	if err != nil {
		return Issued{}, err
	}
	p, err := f.provider(ctx, iss)
	if err != nil {
		return Issued{}, err
	}
	// The audience is checked per identity below.
	cfg := &oidc.Config{SkipClientIDCheck: true, Now: f.now}
	idt, err := p.VerifierContext(f.ctx(ctx), cfg).Verify(f.ctx(ctx), token)
	if err != nil {
		return Issued{}, verifyError(err)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return Issued{}, refused("the token's claims cannot be read: %v", err)
	}
	var matched []resource.Identity
	audienceOK := false
	var why []string
	for _, id := range candidates {
		fed := id.Federation
		if !slices.Contains(idt.Audience, fed.Audience) {
			why = append(why, fmt.Sprintf("identity %s wants audience %q", id.Name, fed.Audience))
			continue
		}
		audienceOK = true
		ok, err := f.holds(fed.Condition, claims)
		if err != nil {
			why = append(why, fmt.Sprintf("identity %s: %v", id.Name, err))
			continue
		}
		if !ok {
			why = append(why, fmt.Sprintf("identity %s: condition %s is false for these claims", id.Name, fed.Condition))
			continue
		}
		matched = append(matched, id)
	}
	detail := strings.Join(why, "; ")
	switch {
	case !audienceOK:
		return Issued{}, &LoginError{Reason: fmt.Sprintf("the token's audience %v is not one this gateway accepts from issuer %s", idt.Audience, iss), Detail: detail}
	case len(matched) == 0 && want != "":
		return Issued{}, &LoginError{Reason: fmt.Sprintf("the token's claims do not satisfy the federation condition of identity %s", want), Detail: detail}
	case len(matched) == 0:
		return Issued{}, &LoginError{Reason: fmt.Sprintf("the token's claims do not satisfy the federation condition of any identity that trusts issuer %s", iss), Detail: detail}
	case len(matched) > 1:
		names := make([]string, len(matched))
		for i, id := range matched {
			names[i] = id.Name
		}
		return Issued{}, refused("the token matches several identities (%s): name one with --identity", strings.Join(names, ", "))
	}
	id := matched[0]
	how := fmt.Sprintf("federated token exchange (issuer %s, subject %s)", iss, idt.Subject)
	return issue(ctx, f.Store, f.Audit, id, resource.RoleUser, id.Federation.TTL(), how, client, f.now())
}

// trusting lists the enabled identities that trust issuer (only want,
// when set).
func (f *Federator) trusting(ctx context.Context, issuer, want string) ([]resource.Identity, error) {
	ids, err := f.Store.ListIdentities(ctx)
	if err != nil {
		return nil, fmt.Errorf("federation: %w", err)
	}
	var out []resource.Identity
	disabled := false
	for _, id := range ids {
		if id.Federation == nil || id.Federation.Issuer != issuer || (want != "" && id.Name != want) {
			continue
		}
		if id.Disabled {
			disabled = true
			continue
		}
		out = append(out, id)
	}
	switch {
	case len(out) > 0:
		return out, nil
	case disabled:
		return nil, &AuthError{Reason: ReasonDisabled}
	case want != "":
		return nil, refused("identity %q does not trust tokens from issuer %s", want, issuer)
	}
	return nil, refused("no identity trusts tokens from issuer %s", issuer)
}

// holds evaluates a condition; a claim the condition reads that the token
// lacks makes it false, with the reason.
func (f *Federator) holds(condition string, claims map[string]any) (bool, error) {
	f.mu.Lock()
	prg, ok := f.programs[condition]
	f.mu.Unlock()
	if !ok {
		var err error
		if prg, err = CompileCondition(condition); err != nil {
			return false, err
		}
		f.mu.Lock()
		if f.programs == nil {
			f.programs = map[string]cel.Program{}
		}
		f.programs[condition] = prg
		f.mu.Unlock()
	}
	v, _, err := prg.Eval(map[string]any{"claims": claims})
	if err != nil {
		return false, fmt.Errorf("condition %s: %v", condition, err)
	}
	b, ok := v.Value().(bool)
	if !ok {
		return false, fmt.Errorf("condition %s yields %v, not a bool", condition, v.Value())
	}
	return b, nil
}

func (f *Federator) ctx(ctx context.Context) context.Context {
	if f.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, f.HTTPClient)
	}
	return ctx
}

// provider discovers an issuer once; failures are retried next time.
func (f *Federator) provider(ctx context.Context, issuer string) (*oidc.Provider, error) {
	f.mu.Lock()
	p, ok := f.providers[issuer]
	f.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := oidc.NewProvider(f.ctx(context.WithoutCancel(ctx)), issuer)
	if err != nil {
		return nil, &UnavailableError{Reason: fmt.Sprintf("the issuer %s cannot be reached for its keys: %v", issuer, err)}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.providers == nil {
		f.providers = map[string]*oidc.Provider{}
	}
	f.providers[issuer] = p
	return p, nil
}

// unverifiedIssuer reads the iss claim of a JWT without verifying it, to
// pick the keys that will verify it.
func unverifiedIssuer(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", refused("the token is not a JWT (want header.payload.signature)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", refused("the token's payload is not base64url")
	}
	var c struct {
		Iss string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", refused("the token's payload is not a JSON object")
	}
	if c.Iss == "" {
		return "", refused("the token has no iss (issuer) claim")
	}
	return c.Iss, nil
}

// verifyError names why go-oidc refused a token.
func verifyError(err error) error {
	var expired *oidc.TokenExpiredError
	switch msg := err.Error(); {
	case errors.As(err, &expired):
		return refused("the token expired at %s", expired.Expiry.UTC().Format(time.RFC3339))
	case strings.Contains(msg, "failed to verify signature"):
		return refused("the token's signature does not verify with the issuer's published keys")
	case strings.Contains(msg, "id token issued by a different provider"):
		return refused("the token's issuer does not match: %v", err)
	case strings.Contains(msg, "malformed jwt"):
		return refused("the token is not a valid JWT: %v", err)
	default:
		return refused("the token is not valid: %v", err)
	}
}
