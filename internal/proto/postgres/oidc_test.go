package postgres_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gatehouse-dev/gatehouse/internal/cli"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/server"
	"github.com/gatehouse-dev/gatehouse/internal/testenv"
)

// The sign-on tests run a second gateway whose people sign in through a
// real OpenID provider (zitadel's op package, in process). Its access
// policy is the package's: only the dba group may connect.
var (
	oidcOnce sync.Once
	oidcEnv  *env
	oidcOP   *testenv.OIDCProvider
	oidcErr  error
)

const opPassword = "correct horse battery staple"

func sharedOIDC(t *testing.T) (*env, *testenv.OIDCProvider) {
	t.Helper()
	pg := testenv.Postgres(t)
	oidcOnce.Do(func() {
		oidcOP, oidcErr = testenv.StartOIDCProvider(context.Background(),
			testenv.OIDCUser{Username: "dana", Password: opPassword, Email: "Dana@Example.com", Groups: []string{"dba"}},
			testenv.OIDCUser{Username: "frank", Password: opPassword, Email: "frank@example.com", Groups: []string{"dev"}},
			testenv.OIDCUser{Username: "gwen", Password: opPassword, Email: "gwen@example.com", Groups: []string{"dba"}},
			testenv.OIDCUser{Username: "root", Password: opPassword, Email: "root@example.com", Groups: []string{"gatehouse-admins"}},
		)
		if oidcErr != nil {
			return
		}
		oidcEnv, oidcErr = newEnv(pg, server.Config{
			OIDC: identity.OIDCConfig{Issuer: oidcOP.Issuer, ClientID: oidcOP.ClientID, ClientSecret: oidcOP.ClientSecret,
				AdminGroup: "gatehouse-admins"},
		})
	})
	if oidcErr != nil {
		t.Fatal(oidcErr)
	}
	return oidcEnv, oidcOP
}

// login runs `gatehouse login` with extra args as a user would; browse
// plays the user's part once the command prints what to open.
func (e *env) login(t *testing.T, creds string, browse func(stderrLine string) bool, args ...string) (int, string) {
	t.Helper()
	pr, pw := io.Pipe()
	var out strings.Builder
	done := make(chan int, 1)
	args = append([]string{"login", "--no-browser", "--timeout", "60s", "--server", "https://" + e.gw.APIAddr(),
		"--ca", filepath.Join(e.dataDir, "ca.pem")}, args...)
	t.Setenv("GATEHOUSE_CREDENTIALS", creds)
	go func() {
		done <- cli.Run(context.Background(), args, nil, &out, pw)
		pw.Close()
	}()
	var stderr strings.Builder
	sc := bufio.NewScanner(pr)
	browsed := browse == nil
	for sc.Scan() {
		stderr.WriteString(sc.Text() + "\n")
		if !browsed && browse(sc.Text()) {
			browsed = true
		}
	}
	code := <-done
	return code, out.String() + stderr.String()
}

// codeFlowLogin signs user in with the code flow, driving the provider's
// pages with an HTTP client.
func codeFlowLogin(t *testing.T, e *env, op *testenv.OIDCProvider, creds, user string, extra ...string) string {
	t.Helper()
	authURL := regexp.MustCompile(`^\s+(http://\S+/authorize\?\S+)$`)
	code, out := e.login(t, creds, func(line string) bool {
		m := authURL.FindStringSubmatch(line)
		if m == nil {
			return false
		}
		page, err := op.Browse(context.Background(), m[1], user, opPassword)
		if err != nil {
			t.Errorf("browse as %s: %v", user, err)
		} else if !strings.Contains(page, "Signed in. You can close this tab") {
			t.Errorf("the CLI's redirect page says %q", page)
		}
		return true
	}, extra...)
	if code != 0 {
		t.Fatalf("gatehouse login as %s: exit %d\n%s", user, code, out)
	}
	return out
}

