// Package store persists Gatehouse's state behind one interface with two
// backends: SQLite (pure Go, the embedded default) and PostgreSQL (for
// several gateway nodes). Both run the same embedded migrations and the same
// test suite (package storetest). Secrets arrive here already sealed or
// hashed; the store never sees a plaintext credential or token.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/resource"
)

// ErrNotFound is wrapped by every lookup that finds nothing.
var ErrNotFound = errors.New("not found")

// ErrConflict is wrapped when a create collides with an existing record.
var ErrConflict = errors.New("already exists")

// ConnectionRecord is a connection as stored: the declarative spec without
// any inline secret, plus the sealed inline credential when there is one.
type ConnectionRecord struct {
	// Connection.Password is empty here; the credential lives in
	// Credential (its source and reference) and Sealed.
	resource.Connection
	Credential resource.Credential // Inline is always empty in a record
	Sealed     []byte              // AES-GCM ciphertext of an inline credential
}

// Token is an API token as stored: only the hash of its secret.
type Token struct {
	ID          string
	Identity    string
	Role        resource.Role
	SecretHash  []byte
	Description string
	CreatedAt   time.Time
	ExpiresAt   time.Time // zero: never expires
	RevokedAt   time.Time // zero: not revoked
}

// PolicyGenerationKey is the Meta key that changes whenever a policy is
// written or deleted; gateways poll it to reload policies.
const PolicyGenerationKey = "policy.generation"

// Store is the persistence interface shared by every backend.
type Store interface {
	// Tx runs fn in one transaction: everything fn writes through the
	// Store it is given lands together, or nothing does.
	Tx(ctx context.Context, fn func(Store) error) error

	PutIdentity(ctx context.Context, id resource.Identity) (created bool, err error)
	GetIdentity(ctx context.Context, name string) (resource.Identity, error)
	ListIdentities(ctx context.Context) ([]resource.Identity, error)
	DeleteIdentity(ctx context.Context, name string) error

	PutConnection(ctx context.Context, c ConnectionRecord) (created bool, err error)
	GetConnection(ctx context.Context, name string) (ConnectionRecord, error)
	ListConnections(ctx context.Context) ([]ConnectionRecord, error)
	DeleteConnection(ctx context.Context, name string) error

	// Policies are stored as applied; PutPolicy bumps the policy
	// generation (Meta key PolicyGenerationKey) in the same transaction
	// when called inside Tx, so every node sees a change.
	PutPolicy(ctx context.Context, p resource.Policy) (created bool, err error)
	GetPolicy(ctx context.Context, name string) (resource.Policy, error)
	ListPolicies(ctx context.Context) ([]resource.Policy, error)
	DeletePolicy(ctx context.Context, name string) error

	CreateToken(ctx context.Context, t Token) error
	GetToken(ctx context.Context, id string) (Token, error)
	// ListTokens lists the tokens of one identity, or all when identity is "".
	ListTokens(ctx context.Context, identity string) ([]Token, error)
	RevokeToken(ctx context.Context, id string, at time.Time) error

	// GetMeta returns ErrNotFound for a key never set.
	GetMeta(ctx context.Context, key string) (string, error)
	SetMeta(ctx context.Context, key, value string) error

	// Backend names the backend ("sqlite" or "postgres") for logs.
	Backend() string
	Close() error
}
