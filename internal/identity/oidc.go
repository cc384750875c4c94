package identity

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// OIDCConfig configures sign-on through the company's OpenID provider.
type OIDCConfig struct {
	// Issuer is the provider's issuer URL (discovery at
	// Issuer/.well-known/openid-configuration).
	Issuer string
	// ClientID and ClientSecret are the gateway's registration at the
	// provider; the secret is empty for a public client (PKCE only).
	ClientID     string
	ClientSecret string
	// Scopes requested (default openid, profile, email, offline_access;
	// openid is always added).
	Scopes []string
	// UsernameClaim names the identity (default "email"); GroupsClaim
	// holds its groups (default "groups"). A member of AdminGroup gets
	// the admin role.
	UsernameClaim string
	GroupsClaim   string
	AdminGroup    string
	// TokenTTL is the lifetime of the Gatehouse tokens a sign-on issues
	// (default DefaultHumanTokenTTL).
	TokenTTL time.Duration
}

// CheckAndSetDefaults validates c and fills its defaults.
func (c *OIDCConfig) CheckAndSetDefaults() error {
	if err := resource.ValidateIssuer(c.Issuer); err != nil {
		return fmt.Errorf("oidc-issuer: %w", err)
	}
	if c.ClientID == "" {
		return errors.New("oidc-client-id is required with oidc-issuer")
	}
	if len(c.Scopes) == 0 {
		c.Scopes = []string{oidc.ScopeOpenID, "profile", "email", oidc.ScopeOfflineAccess}
	}
	if !slices.Contains(c.Scopes, oidc.ScopeOpenID) {
		c.Scopes = append([]string{oidc.ScopeOpenID}, c.Scopes...)
	}
	if c.UsernameClaim == "" {
		c.UsernameClaim = "email"
	}
	if c.GroupsClaim == "" {
		c.GroupsClaim = "groups"
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = DefaultHumanTokenTTL
	}
	if c.TokenTTL < time.Minute {
		return fmt.Errorf("human token TTL %s is too short (at least 1m)", c.TokenTTL)
	}
	return nil
}

// How long a login may take from start to finish.
const loginWindow = 10 * time.Minute

// SignOn makes the gateway an OIDC relying party. The command line drives
// the authorization-code flow with PKCE (the redirect lands on a loopback
// listener of the CLI, which hands the code to the gateway) or the device
// flow; either way the gateway holds the client secret and the PKCE
// verifier, exchanges the code, verifies the ID token, creates the user
// on first sign-on, takes its groups from the token, and issues a
// short-lived Gatehouse token. Logins in progress and refresh handles are
// sealed under the master key, so any gateway node can continue them.
type SignOn struct {
	Config OIDCConfig
	Store  store.Store
	Key    *secret.MasterKey
	// Audit records sign-ons and refusals (nil: none).
	Audit func(audit.Event) uint64
	Log   *slog.Logger
	// HTTPClient reaches the provider (nil: http.DefaultClient).
	HTTPClient *http.Client
	// Now is the clock (nil: time.Now).
	Now func() time.Time

	mu       sync.Mutex
	provider *oidc.Provider
}

func (s *SignOn) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *SignOn) ctx(ctx context.Context) context.Context {
	if s.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, s.HTTPClient)
		ctx = context.WithValue(ctx, oauth2.HTTPClient, s.HTTPClient)
	}
	return ctx
}

