package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// MariaDBServer is a running MariaDB server with a password-authenticated
// account that may do anything, reachable over TCP.
type MariaDBServer struct {
	Endpoint
	User     string
	Password string
	Socket   string // root's socket, for set-up
	Dir      string
	client   string
}

var mariaOnce once[*MariaDBServer]

// MariaDB returns the package's MariaDB server, starting it on first use.
func MariaDB(t testing.TB) *MariaDBServer {
	t.Helper()
	return mariaOnce.get(t, startMariaDB)
}

// DSN is a go-sql-driver/mysql style address for database.
func (s *MariaDBServer) DSN(database string) string {
	return fmt.Sprintf("%s:%s@tcp(%s)/%s", s.User, s.Password, s.Addr(), database)
}

// Query runs SQL through the mariadb client over TCP as the test user and
// returns its tab-separated output.
func (s *MariaDBServer) Query(sql string) (string, error) {
	out, err := exec.Command(s.client, "--no-defaults", "--protocol=tcp", "-h", s.Host, "-P", strconv.Itoa(s.Port),
		"-u", s.User, "-p"+s.Password, "--batch", "--skip-column-names", "-e", sql).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mariadb %q: %w: %s", sql, err, out)
	}
	return string(out), nil
}

func startMariaDB() (*MariaDBServer, error) {
	const pkg = "mariadb-server"
	installDB, err := lookBin("mariadb-install-db", pkg)
	if err != nil {
		return nil, err
	}
	mariadbd, err := lookBin("mariadbd", pkg, "/usr/sbin")
	if err != nil {
		return nil, err
	}
	client, err := lookBin("mariadb", "mariadb-client")
	if err != nil {
		return nil, err
	}
	acct, err := unprivileged("mysql")
	if err != nil {
		return nil, err
	}
	dir, err := tempDir("mariadb", acct)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := run(acct, installDB, "--no-defaults", "--datadir="+data, "--auth-root-authentication-method=normal",
		"--skip-test-db", "--skip-name-resolve"); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("testenv: mariadb-install-db: %w", err)
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "mysqld.sock")
	logPath := filepath.Join(dir, "mariadb.log")
	cmd, err := command(acct, logPath, mariadbd, "--no-defaults", "--datadir="+data,
		"--port="+strconv.Itoa(port), "--bind-address=127.0.0.1", "--socket="+sock,
		"--pid-file="+filepath.Join(dir, "mysqld.pid"), "--skip-name-resolve",
		"--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M", "--skip-log-bin",
		"--innodb-flush-log-at-trx-commit=0")
	if err != nil {
		return nil, err
	}
	rootSQL := func(sql string) error {
		out, err := exec.Command(client, "--no-defaults", "-S", sock, "-u", "root", "-e", sql).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		return nil
	}
	stop, err := serve("mariadb", cmd, dir, logPath, syscall.SIGTERM, 15*time.Second, 60*time.Second, func() error { return rootSQL("SELECT 1") })
	if err != nil {
		return nil, err
	}
	s := &MariaDBServer{Endpoint: loopback(port), User: "gatehouse", Password: randomHex(16), Socket: sock, Dir: dir, client: client}
	if err := rootSQL(fmt.Sprintf("CREATE USER 'gatehouse'@'%%' IDENTIFIED BY '%s'; GRANT ALL ON *.* TO 'gatehouse'@'%%' WITH GRANT OPTION;", s.Password)); err != nil {
		stop()
		return nil, fmt.Errorf("testenv: mariadb set-up: %w", err)
	}
	onStop(stop)
	return s, nil
}
