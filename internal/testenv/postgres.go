package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresServer is a running PostgreSQL cluster. Its superuser logs in over
// TCP with a password (SCRAM-SHA-256), as a gateway would.
type PostgresServer struct {
	Endpoint
	User     string
	Password string
	Dir      string // data directory's parent; logs are in Dir/postgres.log
}

var pgOnce once[*PostgresServer]

// Postgres returns the package's PostgreSQL server, starting it on first use.
func Postgres(t testing.TB) *PostgresServer {
	t.Helper()
	return pgOnce.get(t, startPostgres)
}

// DSN is a URL for database as the superuser.
func (s *PostgresServer) DSN(database string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(s.User, s.Password), Host: s.Addr(), Path: "/" + database, RawQuery: "sslmode=disable"}
	return u.String()
}

var dbCounter atomic.Int64

// CreateDatabase makes a fresh, empty database for one test and returns its
// name; it is dropped when the test ends.
func (s *PostgresServer) CreateDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test_%d_%d", os.Getpid(), dbCounter.Add(1))
	if err := s.Exec("postgres", "CREATE DATABASE "+name); err != nil {
		t.Fatalf("testenv: create database: %v", err)
	}
	t.Cleanup(func() {
		s.Exec("postgres", "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return name
}

// Exec runs statements in database as the superuser.
func (s *PostgresServer) Exec(database, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN(database))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func startPostgres() (*PostgresServer, error) {
	const pkg = "postgresql"
	binDirs := []string{"/usr/lib/postgresql/*/bin"}
	initdb, err := lookBin("initdb", pkg, binDirs...)
	if err != nil {
		return nil, err
	}
	postgres, err := lookBin("postgres", pkg, binDirs...)
	if err != nil {
		return nil, err
	}
	acct, err := unprivileged("postgres")
	if err != nil {
		return nil, err
	}
	dir, err := tempDir("postgres", acct)
	if err != nil {
		return nil, err
	}
	pw := randomHex(16)
	pwFile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		return nil, err
	}
	if acct != nil {
		os.Chown(pwFile, int(acct.uid), int(acct.gid))
	}
	data := filepath.Join(dir, "data")
	if err := run(acct, initdb, "-D", data, "-U", "gatehouse", "--pwfile="+pwFile,
		"--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("testenv: initdb: %w", err)
	}
	os.Remove(pwFile)
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "postgres.log")
	cmd, err := command(acct, logPath, postgres, "-D", data, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200")
	if err != nil {
		return nil, err
	}
	s := &PostgresServer{Endpoint: loopback(port), User: "gatehouse", Password: pw, Dir: dir}
	// SIGINT: PostgreSQL's fast shutdown.
	stop, err := serve("postgres", cmd, dir, logPath, syscall.SIGINT, 10*time.Second, 60*time.Second, func() error { return s.Exec("postgres", "SELECT 1") })
	if err != nil {
		return nil, err
	}
	onStop(stop)
	return s, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// PostgresBin finds a program of the PostgreSQL server package (pgbench,
// pg_ctl, …), which Debian keeps out of PATH.
func PostgresBin(name string) (string, error) {
	return lookBin(name, "postgresql", "/usr/lib/postgresql/*/bin")
}
