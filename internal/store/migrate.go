package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

func migrations(d dialect) ([]migration, error) {
	dir := "migrations/" + d.name
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration file %s: want NNNN_name.sql", e.Name())
		}
		b, err := fs.ReadFile(migrationFS, dir+"/"+e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	return out, nil
}

// LatestVersion is the schema version this binary knows.
func LatestVersion() int {
	ms, err := migrations(sqliteDialect)
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// Migrate applies every migration the store has not seen, each in its own
// transaction, and returns the versions it applied. Gateways sharing one
// PostgreSQL database serialise on an advisory lock. A store whose schema
// is newer than this binary is refused rather than touched.
func Migrate(ctx context.Context, st Store) ([]int, error) {
	s, ok := st.(*sqlStore)
	if !ok {
		return nil, fmt.Errorf("migrate: unsupported store %T", st)
	}
	ms, err := migrations(s.d)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS gatehouse_schema (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"); err != nil {
		return nil, fmt.Errorf("migrate: create schema table: %w", err)
	}
	var applied []int
	for _, m := range ms {
		did := false
		err := s.Tx(ctx, func(st Store) error {
			tx := st.(*sqlStore)
			if tx.d.migrationLock != "" {
				if _, err := tx.exec(ctx, tx.d.migrationLock); err != nil {
					return err
				}
			}
			var current int
			if err := tx.queryRow(ctx, "SELECT COALESCE(MAX(version), 0) FROM gatehouse_schema").Scan(&current); err != nil {
				return err
			}
			if last := ms[len(ms)-1].version; current > last {
				return fmt.Errorf("store schema version %d is newer than this gatehouse knows (%d): upgrade gatehouse", current, last)
			}
			if current >= m.version {
				return nil
			}
			if _, err := tx.exec(ctx, m.sql); err != nil {
				return fmt.Errorf("apply %s: %w", m.name, err)
			}
			did = true
			_, err := tx.exec(ctx, "INSERT INTO gatehouse_schema (version, name, applied_at) VALUES (?, ?, ?)", m.version, m.name, time.Now().UnixNano())
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("migrate %s store: %w", s.d.name, err)
		}
		if did {
			applied = append(applied, m.version)
		}
	}
	return applied, nil
}

// SchemaVersion reports the store's current schema version.
func SchemaVersion(ctx context.Context, st Store) (int, error) {
	s, ok := st.(*sqlStore)
	if !ok {
		return 0, fmt.Errorf("schema version: unsupported store %T", st)
	}
	var v int
	err := s.queryRow(ctx, "SELECT COALESCE(MAX(version), 0) FROM gatehouse_schema").Scan(&v)
	return v, err
}
