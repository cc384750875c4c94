package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func start(t *testing.T, cfg Config) (*Gateway, string) {
	t.Helper()
	var out bytes.Buffer
	cfg.APIAddr, cfg.PostgresAddr, cfg.Log, cfg.Stdout = "127.0.0.1:0", "127.0.0.1:0", quietLog(), &out
	g, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { g.Shutdown(context.Background()) })
	return g, out.String()
}

// httpsClient trusts only the gateway's dev CA.
func httpsClient(t *testing.T, dataDir string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(dataDir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func TestFirstStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	g, printed := start(t, Config{DataDir: dir})
	for file, mode := range map[string]os.FileMode{
		AdminTokenFile: 0o600, MasterKeyFile: 0o600, SigningKeyFile: 0o600, "ca.key": 0o600,
		"server.key": 0o600, "gatehouse.db": 0o600, "ca.pem": 0o644, SigningPubFile: 0o644,
	} {
		st, err := os.Stat(filepath.Join(dir, file))
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, err %v; want %v", file, st.Mode().Perm(), err, mode)
		}
	}
	if st, _ := os.Stat(dir); st.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v, want 0700", st.Mode().Perm())
	}
	token, _ := os.ReadFile(filepath.Join(dir, AdminTokenFile))
	if len(bytes.TrimSpace(token)) != 64 || !strings.Contains(printed, strings.TrimSpace(string(token))) {
		t.Fatalf("admin token file %q not printed in %q", token, printed)
	}

	client := httpsClient(t, dir)
	resp, err := client.Get("https://" + g.APIAddr() + "/healthz")
	if err != nil {
		t.Fatalf("healthz over TLS with ca.pem: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("healthz = %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", "https://"+g.APIAddr()+"/api/v1/whoami", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err = client.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("whoami with the admin token: %v %v", resp, err)
	}
	resp.Body.Close()
	caBefore, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	g.Shutdown(context.Background())

	// A restart reuses everything and prints no new token.
	_, printed = start(t, Config{DataDir: dir})
	caAfter, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	tokenAfter, _ := os.ReadFile(filepath.Join(dir, AdminTokenFile))
	if printed != "" || !bytes.Equal(caBefore, caAfter) || !bytes.Equal(token, tokenAfter) {
		t.Errorf("restart printed %q, CA changed %v, token changed %v", printed, !bytes.Equal(caBefore, caAfter), !bytes.Equal(token, tokenAfter))
	}
}

func TestWrongMasterKeyIsRefused(t *testing.T) {
	dir := t.TempDir()
	g, _ := start(t, Config{DataDir: dir})
	g.Shutdown(context.Background())
	os.Remove(filepath.Join(dir, MasterKeyFile))
	other := filepath.Join(t.TempDir(), "other.key")
	secret.LoadOrCreateMasterKeyFile(other)
	_, err := Start(context.Background(), Config{DataDir: dir, APIAddr: "127.0.0.1:0", PostgresAddr: "off", MasterKeyFile: other, Log: quietLog(), Stdout: io.Discard})
	if err == nil || !strings.Contains(err.Error(), "not the one this store's credentials were sealed with") {
		t.Fatalf("Start with another master key = %v; want a refusal", err)
	}
}

func TestStartErrors(t *testing.T) {
	port, _ := testenv.FreePort()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"unreachable store", Config{Store: "postgres://gh:pw@127.0.0.1:" + strconv.Itoa(port) + "/x?connect_timeout=2"}, "connect"},
		{"bad api addr", Config{APIAddr: "nonsense"}, `api-addr "nonsense" is invalid`},
		{"cert without key", Config{TLSCert: "x.pem"}, "tls-cert and tls-key go together"},
		{"bad master key", Config{MasterKey: "!!"}, "master key from configuration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.DataDir, tt.cfg.Log, tt.cfg.Stdout, tt.cfg.PostgresAddr = t.TempDir(), quietLog(), io.Discard, "127.0.0.1:0"
			if tt.cfg.APIAddr == "" {
				tt.cfg.APIAddr = "127.0.0.1:0"
			}
			g, err := Start(context.Background(), tt.cfg)
			if err == nil {
				g.Shutdown(context.Background())
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), ":pw@") {
				t.Errorf("Start error = %q; want %q and no password", err, tt.want)
			}
		})
	}
}

