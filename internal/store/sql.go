package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/compress"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
)

// dialect holds what differs between the two SQL backends. Queries are
// written once with "?" placeholders and rebound for PostgreSQL.
type dialect struct {
	name string
	// migrationLock serialises migrations across gateway nodes sharing
	// one database; empty when the backend needs none.
	migrationLock string
	numbered      bool // placeholders are $1, $2 …
}

var (
	sqliteDialect   = dialect{name: "sqlite"}
	postgresDialect = dialect{name: "postgres", numbered: true,
		migrationLock: "SELECT pg_advisory_xact_lock(7142001)"}
)

// rebind turns "?" placeholders into "$n" where needed. Gatehouse's own
// queries never hold a literal "?".
func (d dialect) rebind(q string) string {
	if !d.numbered {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type sqlStore struct {
	db   *sql.DB
	q    querier
	d    dialect
	inTx bool
}

func (s *sqlStore) Backend() string { return s.d.name }

func (s *sqlStore) Close() error {
	if s.inTx {
		return errors.New("store: Close called inside a transaction")
	}
	return s.db.Close()
}

func (s *sqlStore) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return s.q.ExecContext(ctx, s.d.rebind(q), args...)
}

func (s *sqlStore) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return s.q.QueryContext(ctx, s.d.rebind(q), args...)
}

func (s *sqlStore) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return s.q.QueryRowContext(ctx, s.d.rebind(q), args...)
}

