package postgres_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/cli"
)

// TestGatehouseConnect runs `gatehouse connect` and uses the local port
// with no password, from pgx and psql, including a cancel.
func TestGatehouseConnect(t *testing.T) {
	e := sharedEnv(t)
	cctx, cancel := context.WithCancel(context.Background())
	out := &syncBuf{}
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(cctx, []string{"connect", "appdb",
			"--server", "https://" + e.gw.APIAddr(), "--ca", filepath.Join(e.dataDir, "ca.pem"),
			"--token", e.alice, "--gateway-addr", e.gw.Addr("postgres")}, nil, out, out)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("gatehouse connect did not stop")
		}
	})
	var port string
	re := regexp.MustCompile(`Forwarding 127\.0\.0\.1:(\d+) to connection appdb`)
	for deadline := time.Now().Add(10 * time.Second); port == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			port = m[1]
		}
	}
	if port == "" {
		t.Fatalf("connect printed no port: %q", out.String())
	}
	local := fmt.Sprintf("postgres://me@127.0.0.1:%s/whatever?sslmode=prefer", port)

	c := e.connect(t, local)
	var db, user string
	if err := c.QueryRow(ctx, "SELECT current_database(), current_user").Scan(&db, &user); err != nil || db != e.targetDB {
		t.Fatalf("through the tunnel: database %q user %q, %v", db, user, err)
	}

	assertCancels(t, local)

	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal("psql not found: install the Debian package postgresql-client")
	}
	got, err := exec.Command(psql, "-X", "-A", "-t", "-h", "127.0.0.1", "-p", port, "-c", "SELECT 40 + 2").CombinedOutput()
	if err != nil || strings.TrimSpace(string(got)) != "42" {
		t.Errorf("psql through the tunnel = %q, %v", got, err)
	}
	// Nothing on the local leg carried the token.
	if strings.Contains(out.String(), e.alice) {
		t.Error("connect printed the token")
	}
}