func readCreds(t *testing.T, path string) map[string]struct {
	Token, TokenID, Identity, Refresh string
	IssuedAt, ExpiresAt               time.Time
} {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("credentials file mode %o, want 600", st.Mode().Perm())
	}
	var m map[string]struct {
		Token, TokenID, Identity, Refresh string
		IssuedAt, ExpiresAt               time.Time
	}
	data, _ := os.ReadFile(path)
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// cliCached runs a CLI command with no --token: it acts with the cached
// sign-on in creds.
func (e *env) cliCached(t *testing.T, creds string, args ...string) (int, string) {
	t.Helper()
	t.Setenv("GATEHOUSE_CREDENTIALS", creds)
	var out strings.Builder
	args = append(args, "--server", "https://"+e.gw.APIAddr(), "--ca", filepath.Join(e.dataDir, "ca.pem"))
	code := cli.Run(context.Background(), args, nil, &out, &out)
	return code, out.String()
}

// TestOIDCCodeFlowAndGroups: code+PKCE sign-on through the CLI's loopback
// listener creates the user with the provider's groups; a dba member's
// token opens the postgres connection in psql, a dev member's gets 28000;
// the admin group's member gets the admin role.
func TestOIDCCodeFlowAndGroups(t *testing.T) {
	e, op := sharedOIDC(t)
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal("psql not found: install the Debian package postgresql-client")
	}
	creds := filepath.Join(t.TempDir(), "gatehouse", "credentials.json")
	out := codeFlowLogin(t, e, op, creds, "dana")
	if !strings.Contains(out, "as dana@example.com (role user; groups dba)") {
		t.Errorf("login said:\n%s", out)
	}
	server := "https://" + e.gw.APIAddr()
	c := readCreds(t, creds)[server]
	if ttl := time.Until(c.ExpiresAt); ttl < 11*time.Hour || ttl > 12*time.Hour {
		t.Errorf("sign-on token lives %s, want the 12h default", ttl)
	}
	if c.Refresh == "" {
		t.Error("no refresh handle cached (offline_access was asked for)")
	}
	code, who := e.cliCached(t, creds, "whoami")
	if code != 0 || !strings.Contains(who, "identity: dana@example.com (user)") || !strings.Contains(who, "groups: [dba]") {
		t.Errorf("whoami with the cached sign-on: exit %d\n%s", code, who)
	}
	if code, printed := e.cliCached(t, creds, "token", "print"); code != 0 || strings.TrimSpace(printed) != c.Token {
		t.Errorf("token print: exit %d, printed the cached token: %v", code, strings.TrimSpace(printed) == c.Token)
	}
	got, err := exec.Command(psql, e.dsn(c.Token, "appdb", "verify-full"), "-X", "-A", "-t", "-c", "SELECT 'in as dba'").CombinedOutput()
	if err != nil || strings.TrimSpace(string(got)) != "in as dba" {
		t.Errorf("psql as dana (dba): %v\n%s", err, got)
	}

	fcreds := filepath.Join(t.TempDir(), "credentials.json")
	codeFlowLogin(t, e, op, fcreds, "frank")
	fc := readCreds(t, fcreds)[server]
	got, err = exec.Command(psql, e.dsn(fc.Token, "appdb", "verify-full"), "-X", "-A", "-t", "-c", "SELECT 1").CombinedOutput()
	if err == nil || !strings.Contains(string(got), "only the dba group may connect") {
		t.Errorf("psql as frank (dev) = %v\n%s\nwant a refusal", err, got)
	}
	// SQLSTATE 28000 reaches a driver.
	_, cerr := connectErr(e.dsn(fc.Token, "appdb", "disable"))
	if cerr == nil || !strings.Contains(cerr.Error(), "SQLSTATE 28000") {
		t.Errorf("pgx as frank = %v, want SQLSTATE 28000", cerr)
	}

	rcreds := filepath.Join(t.TempDir(), "credentials.json")
	if out := codeFlowLogin(t, e, op, rcreds, "root"); !strings.Contains(out, "role admin") {
		t.Errorf("the admin group's member: %s", out)
	}
	if code, out := e.cliCached(t, rcreds, "get", "identities"); code != 0 || !strings.Contains(out, "dana@example.com") {
		t.Errorf("admin lists identities: exit %d\n%s", code, out)
	}
	if code, out := e.cliCached(t, creds, "get", "identities"); code == 0 || !strings.Contains(out, "needs the admin role") {
		t.Errorf("dana lists identities: exit %d\n%s", code, out)
	}
}

