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

// AuditEvent is one stored audit event: its canonical body as hashed.
type AuditEvent struct {
	Node string
	Seq  uint64
	Body []byte
}

// AuditCheckpoint is a signed checkpoint of a node's audit tree.
type AuditCheckpoint struct {
	Node string
	Size uint64
	Note string // signed note text
	// Frontier is the compact Merkle range of the tree at Size.
	Frontier []byte
}

// RecordingChunk is one closed, compressed chunk of a session recording.
type RecordingChunk struct {
	Session string
	Chunk   uint64 // from 1, in order
	Node    string // the node whose audit chain holds the chunk's hash
	Created time.Time
	Body    []byte
}

// ReviewRecord is a review as stored: its JSON document (owned by package
// review) and the fields lookups filter on. Version increases with every
// update; UpdateReview succeeds only against the version it read.
type ReviewRecord struct {
	ID         string
	Kind       string
	State      string
	Requester  string
	Connection string
	Created    time.Time
	Version    int64
	Body       []byte
}

// ReviewFilter selects reviews; empty fields match everything.
type ReviewFilter struct {
	Kind, Requester, Connection string
	// States match any of the listed states.
	States []string
	// Limit caps the result, newest first (0: no cap).
	Limit int
}

// Store is the persistence interface shared by every backend.
type Store interface {
	// Tx runs fn in one transaction: everything fn writes through the
	// Store it is given lands together, or nothing does.
	Tx(ctx context.Context, fn func(Store) error) error

	PutIdentity(ctx context.Context, id resource.Identity) (created bool, err error)
	GetIdentity(ctx context.Context, name string) (resource.Identity, error)
	ListIdentities(ctx context.Context) ([]resource.Identity, error)
	DeleteIdentity(ctx context.Context, name string) error
	// BindIdentitySubject records the provider account a person's
	// identity belongs to (PutIdentity leaves it as it is).
	BindIdentitySubject(ctx context.Context, name, subject string) error

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

	// AppendAuditEvents writes a batch of one node's events; sequence
	// numbers already stored are a conflict.
	AppendAuditEvents(ctx context.Context, events []AuditEvent) error
	// AuditEvents returns a node's events with Seq > after, in order, at
	// most limit (0: all).
	AuditEvents(ctx context.Context, node string, after uint64, limit int) ([]AuditEvent, error)
	// LastAuditEvent returns ErrNotFound when the node has none.
	LastAuditEvent(ctx context.Context, node string) (AuditEvent, error)
	PutAuditCheckpoint(ctx context.Context, c AuditCheckpoint) error
	// AuditCheckpoints returns a node's checkpoints by size.
	AuditCheckpoints(ctx context.Context, node string) ([]AuditCheckpoint, error)

	// PutRecordingChunk stores a chunk; storing one twice is a conflict.
	PutRecordingChunk(ctx context.Context, c RecordingChunk) error
	// RecordingChunks returns a session's chunks in order; with session
	// "" it returns every session's.
	RecordingChunks(ctx context.Context, session string) ([]RecordingChunk, error)
	// MarkRecordingChunkAttested notes the audit event that attests a
	// chunk; UnattestedRecordingChunks returns a node's chunks without one.
	MarkRecordingChunkAttested(ctx context.Context, session string, chunk, seq uint64) error
	UnattestedRecordingChunks(ctx context.Context, node string) ([]RecordingChunk, error)

	// CreateReview stores a new review (Version 1); an existing id is a
	// conflict.
	CreateReview(ctx context.Context, r ReviewRecord) error
	GetReview(ctx context.Context, id string) (ReviewRecord, error)
	// UpdateReview replaces a review whose stored version is r.Version,
	// storing r.Version+1; another version is ErrConflict.
	UpdateReview(ctx context.Context, r ReviewRecord) error
	// ListReviews returns matching reviews, newest first.
	ListReviews(ctx context.Context, f ReviewFilter) ([]ReviewRecord, error)

	CreateToken(ctx context.Context, t Token) error
	GetToken(ctx context.Context, id string) (Token, error)
	// ListTokens lists the tokens of one identity, or all when identity is "".
	ListTokens(ctx context.Context, identity string) ([]Token, error)
	RevokeToken(ctx context.Context, id string, at time.Time) error
	// RenewToken gives a live (unrevoked) token a new role and expiry:
	// a renewed sign-on keeps its token, so that revoking it ends every
	// session it opened. ErrNotFound when there is no such live token.
	RenewToken(ctx context.Context, id string, role resource.Role, expiresAt time.Time) error

	// GetMeta returns ErrNotFound for a key never set.
	GetMeta(ctx context.Context, key string) (string, error)
	SetMeta(ctx context.Context, key, value string) error

	// Backend names the backend ("sqlite" or "postgres") for logs.
	Backend() string
	Close() error
}