// discover reads the provider's configuration once; a failure is retried
// at the next call, so a provider that is down when the gateway starts
// delays only sign-ons.
func (s *SignOn) discover(ctx context.Context) (*oidc.Provider, *oauth2.Config, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.provider == nil {
		// Discovery outlives this request: the provider keeps its context
		// for fetching signing keys later.
		p, err := oidc.NewProvider(s.ctx(context.WithoutCancel(ctx)), s.Config.Issuer)
		if err != nil {
			return nil, nil, &UnavailableError{Reason: fmt.Sprintf("the identity provider %s cannot be reached: %v", s.Config.Issuer, err)}
		}
		s.provider = p
	}
	ep := s.provider.Endpoint()
	// A confidential client authenticates with HTTP Basic, which every
	// provider must accept (RFC 6749 §2.3.1); a public one sends only its
	// client_id. Either way there is no guessing round trip.
	ep.AuthStyle = oauth2.AuthStyleInHeader
	if s.Config.ClientSecret == "" {
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	return s.provider, &oauth2.Config{ClientID: s.Config.ClientID, ClientSecret: s.Config.ClientSecret,
		Endpoint: ep, Scopes: s.Config.Scopes}, nil
}

// Info says how to sign in, for the CLI.
type Info struct {
	Issuer string `json:"issuer"`
	Device bool   `json:"device"` // the provider offers the device flow
}

// Info reports the provider and the flows it offers.
func (s *SignOn) Info(ctx context.Context) (Info, error) {
	_, conf, err := s.discover(ctx)
	if err != nil {
		return Info{}, err
	}
	return Info{Issuer: s.Config.Issuer, Device: conf.Endpoint.DeviceAuthURL != ""}, nil
}

// LoginStart is the first step of a code flow: the CLI opens AuthURL in a
// browser, waits for the redirect to its loopback listener carrying State
// and a code, and finishes with Handle, which it keeps to itself (whoever
// sees the redirect cannot finish the login without it).
type LoginStart struct {
	AuthURL string `json:"authURL"`
	State   string `json:"state"`
	Handle  string `json:"handle"`
}

type codeLogin struct {
	State, Nonce, Verifier, Redirect string
	Expires                          time.Time
}

// Start begins an authorization-code flow with PKCE whose redirect goes
// to redirectURI, an http URL on a loopback address (RFC 8252).
func (s *SignOn) Start(ctx context.Context, redirectURI string) (LoginStart, error) {
	if err := checkLoopback(redirectURI); err != nil {
		return LoginStart{}, err
	}
	_, conf, err := s.discover(ctx)
	if err != nil {
		return LoginStart{}, err
	}
	l := codeLogin{State: randomString(), Nonce: randomString(), Verifier: oauth2.GenerateVerifier(),
		Redirect: redirectURI, Expires: s.now().Add(loginWindow)}
	handle, err := sealer{s.Key}.seal("oidc login", l)
	if err != nil {
		return LoginStart{}, err
	}
	conf.RedirectURL = redirectURI
	u := conf.AuthCodeURL(l.State, oauth2.S256ChallengeOption(l.Verifier), oidc.Nonce(l.Nonce))
	return LoginStart{AuthURL: u, State: l.State, Handle: handle}, nil
}

// Finish completes a code flow: code and state are what the provider sent
// to the loopback redirect, handle what Start returned.
func (s *SignOn) Finish(ctx context.Context, handle, state, code, client string) (Issued, error) {
	out, err := s.finish(ctx, handle, state, code, client)
	if err != nil {
		loginFailed(s.Audit, "", "oidc sign-on", client, err)
	}
	return out, err
}

func (s *SignOn) finish(ctx context.Context, handle, state, code, client string) (Issued, error) {
	var l codeLogin
	if err := (sealer{s.Key}).open("oidc login", handle, &l); err != nil {
		return Issued{}, err
	}
	if !s.now().Before(l.Expires) {
		return Issued{}, refused("the sign-on took longer than %s; run gatehouse login again", loginWindow)
	}
	if subtle.ConstantTimeCompare([]byte(state), []byte(l.State)) != 1 {
		return Issued{}, refused("the state returned by the identity provider does not match this sign-on")
	}
	if code == "" {
		return Issued{}, refused("the identity provider returned no authorization code")
	}
	p, conf, err := s.discover(ctx)
	if err != nil {
		return Issued{}, err
	}
	conf.RedirectURL = l.Redirect
	tok, err := conf.Exchange(s.ctx(ctx), code, oauth2.VerifierOption(l.Verifier))
	if err != nil {
		return Issued{}, providerError("exchange the authorization code", err)
	}
	claims, err := s.verify(ctx, p, tok, l.Nonce)
	if err != nil {
		return Issued{}, err
	}
	return s.signIn(ctx, claims, tok.RefreshToken, refreshHandle{}, "oidc sign-on (code+PKCE)", client)
}

// DeviceStart is the first step of a device flow: the user opens
// VerificationURI on any device and enters UserCode, while the CLI polls
// with Handle.
type DeviceStart struct {
	VerificationURI         string    `json:"verificationURI"`
	VerificationURIComplete string    `json:"verificationURIComplete,omitempty"`
	UserCode                string    `json:"userCode"`
	ExpiresAt               time.Time `json:"expiresAt"`
	Interval                int64     `json:"interval"`
	Handle                  string    `json:"handle"`
}

type deviceLogin struct {
	DeviceCode string
	Interval   int64
	Expires    time.Time
}

// StartDevice begins a device-authorization flow (RFC 8628).
func (s *SignOn) StartDevice(ctx context.Context) (DeviceStart, error) {
	_, conf, err := s.discover(ctx)
	if err != nil {
		return DeviceStart{}, err
	}
	if conf.Endpoint.DeviceAuthURL == "" {
		return DeviceStart{}, refused("the identity provider %s does not offer the device flow; sign in without --device", s.Config.Issuer)
	}
	da, err := conf.DeviceAuth(s.ctx(ctx))
	if err != nil {
		return DeviceStart{}, providerError("start the device flow", err)
	}
	expires := da.Expiry
	if expires.IsZero() {
		expires = s.now().Add(loginWindow)
	}
	handle, err := sealer{s.Key}.seal("oidc device", deviceLogin{DeviceCode: da.DeviceCode, Interval: da.Interval, Expires: expires})
	if err != nil {
		return DeviceStart{}, err
	}
	return DeviceStart{VerificationURI: da.VerificationURI, VerificationURIComplete: da.VerificationURIComplete,
		UserCode: da.UserCode, ExpiresAt: expires, Interval: max(da.Interval, 1), Handle: handle}, nil
}

// ErrPending: the user has not yet approved the device sign-on.
var ErrPending = errors.New("the sign-on is not approved yet")

// PollDevice waits up to wait for the user to approve a device sign-on.
// It returns ErrPending when they have not yet.
func (s *SignOn) PollDevice(ctx context.Context, handle, client string, wait time.Duration) (Issued, error) {
	out, err := s.pollDevice(ctx, handle, client, wait)
	if err != nil && !errors.Is(err, ErrPending) {
		loginFailed(s.Audit, "", "oidc sign-on (device)", client, err)
	}
	return out, err
}

func (s *SignOn) pollDevice(ctx context.Context, handle, client string, wait time.Duration) (Issued, error) {
	var d deviceLogin
	if err := (sealer{s.Key}).open("oidc device", handle, &d); err != nil {
		return Issued{}, err
	}
	if !s.now().Before(d.Expires) {
		return Issued{}, refused("the device code expired; run gatehouse login --device again")
	}
	p, conf, err := s.discover(ctx)
	if err != nil {
		return Issued{}, err
	}
	pollCtx, cancel := context.WithTimeout(s.ctx(ctx), wait)
	defer cancel()
	tok, err := conf.DeviceAccessToken(pollCtx, &oauth2.DeviceAuthResponse{DeviceCode: d.DeviceCode, Interval: d.Interval, Expiry: d.Expires})
	switch {
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil && s.now().Before(d.Expires):
		return Issued{}, ErrPending
	case err != nil:
		return Issued{}, providerError("finish the device sign-on", err)
	}
	claims, err := s.verify(ctx, p, tok, "")
	if err != nil {
		return Issued{}, err
	}
	return s.signIn(ctx, claims, tok.RefreshToken, refreshHandle{}, "oidc sign-on (device)", client)
}

type refreshHandle struct {
	RefreshToken string
	Identity     string
	TokenID      string // the token this handle renews; revoking it ends the chain
}

// Refresh renews a sign-on with the provider's refresh token: the
// provider must still accept the user, the token being renewed must not be
// revoked and the identity not disabled. The same token then lives another
// TokenTTL, with the role the user's groups, read afresh, now give.
func (s *SignOn) Refresh(ctx context.Context, handle, client string) (Issued, error) {
	out, err := s.refresh(ctx, handle, client)
	if err != nil {
		loginFailed(s.Audit, "", "oidc refresh", client, err)
	}
	return out, err
}

func (s *SignOn) refresh(ctx context.Context, handle, client string) (Issued, error) {
	var h refreshHandle
	if err := (sealer{s.Key}).open("oidc refresh", handle, &h); err != nil {
		return Issued{}, err
	}
	old, err := s.Store.GetToken(ctx, h.TokenID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Issued{}, &AuthError{Reason: ReasonUnknown}
	case err != nil:
		return Issued{}, fmt.Errorf("refresh: %w", err)
	case !old.RevokedAt.IsZero():
		return Issued{}, &AuthError{Reason: ReasonRevoked}
	}
	p, conf, err := s.discover(ctx)
	if err != nil {
		return Issued{}, err
	}
	tok, err := conf.TokenSource(s.ctx(ctx), &oauth2.Token{RefreshToken: h.RefreshToken}).Token()
	if err != nil {
		return Issued{}, providerError("refresh the sign-on", err)
	}
	var claims map[string]any
	if _, ok := tok.Extra("id_token").(string); ok {
		if claims, err = s.verify(ctx, p, tok, ""); err != nil {
			return Issued{}, err
		}
	} else {
		info, err := p.UserInfo(s.ctx(ctx), oauth2.StaticTokenSource(tok))
		if err != nil {
			return Issued{}, providerError("read the user's claims", err)
		}
		if err := info.Claims(&claims); err != nil {
			return Issued{}, providerError("read the user's claims", err)
		}
	}
	rt := tok.RefreshToken
	if rt == "" {
		rt = h.RefreshToken
	}
	return s.signIn(ctx, claims, rt, h, "oidc refresh", client)
}

// verify checks the ID token in tok (issuer, audience, expiry, signature
// and, on a code flow, the nonce) and returns its claims.
func (s *SignOn) verify(ctx context.Context, p *oidc.Provider, tok *oauth2.Token, nonce string) (map[string]any, error) {
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return nil, refused("the identity provider returned no ID token (is the openid scope allowed for client %s?)", s.Config.ClientID)
	}
	idt, err := p.VerifierContext(s.ctx(ctx), &oidc.Config{ClientID: s.Config.ClientID, Now: s.now}).Verify(s.ctx(ctx), raw)
	if err != nil {
		return nil, refused("the ID token is not valid: %v", err)
	}
	if nonce != "" && subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, refused("the ID token's nonce does not match this sign-on")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, refused("the ID token's claims cannot be read: %v", err)
	}
	return claims, nil
}

