package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// DefaultHumanTokenTTL is how long a token from an OIDC sign-on lives
// unless configured otherwise.
const DefaultHumanTokenTTL = 12 * time.Hour

// Issued is a Gatehouse token handed out by a sign-on or a federated
// exchange. Token is shown to its holder only; Refresh, when set, is an
// opaque handle that /api/v1/auth/refresh uses to renew the sign-on before
// it expires. A renewal omits Token: the holder's token (TokenID) stays
// the same and now lives until ExpiresAt.
type Issued struct {
	Token     string        `json:"token,omitempty"`
	TokenID   string        `json:"tokenId"`
	ExpiresAt time.Time     `json:"expiresAt"`
	Identity  string        `json:"identity"`
	Role      resource.Role `json:"role"`
	Groups    []string      `json:"groups,omitempty"`
	Refresh   string        `json:"refresh,omitempty"`
}

// LoginError is a refused sign-on or exchange; its message names the cause
// and is safe to show the caller (it never holds a token). Detail, for the
// audit log only, says more than an unauthenticated caller should learn
// (which identities trust an issuer, and on what condition).
type LoginError struct{ Reason, Detail string }

func (e *LoginError) Error() string { return e.Reason }

// UnavailableError: an identity provider or token issuer could not be
// reached or answered nonsense; trying again later may work.
type UnavailableError struct{ Reason string }

func (e *UnavailableError) Error() string { return e.Reason }

func refused(format string, args ...any) error {
	return &LoginError{Reason: fmt.Sprintf(format, args...)}
}

// issue stores a new token for identity and records the login.
func issue(ctx context.Context, st store.Store, log func(audit.Event) uint64, id resource.Identity, role resource.Role,
	ttl time.Duration, how, client string, now time.Time) (Issued, error) {
	tok, rec, err := NewToken(id.Name, role, ttl, how, now)
	if err != nil {
		return Issued{}, err
	}
	if err := st.CreateToken(ctx, rec); err != nil {
		return Issued{}, fmt.Errorf("store token: %w", err)
	}
	if log != nil {
		log(audit.Event{Type: audit.TypeLogin, Identity: id.Name, Protocol: "api", Client: client,
			Command: how + "; token " + rec.ID + " until " + rec.ExpiresAt.Format(time.RFC3339), Decision: "allow"})
	}
	return Issued{Token: tok, TokenID: rec.ID, ExpiresAt: rec.ExpiresAt, Identity: id.Name, Role: role, Groups: id.Groups}, nil
}

// loginFailed records a refused sign-on or exchange.
func loginFailed(log func(audit.Event) uint64, who, how, client string, err error) {
	var le *LoginError
	var ae *AuthError
	if log == nil || !(errors.As(err, &le) || errors.As(err, &ae)) {
		return
	}
	msg := err.Error()
	if le != nil && le.Detail != "" {
		msg += " (" + le.Detail + ")"
	}
	log(audit.Event{Type: audit.TypeLoginFailed, Identity: who, Protocol: "api", Client: client, Command: how, Error: msg})
}

// sealer turns small state into opaque, authenticated handles that only
// this gateway's master key opens, so that logins in progress and refresh
// handles need no server-side storage and any node can continue them.
type sealer struct{ key *secret.MasterKey }

func (s sealer) seal(purpose string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	box, err := s.key.Seal(plain, []byte("gatehouse "+purpose))
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(box), nil
}

func (s sealer) open(purpose, handle string, v any) error {
	box, err := base64.RawURLEncoding.DecodeString(handle)
	if err != nil {
		return refused("the %s handle is malformed", purpose)
	}
	plain, err := s.key.Open(box, []byte("gatehouse "+purpose))
	if err != nil {
		return refused("the %s handle is not one this gateway issued", purpose)
	}
	return json.Unmarshal(plain, v)
}
