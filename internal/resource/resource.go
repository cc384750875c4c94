// Package resource defines the declarative documents users apply to
// Gatehouse (Identity, Connection, Policy), how they are decoded from YAML with
// line-accurate errors, and how they are validated. It has no dependencies
// on storage, networking or policy.
package resource

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kind names a document type.
type Kind string

// The kinds Gatehouse understands.
const (
	KindIdentity   Kind = "Identity"
	KindConnection Kind = "Connection"
	KindPolicy     Kind = "Policy"
)

// Kinds lists every known kind in apply order: identities, then the
// connections, then the policies that select them.
var Kinds = []Kind{KindIdentity, KindConnection, KindPolicy}

// ParseKind maps the user's spelling of a kind (singular or plural, any
// case: "connection", "Connections", "conn") to a Kind.
func ParseKind(s string) (Kind, error) {
	switch strings.ToLower(s) {
	case "identity", "identities", "id", "ids":
		return KindIdentity, nil
	case "connection", "connections", "conn", "conns":
		return KindConnection, nil
	case "policy", "policies", "pol":
		return KindPolicy, nil
	}
	return "", fmt.Errorf("unknown kind %q (known kinds: identity, connection, policy)", s)
}

// IdentityType tells a person from a workload.
type IdentityType string

// Identity types.
const (
	IdentityUser    IdentityType = "user"
	IdentityService IdentityType = "service"
)

// Identity is who acts: a person or a service (CI bot, AI agent).
type Identity struct {
	Name   string       `json:"name" yaml:"name"`
	Type   IdentityType `json:"type" yaml:"type"`
	Groups []string     `json:"groups,omitempty" yaml:"groups,omitempty"`
	// Disabled identities keep their history but cannot authenticate.
	Disabled bool `json:"disabled,omitempty" yaml:"disabled,omitempty"`
	// Federation lets a workload exchange a token its platform issued
	// (a CI job's OIDC token, a Kubernetes service-account token) for a
	// short-lived Gatehouse token of this identity.
	Federation *Federation `json:"federation,omitempty" yaml:"federation,omitempty"`
	// OIDCSubject is the provider account ("issuer subject") a person's
	// first sign-on bound the identity to; set by the gateway, never by
	// a manifest.
	OIDCSubject string `json:"oidcSubject,omitempty" yaml:"-"`

	CreatedAt time.Time `json:"createdAt,omitzero" yaml:"-"`
	UpdatedAt time.Time `json:"updatedAt,omitzero" yaml:"-"`
}

// Federation trusts an external issuer's JWTs for a service identity.
type Federation struct {
	// Issuer is the token issuer (its "iss" claim); its signing keys are
	// found by OpenID discovery at Issuer/.well-known/openid-configuration.
	Issuer string `json:"issuer" yaml:"issuer"`
	// Audience must be among the token's "aud" values.
	Audience string `json:"audience" yaml:"audience"`
	// Condition is a CEL expression over the token's claims (the map
	// claims) that must be true, e.g.
	// claims.repository == "acme/api" && claims.ref == "refs/heads/main".
	Condition string `json:"condition" yaml:"condition"`
	// TokenTTL is the lifetime of the Gatehouse tokens issued, a Go
	// duration (default DefaultFederatedTokenTTL, at most
	// MaxFederatedTokenTTL).
	TokenTTL string `json:"tokenTTL,omitempty" yaml:"tokenTTL,omitempty"`
}

// TTL is the lifetime of the tokens the federation issues.
func (f *Federation) TTL() time.Duration {
	if d, err := time.ParseDuration(f.TokenTTL); err == nil && d > 0 {
		return d
	}
	return DefaultFederatedTokenTTL
}

// Federated token lifetimes.
const (
	DefaultFederatedTokenTTL = time.Hour
	MaxFederatedTokenTTL     = 12 * time.Hour
)

// ConnectionType is the protocol of a target.
type ConnectionType string

// Connection types. Engines arrive one issue at a time; the store accepts
// every type so connections can be declared ahead of their engine.
const (
	TypePostgres   ConnectionType = "postgres"
	TypeMySQL      ConnectionType = "mysql"
	TypeRedis      ConnectionType = "redis"
	TypeSSH        ConnectionType = "ssh"
	TypeKubernetes ConnectionType = "kubernetes"
	TypeHTTP       ConnectionType = "http"
	TypeCommand    ConnectionType = "command"
)

// ConnectionTypes lists the valid connection types.
var ConnectionTypes = []ConnectionType{TypePostgres, TypeMySQL, TypeRedis, TypeSSH, TypeKubernetes, TypeHTTP, TypeCommand}

// TLSMode says how the gateway secures its connection to the target.
type TLSMode string