// signIn maps verified claims to an identity (created on first sign-on,
// its groups replaced by the token's), and issues its token. A refresh
// (renew.TokenID set) must stay the same identity, and renews the same
// token, with the role the groups now give: the client keeps its token,
// and revoking it ends every session it opened before or after.
func (s *SignOn) signIn(ctx context.Context, claims map[string]any, refreshToken string, renew refreshHandle, how, client string) (Issued, error) {
	name, err := s.username(claims)
	if err != nil {
		return Issued{}, err
	}
	if renew.TokenID != "" && name != renew.Identity {
		return Issued{}, refused("the identity provider now names this user %q, not %q; run gatehouse login again", name, renew.Identity)
	}
	sub, _ := claims["sub"].(string)
	if sub == "" {
		return Issued{}, refused("the identity provider's token has no subject (sub)")
	}
	// The account at the provider the identity is bound to.
	account := s.Config.Issuer + " " + sub
	groups := s.groups(claims)
	role := resource.RoleUser
	if s.Config.AdminGroup != "" && slices.Contains(groups, s.Config.AdminGroup) {
		role = resource.RoleAdmin
	}
	id := resource.Identity{Name: name, Type: resource.IdentityUser, Groups: groups}
	var out Issued
	err = s.Store.Tx(ctx, func(tx store.Store) error {
		old, err := tx.GetIdentity(ctx, name)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		case name == AdminIdentity || old.Type != resource.IdentityUser:
			return refused("identity %q is a %s identity of this gateway and cannot sign in through OIDC", name, old.Type)
		case old.Disabled:
			return &AuthError{Reason: ReasonDisabled}
		case old.OIDCSubject != "" && old.OIDCSubject != account:
			return &LoginError{Reason: fmt.Sprintf("identity %q belongs to another account at the identity provider; an admin can delete the identity to let this account take the name", name),
				Detail: "bound to " + old.OIDCSubject + ", sign-on from " + account}
		}
		if err := id.Validate(); err != nil {
			return refused("the %s claim cannot name an identity: %v", s.Config.UsernameClaim, err)
		}
		if _, err := tx.PutIdentity(ctx, id); err != nil {
			return err
		}
		if old.OIDCSubject == "" {
			if err := tx.BindIdentitySubject(ctx, name, account); err != nil {
				return err
			}
		}
		if renew.TokenID != "" {
			out = Issued{TokenID: renew.TokenID, ExpiresAt: s.now().Add(s.Config.TokenTTL).UTC(), Identity: name, Role: role, Groups: id.Groups}
			if err := tx.RenewToken(ctx, renew.TokenID, role, out.ExpiresAt); errors.Is(err, store.ErrNotFound) {
				return &AuthError{Reason: ReasonRevoked}
			} else if err != nil {
				return err
			}
			return nil
		}
		out, err = issue(ctx, tx, nil, id, role, s.Config.TokenTTL, how, client, s.now())
		return err
	})
	if err != nil {
		return Issued{}, err
	}
	if s.Audit != nil {
		s.Audit(audit.Event{Type: audit.TypeLogin, Identity: name, Protocol: "api", Client: client, Decision: "allow",
			Command: fmt.Sprintf("%s; groups %v; role %s; token %s until %s", how, groups, role, out.TokenID, out.ExpiresAt.Format(time.RFC3339))})
	}
	if refreshToken != "" {
		if out.Refresh, err = (sealer{s.Key}).seal("oidc refresh", refreshHandle{RefreshToken: refreshToken, Identity: name, TokenID: out.TokenID}); err != nil {
			return Issued{}, err
		}
	}
	return out, nil
}

