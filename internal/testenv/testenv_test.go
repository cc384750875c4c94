package testenv

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

func TestPostgres(t *testing.T) {
	pg := Postgres(t)
	db := pg.CreateDatabase(t)
	if err := pg.Exec(db, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatalf("exec in %s: %v", db, err)
	}
	if Postgres(t) != pg {
		t.Error("second Postgres call started another server")
	}
	// The password is enforced: a wrong one is refused.
	bad := *pg
	bad.Password = "wrong"
	if err := bad.Exec("postgres", "SELECT 1"); err == nil || !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("wrong password: %v; want an authentication failure", err)
	}
}

func TestMariaDB(t *testing.T) {
	m := MariaDB(t)
	out, err := m.Query("SELECT VERSION(), CURRENT_USER()")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "MariaDB") || !strings.Contains(out, "gatehouse@%") {
		t.Errorf("SELECT VERSION(), CURRENT_USER() = %q", out)
	}
	bad := *m
	bad.Password = "wrong"
	if _, err := bad.Query("SELECT 1"); err == nil || !strings.Contains(err.Error(), "Access denied") {
		t.Errorf("wrong password: %v; want access denied", err)
	}
}

func TestRedis(t *testing.T) {
	r := Redis(t)
	if reply, err := r.Do("SET", "k", "v"); err != nil || reply != "+OK" {
		t.Fatalf("SET = %q, %v", reply, err)
	}
	if reply, err := r.Do("GET", "k"); err != nil || reply != "v" {
		t.Fatalf("GET = %q, %v", reply, err)
	}
	bad := *r
	bad.Password = "wrong"
	if _, err := bad.Do("PING"); err == nil {
		t.Error("wrong password accepted")
	}
}

func TestSSHD(t *testing.T) {
	s := SSHD(t)
	out, err := s.Run("echo hello-from-sshd")
	if err != nil || strings.TrimSpace(out) != "hello-from-sshd" {
		t.Fatalf("ssh echo = %q, %v", out, err)
	}
}

func TestMissingBinaryNamesPackage(t *testing.T) {
	_, err := lookBin("no-such-server-binary", "some-debian-package")
	var mb *MissingBinaryError
	if !errors.As(err, &mb) || !strings.Contains(err.Error(), "install the Debian package some-debian-package") {
		t.Errorf("lookBin(missing) = %v; want a MissingBinaryError naming the package", err)
	}
}