func (s *sqlStore) Tx(ctx context.Context, fn func(Store) error) error {
	if s.inTx {
		return fn(s) // nested: join the outer transaction
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(&sqlStore{db: s.db, q: tx, d: s.d, inTx: true}); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Times are stored as Unix nanoseconds; 0 is the zero time.
func toNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func (s *sqlStore) exists(ctx context.Context, table, key, value string) (bool, error) {
	var one int
	err := s.queryRow(ctx, "SELECT 1 FROM "+table+" WHERE "+key+" = ?", value).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// upsert inserts or updates one row keyed by name inside a transaction,
// keeping created_at of an existing row. cols excludes name, created_at
// and updated_at.
func (s *sqlStore) upsert(ctx context.Context, table, name string, cols []string, vals []any) (created bool, err error) {
	err = s.Tx(ctx, func(st Store) error {
		tx := st.(*sqlStore)
		found, err := tx.exists(ctx, table, "name", name)
		if err != nil {
			return err
		}
		now := time.Now().UnixNano()
		if found {
			sets := make([]string, len(cols))
			for i, c := range cols {
				sets[i] = c + " = ?"
			}
			args := append(append([]any{}, vals...), now, name)
			_, err = tx.exec(ctx, "UPDATE "+table+" SET "+strings.Join(sets, ", ")+", updated_at = ? WHERE name = ?", args...)
			return err
		}
		created = true
		marks := strings.Repeat("?, ", len(cols)+3)
		args := append(append([]any{name}, vals...), now, now)
		_, err = tx.exec(ctx, "INSERT INTO "+table+" (name, "+strings.Join(cols, ", ")+", created_at, updated_at) VALUES ("+marks[:len(marks)-2]+")", args...)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("store %s %q: %w", strings.TrimSuffix(table, "s"), name, err)
	}
	return created, nil
}

func (s *sqlStore) delete(ctx context.Context, table, key, value string) error {
	res, err := s.exec(ctx, "DELETE FROM "+table+" WHERE "+key+" = ?", value)
	if err != nil {
		return fmt.Errorf("delete %s %q: %w", strings.TrimSuffix(table, "s"), value, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s %q: %w", strings.TrimSuffix(table, "s"), value, ErrNotFound)
	}
	return nil
}

// Identities.

func (s *sqlStore) PutIdentity(ctx context.Context, id resource.Identity) (bool, error) {
	groups, err := json.Marshal(nonNil(id.Groups))
	if err != nil {
		return false, err
	}
	disabled := 0
	if id.Disabled {
		disabled = 1
	}
	federation := ""
	if id.Federation != nil {
		b, err := json.Marshal(id.Federation)
		if err != nil {
			return false, err
		}
		federation = string(b)
	}
	return s.upsert(ctx, "identities", id.Name, []string{"type", "groups_json", "disabled", "federation_json"},
		[]any{string(id.Type), string(groups), disabled, federation})
}

const identityCols = "name, type, groups_json, disabled, federation_json, oidc_subject, created_at, updated_at"

func scanIdentity(row interface{ Scan(...any) error }) (resource.Identity, error) {
	var (
		id               resource.Identity
		typ, groups, fed string
		disabled         int
		created, updated int64
	)
	if err := row.Scan(&id.Name, &typ, &groups, &disabled, &fed, &id.OIDCSubject, &created, &updated); err != nil {
		return id, err
	}
	if fed != "" {
		id.Federation = new(resource.Federation)
		if err := json.Unmarshal([]byte(fed), id.Federation); err != nil {
			return id, fmt.Errorf("identity %q: federation: %w", id.Name, err)
		}
	}
	id.Type = resource.IdentityType(typ)
	id.Disabled = disabled != 0
	id.CreatedAt, id.UpdatedAt = fromNanos(created), fromNanos(updated)
	if err := json.Unmarshal([]byte(groups), &id.Groups); err != nil {
		return id, fmt.Errorf("identity %q: groups: %w", id.Name, err)
	}
	if len(id.Groups) == 0 {
		id.Groups = nil
	}
	return id, nil
}

func (s *sqlStore) GetIdentity(ctx context.Context, name string) (resource.Identity, error) {
	id, err := scanIdentity(s.queryRow(ctx, "SELECT "+identityCols+" FROM identities WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return id, fmt.Errorf("identity %q: %w", name, ErrNotFound)
	}
	return id, err
}

func (s *sqlStore) ListIdentities(ctx context.Context) ([]resource.Identity, error) {
	rows, err := s.query(ctx, "SELECT "+identityCols+" FROM identities ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list identities: %w", err)
	}
	return collect(rows, scanIdentity)
}

func (s *sqlStore) BindIdentitySubject(ctx context.Context, name, subject string) error {
	res, err := s.exec(ctx, "UPDATE identities SET oidc_subject = ? WHERE name = ?", subject, name)
	if err != nil {
		return fmt.Errorf("bind identity %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("identity %q: %w", name, ErrNotFound)
	}
	return nil
}

func (s *sqlStore) DeleteIdentity(ctx context.Context, name string) error {
	return s.delete(ctx, "identities", "name", name)
}

// Connections.

func (s *sqlStore) PutConnection(ctx context.Context, c ConnectionRecord) (bool, error) {
	if c.Credential.Inline != "" || c.Password != "" {
		return false, fmt.Errorf("store connection %q: refusing a plaintext credential", c.Name)
	}
	spec := c.Connection
	spec.CreatedAt, spec.UpdatedAt, spec.CredentialSource = time.Time{}, time.Time{}, ""
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return false, err
	}
	return s.upsert(ctx, "connections", c.Name,
		[]string{"type", "spec_json", "credential_source", "credential_ref", "credential_sealed"},
		[]any{string(c.Type), string(specJSON), string(c.Credential.Source), c.Credential.Ref, c.Sealed})
}

const connectionCols = "name, spec_json, credential_source, credential_ref, credential_sealed, created_at, updated_at"

func scanConnection(row interface{ Scan(...any) error }) (ConnectionRecord, error) {
	var (
		c                ConnectionRecord
		name, spec, src  string
		created, updated int64
	)
	if err := row.Scan(&name, &spec, &src, &c.Credential.Ref, &c.Sealed, &created, &updated); err != nil {
		return c, err
	}
	if err := json.Unmarshal([]byte(spec), &c.Connection); err != nil {
		return c, fmt.Errorf("connection %q: spec: %w", name, err)
	}
	c.Name = name
	c.Credential.Source = resource.CredentialSource(src)
	c.CredentialSource = c.Credential.Source
	c.CreatedAt, c.UpdatedAt = fromNanos(created), fromNanos(updated)
	return c, nil
}

func (s *sqlStore) GetConnection(ctx context.Context, name string) (ConnectionRecord, error) {
	c, err := scanConnection(s.queryRow(ctx, "SELECT "+connectionCols+" FROM connections WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("connection %q: %w", name, ErrNotFound)
	}
	return c, err
}

func (s *sqlStore) ListConnections(ctx context.Context) ([]ConnectionRecord, error) {
	rows, err := s.query(ctx, "SELECT "+connectionCols+" FROM connections ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list connections: %w", err)
	}
	return collect(rows, scanConnection)
}

func (s *sqlStore) DeleteConnection(ctx context.Context, name string) error {
	return s.delete(ctx, "connections", "name", name)
}

// Policies.

func (s *sqlStore) PutPolicy(ctx context.Context, p resource.Policy) (bool, error) {
	spec := p
	spec.CreatedAt, spec.UpdatedAt = time.Time{}, time.Time{}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return false, err
	}
	var created bool
	err = s.Tx(ctx, func(st Store) error {
		tx := st.(*sqlStore)
		if created, err = tx.upsert(ctx, "policies", p.Name, []string{"spec_json"}, []any{string(specJSON)}); err != nil {
			return err
		}
		return tx.bumpPolicyGeneration(ctx)
	})
	return created, err
}

// bumpPolicyGeneration sets the generation to a new random value, so
// concurrent writers on different nodes never agree by accident.
func (s *sqlStore) bumpPolicyGeneration(ctx context.Context) error {
	var b [8]byte
	rand.Read(b[:])
	return s.SetMeta(ctx, PolicyGenerationKey, hex.EncodeToString(b[:]))
}

const policyCols = "name, spec_json, created_at, updated_at"

func scanPolicy(row interface{ Scan(...any) error }) (resource.Policy, error) {
	var (
		p                resource.Policy
		name, spec       string
		created, updated int64
	)
	if err := row.Scan(&name, &spec, &created, &updated); err != nil {
		return p, err
	}
	if err := json.Unmarshal([]byte(spec), &p); err != nil {
		return p, fmt.Errorf("policy %q: spec: %w", name, err)
	}
	p.Name = name
	p.CreatedAt, p.UpdatedAt = fromNanos(created), fromNanos(updated)
	return p, nil
}

func (s *sqlStore) GetPolicy(ctx context.Context, name string) (resource.Policy, error) {
	p, err := scanPolicy(s.queryRow(ctx, "SELECT "+policyCols+" FROM policies WHERE name = ?", name))
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("policy %q: %w", name, ErrNotFound)
	}
	return p, err
}

func (s *sqlStore) ListPolicies(ctx context.Context) ([]resource.Policy, error) {
	rows, err := s.query(ctx, "SELECT "+policyCols+" FROM policies ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	return collect(rows, scanPolicy)
}

func (s *sqlStore) DeletePolicy(ctx context.Context, name string) error {
	return s.Tx(ctx, func(st Store) error {
		tx := st.(*sqlStore)
		if err := tx.delete(ctx, "policies", "name", name); err != nil {
			return err
		}
		return tx.bumpPolicyGeneration(ctx)
	})
}

// Audit.

func (s *sqlStore) AppendAuditEvents(ctx context.Context, events []AuditEvent) error {
	if len(events) == 0 {
		return nil
	}
	node, first := events[0].Node, events[0].Seq
	for i, e := range events {
		if e.Node != node || e.Seq != first+uint64(i) {
			return fmt.Errorf("append audit events: a batch must be one node's consecutive events")
		}
		if bytes.IndexByte(e.Body, '\n') >= 0 {
			return fmt.Errorf("append audit event %s/%d: body holds a newline", node, e.Seq)
		}
	}
	return s.Tx(ctx, func(st Store) error {
		tx := st.(*sqlStore)
		var n int
		if err := tx.queryRow(ctx, "SELECT count(*) FROM audit_events WHERE node = ? AND last_seq >= ?", node, int64(first)).Scan(&n); err != nil {
			return fmt.Errorf("append audit events: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("append audit events %s/%d: %w", node, first, ErrConflict)
		}
		// Runs of up to auditRunBytes per row.
		for len(events) > 0 {
			n, size := 0, -1
			for n < len(events) && (n == 0 || size+1+len(events[n].Body) < auditRunBytes) {
				size += 1 + len(events[n].Body)
				n++
			}
			run := auditRunPool.Get().(*[]byte)
			body := (*run)[:0]
			for i, e := range events[:n] {
				if i > 0 {
					body = append(body, '\n')
				}
				body = append(body, e.Body...)
			}
			z := compressAuditRun(body)
			*run = body
			auditRunPool.Put(run)
			if _, err := tx.exec(ctx, "INSERT INTO audit_events (node, seq, last_seq, body, zbody) VALUES (?, ?, ?, '', ?)",
				node, int64(events[0].Seq), int64(events[n-1].Seq), z); err != nil {
				return fmt.Errorf("append audit events %s/%d…%d: %w", node, events[0].Seq, events[n-1].Seq, err)
			}
			events = events[n:]
		}
		return nil
	})
}

const auditRunBytes = 1 << 20

// Runs are packed with package compress (S2 and a checksum; zstd runs
// stored before still read), and run buffers are reused.
var auditRunPool = sync.Pool{New: func() any { b := make([]byte, 0, auditRunBytes); return &b }}

func compressAuditRun(body []byte) []byte { return compress.Encode(nil, body) }

// DecompressAuditRun returns the events of a stored compressed run, or an
// error when it does not decompress whole.
func DecompressAuditRun(z []byte) ([]byte, error) { return compress.Decode(z, 4*auditRunBytes) }

const auditCols = "node, seq, last_seq, body, zbody"

// auditRows splits stored runs into events. A compressed run that does not
// decompress is handed over as one line of its raw bytes, for verify to
// name as modified.
func auditRows(rows *sql.Rows, after uint64, limit int) ([]AuditEvent, error) {
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var node, body string
		var z []byte
		var seq, last int64
		if err := rows.Scan(&node, &seq, &last, &body, &z); err != nil {
			return nil, err
		}
		if len(z) > 0 {
			plain, err := DecompressAuditRun(z)
			if err != nil {
				plain = z
			}
			body = string(plain)
		}
		lines := strings.Split(body, "\n")
		if int64(len(lines)) != last-seq+1 {
			// A run whose line count disagrees with its range was altered;
			// hand the lines over as they are and let verify judge them.
			last = seq + int64(len(lines)) - 1
		}
		for i, line := range lines {
			if q := uint64(seq) + uint64(i); q > after {
				out = append(out, AuditEvent{Node: node, Seq: q, Body: []byte(line)})
				if limit > 0 && len(out) == limit {
					return out, nil
				}
			}
		}
	}
	return out, rows.Err()
}

func (s *sqlStore) AuditEvents(ctx context.Context, node string, after uint64, limit int) ([]AuditEvent, error) {
	rows, err := s.query(ctx, "SELECT "+auditCols+" FROM audit_events WHERE node = ? AND last_seq > ? ORDER BY seq", node, int64(after))
	if err != nil {
		return nil, fmt.Errorf("audit events: %w", err)
	}
	return auditRows(rows, after, limit)
}

func (s *sqlStore) LastAuditEvent(ctx context.Context, node string) (AuditEvent, error) {
	rows, err := s.query(ctx, "SELECT "+auditCols+" FROM audit_events WHERE node = ? ORDER BY seq DESC LIMIT 1", node)
	if err != nil {
		return AuditEvent{}, fmt.Errorf("audit events: %w", err)
	}
	events, err := auditRows(rows, 0, 0)
	if err != nil {
		return AuditEvent{}, err
	}
	if len(events) == 0 {
		return AuditEvent{}, fmt.Errorf("audit events of node %q: %w", node, ErrNotFound)
	}
	return events[len(events)-1], nil
}

func (s *sqlStore) PutAuditCheckpoint(ctx context.Context, c AuditCheckpoint) error {
	_, err := s.exec(ctx, "INSERT INTO audit_checkpoints (node, size, note, frontier) VALUES (?, ?, ?, ?)", c.Node, int64(c.Size), c.Note, c.Frontier)
	if err != nil {
		return fmt.Errorf("put audit checkpoint %s/%d: %w", c.Node, c.Size, err)
	}
	return nil
}

func (s *sqlStore) AuditCheckpoints(ctx context.Context, node string) ([]AuditCheckpoint, error) {
	rows, err := s.query(ctx, "SELECT node, size, note, frontier FROM audit_checkpoints WHERE node = ? ORDER BY size", node)
	if err != nil {
		return nil, fmt.Errorf("audit checkpoints: %w", err)
	}
	return collect(rows, func(row interface{ Scan(...any) error }) (AuditCheckpoint, error) {
		var c AuditCheckpoint
		var size int64
		err := row.Scan(&c.Node, &size, &c.Note, &c.Frontier)
		c.Size = uint64(size)
		return c, err
	})
}

// Recordings.

func (s *sqlStore) PutRecordingChunk(ctx context.Context, c RecordingChunk) error {
	err := s.Tx(ctx, func(st Store) error {
		tx := st.(*sqlStore)
		var n int
		if err := tx.queryRow(ctx, "SELECT count(*) FROM recording_chunks WHERE session = ? AND chunk = ?", c.Session, int64(c.Chunk)).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return ErrConflict
		}
		_, err := tx.exec(ctx, "INSERT INTO recording_chunks (session, chunk, node, created, body) VALUES (?, ?, ?, ?, ?)",
			c.Session, int64(c.Chunk), c.Node, c.Created.UTC().Format(time.RFC3339Nano), c.Body)
		return err
	})
	if err != nil {
		return fmt.Errorf("put recording chunk %s/%d: %w", c.Session, c.Chunk, err)
	}
	return nil
}

func (s *sqlStore) RecordingChunks(ctx context.Context, session string) ([]RecordingChunk, error) {
	if session == "" {
		return s.recordingChunks(ctx, "ORDER BY session, chunk")
	}
	return s.recordingChunks(ctx, "WHERE session = ? ORDER BY chunk", session)
}

func (s *sqlStore) UnattestedRecordingChunks(ctx context.Context, node string) ([]RecordingChunk, error) {
	return s.recordingChunks(ctx, "WHERE node = ? AND attested_seq IS NULL ORDER BY session, chunk", node)
}

func (s *sqlStore) recordingChunks(ctx context.Context, where string, args ...any) ([]RecordingChunk, error) {
	rows, err := s.query(ctx, "SELECT session, chunk, node, created, body FROM recording_chunks "+where, args...)
	if err != nil {
		return nil, fmt.Errorf("recording chunks: %w", err)
	}
	return collect(rows, func(row interface{ Scan(...any) error }) (RecordingChunk, error) {
		var c RecordingChunk
		var n int64
		var created string
		err := row.Scan(&c.Session, &n, &c.Node, &created, &c.Body)
		c.Chunk = uint64(n)
		if err == nil {
			c.Created, err = time.Parse(time.RFC3339Nano, created)
		}
		return c, err
	})
}

func (s *sqlStore) MarkRecordingChunkAttested(ctx context.Context, session string, chunk, seq uint64) error {
	res, err := s.exec(ctx, "UPDATE recording_chunks SET attested_seq = ? WHERE session = ? AND chunk = ?", int64(seq), session, int64(chunk))
	if err == nil {
		var n int64
		if n, err = res.RowsAffected(); err == nil && n == 0 {
			err = ErrNotFound
		}
	}
	if err != nil {
		return fmt.Errorf("mark recording chunk %s/%d attested: %w", session, chunk, err)
	}
	return nil
}

// Reviews.

func (s *sqlStore) CreateReview(ctx context.Context, r ReviewRecord) error {
	err := s.Tx(ctx, func(st Store) error {
		tx := st.(*sqlStore)
		if ok, err := tx.exists(ctx, "reviews", "id", r.ID); err != nil {
			return err
		} else if ok {
			return ErrConflict
		}
		_, err := tx.exec(ctx, "INSERT INTO reviews (id, kind, state, requester, connection, created, version, body) VALUES (?, ?, ?, ?, ?, ?, 1, ?)",
			r.ID, r.Kind, r.State, r.Requester, r.Connection, toNanos(r.Created), string(r.Body))
		return err
	})
	if err != nil {
		return fmt.Errorf("create review %s: %w", r.ID, err)
	}
	return nil
}

const reviewCols = "id, kind, state, requester, connection, created, version, body"

func scanReview(row interface{ Scan(...any) error }) (ReviewRecord, error) {
	var r ReviewRecord
	var created int64
	var body string
	err := row.Scan(&r.ID, &r.Kind, &r.State, &r.Requester, &r.Connection, &created, &r.Version, &body)
	r.Created, r.Body = fromNanos(created), []byte(body)
	return r, err
}

func (s *sqlStore) GetReview(ctx context.Context, id string) (ReviewRecord, error) {
	r, err := scanReview(s.queryRow(ctx, "SELECT "+reviewCols+" FROM reviews WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("review %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("review %s: %w", id, err)
	}
	return r, nil
}

func (s *sqlStore) UpdateReview(ctx context.Context, r ReviewRecord) error {
	res, err := s.exec(ctx, "UPDATE reviews SET state = ?, body = ?, version = version + 1 WHERE id = ? AND version = ?",
		r.State, string(r.Body), r.ID, r.Version)
	if err != nil {
		return fmt.Errorf("update review %s: %w", r.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if ok, err := s.exists(ctx, "reviews", "id", r.ID); err != nil || !ok {
			return fmt.Errorf("review %s: %w", r.ID, ErrNotFound)
		}
		return fmt.Errorf("update review %s: changed since read: %w", r.ID, ErrConflict)
	}
	return nil
}

func (s *sqlStore) ListReviews(ctx context.Context, f ReviewFilter) ([]ReviewRecord, error) {
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{{"kind", f.Kind}, {"requester", f.Requester}, {"connection", f.Connection}} {
		if c.v != "" {
			where, args = append(where, c.col+" = ?"), append(args, c.v)
		}
	}
	if len(f.States) > 0 {
		marks := strings.TrimSuffix(strings.Repeat("?, ", len(f.States)), ", ")
		where = append(where, "state IN ("+marks+")")
		for _, st := range f.States {
			args = append(args, st)
		}
	}
	q := "SELECT " + reviewCols + " FROM reviews"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created DESC, id"
	if f.Limit > 0 {
		q += " LIMIT " + strconv.Itoa(f.Limit)
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list reviews: %w", err)
	}
	return collect(rows, scanReview)
}

// Tokens.

func (s *sqlStore) CreateToken(ctx context.Context, t Token) error {
	err := s.Tx(ctx, func(st Store) error {
		tx := st.(*sqlStore)
		if ok, err := tx.exists(ctx, "identities", "name", t.Identity); err != nil {
			return err
		} else if !ok {
			return fmt.Errorf("identity %q: %w", t.Identity, ErrNotFound)
		}
		if ok, err := tx.exists(ctx, "tokens", "id", t.ID); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("token %s: %w", t.ID, ErrConflict)
		}
		_, err := tx.exec(ctx, "INSERT INTO tokens (id, identity, role, secret_hash, description, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
			t.ID, t.Identity, string(t.Role), t.SecretHash, t.Description, toNanos(t.CreatedAt), toNanos(t.ExpiresAt), toNanos(t.RevokedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	return nil
}

const tokenCols = "id, identity, role, secret_hash, description, created_at, expires_at, revoked_at"

func scanToken(row interface{ Scan(...any) error }) (Token, error) {
	var (
		t                         Token
		role                      string
		created, expires, revoked int64
	)
	if err := row.Scan(&t.ID, &t.Identity, &role, &t.SecretHash, &t.Description, &created, &expires, &revoked); err != nil {
		return t, err
	}
	t.Role = resource.Role(role)
	t.CreatedAt, t.ExpiresAt, t.RevokedAt = fromNanos(created), fromNanos(expires), fromNanos(revoked)
	return t, nil
}

func (s *sqlStore) GetToken(ctx context.Context, id string) (Token, error) {
	t, err := scanToken(s.queryRow(ctx, "SELECT "+tokenCols+" FROM tokens WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("token %s: %w", id, ErrNotFound)
	}
	return t, err
}

func (s *sqlStore) ListTokens(ctx context.Context, identity string) ([]Token, error) {
	q, args := "SELECT "+tokenCols+" FROM tokens ORDER BY created_at, id", []any{}
	if identity != "" {
		q, args = "SELECT "+tokenCols+" FROM tokens WHERE identity = ? ORDER BY created_at, id", []any{identity}
	}
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return collect(rows, scanToken)
}

func (s *sqlStore) RevokeToken(ctx context.Context, id string, at time.Time) error {
	// Revoking twice keeps the first revocation time.
	res, err := s.exec(ctx, "UPDATE tokens SET revoked_at = CASE WHEN revoked_at = 0 THEN ? ELSE revoked_at END WHERE id = ?", toNanos(at), id)
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("token %s: %w", id, ErrNotFound)
	}
	return nil
}

func (s *sqlStore) RenewToken(ctx context.Context, id string, role resource.Role, expiresAt time.Time) error {
	res, err := s.exec(ctx, "UPDATE tokens SET role = ?, expires_at = ? WHERE id = ? AND revoked_at = 0", string(role), toNanos(expiresAt), id)
	if err != nil {
		return fmt.Errorf("renew token %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("live token %s: %w", id, ErrNotFound)
	}
	return nil
}

// Meta.

func (s *sqlStore) GetMeta(ctx context.Context, key string) (string, error) {
	var v string
	err := s.queryRow(ctx, "SELECT value FROM meta WHERE key = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("meta %q: %w", key, ErrNotFound)
	}
	return v, err
}

func (s *sqlStore) SetMeta(ctx context.Context, key, value string) error {
	_, err := s.exec(ctx, "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value", key, value)
	if err != nil {
		return fmt.Errorf("set meta %q: %w", key, err)
	}
	return nil
}

func collect[T any](rows *sql.Rows, scan func(interface{ Scan(...any) error }) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
