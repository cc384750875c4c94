package testenv

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// OIDCProvider is a real OpenID provider (zitadel's op package) served in
// process on a loopback port: discovery, authorization with PKCE, token,
// refresh, userinfo, JWKS and device authorization. Its users sign in
// through a minimal login form that Browse and ApproveDevice drive with
// an HTTP client, as a browser would. ID tokens carry the users' email
// and a groups claim.
type OIDCProvider struct {
	Issuer string
	// ClientID and ClientSecret are a confidential native client (HTTP
	// Basic at the token endpoint, PKCE, loopback redirects, refresh, the
	// device flow); PublicClientID is the same without a secret.
	ClientID, ClientSecret string
	PublicClientID         string

	srv     *http.Server
	storage *opStorage
}

// OIDCUser is a user of the test provider.
type OIDCUser struct {
	Username, Password, Email string
	Groups                    []string
}

// StartOIDCProvider serves a provider with users until ctx ends.
func StartOIDCProvider(ctx context.Context, users ...OIDCUser) (*OIDCProvider, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &OIDCProvider{Issuer: "http://" + l.Addr().String(), ClientID: "gatehouse", ClientSecret: "op-client-secret-" + fmt.Sprint(time.Now().UnixNano()),
		PublicClientID: "gatehouse-cli"}
	us := &userStore{users: map[string]*storage.User{}, groups: map[string][]string{}}
	for i, u := range users {
		id := fmt.Sprintf("user-%d", i+1)
		us.users[id] = &storage.User{ID: id, Username: u.Username, Password: u.Password, Email: u.Email,
			EmailVerified: true, FirstName: u.Username, PreferredLanguage: language.English}
		us.groups[id] = u.Groups
	}
	us.client = p.ClientID
	clients := map[string]*storage.Client{}
	for _, id := range []string{p.ClientID, p.PublicClientID} {
		clients[id] = storage.NativeClient(id, "http://127.0.0.1/callback", "http://localhost/callback")
	}
	p.storage = &opStorage{Storage: storage.NewStorageWithClients(us, clients), users: us,
		secrets: map[string]string{p.ClientID: p.ClientSecret}}
	key := sha256.Sum256([]byte("gatehouse test provider"))
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:             key,
		CodeMethodS256:        true,
		GrantTypeRefreshToken: true,
		SupportedUILocales:    []language.Tag{language.English},
		DeviceAuthorization: op.DeviceAuthorizationConfig{
			Lifetime: 5 * time.Minute, PollInterval: time.Second, UserFormPath: "/device", UserCode: op.UserCodeBase20,
		},
	}, p.storage, op.StaticIssuer(p.Issuer), op.WithAllowInsecure(), op.WithLogger(testLogger()))
	if err != nil {
		l.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/login/username", p.login)
	mux.HandleFunc("/device", p.device)
	mux.Handle("/", provider)
	p.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go p.srv.Serve(l)
	go func() {
		<-ctx.Done()
		p.srv.Close()
	}()
	return p, nil
}

// login is the provider's sign-in form: GET shows it, POST checks the
// password and continues the authorization request.
func (p *OIDCProvider) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	id := r.Form.Get("authRequestID")
	if r.Method == http.MethodGet {
		fmt.Fprintf(w, `<form method="post"><input type="hidden" name="authRequestID" value="%s">`+
			`<input name="username"><input name="password" type="password"></form>`, id)
		return
	}
	if err := p.storage.CheckUsernamePassword(r.Form.Get("username"), r.Form.Get("password"), id); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, p.Issuer+"/authorize/callback?id="+url.QueryEscape(id), http.StatusFound)
}

// device is the page where a user enters a device flow's code: POST with
// user_code, username and password approves it.
func (p *OIDCProvider) device(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.Method != http.MethodPost {
		fmt.Fprint(w, `<form method="post"><input name="user_code"><input name="username"><input name="password" type="password"></form>`)
		return
	}
	u := p.storage.users.GetUserByUsername(r.Form.Get("username"))
	if u == nil || u.Password != r.Form.Get("password") {
		http.Error(w, "username or password wrong", http.StatusUnauthorized)
		return
	}
	if err := p.storage.CompleteDeviceAuthorization(r.Context(), strings.ToUpper(r.Form.Get("user_code")), u.ID); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fmt.Fprint(w, "device approved")
}

