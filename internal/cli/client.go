package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/gatehouse-dev/gatehouse/internal/devca"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/server"
	"github.com/gatehouse-dev/gatehouse/internal/web"
)

// clientOptions are the flags every API client command shares.
type clientOptions struct {
	server string
	token  string
	ca     string
}

func (o *clientOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.server, "server", "https://"+server.DefaultAPIAddr, "gateway API URL")
	fs.StringVar(&o.token, "token", "", "API token (prefer GATEHOUSE_TOKEN: flags are visible to other local users)")
	fs.StringVar(&o.ca, "ca", "", "CA certificate (PEM) to trust for the gateway (default ./gatehouse-data/ca.pem when it exists)")
	for _, n := range []string{"server", "token", "ca"} {
		configFlag(fs, n)
	}
}

// apiClient calls the gateway's JSON API.
type apiClient struct {
	base  string
	token string
	http  *http.Client
	tls   *tls.Config // also used by tunnels to the gateway's listeners
}

// client is an API client that acts with --token or GATEHOUSE_TOKEN, or
// else with the cached sign-on for the gateway (renewed when it nears its
// expiry).
func (o *clientOptions) client() (*apiClient, error) {
	c, err := o.anonymous()
	if err != nil || c.token != "" {
		return c, err
	}
	return c, c.useCachedSignOn(context.Background())
}

// anonymous is an API client with --token or GATEHOUSE_TOKEN, if any.
func (o *clientOptions) anonymous() (*apiClient, error) {
	base := strings.TrimRight(o.server, "/")
	if !strings.Contains(base, "://") {
		base = "https://" + base
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	caPath := o.ca
	if caPath == "" {
		if p := filepath.Join(server.DefaultDataDir, devca.CAFile); fileExists(p) {
			caPath = p
		}
	}
	if caPath != "" {
		pem, err := os.ReadFile(caPath)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca %s holds no PEM certificate", caPath)
		}
		tlsCfg.RootCAs = pool
	}
	return &apiClient{
		base:  base,
		token: o.token,
		tls:   tlsCfg,
		http:  &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment}},
	}, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// apiError is an error response from the gateway.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s (HTTP %d %s)", e.Message, e.Status, http.StatusText(e.Status))
}

// do sends a request and decodes a JSON response into out (when non-nil).
func (c *apiClient) do(ctx context.Context, method, path, contentType string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var uae x509.UnknownAuthorityError
		if errors.As(err, &uae) {
			return fmt.Errorf("%s: the gateway's certificate is not trusted: pass --ca DATA_DIR/ca.pem (or set GATEHOUSE_CA)", c.base)
		}
		return fmt.Errorf("contact gateway: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read response: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error.Message == "" {
			e.Error.Message = strings.TrimSpace(string(data))
		}
		ae := &apiError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
		if resp.StatusCode == http.StatusUnauthorized && c.token == "" {
			ae.Message += "; run gatehouse login, or pass --token or set GATEHOUSE_TOKEN (the first admin token is in DATA_DIR/admin-token)"
		}
		return ae
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data
		return nil
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode response: %w", err)
		}
	}
	return nil
}

func (c *apiClient) getJSON(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, "", nil, out)
}

// useCachedSignOn takes the token of the cached sign-on to c's gateway,
// renewing it first when it is in the last quarter of its life.
func (c *apiClient) useCachedSignOn(ctx context.Context) error {
	creds, path, err := loadCredentials()
	if err != nil {
		return err
	}
	cred, ok := creds[c.base]
	if !ok {
		return nil
	}
	now := time.Now()
	if cred.needsRefresh(now) {
		renewed, err := c.refresh(ctx, cred)
		switch {
		case err == nil:
			cred = renewed
			creds[c.base] = cred
			if err := saveCredentials(path, creds); err != nil {
				return err
			}
		case now.Before(cred.ExpiresAt):
			// Still valid: use it, and try renewing next time.
		default:
			return fmt.Errorf("your sign-on to %s expired at %s and could not be renewed (%v): run gatehouse login --server %s",
				c.base, cred.ExpiresAt.Local().Format(time.RFC3339), err, c.base)
		}
	}
	if !cred.ExpiresAt.IsZero() && !now.Before(cred.ExpiresAt) {
		return fmt.Errorf("your sign-on to %s expired at %s: run gatehouse login --server %s", c.base, cred.ExpiresAt.Local().Format(time.RFC3339), c.base)
	}
	c.token = cred.Token
	return nil
}

// refresh renews a cached sign-on with its refresh handle: the same
// token, a later expiry.
func (c *apiClient) refresh(ctx context.Context, cred credential) (credential, error) {
	out, err := c.renew(ctx, cred)
	if err != nil {
		return credential{}, err
	}
	return credentialOf(out, time.Now()), nil
}

// renew asks the gateway to renew a sign-on.
func (c *apiClient) renew(ctx context.Context, cred credential) (identity.Issued, error) {
	body, _ := json.Marshal(web.HandleRequest{Handle: cred.Refresh})
	var out identity.Issued
	anon := *c
	anon.token = ""
	if err := anon.do(ctx, http.MethodPost, "/api/v1/auth/refresh", "application/json", body, &out); err != nil {
		return identity.Issued{}, err
	}
	if out.Token == "" {
		out.Token = cred.Token
	}
	return out, nil
}

func credentialOf(out identity.Issued, now time.Time) credential {
	return credential{Token: out.Token, TokenID: out.TokenID, Identity: out.Identity, IssuedAt: now,
		ExpiresAt: out.ExpiresAt, Refresh: out.Refresh}
}
