package store_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/internal/store/storetest"
	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func TestSQLite(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.Open(context.Background(), "", t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if s.Backend() != "sqlite" {
			t.Fatalf("Backend() = %q", s.Backend())
		}
		return s
	})
}

func TestPostgres(t *testing.T) {
	pg := testenv.Postgres(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.Open(context.Background(), pg.DSN(pg.CreateDatabase(t)), "")
		if err != nil {
			t.Fatal(err)
		}
		if s.Backend() != "postgres" {
			t.Fatalf("Backend() = %q", s.Backend())
		}
		return s
	})
}

func TestSQLiteFileIsPrivate(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(context.Background(), "", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := os.Stat(filepath.Join(dir, store.DefaultSQLiteFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("store file mode = %v, %v; want 0600", st.Mode().Perm(), err)
	}
}

func TestOpenErrors(t *testing.T) {
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dsn, want string
	}{
		{"unreachable postgres", "postgres://u:sekrit@127.0.0.1:" + strconv.Itoa(port) + "/db?connect_timeout=2", "connect"},
		{"unknown kind", "mongodb://x", "unknown kind"},
		{"unwritable sqlite", "sqlite:/proc/gatehouse/x.db", "open sqlite store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := store.Open(context.Background(), tt.dsn, "")
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", tt.dsn)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "sekrit") {
				t.Errorf("Open(%q) error = %q; want it to contain %q and no password", tt.dsn, err, tt.want)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	got := store.Redact("postgres://app:hunter2@db:5432/x?password=hunter3")
	if bytes.Contains([]byte(got), []byte("hunter")) {
		t.Errorf("Redact left a password: %s", got)
	}
}
