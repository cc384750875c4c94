// Package server assembles a Gatehouse gateway: configuration, the data
// directory and its keys, the store, and the listeners, with an orderly
// start and shutdown.
package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/proto/postgres"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/review"
)

// Defaults.
const (
	DefaultDataDir = "./gatehouse-data"
	DefaultAPIAddr = "127.0.0.1:8443"
)

// Files written in the data directory besides devca's.
const (
	MasterKeyFile  = "master.key"
	SigningKeyFile = "signing.key"
	SigningPubFile = "signing.pub"
	AdminTokenFile = "admin-token"
)

// Config configures a gateway. Zero fields take defaults in
// CheckAndSetDefaults.
type Config struct {
	// DataDir holds keys, the dev CA and, by default, the SQLite store.
	DataDir string
	// Store is empty for SQLite in DataDir, or a postgres:// URL.
	Store string
	// APIAddr is the HTTPS API listener.
	APIAddr string
	// PostgresAddr is the PostgreSQL engine's listener; "off" disables it.
	PostgresAddr string
	// PostgresMaxMessage caps a PostgreSQL message the gateway reads whole.
	PostgresMaxMessage int
	// DebugAddr, when set, serves Go's pprof profiles (keep it on loopback).
	DebugAddr string
	// UnsafeNoAudit records nothing: it exists only to measure what the
	// audit log costs (bench/pgbench.sh), and the gateway warns loudly.
	UnsafeNoAudit bool
	// RecordingRows caps the rows of one result a session recording keeps
	// (0: recording.DefaultRowsPerResult; negative: none);
	// RecordingSessionBytes caps the row bytes kept per session (0: the
	// default; negative: none).
	RecordingRows         int
	RecordingSessionBytes int64
	// ReviewWebhook receives every review change (POST, JSON, signed with
	// ReviewWebhookSecret in X-Gatehouse-Signature); ReviewWebhookFormat
	// is json (default) or slack. PublicURL is the API's address as
	// reviewers reach it, for links.
	ReviewWebhook       string
	ReviewWebhookSecret string
	ReviewWebhookFormat string
	PublicURL           string
	// OIDC configures sign-on through an OpenID provider; an empty
	// Issuer turns it off (tokens only).
	OIDC identity.OIDCConfig
	// TokenTTL is the default lifetime of tokens made through the API and
	// of sign-on tokens (default identity.DefaultHumanTokenTTL).
	TokenTTL time.Duration
	// RevocationCheck is how often live sessions' tokens are checked:
	// a revoked token or disabled identity ends its sessions within it
	// (default 2s; on this node a revocation through the API acts at once).
	RevocationCheck time.Duration
	// Node names this gateway in audit events (default: the host name).
	Node string
	// MasterKey is a base64 master key given directly (for example from
	// GATEHOUSE_MASTER_KEY); it wins over MasterKeyFile.
	MasterKey string
	// MasterKeyFile defaults to DataDir/master.key, created on first start.
	MasterKeyFile string
	// TLSCert and TLSKey replace the dev CA's server certificate.
	TLSCert, TLSKey string
	// Hostnames are extra names for the dev server certificate.
	Hostnames []string

	Log *slog.Logger
	// Stdout receives the one-time admin token on first start.
	Stdout io.Writer
	// Version is reported by /healthz and metrics.
	Version string
}

// CheckAndSetDefaults validates the configuration and fills defaults.
func (c *Config) CheckAndSetDefaults() error {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.APIAddr == "" {
		c.APIAddr = DefaultAPIAddr
	}
	if err := checkListenAddr("api-addr", c.APIAddr); err != nil {
		return err
	}
	if c.PostgresAddr == "" {
		c.PostgresAddr = postgres.DefaultAddr
	}
	if c.PostgresAddr != "off" {
		if err := checkListenAddr("postgres-addr", c.PostgresAddr); err != nil {
			return err
		}
	}
	if c.Node == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "gatehouse"
		}
		c.Node = h
	}
	if err := resource.ValidateName("node", strings.ToLower(c.Node)); err != nil {
		return fmt.Errorf("node name: %w", err)
	}
	c.Node = strings.ToLower(c.Node)
	if c.MasterKeyFile == "" {
		c.MasterKeyFile = filepath.Join(c.DataDir, MasterKeyFile)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("tls-cert and tls-key go together: give both or neither")
	}
	if c.ReviewWebhook != "" {
		u, err := url.Parse(c.ReviewWebhook)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return errors.New("review-webhook: want an http(s) URL")
		}
		if c.ReviewWebhookSecret == "" && c.ReviewWebhookFormat != review.FormatSlack {
			return errors.New("review-webhook needs a secret to sign with: set GATEHOUSE_REVIEW_WEBHOOK_SECRET")
		}
	}
	switch c.ReviewWebhookFormat {
	case "":
		c.ReviewWebhookFormat = review.FormatJSON
	case review.FormatJSON, review.FormatSlack:
	default:
		return fmt.Errorf("review-webhook-format %q: want json or slack", c.ReviewWebhookFormat)
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = identity.DefaultHumanTokenTTL
	}
	if c.TokenTTL < time.Minute {
		return fmt.Errorf("token-ttl %s is too short (at least 1m)", c.TokenTTL)
	}
	if c.OIDC.TokenTTL == 0 {
		c.OIDC.TokenTTL = c.TokenTTL
	}
	if c.OIDC.Issuer != "" {
		if err := c.OIDC.CheckAndSetDefaults(); err != nil {
			return err
		}
	} else if c.OIDC.ClientID != "" {
		return errors.New("oidc-client-id needs oidc-issuer")
	}
	if c.RevocationCheck == 0 {
		c.RevocationCheck = 2 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	return nil
}

func checkListenAddr(flag, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q is invalid: want HOST:PORT such as 127.0.0.1:8443", flag, addr)
	}
	if host != "" && net.ParseIP(host) == nil && host != "localhost" {
		if _, err := net.LookupHost(host); err != nil {
			return fmt.Errorf("%s %q: host %q does not resolve", flag, addr, host)
		}
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("%s %q: bad port: %v", flag, addr, err)
	}
	return nil
}