// username reads the identity's name from the configured claim, lower
// case. An unverified e-mail address never names anyone.
func (s *SignOn) username(claims map[string]any) (string, error) {
	v, _ := claims[s.Config.UsernameClaim].(string)
	if v == "" {
		return "", refused("the ID token has no %q claim to name the user (set --oidc-username-claim)", s.Config.UsernameClaim)
	}
	if s.Config.UsernameClaim == "email" {
		if verified, ok := claims["email_verified"].(bool); ok && !verified {
			return "", refused("the identity provider has not verified the e-mail address %s", v)
		}
	}
	return strings.ToLower(v), nil
}

// groups reads the groups claim: a list of strings, or one string. Names
// are lower-cased; ones that cannot name a group are skipped.
func (s *SignOn) groups(claims map[string]any) []string {
	var raw []string
	switch v := claims[s.Config.GroupsClaim].(type) {
	case string:
		raw = []string{v}
	case []any:
		for _, g := range v {
			if str, ok := g.(string); ok {
				raw = append(raw, str)
			}
		}
	}
	var out []string
	for _, g := range raw {
		g = strings.ToLower(g)
		if err := resource.ValidateName("group", g); err != nil {
			if s.Log != nil {
				s.Log.Warn("oidc: group skipped", "group", g, "err", err)
			}
			continue
		}
		out = append(out, g)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// checkLoopback accepts only http redirect URIs on a loopback address: the
// CLI's own listener.
func checkLoopback(redirectURI string) error {
	u, err := url.Parse(redirectURI)
	if err != nil || u.Scheme != "http" || u.Port() == "" {
		return refused("redirect URI %q must be http://127.0.0.1:PORT/… (the CLI's loopback listener)", redirectURI)
	}
	if ip := net.ParseIP(u.Hostname()); !(ip != nil && ip.IsLoopback()) && u.Hostname() != "localhost" {
		return refused("redirect URI %q must be on a loopback address", redirectURI)
	}
	return nil
}

// providerError describes a failed call to the provider; OAuth errors keep
// their code and description, which are safe to show.
func providerError(what string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode != "" {
		msg := re.ErrorCode
		if re.ErrorDescription != "" {
			msg += ": " + re.ErrorDescription
		}
		return refused("the identity provider refused to %s: %s", what, msg)
	}
	return &UnavailableError{Reason: fmt.Sprintf("%s: %v", what, err)}
}

func randomString() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
