package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver
)

// DefaultSQLiteFile is the database file inside the data directory.
const DefaultSQLiteFile = "gatehouse.db"

// Open connects to the store named by dsn and brings its schema up to date.
// An empty dsn means SQLite in dataDir. Accepted forms:
//
//	""                             SQLite at DATA_DIR/gatehouse.db
//	sqlite:PATH, sqlite://PATH     SQLite at PATH
//	postgres://…, postgresql://…   PostgreSQL
//
// Errors never include a password from the dsn.
func Open(ctx context.Context, dsn, dataDir string) (Store, error) {
	s, err := OpenNoMigrate(ctx, dsn, dataDir)
	if err != nil {
		return nil, err
	}
	if _, err := Migrate(ctx, s); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// OpenNoMigrate connects and checks reachability without migrating.
func OpenNoMigrate(ctx context.Context, dsn, dataDir string) (Store, error) {
	switch {
	case dsn == "":
		return openSQLite(ctx, filepath.Join(dataDir, DefaultSQLiteFile))
	case strings.HasPrefix(dsn, "sqlite://"):
		return openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite://"))
	case strings.HasPrefix(dsn, "sqlite:"):
		return openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:"))
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return openPostgres(ctx, dsn)
	}
	return nil, fmt.Errorf("store %q: unknown kind (want sqlite:PATH or postgres://…)", Redact(dsn))
}

// createSQLite creates a new database file with large pages: the audit
// log stores runs of events of hundreds of kilobytes, and SQLite writes
// its WAL a page per system call. The page size is fixed once the file
// has content, and the driver would switch to WAL first, so the file is
// made here, alone.
func createSQLite(ctx context.Context, path string) error {
	if _, err := os.Stat(path); err == nil || !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return fmt.Errorf("create sqlite store %s: %w", path, err)
	}
	defer db.Close()
	for _, q := range []string{"PRAGMA page_size = 65536", "CREATE TABLE gatehouse_init (x)", "DROP TABLE gatehouse_init"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create sqlite store %s: %w", path, err)
		}
	}
	return os.Chmod(path, 0o600)
}

func openSQLite(ctx context.Context, path string) (Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open sqlite store: %w", err)
		}
	}
	// WAL lets readers run beside the writer; busy_timeout makes writers
	// queue instead of failing; _txlock=immediate takes the write lock at
	// BEGIN so two transactions cannot deadlock upgrading their locks.
	// synchronous=NORMAL (with WAL): a commit survives the process dying
	// at once, and the WAL is fsynced at checkpoints rather than at every
	// commit, which the audit log's stream of commits needs.
	if err := createSQLite(ctx, path); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	if err := ping(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	// The file holds sealed credentials and token hashes: owner only.
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite store: %w", err)
	}
	return &sqlStore{db: db, q: db, d: sqliteDialect}, nil
}

func openPostgres(ctx context.Context, dsn string) (Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres store %s: %w", Redact(dsn), err)
	}
	if err := ping(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open postgres store %s: %s", Redact(dsn), redactErr(err, dsn))
	}
	db.SetMaxOpenConns(16)
	return &sqlStore{db: db, q: db, d: postgresDialect}, nil
}

func ping(ctx context.Context, db *sql.DB) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// Redact hides the password of a URL-form dsn.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		if err != nil {
			return "(unparsable store address)"
		}
		return dsn
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// redactErr removes the dsn's password from a driver error, in case a
// driver echoes its configuration.
func redactErr(err error, dsn string) string {
	msg := err.Error()
	if u, perr := url.Parse(dsn); perr == nil && u.User != nil {
		if pw, has := u.User.Password(); has && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return msg
}
