// Package identity authenticates callers. It issues API tokens (256 random
// bits, shown once, stored only as a SHA-256 hash, with role, expiry and
// revocation) and turns a presented token into a Principal. People get
// their tokens by OIDC sign-on (SignOn: the gateway as relying party, code
// flow with PKCE or device flow, groups from the provider), workloads by
// exchanging their platform's JWT (Federator: JWKS discovery and a CEL
// condition over its claims).
package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// Token layout: "gh1_" + 16 hex digits of public id + "_" + 43 base64url
// characters of secret (32 bytes). The id finds the record; the secret is
// checked against its stored hash in constant time. The prefix lets secret
// scanners recognise leaked Gatehouse tokens.
const (
	tokenPrefix = "gh1_"
	idBytes     = 8
	secretBytes = 32
	tokenLen    = len(tokenPrefix) + 2*idBytes + 1 + 43
)

// Reason says why authentication failed; it is safe to show the caller.
type Reason string

// Failure reasons.
const (
	ReasonMissing   Reason = "no token was presented"
	ReasonMalformed Reason = "the token is malformed"
	ReasonUnknown   Reason = "the token is not valid"
	ReasonExpired   Reason = "the token has expired"
	ReasonRevoked   Reason = "the token has been revoked"
	ReasonDisabled  Reason = "the identity is disabled"
)

// AuthError is an authentication failure. Its message names the cause and
// never contains the token.
type AuthError struct{ Reason Reason }

func (e *AuthError) Error() string { return "authentication failed: " + string(e.Reason) }

// Principal is an authenticated caller.
type Principal struct {
	Identity  resource.Identity
	Role      resource.Role
	TokenID   string
	ExpiresAt time.Time
}

// NewToken makes a token for identity. The returned string is shown to the
// user once; only rec is stored. ttl 0 means the token never expires.
func NewToken(identity string, role resource.Role, ttl time.Duration, description string, now time.Time) (token string, rec store.Token, err error) {
	buf := make([]byte, idBytes+secretBytes)
	if _, err := rand.Read(buf); err != nil {
		return "", store.Token{}, fmt.Errorf("generate token: %w", err)
	}
	id := hex.EncodeToString(buf[:idBytes])
	secret := base64.RawURLEncoding.EncodeToString(buf[idBytes:])
	rec = store.Token{
		ID: id, Identity: identity, Role: role, SecretHash: hashSecret(secret),
		Description: description, CreatedAt: now.UTC(),
	}
	if ttl > 0 {
		rec.ExpiresAt = now.Add(ttl).UTC()
	}
	return tokenPrefix + id + "_" + secret, rec, nil
}

// ParseToken splits a token into its id and secret, checking its shape.
func ParseToken(token string) (id, secret string, err error) {
	if len(token) != tokenLen || !strings.HasPrefix(token, tokenPrefix) {
		return "", "", &AuthError{Reason: ReasonMalformed}
	}
	rest := token[len(tokenPrefix):]
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 2*idBytes || len(secret) != 43 {
		return "", "", &AuthError{Reason: ReasonMalformed}
	}
	if _, err := hex.DecodeString(id); err != nil || strings.ToLower(id) != id {
		return "", "", &AuthError{Reason: ReasonMalformed}
	}
	if _, err := base64.RawURLEncoding.DecodeString(secret); err != nil {
		return "", "", &AuthError{Reason: ReasonMalformed}
	}
	return id, secret, nil
}

func hashSecret(secret string) []byte {
	h := sha256.Sum256([]byte("gatehouse token v1\x00" + secret))
	return h[:]
}

// Authenticator checks presented tokens against the store.
type Authenticator struct {
	Store store.Store
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Authenticate returns the principal a token stands for, or an *AuthError
// (or a store error wrapped with context when the store fails).
func (a *Authenticator) Authenticate(ctx context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, &AuthError{Reason: ReasonMissing}
	}
	id, secret, err := ParseToken(token)
	if err != nil {
		return Principal{}, err
	}
	presented := hashSecret(secret)
	rec, err := a.Store.GetToken(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, &AuthError{Reason: ReasonUnknown}
	}
	if err != nil {
		return Principal{}, fmt.Errorf("authenticate: %w", err)
	}
	if subtle.ConstantTimeCompare(presented, rec.SecretHash) != 1 {
		return Principal{}, &AuthError{Reason: ReasonUnknown}
	}
	// Only a caller holding the secret learns why a real token fails.
	now := a.now()
	if !rec.RevokedAt.IsZero() {
		return Principal{}, &AuthError{Reason: ReasonRevoked}
	}
	if !rec.ExpiresAt.IsZero() && !now.Before(rec.ExpiresAt) {
		return Principal{}, &AuthError{Reason: ReasonExpired}
	}
	ident, err := a.Store.GetIdentity(ctx, rec.Identity)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, &AuthError{Reason: ReasonUnknown}
	}
	if err != nil {
		return Principal{}, fmt.Errorf("authenticate: %w", err)
	}
	if ident.Disabled {
		return Principal{}, &AuthError{Reason: ReasonDisabled}
	}
	return Principal{Identity: ident, Role: rec.Role, TokenID: rec.ID, ExpiresAt: rec.ExpiresAt}, nil
}

func (a *Authenticator) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Recheck reports whether a token that authenticated earlier still
// stands: not revoked, not deleted, its identity not disabled or deleted.
// It does not look at expiry: a session opened with a token that expires
// later runs on. The error is an *AuthError naming the cause, or a store
// error.
func (a *Authenticator) Recheck(ctx context.Context, tokenID string) error {
	rec, err := a.Store.GetToken(ctx, tokenID)
	if errors.Is(err, store.ErrNotFound) {
		return &AuthError{Reason: ReasonUnknown}
	}
	if err != nil {
		return fmt.Errorf("recheck token: %w", err)
	}
	if !rec.RevokedAt.IsZero() {
		return &AuthError{Reason: ReasonRevoked}
	}
	ident, err := a.Store.GetIdentity(ctx, rec.Identity)
	if errors.Is(err, store.ErrNotFound) {
		return &AuthError{Reason: ReasonUnknown}
	}
	if err != nil {
		return fmt.Errorf("recheck token: %w", err)
	}
	if ident.Disabled {
		return &AuthError{Reason: ReasonDisabled}
	}
	return nil
}

// Fallen says why a token that authenticated a live session no longer
// stands ("the token has been revoked", "the identity is disabled"), or
// "" when it stands or the store cannot tell now (which ends nothing).
func (a *Authenticator) Fallen(ctx context.Context, tokenID string) string {
	var ae *AuthError
	if err := a.Recheck(ctx, tokenID); errors.As(err, &ae) {
		return string(ae.Reason)
	}
	return ""
}