// Browse plays the user's browser: it opens authURL, signs in as
// username, and follows the provider's redirects to the redirect URI (the
// CLI's loopback listener), whose answer it returns.
func (p *OIDCProvider) Browse(ctx context.Context, authURL, username, password string) (string, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("open the authorization URL: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/login/username" {
		return "", fmt.Errorf("authorization URL led to %s (%s), not the login form", resp.Request.URL, resp.Status)
	}
	form := url.Values{"authRequestID": {resp.Request.URL.Query().Get("authRequestID")},
		"username": {username}, "password": {password}}
	resp, err = c.PostForm(p.Issuer+"/login/username", form)
	if err != nil {
		return "", fmt.Errorf("sign in: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("sign in ended at %s: %s: %s", resp.Request.URL, resp.Status, body)
	}
	return string(body), nil
}

// ApproveDevice plays the user entering a device flow's code.
func (p *OIDCProvider) ApproveDevice(ctx context.Context, userCode, username, password string) error {
	resp, err := http.PostForm(p.Issuer+"/device", url.Values{"user_code": {userCode}, "username": {username}, "password": {password}})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return errors.New(strings.TrimSpace(string(body)))
	}
	return nil
}

// SetGroups changes a user's groups, as an administrator of the
// provider would; new tokens carry them.
func (p *OIDCProvider) SetGroups(username string, groups []string) {
	p.storage.users.mu.Lock()
	defer p.storage.users.mu.Unlock()
	for id, u := range p.storage.users.users {
		if u.Username == username {
			p.storage.users.groups[id] = groups
		}
	}
}

// userStore is the provider's users.
type userStore struct {
	mu     sync.Mutex
	users  map[string]*storage.User
	groups map[string][]string
	client string
}

func (s *userStore) GetUserByID(id string) *storage.User { return s.users[id] }
func (s *userStore) GetUserByUsername(name string) *storage.User {
	for _, u := range s.users {
		if u.Username == name {
			return u
		}
	}
	return nil
}
func (s *userStore) ExampleClientID() string { return s.client }

func (s *userStore) groupsOf(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.groups[id]
}

// opStorage is zitadel's in-memory example storage plus a groups claim,
// and a client that may use the code (PKCE), refresh and device grants
// and gets the user's claims in its ID tokens.
type opStorage struct {
	*storage.Storage
	users   *userStore
	secrets map[string]string // of the confidential clients
}

func (s *opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return testClient{Client: c, confidential: s.secrets[id] != ""}, nil
}

func (s *opStorage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	want, ok := s.secrets[id]
	if !ok || subtle.ConstantTimeCompare([]byte(secret), []byte(want)) != 1 {
		return errors.New("invalid client secret")
	}
	return nil
}

func (s *opStorage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, info, req, scopes); err != nil {
		return err
	}
	info.AppendClaims("groups", s.users.groupsOf(req.GetSubject()))
	return nil
}

func (s *opStorage) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, info, tokenID, subject, origin); err != nil {
		return err
	}
	info.AppendClaims("groups", s.users.groupsOf(subject))
	return nil
}

type testClient struct {
	op.Client
	confidential bool
}

func (c testClient) AuthMethod() oidc.AuthMethod {
	if c.confidential {
		return oidc.AuthMethodBasic
	}
	return oidc.AuthMethodNone
}

// ApplicationType: zitadel's op takes only web clients as confidential.
func (c testClient) ApplicationType() op.ApplicationType {
	if c.confidential {
		return op.ApplicationTypeWeb
	}
	return op.ApplicationTypeNative
}

// RedirectURIGlobs lets a web client redirect to a loopback listener on
// any port, as native clients may (RFC 8252 §7.3).
func (c testClient) RedirectURIGlobs() []string {
	return []string{"http://127.0.0.1:*/callback", "http://localhost:*/callback"}
}

func (c testClient) PostLogoutRedirectURIGlobs() []string { return nil }

func (testClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeDeviceCode}
}
func (testClient) IDTokenUserinfoClaimsAssertion() bool { return true }

// testLogger discards the provider's log unless GATEHOUSE_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("GATEHOUSE_TEST_LOG") != "" {
		return slog.Default()
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