// TLS modes, named after libpq's sslmode values they mirror.
const (
	TLSDisable    TLSMode = "disable"     // plaintext to the target
	TLSRequire    TLSMode = "require"     // encrypt, do not verify the certificate
	TLSVerifyCA   TLSMode = "verify-ca"   // encrypt, verify the chain
	TLSVerifyFull TLSMode = "verify-full" // encrypt, verify chain and host name
)

// TargetTLS configures TLS from the gateway to the target.
type TargetTLS struct {
	Mode TLSMode `json:"mode,omitempty" yaml:"mode,omitempty"`
	// CA is a PEM file holding the roots that sign the target's
	// certificate; empty means the system roots.
	CA string `json:"ca,omitempty" yaml:"ca,omitempty"`
	// ServerName overrides the name verified in verify-full mode.
	ServerName string `json:"serverName,omitempty" yaml:"serverName,omitempty"`
}

// CredentialSource says where a connection's credential lives.
type CredentialSource string

// Credential sources.
const (
	CredentialNone   CredentialSource = "none"
	CredentialInline CredentialSource = "inline" // encrypted at rest in the store
	CredentialEnv    CredentialSource = "env"    // environment variable of the gateway
	CredentialFile   CredentialSource = "file"   // file readable by the gateway
)

// Connection is a named target.
type Connection struct {
	Name     string         `json:"name" yaml:"name"`
	Type     ConnectionType `json:"type" yaml:"type"`
	Address  string         `json:"address" yaml:"address"`
	Database string         `json:"database,omitempty" yaml:"database,omitempty"`
	User     string         `json:"user,omitempty" yaml:"user,omitempty"`
	// Password is write-only. On input it is an inline secret, a reference
	// ("env:NAME", "file:PATH") or "inline:VALUE" for a secret that itself
	// starts with "env:" or "file:". On output it holds only a reference,
	// never an inline value; CredentialSource tells which.
	Password string            `json:"password,omitempty" yaml:"password,omitempty"`
	TLS      TargetTLS         `json:"tls,omitzero" yaml:"tls,omitempty"`
	Labels   map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	// DefaultAction decides a command (or a session's opening) that no
	// policy rule matches: allow (the default) or block.
	DefaultAction RuleAction `json:"defaultAction,omitempty" yaml:"defaultAction,omitempty"`

	// PasswordSet records whether the applied document had a password
	// field at all: absent keeps the stored credential (so a document from
	// `get -o yaml`, which never holds an inline secret, can be edited and
	// applied again), while password: "" clears it.
	PasswordSet bool `json:"-" yaml:"-"`

	CredentialSource CredentialSource `json:"credentialSource,omitempty" yaml:"-"`
	CreatedAt        time.Time        `json:"createdAt,omitzero" yaml:"-"`
	UpdatedAt        time.Time        `json:"updatedAt,omitzero" yaml:"-"`
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$`)

// ValidateName checks a resource, group or label name.
func ValidateName(what, name string) error {
	if name == "" {
		return fmt.Errorf("%s is required", what)
	}
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%s %q is invalid: use 1-63 lower-case letters, digits, '.', '_' or '-', starting and ending with a letter or digit", what, name)
	}
	return nil
}

// identityNameRE also admits e-mail addresses, which name the people who
// sign in through OIDC.
var identityNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._+@-]{0,252}[a-z0-9])?$`)

// ValidateIdentityName checks an identity's name: like ValidateName, but up
// to 254 characters and '@' and '+' allowed, so that an e-mail address can
// name a person.
func ValidateIdentityName(name string) error {
	if name == "" {
		return fmt.Errorf("name is required")
	}
	if !identityNameRE.MatchString(name) {
		return fmt.Errorf("identity name %q is invalid: use 1-254 lower-case letters, digits, '.', '_', '-', '+' or '@', starting and ending with a letter or digit", name)
	}
	return nil
}

// Validate checks an identity and fills defaults.
func (i *Identity) Validate() error {
	if err := ValidateIdentityName(i.Name); err != nil {
		return err
	}
	switch i.Type {
	case "":
		i.Type = IdentityUser
	case IdentityUser, IdentityService:
	default:
		return fmt.Errorf("identity %q: type %q is invalid (want user or service)", i.Name, i.Type)
	}
	for _, g := range i.Groups {
		if err := ValidateName("group", g); err != nil {
			return fmt.Errorf("identity %q: %w", i.Name, err)
		}
	}
	slices.Sort(i.Groups)
	i.Groups = slices.Compact(i.Groups)
	if f := i.Federation; f != nil {
		if i.Type != IdentityService {
			return fmt.Errorf("identity %q: federation is for service identities (type: service); people sign in through OIDC", i.Name)
		}
		if err := ValidateIssuer(f.Issuer); err != nil {
			return fmt.Errorf("identity %q: federation.issuer: %w", i.Name, err)
		}
		if f.Audience == "" {
			return fmt.Errorf("identity %q: federation.audience is required: the value the workload's token must carry in \"aud\"", i.Name)
		}
		if strings.TrimSpace(f.Condition) == "" {
			return fmt.Errorf("identity %q: federation.condition is required: without one, every token of %s would act as this identity", i.Name, f.Issuer)
		}
		if f.TokenTTL != "" {
			ttl, err := time.ParseDuration(f.TokenTTL)
			if err != nil || ttl < time.Minute || ttl > MaxFederatedTokenTTL {
				return fmt.Errorf("identity %q: federation.tokenTTL %q: want a duration from 1m to %s", i.Name, f.TokenTTL, MaxFederatedTokenTTL)
			}
		}
	}
	return nil
}

