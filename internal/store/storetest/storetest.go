// Package storetest is the behavioural test suite every store backend must
// pass. Backends call Run with a function that opens a fresh, migrated,
// empty store.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// Run runs the suite. open returns a new empty store; Run closes it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Identities", testIdentities},
		{"Connections", testConnections},
		{"RefusesPlaintextCredential", testRefusesPlaintext},
		{"Policies", testPolicies},
		{"Audit", testAudit},
		{"Recordings", testRecordings},
		{"Reviews", testReviews},
		{"Tokens", testTokens},
		{"TxRollsBack", testTxRollsBack},
		{"Meta", testMeta},
		{"MigrateIsIdempotent", testMigrateIdempotent},
		{"ConcurrentWriters", testConcurrentWriters},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tt.fn(t, s)
		})
	}
}

var ctx = context.Background()

func testIdentities(t *testing.T, s store.Store) {
	alice := resource.Identity{Name: "alice", Type: resource.IdentityUser, Groups: []string{"dba", "dev"}}
	created, err := s.PutIdentity(ctx, alice)
	if err != nil || !created {
		t.Fatalf("PutIdentity(alice) = %v, %v; want created", created, err)
	}
	got, err := s.GetIdentity(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "alice" || got.Type != resource.IdentityUser || fmt.Sprint(got.Groups) != "[dba dev]" || got.CreatedAt.IsZero() {
		t.Errorf("GetIdentity(alice) = %+v", got)
	}
	if err := s.BindIdentitySubject(ctx, "alice", "https://idp.example 42"); err != nil {
		t.Fatal(err)
	}
	if err := s.BindIdentitySubject(ctx, "nobody", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("BindIdentitySubject(nobody) = %v, want ErrNotFound", err)
	}
	alice.Groups, alice.Disabled = nil, true
	if created, err := s.PutIdentity(ctx, alice); err != nil || created {
		t.Fatalf("second PutIdentity(alice) = %v, %v; want updated", created, err)
	}
	got2, _ := s.GetIdentity(ctx, "alice")
	if got2.Groups != nil || !got2.Disabled || !got2.CreatedAt.Equal(got.CreatedAt) || got2.UpdatedAt.Before(got.UpdatedAt) ||
		got2.OIDCSubject != "https://idp.example 42" {
		t.Errorf("after update GetIdentity(alice) = %+v (first %+v)", got2, got)
	}
	fed := resource.Federation{Issuer: "https://ci.example", Audience: "gatehouse", Condition: `claims.ref == "refs/heads/main"`, TokenTTL: "15m"}
	s.PutIdentity(ctx, resource.Identity{Name: "bot", Type: resource.IdentityService, Federation: &fed})
	if bot, err := s.GetIdentity(ctx, "bot"); err != nil || bot.Federation == nil || *bot.Federation != fed {
		t.Errorf("GetIdentity(bot) federation = %+v, %v; want %+v", bot.Federation, err, fed)
	}
	list, err := s.ListIdentities(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "alice" || list[1].Name != "bot" || list[0].Federation != nil || list[1].Federation == nil {
		t.Fatalf("ListIdentities = %+v, %v", list, err)
	}
	if err := s.DeleteIdentity(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetIdentity(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetIdentity after delete: %v, want ErrNotFound", err)
	}
	if err := s.DeleteIdentity(ctx, "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeleteIdentity: %v, want ErrNotFound", err)
	}
}

func testPolicies(t *testing.T, s store.Store) {
	p := resource.Policy{Name: "prod", Connections: resource.Selector{Names: []string{"orders-*"}, Labels: map[string]string{"env": "prod"}},
		Presets: []string{"postgres-production"},
		Rules:   []resource.Rule{{Name: "no-drop", Action: resource.ActionBlock, When: `command.sql.ddl`, Message: "m"}}}
	gen0, _ := s.GetMeta(ctx, store.PolicyGenerationKey)
	if created, err := s.PutPolicy(ctx, p); err != nil || !created {
		t.Fatalf("PutPolicy = %v, %v", created, err)
	}
	gen1, err := s.GetMeta(ctx, store.PolicyGenerationKey)
	if err != nil || gen1 == gen0 {
		t.Fatalf("policy generation %q → %q, %v: want a change", gen0, gen1, err)
	}
	got, err := s.GetPolicy(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if got.Connections.Labels["env"] != "prod" || len(got.Rules) != 1 || got.Rules[0].When != "command.sql.ddl" || got.Presets[0] != "postgres-production" || got.CreatedAt.IsZero() {
		t.Errorf("GetPolicy = %+v", got)
	}
	p.Rules = append(p.Rules, resource.Rule{Name: "r2", Action: resource.ActionAllow, When: "true"})
	if created, err := s.PutPolicy(ctx, p); err != nil || created {
		t.Fatalf("update PutPolicy = %v, %v", created, err)
	}
	if list, err := s.ListPolicies(ctx); err != nil || len(list) != 1 || len(list[0].Rules) != 2 {
		t.Fatalf("ListPolicies = %+v, %v", list, err)
	}
	if err := s.DeletePolicy(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	if gen2, _ := s.GetMeta(ctx, store.PolicyGenerationKey); gen2 == gen1 {
		t.Error("DeletePolicy did not change the policy generation")
	}
	if _, err := s.GetPolicy(ctx, "prod"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetPolicy after delete = %v, want ErrNotFound", err)
	}
	if err := s.DeletePolicy(ctx, "prod"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second DeletePolicy = %v, want ErrNotFound", err)
	}
}

func testAudit(t *testing.T, s store.Store) {
	if _, err := s.LastAuditEvent(ctx, "n1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LastAuditEvent on an empty log = %v, want ErrNotFound", err)
	}
	var batch []store.AuditEvent
	for i := uint64(1); i <= 5; i++ {
		batch = append(batch, store.AuditEvent{Node: "n1", Seq: i, Body: []byte(fmt.Sprintf(`{"seq":%d,"x":"ü"}`, i))})
	}
	if err := s.AppendAuditEvents(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAuditEvents(ctx, []store.AuditEvent{{Node: "n2", Seq: 1, Body: []byte("{}")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAuditEvents(ctx, batch[4:]); err == nil {
		t.Error("appending a stored sequence number again succeeded")
	}
	got, err := s.AuditEvents(ctx, "n1", 2, 2)
	if err != nil || len(got) != 2 || got[0].Seq != 3 || string(got[1].Body) != `{"seq":4,"x":"ü"}` {
		t.Fatalf("AuditEvents(after 2, limit 2) = %+v, %v", got, err)
	}
	if last, err := s.LastAuditEvent(ctx, "n1"); err != nil || last.Seq != 5 {
		t.Errorf("LastAuditEvent = %+v, %v", last, err)
	}
	if other, err := s.AuditEvents(ctx, "n2", 0, 0); err != nil || len(other) != 1 {
		t.Errorf("node n2's events = %+v, %v; chains must stay apart", other, err)
	}
	for _, size := range []uint64{5, 3} {
		if err := s.PutAuditCheckpoint(ctx, store.AuditCheckpoint{Node: "n1", Size: size, Note: "note", Frontier: []byte{0, 1, 255}}); err != nil {
			t.Fatal(err)
		}
	}
	cps, err := s.AuditCheckpoints(ctx, "n1")
	if err != nil || len(cps) != 2 || cps[0].Size != 3 || !bytes.Equal(cps[1].Frontier, []byte{0, 1, 255}) {
		t.Errorf("AuditCheckpoints = %+v, %v", cps, err)
	}
}

func testRecordings(t *testing.T, s store.Store) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)
	for _, c := range []store.RecordingChunk{
		{Session: "s2", Chunk: 1, Node: "n1", Created: at, Body: []byte{0x28, 0xb5, 0, 0xff}},
		{Session: "s1", Chunk: 2, Node: "n1", Created: at, Body: []byte("two")},
		{Session: "s1", Chunk: 1, Node: "n1", Created: at, Body: []byte("one")},
	} {
		if err := s.PutRecordingChunk(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	err := s.PutRecordingChunk(ctx, store.RecordingChunk{Session: "s1", Chunk: 2, Node: "n1", Created: at, Body: []byte("again")})
	if !errors.Is(err, store.ErrConflict) {
		t.Errorf("storing chunk s1/2 twice = %v, want ErrConflict", err)
	}
	got, err := s.RecordingChunks(ctx, "s1")
	if err != nil || len(got) != 2 || got[0].Chunk != 1 || string(got[1].Body) != "two" || !got[0].Created.Equal(at) {
		t.Fatalf("RecordingChunks(s1) = %+v, %v", got, err)
	}
	all, err := s.RecordingChunks(ctx, "")
	if err != nil || len(all) != 3 || !bytes.Equal(all[2].Body, []byte{0x28, 0xb5, 0, 0xff}) {
		t.Errorf("RecordingChunks(all) = %+v, %v", all, err)
	}
	for _, c := range []uint64{1, 2} {
		if err := s.MarkRecordingChunkAttested(ctx, "s1", c, 10+c); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MarkRecordingChunkAttested(ctx, "s9", 1, 5); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("marking a chunk that does not exist = %v, want ErrNotFound", err)
	}
	left, err := s.UnattestedRecordingChunks(ctx, "n1")
	if err != nil || len(left) != 1 || left[0].Session != "s2" {
		t.Errorf("UnattestedRecordingChunks = %+v, %v; want s2's chunk alone", left, err)
	}
}

func testReviews(t *testing.T, s store.Store) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	for i, r := range []store.ReviewRecord{
		{ID: "r1", Kind: "command", State: "pending", Requester: "alice", Connection: "db", Created: at, Body: []byte(`{"n":1}`)},
		{ID: "r2", Kind: "access", State: "approved", Requester: "alice", Connection: "db", Created: at.Add(time.Second), Body: []byte(`{"n":2}`)},
		{ID: "r3", Kind: "command", State: "denied", Requester: "bob", Connection: "db", Created: at.Add(2 * time.Second), Body: []byte(`{"n":3}`)},
	} {
		if err := s.CreateReview(ctx, r); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	if err := s.CreateReview(ctx, store.ReviewRecord{ID: "r1", Kind: "command", State: "pending", Body: []byte("{}")}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("creating r1 twice = %v, want ErrConflict", err)
	}
	r1, err := s.GetReview(ctx, "r1")
	if err != nil || r1.Version != 1 || r1.Requester != "alice" || string(r1.Body) != `{"n":1}` || !r1.Created.Equal(at) {
		t.Fatalf("GetReview(r1) = %+v, %v", r1, err)
	}
	if _, err := s.GetReview(ctx, "r9"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetReview(r9) = %v, want ErrNotFound", err)
	}
	// Compare-and-swap: the first update wins, a second one from the
	// same read is a conflict.
	stale := r1
	r1.State, r1.Body = "approved", []byte(`{"n":10}`)
	if err := s.UpdateReview(ctx, r1); err != nil {
		t.Fatal(err)
	}
	stale.State = "denied"
	if err := s.UpdateReview(ctx, stale); !errors.Is(err, store.ErrConflict) {
		t.Errorf("update from a stale read = %v, want ErrConflict", err)
	}
	if err := s.UpdateReview(ctx, store.ReviewRecord{ID: "r9", Version: 1}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update of r9 = %v, want ErrNotFound", err)
	}
	got, _ := s.GetReview(ctx, "r1")
	if got.Version != 2 || got.State != "approved" || string(got.Body) != `{"n":10}` {
		t.Errorf("after update: %+v", got)
	}
	list, err := s.ListReviews(ctx, store.ReviewFilter{Requester: "alice", States: []string{"approved", "pending"}})
	if err != nil || len(list) != 2 || list[0].ID != "r2" || list[1].ID != "r1" {
		t.Errorf("ListReviews(alice, approved|pending) = %+v, %v; want r2, r1", list, err)
	}
	list, err = s.ListReviews(ctx, store.ReviewFilter{Kind: "command", Limit: 1})
	if err != nil || len(list) != 1 || list[0].ID != "r3" {
		t.Errorf("ListReviews(command, limit 1) = %+v, %v; want r3", list, err)
	}
}

func testConnections(t *testing.T, s store.Store) {
	rec := store.ConnectionRecord{
		Connection: resource.Connection{
			Name: "orders-db", Type: resource.TypePostgres, Address: "127.0.0.1:5432",
			Database: "orders", User: "app", TLS: resource.TargetTLS{Mode: resource.TLSRequire},
			Labels:        map[string]string{"env": "prod"},
			DefaultAction: resource.ActionBlock,
		},
		Credential: resource.Credential{Source: resource.CredentialInline},
		Sealed:     []byte{1, 2, 3, 0, 255},
	}
	if created, err := s.PutConnection(ctx, rec); err != nil || !created {
		t.Fatalf("PutConnection = %v, %v", created, err)
	}
	got, err := s.GetConnection(ctx, "orders-db")
	if err != nil {
		t.Fatal(err)
	}
	if got.Address != rec.Address || got.Database != "orders" || got.User != "app" || got.TLS.Mode != resource.TLSRequire ||
		got.Labels["env"] != "prod" || got.DefaultAction != resource.ActionBlock ||
		got.Credential.Source != resource.CredentialInline || !bytes.Equal(got.Sealed, rec.Sealed) ||
		got.CredentialSource != resource.CredentialInline || got.CreatedAt.IsZero() {
		t.Errorf("GetConnection = %+v", got)
	}
	rec.Credential = resource.Credential{Source: resource.CredentialEnv, Ref: "DB_PW"}
	rec.Sealed = nil
	if created, err := s.PutConnection(ctx, rec); err != nil || created {
		t.Fatalf("update PutConnection = %v, %v", created, err)
	}
	got, _ = s.GetConnection(ctx, "orders-db")
	if got.Credential.Source != resource.CredentialEnv || got.Credential.Ref != "DB_PW" || len(got.Sealed) != 0 {
		t.Errorf("after update credential = %+v sealed %x", got.Credential, got.Sealed)
	}
	s.PutConnection(ctx, store.ConnectionRecord{Connection: resource.Connection{Name: "cache", Type: resource.TypeRedis, Address: "h:1"}, Credential: resource.Credential{Source: resource.CredentialNone}})
	list, err := s.ListConnections(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "cache" {
		t.Fatalf("ListConnections = %+v, %v", list, err)
	}
	if err := s.DeleteConnection(ctx, "cache"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetConnection(ctx, "cache"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetConnection after delete: %v", err)
	}
}

func testRefusesPlaintext(t *testing.T, s store.Store) {
	for _, rec := range []store.ConnectionRecord{
		{Connection: resource.Connection{Name: "a", Type: resource.TypeRedis, Address: "h:1", Password: "plain"}},
		{Connection: resource.Connection{Name: "b", Type: resource.TypeRedis, Address: "h:1"}, Credential: resource.Credential{Source: resource.CredentialInline, Inline: "plain"}},
	} {
		if _, err := s.PutConnection(ctx, rec); err == nil {
			t.Errorf("PutConnection(%s) with a plaintext credential succeeded", rec.Name)
		}
	}
	if list, _ := s.ListConnections(ctx); len(list) != 0 {
		t.Errorf("refused connections were stored: %+v", list)
	}
}

func testTokens(t *testing.T, s store.Store) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	tok := store.Token{ID: "t1", Identity: "bot", Role: resource.RoleUser, SecretHash: []byte("hash-bytes-0123456789"), Description: "ci", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.CreateToken(ctx, tok); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CreateToken for a missing identity: %v, want ErrNotFound", err)
	}
	s.PutIdentity(ctx, resource.Identity{Name: "bot", Type: resource.IdentityService})
	s.PutIdentity(ctx, resource.Identity{Name: "alice", Type: resource.IdentityUser})
	if err := s.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(ctx, tok); !errors.Is(err, store.ErrConflict) {
		t.Errorf("duplicate CreateToken: %v, want ErrConflict", err)
	}
	got, err := s.GetToken(ctx, "t1")
	if err != nil || got.Identity != "bot" || got.Role != resource.RoleUser || !bytes.Equal(got.SecretHash, tok.SecretHash) ||
		!got.CreatedAt.Equal(now) || !got.ExpiresAt.Equal(tok.ExpiresAt) || !got.RevokedAt.IsZero() || got.Description != "ci" {
		t.Fatalf("GetToken = %+v, %v", got, err)
	}
	s.CreateToken(ctx, store.Token{ID: "t2", Identity: "alice", Role: resource.RoleAdmin, SecretHash: []byte("h2"), CreatedAt: now.Add(time.Second)})
	if all, err := s.ListTokens(ctx, ""); err != nil || len(all) != 2 {
		t.Errorf("ListTokens(all) = %d, %v", len(all), err)
	}
	if mine, err := s.ListTokens(ctx, "alice"); err != nil || len(mine) != 1 || mine[0].ID != "t2" || !mine[0].ExpiresAt.IsZero() {
		t.Errorf("ListTokens(alice) = %+v, %v", mine, err)
	}
	later := now.Add(12 * time.Hour)
	if err := s.RenewToken(ctx, "t1", resource.RoleAdmin, later); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetToken(ctx, "t1"); !got.ExpiresAt.Equal(later) || got.Role != resource.RoleAdmin || !bytes.Equal(got.SecretHash, tok.SecretHash) {
		t.Errorf("after RenewToken: %+v", got)
	}
	s.RenewToken(ctx, "t1", resource.RoleUser, later)
	first := now.Add(time.Minute)
	if err := s.RevokeToken(ctx, "t1", first); err != nil {
		t.Fatal(err)
	}
	s.RevokeToken(ctx, "t1", first.Add(time.Hour))
	if got, _ := s.GetToken(ctx, "t1"); !got.RevokedAt.Equal(first) {
		t.Errorf("RevokedAt = %v, want the first revocation %v", got.RevokedAt, first)
	}
	if err := s.RenewToken(ctx, "t1", resource.RoleUser, later.Add(time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RenewToken of a revoked token = %v, want ErrNotFound", err)
	}
	if err := s.RevokeToken(ctx, "nope", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("RevokeToken(nope) = %v", err)
	}
	if err := s.DeleteIdentity(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetToken(ctx, "t2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("token of a deleted identity survives: %v", err)
	}
}

func testTxRollsBack(t *testing.T, s store.Store) {
	boom := errors.New("boom")
	err := s.Tx(ctx, func(tx store.Store) error {
		if _, err := tx.PutIdentity(ctx, resource.Identity{Name: "a", Type: resource.IdentityUser}); err != nil {
			return err
		}
		if _, err := tx.PutConnection(ctx, store.ConnectionRecord{Connection: resource.Connection{Name: "c", Type: resource.TypeRedis, Address: "h:1"}, Credential: resource.Credential{Source: resource.CredentialNone}}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx = %v, want boom", err)
	}
	ids, _ := s.ListIdentities(ctx)
	conns, _ := s.ListConnections(ctx)
	if len(ids)+len(conns) != 0 {
		t.Errorf("rolled-back writes are visible: %v %v", ids, conns)
	}
	err = s.Tx(ctx, func(tx store.Store) error {
		_, err := tx.PutIdentity(ctx, resource.Identity{Name: "a", Type: resource.IdentityUser})
		return err
	})
	if _, gerr := s.GetIdentity(ctx, "a"); err != nil || gerr != nil {
		t.Errorf("committed Tx: %v, then GetIdentity: %v", err, gerr)
	}
}

func testMeta(t *testing.T, s store.Store) {
	if _, err := s.GetMeta(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetMeta(unset) = %v", err)
	}
	s.SetMeta(ctx, "k", "v1")
	s.SetMeta(ctx, "k", "v2")
	if v, err := s.GetMeta(ctx, "k"); err != nil || v != "v2" {
		t.Errorf("GetMeta = %q, %v", v, err)
	}
}

func testMigrateIdempotent(t *testing.T, s store.Store) {
	applied, err := store.Migrate(ctx, s)
	if err != nil || len(applied) != 0 {
		t.Errorf("second Migrate applied %v, %v; want nothing", applied, err)
	}
	if v, err := store.SchemaVersion(ctx, s); err != nil || v != store.LatestVersion() {
		t.Errorf("SchemaVersion = %d, %v; want %d", v, err, store.LatestVersion())
	}
}

func testConcurrentWriters(t *testing.T, s store.Store) {
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.PutIdentity(ctx, resource.Identity{Name: fmt.Sprintf("u%d", i), Type: resource.IdentityUser})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent PutIdentity: %v", err)
		}
	}
	if ids, _ := s.ListIdentities(ctx); len(ids) != 16 {
		t.Errorf("ListIdentities after concurrent writes = %d, want 16", len(ids))
	}
}
