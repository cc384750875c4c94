package postgres_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/recording"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/server"
	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

// crashGatewayEnv makes the test binary a gateway process (see
// runCrashGateway), so a test can kill it with SIGKILL.
const crashGatewayEnv = "GATEHOUSE_TEST_CRASH_GATEWAY"

type crashConfig struct {
	DataDir, PostgresAddr, APIAddr string
}

// runCrashGateway serves until the process is killed.
func runCrashGateway(raw string) {
	var c crashConfig
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		panic(err)
	}
	_, err := server.Start(context.Background(), server.Config{DataDir: c.DataDir, PostgresAddr: c.PostgresAddr,
		APIAddr: c.APIAddr, Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), Stdout: io.Discard})
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash gateway:", err)
		os.Exit(3)
	}
	fmt.Println("ready")
	select {}
}

// TestKillDuringPgbench runs pgbench through a gateway process, kills the
// gateway with SIGKILL mid-run, and restarts it: the audit log verifies,
// and every statement that ran at the target has its command event.
func TestKillDuringPgbench(t *testing.T) {
	pg := testenv.Postgres(t)
	pgbench, err := testenv.PostgresBin("pgbench")
	if err != nil {
		t.Fatal(err)
	}
	e := sharedEnv(t) // for its target database and role
	direct := e.connect(t, e.direct())
	if _, err := direct.Exec(ctx, "DROP TABLE IF EXISTS crash_marks; CREATE TABLE crash_marks (v bigint)"); err != nil {
		t.Fatal(err)
	}

	// Prepare a data directory: keys, store, a connection and a token.
	dir := t.TempDir()
	gw, err := server.Start(ctx, server.Config{DataDir: dir, APIAddr: "127.0.0.1:0", PostgresAddr: "off",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Stdout: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	st := gw.Store
	st.PutIdentity(ctx, resource.Identity{Name: "alice", Type: resource.IdentityUser, Groups: []string{"dba"}})
	sealed, _ := gw.MasterKey.Seal([]byte(e.targetPW), secret.ConnectionAAD("appdb"))
	if _, err := st.PutConnection(ctx, storeRecord("appdb", pg.Addr(), e.targetDB, "app_"+e.targetDB, sealed, e)); err != nil {
		t.Fatal(err)
	}
	token, rec, _ := identity.NewToken("alice", resource.RoleUser, time.Hour, "", time.Now())
	st.CreateToken(ctx, rec)
	pub := gw.SigningKey.Public().(ed25519.PublicKey)
	gw.Shutdown(ctx)

	port, _ := testenv.FreePort()
	apiPort, _ := testenv.FreePort()
	cfg, _ := json.Marshal(crashConfig{DataDir: dir, PostgresAddr: fmt.Sprintf("127.0.0.1:%d", port), APIAddr: fmt.Sprintf("127.0.0.1:%d", apiPort)})
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashGatewayEnv+"="+string(cfg))
		cmd.Stderr = os.Stderr
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 16)
		if n, _ := out.Read(buf); !strings.HasPrefix(string(buf[:n]), "ready") {
			cmd.Process.Kill()
			t.Fatalf("gateway process did not start: %q", buf[:n])
		}
		return cmd
	}
	child := start()
	defer func() { child.Process.Kill(); child.Wait() }()

	script := dir + "/marks.sql"
	os.WriteFile(script, []byte("\\set r random(1, 9000000000000)\nINSERT INTO crash_marks VALUES (:r);\n"), 0o644)
	bench := exec.Command(pgbench, "-h", "127.0.0.1", "-p", fmt.Sprint(port), "-U", "whoever", "-n", "-c", "4", "-j", "2",
		"-T", "30", "-f", script, "-M", "simple", "appdb")
	bench.Env = append(os.Environ(), "PGPASSWORD="+token, "PGSSLMODE=disable")
	benchOut, _ := bench.StdoutPipe()
	if err := bench.Start(); err != nil {
		t.Fatal(err)
	}
	// Let it run, then kill the gateway mid-stream.
	deadline := time.Now().Add(20 * time.Second)
	var n int
	for time.Now().Before(deadline) {
		direct.QueryRow(ctx, "SELECT count(*) FROM crash_marks").Scan(&n)
		if n >= 2000 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	child.Process.Kill()
	child.Wait()
	io.Copy(io.Discard, benchOut)
	bench.Wait() // pgbench reports the lost connections; that is expected
	if n < 2000 {
		t.Fatalf("pgbench made only %d inserts before the kill", n)
	}

	// Restart: the journal's events reach the store; the log verifies.
	gw2, err := server.Start(ctx, server.Config{DataDir: dir, APIAddr: "127.0.0.1:0", PostgresAddr: "off",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Stdout: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	gw2.Shutdown(ctx)
	st2, err := store.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	node, _ := os.Hostname()
	bodies, notes, err := audit.ReadStore(ctx, st2, node)
	if err != nil {
		t.Fatal(err)
	}
	logged := map[string]bool{}
	for _, b := range bodies {
		var m struct{ Type, Command string }
		json.Unmarshal(b, &m)
		if m.Type == "command" {
			logged[m.Command] = true
		}
	}
	v, _ := audit.NewVerifier(pub)
	r := audit.Verify(node, bodies, notes, v)
	if !r.OK() {
		t.Fatalf("after kill -9 and restart: %v", r)
	}
	// Recording chunks stored before the kill match their events (the
	// chunks still open in memory are lost, as documented).
	chunks, err := st2.RecordingChunks(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if p := recording.Check(node, chunks, recording.Attestations(bodies, "")); len(p) > 0 {
		t.Errorf("after kill -9 and restart, recordings do not match the log: %v", p)
	}
	rows, err := direct.Query(ctx, "SELECT v FROM crash_marks")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	ran, missing := 0, 0
	for rows.Next() {
		var v int64
		rows.Scan(&v)
		ran++
		if !logged[fmt.Sprintf("INSERT INTO crash_marks VALUES (%d);", v)] {
			missing++
		}
	}
	if ran == 0 || missing > 0 {
		t.Errorf("%d statements ran at the target; %d have no command event in the audit log", ran, missing)
	}
	t.Logf("killed the gateway after %d+ inserts; %d ran at the target, all in the log; %v", n, ran, r)
}
