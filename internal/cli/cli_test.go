package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// gateway is a `gatehouse server` running in-process through Run.
type gateway struct {
	addr, dataDir, admin string
}

func startGateway(t *testing.T) *gateway {
	t.Helper()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{addr: "127.0.0.1:" + strconv.Itoa(port), dataDir: filepath.Join(t.TempDir(), "data")}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stdout, stderr syncBuffer
	go func() {
		done <- Run(ctx, []string{"server", "--data-dir", g.dataDir, "--api-addr", g.addr, "--postgres-addr", "127.0.0.1:0"}, nil, &stdout, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("server exited %d: %s", code, stderr.String())
			}
		case <-time.After(20 * time.Second):
			t.Error("server did not stop within 20s of its context ending")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(g.dataDir, "admin-token"))
		if err == nil && len(b) > 0 && strings.Contains(stderr.String(), "gateway ready") {
			g.admin = strings.TrimSpace(string(b))
			break
		}
		select {
		case code := <-done:
			t.Fatalf("server exited %d: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(stdout.String(), g.admin) {
		t.Fatalf("admin token not printed on first start; stdout %q", stdout.String())
	}
	return g
}

// run executes the CLI against g with token.
func (g *gateway) run(t *testing.T, token, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	full := append(args, "--server", "https://"+g.addr, "--ca", filepath.Join(g.dataDir, "ca.pem"), "--token", token)
	return runCLI(stdin, full...)
}

func runCLI(stdin string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

var tokenLine = regexp.MustCompile(`^gh1_[0-9a-f]{16}_[A-Za-z0-9_-]{43}\n$`)

func TestQuickstart(t *testing.T) {
	g := startGateway(t)
	code, out, errOut := g.run(t, g.admin, "", "apply", "-f", "../../examples/connections.yaml")
	if code != 0 || !strings.Contains(out, "connection/orders-db created") || !strings.Contains(out, "identity/ci-bot created") {
		t.Fatalf("apply examples = %d %q %q", code, out, errOut)
	}
	if code, out, errOut := g.run(t, g.admin, "", "apply", "-f", "../../examples/federation.yaml"); code != 0 || !strings.Contains(out, "identity/api-deployer created") {
		t.Errorf("apply examples/federation.yaml = %d %q %q", code, out, errOut)
	}
	code, out, _ = g.run(t, g.admin, "", "get", "connections")
	if code != 0 || !strings.Contains(out, "orders-db") || !strings.Contains(out, "env:ORDERS_DB_PASSWORD") || !strings.Contains(out, "cache") {
		t.Errorf("get connections = %d %q", code, out)
	}
	if strings.Contains(out, "an-inline-secret") {
		t.Errorf("get connections shows an inline secret: %q", out)
	}

	// YAML output applies again unchanged.
	code, yamlOut, errOut := g.run(t, g.admin, "", "get", "connection", "orders-db", "-o", "yaml")
	if code != 0 || !strings.Contains(yamlOut, "kind: Connection") {
		t.Fatalf("get -o yaml = %d %q %q", code, yamlOut, errOut)
	}
	if code, out, errOut = g.run(t, g.admin, yamlOut, "apply", "-f", "-"); code != 0 || out != "connection/orders-db configured\n" {
		t.Errorf("re-apply of get -o yaml = %d %q %q", code, out, errOut)
	}

	// Policies: the example applies; a condition that does not compile is
	// refused with its position and writes nothing.
	if code, out, errOut = g.run(t, g.admin, "", "apply", "-f", "../../examples/policies.yaml"); code != 0 || out != "policy/production created\n" {
		t.Errorf("apply policies = %d %q %q", code, out, errOut)
	}
	if code, out, _ = g.run(t, g.admin, "", "get", "policies"); code != 0 || !strings.Contains(out, "production") || !strings.Contains(out, "env=prod") || !strings.Contains(out, "postgres-production") {
		t.Errorf("get policies = %d %q", code, out)
	}
	bad := "kind: Policy\nname: broken\nconnections: {names: ['*']}\nrules:\n  - name: typo\n    action: block\n    when: command.sql.writs\n"
	if code, _, errOut = g.run(t, g.admin, bad, "apply", "-f", "-"); code != 1 || !strings.Contains(errOut, `line 7: policy "broken" rule "typo": when: 1:12: undefined field 'writs'`) {
		t.Errorf("apply of a broken policy = %d %q", code, errOut)
	}
	if code, _, errOut = g.run(t, g.admin, "", "get", "policy", "broken"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("the broken policy was stored: %d %q", code, errOut)
	}

	// The audit log verifies online and, exported, offline with the public
	// key alone; an event's inclusion proof verifies, and not once altered.
	if code, out, errOut = g.run(t, g.admin, "", "audit", "verify"); code != 0 || !strings.Contains(out, "OK:") {
		t.Errorf("audit verify = %d %q %q", code, out, errOut)
	}
	export := filepath.Join(t.TempDir(), "audit.jsonl")
	if code, _, errOut = g.run(t, g.admin, "", "audit", "export", "-o", export); code != 0 {
		t.Fatalf("audit export = %d %q", code, errOut)
	}
	pub := filepath.Join(g.dataDir, "signing.pub")
	if code, out, errOut = runCLI("", "audit", "verify", "--file", export, "--pubkey", pub); code != 0 || !strings.Contains(out, "OK:") || strings.Contains(out, "awaiting") {
		t.Errorf("offline verify = %d %q %q", code, out, errOut)
	}
	raw, _ := os.ReadFile(export)
	os.WriteFile(export, bytes.Replace(raw, []byte(`"identity":"admin"`), []byte(`"identity":"mallory"`), 1), 0o600)
	if code, out, _ = runCLI("", "audit", "verify", "--file", export, "--pubkey", pub); code != 1 || !strings.Contains(out, "FAILED") || !strings.Contains(out, "modified") {
		t.Errorf("offline verify of an edited export = %d %q", code, out)
	}
	if code, out, errOut = g.run(t, g.admin, "", "audit", "export", "--type", "admin", "--identity", "admin"); code != 0 ||
		!strings.Contains(out, `"apply Policy production (created)"`) || strings.Contains(out, "checkpoint") || strings.Contains(out, `"type":"session`) {
		t.Errorf("filtered export = %d %q %q", code, out, errOut)
	}
	if code, out, errOut = g.run(t, g.admin, "", "audit", "export", "--format", "ocsf", "--type", "admin"); code != 0 ||
		!strings.Contains(out, `"class_uid":6003`) || !strings.Contains(out, `"message":"apply Policy production (created)"`) {
		t.Errorf("ocsf export = %d %q %q", code, out, errOut)
	}
	if code, _, _ = g.run(t, g.admin, "", "audit", "export", "--format", "xml"); code != 2 {
		t.Errorf("export --format xml = %d, want a usage error", code)
	}
	if code, out, errOut = g.run(t, g.admin, "", "audit", "tail", "-n", "2"); code != 0 || strings.Count(out, "\n") != 2 {
		t.Errorf("audit tail -n 2 = %d %q %q", code, out, errOut)
	}
	if code, _, errOut = g.run(t, g.admin, "", "audit", "export", "--since", "yesterday"); code != 1 || !strings.Contains(errOut, "RFC 3339") {
		t.Errorf("export --since yesterday = %d %q", code, errOut)
	}
	proofFile := filepath.Join(t.TempDir(), "proof.json")
	if code, _, errOut = g.run(t, g.admin, "", "audit", "prove", "1", "-o", proofFile); code != 0 {
		t.Fatalf("audit prove = %d %q", code, errOut)
	}
	if code, out, errOut = runCLI("", "audit", "verify-proof", proofFile, "--pubkey", pub); code != 0 || !strings.Contains(out, "OK: event 1") {
		t.Errorf("verify-proof = %d %q %q", code, out, errOut)
	}
	raw, _ = os.ReadFile(proofFile)
	os.WriteFile(proofFile, bytes.Replace(raw, []byte(`apply`), []byte(`APPLY`), 1), 0o600)
	if code, out, _ = runCLI("", "audit", "verify-proof", proofFile, "--pubkey", pub); code != 1 || !strings.Contains(out, "FAILED") {
		t.Errorf("verify-proof of an altered event = %d %q", code, out)
	}

	// token create prints the token alone.
	code, userTok, errOut := g.run(t, g.admin, "", "token", "create", "--identity", "ci-bot", "--ttl", "1h")
	if code != 0 || !tokenLine.MatchString(userTok) {
		t.Fatalf("token create = %d %q %q; want the token alone on one line", code, userTok, errOut)
	}
	userTok = strings.TrimSpace(userTok)

	// A user token cannot create connections.
	code, _, errOut = g.run(t, userTok, "", "apply", "-f", "../../examples/connections.yaml")
	if code != 1 || !strings.Contains(errOut, "HTTP 403") || !strings.Contains(errOut, "needs the admin role") {
		t.Errorf("user apply = %d %q; want 403", code, errOut)
	}
	code, out, _ = g.run(t, userTok, "", "get", "connections")
	if code != 0 || !strings.Contains(out, "orders-db") || strings.Contains(out, "cache") {
		t.Errorf("ci-bot get connections = %d %q; want orders-db only", code, out)
	}
	code, out, _ = g.run(t, userTok, "", "whoami")
	if code != 0 || !strings.Contains(out, "identity: ci-bot (service)") || !strings.Contains(out, "role: user") {
		t.Errorf("whoami = %d %q", code, out)
	}

	// Revoke it; it stops working with a reason.
	code, out, _ = g.run(t, g.admin, "", "token", "list", "--identity", "ci-bot")
	fields := strings.Fields(strings.Split(out, "\n")[1])
	if code != 0 || len(fields) < 4 || fields[3] != "active" {
		t.Fatalf("token list = %d %q", code, out)
	}
	if code, out, _ = g.run(t, g.admin, "", "token", "revoke", fields[0]); code != 0 || !strings.Contains(out, "revoked") {
		t.Errorf("token revoke = %d %q", code, out)
	}
	code, _, errOut = g.run(t, userTok, "", "get", "connections")
	if code != 1 || !strings.Contains(errOut, "the token has been revoked") || !strings.Contains(errOut, "HTTP 401") {
		t.Errorf("revoked token = %d %q; want 401 naming revocation", code, errOut)
	}
	code, _, errOut = g.run(t, "", "", "get", "connections")
	if code != 1 || !strings.Contains(errOut, "no token was presented") || !strings.Contains(errOut, "GATEHOUSE_TOKEN") {
		t.Errorf("no token = %d %q; want 401 with a hint", code, errOut)
	}

	if code, out, _ = g.run(t, g.admin, "", "delete", "connection", "cache"); code != 0 || out != "connection/cache deleted\n" {
		t.Errorf("delete = %d %q", code, out)
	}
	if code, _, errOut = g.run(t, g.admin, "", "delete", "connection", "cache"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("second delete = %d %q", code, errOut)
	}
	if code, out, _ = g.run(t, g.admin, "", "get", "groups"); code != 0 || !strings.Contains(out, "dba") {
		t.Errorf("get groups = %d %q", code, out)
	}
}

func TestApplyRejectsBadFilesWritingNothing(t *testing.T) {
	g := startGateway(t)
	dir := t.TempDir()
	good := "kind: Identity\nname: a\n---\n"
	tests := []struct {
		name, content, want string
	}{
		{"malformed", good + "kind: Connection\nname: db\ntype: postgres\n  address: x:1\n", "line 7"},
		{"unknown kind", good + "kind: Databse\nname: x\n", `line 4: unknown kind "Databse"`},
		{"duplicate", good + "kind: Identity\nname: a\n", `duplicate Identity "a"`},
		{"misspelt field", good + "kind: Connection\nname: db\ntype: postgres\naddress: h:1\npasword: x\n", `line 8: unknown field "pasword"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".yaml")
			os.WriteFile(path, []byte(tt.content), 0o600)
			code, out, errOut := g.run(t, g.admin, "", "apply", "-f", path)
			if code != 1 || !strings.Contains(errOut, path+": "+tt.want) && !strings.Contains(errOut, tt.want) {
				t.Errorf("apply %s = %d %q %q; want exit 1 naming %q", tt.name, code, out, errOut, tt.want)
			}
			if !strings.Contains(errOut, path) {
				t.Errorf("error %q does not name the file", errOut)
			}
		})
	}
	code, out, _ := g.run(t, g.admin, "", "get", "identities")
	if code != 0 || strings.Contains(out, "\na ") {
		t.Errorf("a rejected apply wrote identity a: %q", out)
	}
	if code, _, errOut := g.run(t, g.admin, "", "apply", "-f", filepath.Join(dir, "missing.yaml")); code != 1 || !strings.Contains(errOut, "no such file") {
		t.Errorf("missing file = %d %q", code, errOut)
	}
}

func TestServerExitsOnUnreachableStore(t *testing.T) {
	port, _ := testenv.FreePort()
	code, _, errOut := runCLI("", "server", "--data-dir", t.TempDir(), "--api-addr", "127.0.0.1:0", "--postgres-addr", "off",
		"--store", fmt.Sprintf("postgres://gh:topsecret@127.0.0.1:%d/gatehouse?connect_timeout=2", port))
	if code == 0 || !strings.Contains(errOut, "open postgres store") || !strings.Contains(errOut, "connect") {
		t.Errorf("server with an unreachable store = %d %q; want non-zero naming the cause", code, errOut)
	}
	if strings.Contains(errOut, "topsecret") {
		t.Errorf("error shows the store password: %q", errOut)
	}
}

func TestSettingsPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "gatehouse.yaml")
	os.WriteFile(cfg, []byte("api-addr: from-file\ndata-dir: "+filepath.Join(dir, "d")+"\n"), 0o600)
	serve := func(extra ...string) string {
		_, _, errOut := runCLI("", append([]string{"server", "--config", cfg}, extra...)...)
		return errOut
	}
	if e := serve(); !strings.Contains(e, `"from-file"`) {
		t.Errorf("file setting not used: %q", e)
	}
	t.Setenv("GATEHOUSE_API_ADDR", "from-env")
	if e := serve(); !strings.Contains(e, `"from-env"`) {
		t.Errorf("environment does not beat the file: %q", e)
	}
	if e := serve("--api-addr", "from-flag"); !strings.Contains(e, `"from-flag"`) {
		t.Errorf("flag does not beat the environment: %q", e)
	}
	os.WriteFile(cfg, []byte("api_adr: x\n"), 0o600)
	if e := serve(); !strings.Contains(e, `unknown setting "api_adr"`) {
		t.Errorf("unknown setting accepted: %q", e)
	}
	if code, _, e := runCLI("", "get", "connections", "--config", filepath.Join(dir, "nope.yaml")); code != 1 || !strings.Contains(e, "no such file") {
		t.Errorf("explicit missing config = %d %q", code, e)
	}
}

func TestUsageAndOfflineCommands(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"get"}, 2, "accepts between 1 and 2 arg"},
		{[]string{"get", "databases"}, 2, `unknown kind "databases"`},
		{[]string{"apply"}, 2, "apply needs -f FILE"},
		{[]string{"server", "--log-level", "loud"}, 2, "log-level"},
		{[]string{"version"}, 0, "gatehouse dev"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errOut := runCLI("", tt.args...)
			if code != tt.code || !strings.Contains(out+errOut, tt.want) {
				t.Errorf("gatehouse %v = %d %q %q; want %d containing %q", tt.args, code, out, errOut, tt.code, tt.want)
			}
		})
	}
	dir := t.TempDir()
	code, out, errOut := runCLI("", "migrate", "--data-dir", dir)
	// Every migration applies, up to the latest the binary knows.
	if m := regexp.MustCompile(`sqlite store schema is at version (\d+) \(latest known (\d+)\)`).FindStringSubmatch(out); code != 0 ||
		!strings.Contains(out, "applied migration 0001") || m == nil || m[1] != m[2] || !strings.Contains(out, fmt.Sprintf("applied migration %04s", m[1])) {
		t.Errorf("migrate = %d %q %q", code, out, errOut)
	}
	if code, out, _ = runCLI("", "migrate", "--data-dir", dir); code != 0 || strings.Contains(out, "applied") {
		t.Errorf("second migrate = %d %q; want nothing applied", code, out)
	}
}

func TestUntrustedCertificateHint(t *testing.T) {
	g := startGateway(t)
	code, _, errOut := runCLI("", "get", "connections", "--server", "https://"+g.addr, "--token", g.admin, "--ca", "/etc/ssl/certs/ca-certificates.crt")
	if code != 1 || !strings.Contains(errOut, "not trusted") || !strings.Contains(errOut, "--ca") {
		t.Errorf("untrusted gateway = %d %q; want a hint about --ca", code, errOut)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestAuditTailFollows(t *testing.T) {
	g := startGateway(t)
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"audit", "tail", "-f", "--server", "https://" + g.addr,
			"--ca", filepath.Join(g.dataDir, "ca.pem"), "--token", g.admin}, nil, &out, &out)
	}()
	time.Sleep(300 * time.Millisecond)
	if code, _, errOut := g.run(t, g.admin, "kind: Identity\nname: tailed\n", "apply", "-f", "-"); code != 0 {
		t.Fatalf("apply = %d %q", code, errOut)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "apply Identity tailed") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 || !strings.Contains(out.String(), "apply Identity tailed") {
		t.Errorf("audit tail -f = %d, printed %q; want the new event", code, out.String())
	}
}