// ValidateIssuer checks a token issuer URL: https, or http on a loopback
// address (for tests and local providers).
func ValidateIssuer(issuer string) error {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q is not an issuer URL (want https://host[/path])", issuer)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
			return nil
		}
	}
	return fmt.Errorf("issuer %q must use https (plain http only on a loopback address)", issuer)
}

// Validate checks a connection and fills defaults.
func (c *Connection) Validate() error {
	if err := ValidateName("name", c.Name); err != nil {
		return err
	}
	if !slices.Contains(ConnectionTypes, c.Type) {
		return fmt.Errorf("connection %q: type %q is invalid (want one of %s)", c.Name, c.Type, joinTypes())
	}
	if err := validateAddress(c.Type, c.Address); err != nil {
		return fmt.Errorf("connection %q: %w", c.Name, err)
	}
	switch c.TLS.Mode {
	case "":
		c.TLS.Mode = TLSDisable
	case TLSDisable, TLSRequire, TLSVerifyCA, TLSVerifyFull:
	default:
		return fmt.Errorf("connection %q: tls.mode %q is invalid (want disable, require, verify-ca or verify-full)", c.Name, c.TLS.Mode)
	}
	for k := range c.Labels {
		if err := ValidateName("label key", k); err != nil {
			return fmt.Errorf("connection %q: %w", c.Name, err)
		}
	}
	switch c.DefaultAction {
	case "":
		c.DefaultAction = ActionAllow
	case ActionAllow, ActionBlock:
	default:
		return fmt.Errorf("connection %q: defaultAction %q is invalid (want allow or block)", c.Name, c.DefaultAction)
	}
	if _, err := ParseCredential(c.Password); err != nil {
		return fmt.Errorf("connection %q: password: %w", c.Name, err)
	}
	return nil
}

func joinTypes() string {
	s := make([]string, len(ConnectionTypes))
	for i, t := range ConnectionTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// validateAddress accepts host:port for socket protocols and an http(s)
// URL for kubernetes and http; command connections have no address.
func validateAddress(t ConnectionType, addr string) error {
	switch t {
	case TypeCommand:
		return nil
	case TypeKubernetes, TypeHTTP:
		u, err := url.Parse(addr)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("address %q is invalid: want an http(s) URL such as https://10.0.0.5:6443", addr)
		}
		return nil
	}
	if addr == "" {
		return fmt.Errorf("address is required (host:port)")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return fmt.Errorf("address %q is invalid: want host:port", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("address %q is invalid: port must be 1-65535", addr)
	}
	return nil
}

// Credential is a parsed password field: either a reference resolved where
// the credential is used, or an inline secret stored encrypted.
type Credential struct {
	Source CredentialSource
	// Ref is the variable name or file path for env and file sources.
	Ref string
	// Inline is the secret itself for the inline source.
	Inline string
}

// ParseCredential parses a password field. An empty field is no credential.
func ParseCredential(s string) (Credential, error) {
	switch {
	case s == "":
		return Credential{Source: CredentialNone}, nil
	case strings.HasPrefix(s, "env:"):
		name := strings.TrimPrefix(s, "env:")
		if !envNameRE.MatchString(name) {
			return Credential{}, fmt.Errorf("env reference %q is invalid: want env:NAME with NAME made of letters, digits and '_'", s)
		}
		return Credential{Source: CredentialEnv, Ref: name}, nil
	case strings.HasPrefix(s, "file:"):
		path := strings.TrimPrefix(s, "file:")
		if path == "" {
			return Credential{}, fmt.Errorf("file reference is empty: want file:PATH")
		}
		return Credential{Source: CredentialFile, Ref: path}, nil
	case strings.HasPrefix(s, "inline:"):
		return Credential{Source: CredentialInline, Inline: strings.TrimPrefix(s, "inline:")}, nil
	}
	return Credential{Source: CredentialInline, Inline: s}, nil
}

// String renders a credential for display: references as written, inline
// secrets never.
func (c Credential) String() string {
	switch c.Source {
	case CredentialEnv:
		return "env:" + c.Ref
	case CredentialFile:
		return "file:" + c.Ref
	case CredentialInline:
		return "(inline, encrypted at rest)"
	}
	return ""
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