// TestNoPlaintextAtRest stores a connection password and issues a token
// through the API, then reads the raw SQLite files and the raw PostgreSQL
// tables: neither secret may appear, in text or hex.
func TestNoPlaintextAtRest(t *testing.T) {
	const password = "Pl41ntext-Db-P4ssw0rd-7731"
	run := func(t *testing.T, cfg Config, raw func(t *testing.T, dataDir string) []byte) {
		cfg.DataDir = t.TempDir()
		g, _ := start(t, cfg)
		admin, _ := os.ReadFile(filepath.Join(cfg.DataDir, AdminTokenFile))
		client := httpsClient(t, cfg.DataDir)
		call := func(method, path, body string) []byte {
			req, _ := http.NewRequest(method, "https://"+g.APIAddr()+path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(admin)))
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode >= 300 {
				t.Fatalf("%s %s = %d %s", method, path, resp.StatusCode, b)
			}
			return b
		}
		call("POST", "/api/v1/apply", "kind: Identity\nname: ci-bot\ntype: service\n---\nkind: Connection\nname: db\ntype: postgres\naddress: 127.0.0.1:5432\npassword: "+password+"\n")
		var created struct{ Token string }
		json.Unmarshal(call("POST", "/api/v1/tokens", `{"identity":"ci-bot","ttl":"1h"}`), &created)
		if created.Token == "" {
			t.Fatal("no token created")
		}
		_, tokenSecret, _ := strings.Cut(created.Token[4:], "_")
		secrets := map[string]string{"password": password, "token": created.Token, "token secret": tokenSecret, "admin token": strings.TrimSpace(string(admin))}
		check := func(when string, data []byte) {
			if len(data) == 0 {
				t.Fatalf("%s: read no raw data", when)
			}
			// Positive control: the reader sees the rows it should.
			for _, visible := range []string{"ci-bot", "127.0.0.1:5432"} {
				if !bytes.Contains(data, []byte(visible)) {
					t.Fatalf("%s: raw store data lacks %q: the check reads the wrong data", when, visible)
				}
			}
			for name, s := range secrets {
				if bytes.Contains(data, []byte(s)) || bytes.Contains(bytes.ToLower(data), []byte(hex.EncodeToString([]byte(s)))) {
					t.Errorf("%s: the %s appears in plaintext in the store", when, name)
				}
			}
		}
		check("while running", raw(t, cfg.DataDir))
		g.Shutdown(context.Background())
		check("after shutdown", raw(t, cfg.DataDir))
	}

	t.Run("sqlite", func(t *testing.T) {
		run(t, Config{}, func(t *testing.T, dataDir string) []byte {
			var all []byte
			files, _ := filepath.Glob(filepath.Join(dataDir, "gatehouse.db*"))
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, b...)
			}
			return all
		})
	})

	t.Run("postgres", func(t *testing.T) {
		pg := testenv.Postgres(t)
		dsn := pg.DSN(pg.CreateDatabase(t))
		run(t, Config{Store: dsn}, func(t *testing.T, _ string) []byte {
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			rows, err := conn.Query(ctx, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
			if err != nil {
				t.Fatal(err)
			}
			tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil || len(tables) < 4 {
				t.Fatalf("tables %v, %v", tables, err)
			}
			var all []byte
			for _, tbl := range tables {
				rows, err := conn.Query(ctx, "SELECT t::text FROM "+pgx.Identifier{tbl}.Sanitize()+" t")
				if err != nil {
					t.Fatal(err)
				}
				texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
				if err != nil {
					t.Fatal(err)
				}
				for _, s := range texts {
					all = append(all, s...)
				}
			}
			return all
		})
	})
}