// TestOIDCRefresh: a refresh reads the user's groups afresh from the
// provider and renews the same token (so that a session opened before it
// keeps running, and logging out ends it); a cached sign-on in its last
// quarter is renewed by the next command on its own.
func TestOIDCRefresh(t *testing.T) {
	e, op := sharedOIDC(t)
	server := "https://" + e.gw.APIAddr()
	creds := filepath.Join(t.TempDir(), "credentials.json")
	op.SetGroups("gwen", []string{"dev"})
	codeFlowLogin(t, e, op, creds, "gwen")
	first := readCreds(t, creds)[server]
	if _, err := connectErr(e.dsn(first.Token, "appdb", "disable")); err == nil {
		t.Fatal("gwen (dev) connected")
	}
	op.SetGroups("gwen", []string{"dba"})
	code, out := e.login(t, creds, nil, "--refresh")
	if code != 0 || !strings.Contains(out, "as gwen@example.com (role user; groups dba)") {
		t.Fatalf("login --refresh: exit %d\n%s", code, out)
	}
	second := readCreds(t, creds)[server]
	if second.TokenID != first.TokenID || second.Token != first.Token || !second.ExpiresAt.After(first.ExpiresAt) {
		t.Errorf("refresh: token %s until %s, then %s until %s; want the same token, later", first.TokenID, first.ExpiresAt, second.TokenID, second.ExpiresAt)
	}
	conn, err := connectErr(e.dsn(second.Token, "appdb", "disable"))
	if err != nil {
		t.Fatalf("gwen (now dba) after refresh: %v", err)
	}
	defer conn.Close(context.Background())

	// Age the cached sign-on into its last quarter: whoami renews it.
	raw, _ := os.ReadFile(creds)
	var m map[string]map[string]any
	json.Unmarshal(raw, &m)
	m[server]["issuedAt"] = time.Now().Add(-11 * time.Hour).Format(time.RFC3339Nano)
	m[server]["expiresAt"] = time.Now().Add(time.Hour).Format(time.RFC3339Nano)
	raw, _ = json.Marshal(m)
	os.WriteFile(creds, raw, 0o600)
	if code, out := e.cliCached(t, creds, "whoami"); code != 0 || !strings.Contains(out, "gwen@example.com") {
		t.Fatalf("whoami: exit %d\n%s", code, out)
	}
	if third := readCreds(t, creds)[server]; time.Until(third.ExpiresAt) < 11*time.Hour || third.Token != first.Token {
		t.Errorf("a sign-on in its last quarter was not renewed: until %s", third.ExpiresAt)
	}
	if _, err := conn.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Errorf("the session opened before the renewals: %v", err)
	}

	// Logging out ends the session opened before the renewals, and the
	// refresh handle renews nothing any more.
	raw, _ = os.ReadFile(creds)
	if code, out := e.cliCached(t, creds, "logout"); code != 0 {
		t.Fatalf("logout: %s", out)
	}
	waitFor(t, 5*time.Second, func() bool {
		_, err := conn.Exec(context.Background(), "SELECT 1")
		return err != nil && strings.Contains(err.Error(), "the token has been revoked")
	}, "the session to end at logout")
	os.WriteFile(creds, raw, 0o600) // as if the cache had been copied before
	if code, out := e.login(t, creds, nil, "--refresh"); code == 0 || !strings.Contains(out, "revoked") {
		t.Errorf("refresh of a revoked sign-on: exit %d\n%s", code, out)
	}
}

