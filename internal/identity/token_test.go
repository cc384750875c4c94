package identity

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

func newStore(t testing.TB) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func issueToken(t *testing.T, s store.Store, identity string, role resource.Role, ttl time.Duration, now time.Time) (string, store.Token) {
	t.Helper()
	tok, rec, err := NewToken(identity, role, ttl, "", now)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	return tok, rec
}

func TestNewTokenShape(t *testing.T) {
	tok, rec, err := NewToken("bot", resource.RoleUser, time.Hour, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id, secret, err := ParseToken(tok)
	if err != nil || id != rec.ID {
		t.Fatalf("ParseToken(%q) = %q, %v; want id %q", tok, id, err, rec.ID)
	}
	if strings.Contains(string(rec.SecretHash), secret) || len(rec.SecretHash) != 32 {
		t.Errorf("record holds %d-byte hash; want a 32-byte SHA-256 not containing the secret", len(rec.SecretHash))
	}
	tok2, _, _ := NewToken("bot", resource.RoleUser, time.Hour, "", time.Now())
	if tok == tok2 {
		t.Error("two tokens are equal")
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	s.PutIdentity(ctx, resource.Identity{Name: "bot", Type: resource.IdentityService, Groups: []string{"ci"}})
	s.PutIdentity(ctx, resource.Identity{Name: "gone", Type: resource.IdentityUser, Disabled: true})

	valid, validRec := issueToken(t, s, "bot", resource.RoleUser, time.Hour, now)
	expired, _ := issueToken(t, s, "bot", resource.RoleUser, time.Minute, now.Add(-2*time.Minute))
	revoked, revokedRec := issueToken(t, s, "bot", resource.RoleAdmin, 0, now)
	s.RevokeToken(ctx, revokedRec.ID, now)
	disabled, _ := issueToken(t, s, "gone", resource.RoleUser, 0, now)
	id, _, _ := ParseToken(valid)
	wrongSecret := tokenPrefix + id + "_" + strings.Repeat("A", 43)
	unknownID := tokenPrefix + "0123456789abcdef_" + strings.Repeat("A", 43)

	a := &Authenticator{Store: s, Now: func() time.Time { return now }}
	tests := []struct {
		name  string
		token string
		want  Reason
	}{
		{"missing", "", ReasonMissing},
		{"malformed", "hello", ReasonMalformed},
		{"upper-case id", strings.ToUpper(valid[:20]) + valid[20:], ReasonMalformed},
		{"unknown id", unknownID, ReasonUnknown},
		{"wrong secret", wrongSecret, ReasonUnknown},
		{"expired", expired, ReasonExpired},
		{"revoked", revoked, ReasonRevoked},
		{"disabled identity", disabled, ReasonDisabled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := a.Authenticate(ctx, tt.token)
			var ae *AuthError
			if !errors.As(err, &ae) || ae.Reason != tt.want {
				t.Fatalf("Authenticate = %+v, %v; want reason %q", p, err, tt.want)
			}
			if tt.token != "" && strings.Contains(err.Error(), tt.token) {
				t.Errorf("error %q contains the token", err)
			}
		})
	}
	p, err := a.Authenticate(ctx, valid)
	if err != nil {
		t.Fatal(err)
	}
	if p.Identity.Name != "bot" || p.Role != resource.RoleUser || p.TokenID != validRec.ID || !p.ExpiresAt.Equal(validRec.ExpiresAt) || p.Identity.Groups[0] != "ci" {
		t.Errorf("Authenticate(valid) = %+v", p)
	}
	a.Now = func() time.Time { return now.Add(time.Hour) }
	if _, err := a.Authenticate(ctx, valid); err == nil {
		t.Error("token accepted at its expiry instant")
	}
}

func TestBootstrap(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var tok string
	created, err := Bootstrap(ctx, s, time.Now(), func(t string) error { tok = t; return nil })
	if err != nil || !created || tok == "" {
		t.Fatalf("Bootstrap = %q, %v, %v", tok, created, err)
	}
	p, err := (&Authenticator{Store: s}).Authenticate(ctx, tok)
	if err != nil || p.Role != resource.RoleAdmin || p.Identity.Name != AdminIdentity || !p.ExpiresAt.IsZero() {
		t.Fatalf("bootstrap token authenticates as %+v, %v", p, err)
	}
	called := false
	created, err = Bootstrap(ctx, s, time.Now(), func(string) error { called = true; return nil })
	if err != nil || created || called {
		t.Errorf("second Bootstrap: created=%v delivered=%v err=%v; want nothing", created, called, err)
	}
}

func TestBootstrapDeliveryFailureCommitsNothing(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := Bootstrap(ctx, s, time.Now(), func(string) error { return errors.New("disk full") }); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Bootstrap with failing delivery = %v", err)
	}
	if toks, _ := s.ListTokens(ctx, ""); len(toks) != 0 {
		t.Fatalf("failed bootstrap left %d tokens", len(toks))
	}
	var tok string
	if created, err := Bootstrap(ctx, s, time.Now(), func(t string) error { tok = t; return nil }); err != nil || !created || tok == "" {
		t.Errorf("retry Bootstrap = %v, %v", created, err)
	}
}

func FuzzParseToken(f *testing.F) {
	tok, _, _ := NewToken("x", resource.RoleUser, 0, "", time.Now())
	f.Add(tok)
	f.Add("gh1_")
	f.Add("gh1_0123456789abcdef_" + strings.Repeat("-", 43))
	f.Fuzz(func(t *testing.T, s string) {
		id, secret, err := ParseToken(s)
		if err != nil {
			return
		}
		if tokenPrefix+id+"_"+secret != s {
			t.Fatalf("ParseToken(%q) = %q, %q does not rebuild the input", s, id, secret)
		}
	})
}