// TestOIDCDeviceFlow: --device prints a code that the user enters on the
// provider's page from another device.
func TestOIDCDeviceFlow(t *testing.T) {
	e, op := sharedOIDC(t)
	creds := filepath.Join(t.TempDir(), "credentials.json")
	enter := regexp.MustCompile(`open (http://\S+) on any device and enter the code (\S+)`)
	code, out := e.login(t, creds, func(line string) bool {
		m := enter.FindStringSubmatch(line)
		if m == nil {
			return false
		}
		if !strings.HasPrefix(m[1], op.Issuer+"/device") {
			t.Errorf("verification URI %s", m[1])
		}
		time.Sleep(1500 * time.Millisecond) // the CLI is polling meanwhile
		if err := op.ApproveDevice(context.Background(), m[2], "dana", opPassword); err != nil {
			t.Errorf("approve device code %s: %v", m[2], err)
		}
		return true
	}, "--device")
	if code != 0 || !strings.Contains(out, "Signed in to") || !strings.Contains(out, "as dana@example.com (role user; groups dba)") {
		t.Fatalf("login --device: exit %d\n%s", code, out)
	}
}

// TestOIDCRevocationEndsLiveSessions: logging out (revoking the token)
// ends the user's live psql session within seconds, with a message that
// says why; disabling an identity ends its sessions the same way.
func TestOIDCRevocationEndsLiveSessions(t *testing.T) {
	e, op := sharedOIDC(t)
	server := "https://" + e.gw.APIAddr()
	psqlBin, err := exec.LookPath("psql")
	if err != nil {
		t.Fatal("psql not found")
	}
	creds := filepath.Join(t.TempDir(), "credentials.json")
	codeFlowLogin(t, e, op, creds, "dana")
	tok := readCreds(t, creds)[server].Token

	psql := exec.Command(psqlBin, e.dsn(tok, "appdb", "verify-full"), "-X", "-A", "-t")
	stdin, _ := psql.StdinPipe()
	out := &syncBuf{}
	psql.Stdout, psql.Stderr = out, out
	if err := psql.Start(); err != nil {
		t.Fatal(err)
	}
	defer psql.Process.Kill()
	io.WriteString(stdin, "SELECT 'live ' || 1;\n")
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(out.String(), "live 1") }, "psql's first result")

	revoked := time.Now()
	if code, o := e.cliCached(t, creds, "logout"); code != 0 || !strings.Contains(o, "Signed out of") {
		t.Fatalf("logout: exit %d\n%s", code, o)
	}
	// The gateway ends the session on its own; psql shows it at its next
	// statement.
	waitFor(t, 5*time.Second, func() bool {
		for _, ev := range e.auditEvents(t) {
			if ev["type"] == "session.close" && ev["identity"] == "dana@example.com" && strings.Contains(fmt.Sprint(ev["error"]), "revoked") {
				return true
			}
		}
		return false
	}, "the session's end in the audit log", func() {
		for _, ev := range e.auditEvents(t) {
			if ev["identity"] == "dana@example.com" {
				t.Logf("event %v", ev)
			}
		}
	})
	t.Logf("session ended %s after logout", time.Since(revoked).Round(time.Millisecond))
	io.WriteString(stdin, "SELECT 'still ' || 2;\n")
	stdin.Close()
	psql.Wait()
	text := out.String()
	if strings.Contains(text, "still 2") || !strings.Contains(text, "terminating connection: the token has been revoked") {
		t.Errorf("psql after the logout:\n%s", text)
	}

	// Disabling the identity ends its sessions too.
	codeFlowLogin(t, e, op, creds, "dana")
	conn, err := connectErr(e.dsn(readCreds(t, creds)[server].Token, "appdb", "disable"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	apply := filepath.Join(t.TempDir(), "dana.yaml")
	os.WriteFile(apply, []byte("kind: Identity\nname: dana@example.com\ngroups: [dba]\ndisabled: true\n"), 0o600)
	if code, o := e.cli(t, "apply", "-f", apply); code != 0 {
		t.Fatalf("apply: %s", o)
	}
	defer func() {
		os.WriteFile(apply, []byte("kind: Identity\nname: dana@example.com\ngroups: [dba]\n"), 0o600)
		e.cli(t, "apply", "-f", apply)
	}()
	waitFor(t, 5*time.Second, func() bool {
		_, err := conn.Exec(context.Background(), "SELECT 1")
		return err != nil && strings.Contains(err.Error(), "the identity is disabled")
	}, "the disabled identity's session to end")
	// A token revoked on another gateway node (straight in the shared
	// store, so this node's API is not told) ends the session at the next
	// periodic check, within --revocation-check (2 s).
	os.WriteFile(apply, []byte("kind: Identity\nname: dana@example.com\ngroups: [dba]\n"), 0o600)
	e.cli(t, "apply", "-f", apply)
	codeFlowLogin(t, e, op, creds, "dana")
	c := readCreds(t, creds)[server]
	conn2, err := connectErr(e.dsn(c.Token, "appdb", "disable"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close(context.Background())
	if err := e.gw.Store.RevokeToken(context.Background(), c.TokenID, time.Now()); err != nil {
		t.Fatal(err)
	}
	revoked = time.Now()
	waitFor(t, 5*time.Second, func() bool {
		_, err := conn2.Exec(context.Background(), "SELECT 1")
		return err != nil && strings.Contains(err.Error(), "the token has been revoked")
	}, "the session of a token revoked elsewhere to end")
	t.Logf("token revoked elsewhere: session ended after %s", time.Since(revoked).Round(time.Millisecond))
	os.WriteFile(apply, []byte("kind: Identity\nname: dana@example.com\ngroups: [dba]\ndisabled: true\n"), 0o600)
	e.cli(t, "apply", "-f", apply)

	// And a disabled identity cannot sign in again.
	code, o := e.login(t, creds, func(line string) bool {
		if m := regexp.MustCompile(`^\s+(http://\S+)$`).FindStringSubmatch(line); m != nil {
			op.Browse(context.Background(), m[1], "dana", opPassword)
			return true
		}
		return false
	})
	if code == 0 || !strings.Contains(o, "the identity is disabled") {
		t.Errorf("sign-on of a disabled identity: exit %d\n%s", code, o)
	}
}

// TestOIDCLoginRefusals: the gateway refuses what does not belong to the
// sign-on it started.
func TestOIDCLoginRefusals(t *testing.T) {
	e, _ := sharedOIDC(t)
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(filepath.Join(e.dataDir, "ca.pem"))
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	// A real sign-on's handle, to finish with the wrong state.
	resp, err := hc.Post("https://"+e.gw.APIAddr()+"/api/v1/auth/oidc/start", "application/json",
		strings.NewReader(`{"redirectURI":"http://127.0.0.1:9/callback"}`))
	if err != nil {
		t.Fatal(err)
	}
	var start identity.LoginStart
	json.NewDecoder(resp.Body).Decode(&start)
	resp.Body.Close()
	if !strings.Contains(start.AuthURL, "code_challenge_method=S256") || !strings.Contains(start.AuthURL, "nonce=") {
		t.Errorf("authorization URL without PKCE or nonce: %s", start.AuthURL)
	}
	for _, tc := range []struct {
		path, body, want string
	}{
		{"/api/v1/auth/oidc/start", `{"redirectURI":"https://evil.example/cb"}`, "must be http://127.0.0.1:PORT"},
		{"/api/v1/auth/oidc/finish", `{"handle":"bm9wZQ","state":"x","code":"y"}`, "not one this gateway issued"},
		{"/api/v1/auth/oidc/finish", `{"handle":"` + start.Handle + `","state":"forged","code":"y"}`, "state returned by the identity provider does not match"},
		{"/api/v1/auth/oidc/finish", `{"handle":"` + start.Handle + `","state":"` + start.State + `","code":"made-up"}`, "the identity provider refused to exchange the authorization code"},
		{"/api/v1/auth/refresh", `{"handle":"%%%"}`, "handle is malformed"},
	} {
		resp, err := hc.Post("https://"+e.gw.APIAddr()+tc.path, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), tc.want) {
			t.Errorf("POST %s %s = %d %s, want 401 naming %q", tc.path, tc.body, resp.StatusCode, body, tc.want)
		}
	}
}

// connectErr opens a pgx connection, returning the error.
func connectErr(dsn string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return pgx.Connect(ctx, dsn)
}

func waitFor(t *testing.T, limit time.Duration, cond func() bool, what string, explain ...func()) {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	for _, f := range explain {
		f()
	}
	t.Fatalf("timed out after %s waiting for %s", limit, what)
}

// TestFederatedLogin: a CI job exchanges its platform's JWT for a
// short-lived gateway token with `gatehouse login --federated-token-file`
// and opens the postgres connection as the service identity that trusts
// it; tokens whose claims do not match are refused with the cause.
func TestFederatedLogin(t *testing.T) {
	e := sharedEnv(t)
	ci := testenv.NewJWTIssuer(t)
	dir := t.TempDir()
	manifest := filepath.Join(dir, "ci.yaml")
	write := func(condition string) {
		os.WriteFile(manifest, []byte(fmt.Sprintf(`kind: Identity
name: api-deployer
type: service
groups: [dba]
federation:
  issuer: %s
  audience: gatehouse
  condition: '%s'
  tokenTTL: 10m
`, ci.URL, condition)), 0o600)
	}
	write(`claims.repository == "acme/api" &&`)
	if code, out := e.cli(t, "apply", "-f", manifest); code == 0 || !strings.Contains(out, "federation.condition") {
		t.Errorf("apply with a broken condition: exit %d\n%s", code, out)
	}
	write(`claims.repository == "acme/api" && claims.ref == "refs/heads/main"`)
	if code, out := e.cli(t, "apply", "-f", manifest); code != 0 {
		t.Fatalf("apply: %s", out)
	}
	exchange := func(claims map[string]any) (int, string) {
		jwt := filepath.Join(dir, "jwt")
		os.WriteFile(jwt, []byte(ci.Sign(t, claims, nil)+"\n"), 0o600)
		var out, errOut strings.Builder
		code := cli.Run(context.Background(), []string{"login", "--federated-token-file", jwt, "--print-token",
			"--server", "https://" + e.gw.APIAddr(), "--ca", filepath.Join(e.dataDir, "ca.pem")}, nil, &out, &errOut)
		if code != 0 {
			return code, errOut.String()
		}
		return code, strings.TrimSpace(out.String())
	}
	job := map[string]any{"sub": "repo:acme/api:ref:refs/heads/main", "aud": "gatehouse", "repository": "acme/api", "ref": "refs/heads/main"}
	code, tok := exchange(job)
	if code != 0 {
		t.Fatalf("federated login: exit %d: %s", code, tok)
	}
	if code, who := e.cliAs(t, tok, "whoami"); code != 0 || !strings.Contains(who, "identity: api-deployer (service)") {
		t.Errorf("whoami: %s", who)
	}
	psql, _ := exec.LookPath("psql")
	got, err := exec.Command(psql, e.dsn(tok, "appdb", "verify-full"), "-X", "-A", "-t", "-c", "SELECT current_database() IS NOT NULL").CombinedOutput()
	if err != nil || strings.TrimSpace(string(got)) != "t" {
		t.Errorf("psql with the federated token: %v\n%s", err, got)
	}

	feature := map[string]any{}
	for k, v := range job {
		feature[k] = v
	}
	feature["ref"] = "refs/heads/feature"
	expired := map[string]any{"exp": time.Now().Add(-time.Minute).Unix()}
	wrongAud := map[string]any{"aud": "somebody-else"}
	for k, v := range job {
		if _, ok := expired[k]; !ok {
			expired[k] = v
		}
		if _, ok := wrongAud[k]; !ok {
			wrongAud[k] = v
		}
	}
	for name, tc := range map[string]struct {
		claims map[string]any
		want   string
	}{
		"condition false": {feature, "the token's claims do not satisfy the federation condition"},
		"expired":         {expired, "the token expired at"},
		"wrong audience":  {wrongAud, "audience [somebody-else] is not one this gateway accepts"},
	} {
		if code, out := exchange(tc.claims); code == 0 || !strings.Contains(out, tc.want) {
			t.Errorf("%s: exit %d: %s; want %q", name, code, out, tc.want)
		}
	}
}
