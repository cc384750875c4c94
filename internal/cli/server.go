package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/proto/postgres"
	"github.com/gatehouse-dev/gatehouse/internal/recording"
	"github.com/gatehouse-dev/gatehouse/internal/server"
)

func newServerCmd() *cobra.Command {
	var (
		cfg       server.Config
		logLevel  string
		logFormat string
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the gateway",
		Long: `Run the gateway. With no flags it keeps everything in ./gatehouse-data:
the SQLite store, the master key that encrypts credentials, the audit signing
key, and a development CA (ca.pem) whose server certificate every listener
uses. On first start it writes an admin token to DATA_DIR/admin-token.

The master key may instead come from GATEHOUSE_MASTER_KEY (base64) or
--master-key-file; keep it out of the store's backups.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(cmd.ErrOrStderr(), logLevel, logFormat)
			if err != nil {
				return usageError{err}
			}
			cfg.Log, cfg.Stdout, cfg.Version = log, cmd.OutOrStdout(), version()
			cfg.MasterKey = os.Getenv("GATEHOUSE_MASTER_KEY")
			cfg.ReviewWebhookSecret = os.Getenv("GATEHOUSE_REVIEW_WEBHOOK_SECRET")
			cfg.OIDC.ClientSecret = os.Getenv("GATEHOUSE_OIDC_CLIENT_SECRET")
			if cfg.RecordingRows == 0 {
				cfg.RecordingRows = -1 // the flag's 0 keeps none; the config's 0 is the default
			}
			if cfg.RecordingSessionBytes == 0 {
				cfg.RecordingSessionBytes = -1
			}
			ctx := cmd.Context()
			g, err := server.Start(ctx, cfg)
			if err != nil {
				return err
			}
			werr := g.Wait(ctx)
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if err := g.Shutdown(shutdownCtx); werr == nil && err != nil {
				werr = fmt.Errorf("shutdown: %w", err)
			}
			return werr
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", server.DefaultDataDir, "directory for keys, the dev CA and the embedded store")
	f.StringVar(&cfg.Store, "store", "", "store: empty for SQLite in the data directory, or postgres://user:pass@host/db")
	f.StringVar(&cfg.APIAddr, "api-addr", server.DefaultAPIAddr, "HTTPS API listen address")
	f.StringVar(&cfg.PostgresAddr, "postgres-addr", postgres.DefaultAddr, `PostgreSQL listener ("off" disables it)`)
	f.IntVar(&cfg.PostgresMaxMessage, "postgres-max-message", postgres.DefaultMaxMessageBytes, "largest PostgreSQL message (bytes) the gateway reads whole")
	f.StringVar(&cfg.DebugAddr, "debug-addr", "", "serve Go pprof profiles here (no authentication: use loopback)")
	f.BoolVar(&cfg.UnsafeNoAudit, "unsafe-no-audit", false, "record nothing (only for measuring the audit log's cost)")
	f.MarkHidden("unsafe-no-audit")
	f.IntVar(&cfg.RecordingRows, "recording-rows", recording.DefaultRowsPerResult, "rows of each result kept in session recordings (0: none; the rest are counted)")
	f.Int64Var(&cfg.RecordingSessionBytes, "recording-session-bytes", recording.DefaultSessionBytes, "row bytes kept in one session's recording (0: none; the rest are counted)")
	f.StringVar(&cfg.ReviewWebhook, "review-webhook", "", "URL that receives every review change (JSON, signed with GATEHOUSE_REVIEW_WEBHOOK_SECRET)")
	f.StringVar(&cfg.ReviewWebhookFormat, "review-webhook-format", "json", "review webhook body: json, or slack for a Slack incoming webhook")
	f.StringVar(&cfg.PublicURL, "public-url", "", "the API's URL as reviewers reach it, for links in notifications")
	f.StringVar(&cfg.OIDC.Issuer, "oidc-issuer", "", "OpenID provider for people's sign-on (gatehouse login); its client secret comes from GATEHOUSE_OIDC_CLIENT_SECRET")
	f.StringVar(&cfg.OIDC.ClientID, "oidc-client-id", "", "the gateway's client id at the OpenID provider")
	f.StringSliceVar(&cfg.OIDC.Scopes, "oidc-scopes", nil, "scopes to request (default openid,profile,email,offline_access)")
	f.StringVar(&cfg.OIDC.UsernameClaim, "oidc-username-claim", "email", "ID-token claim that names the user")
	f.StringVar(&cfg.OIDC.GroupsClaim, "oidc-groups-claim", "groups", "ID-token claim that lists the user's groups")
	f.StringVar(&cfg.OIDC.AdminGroup, "oidc-admin-group", "", "members of this group get the admin role")
	f.DurationVar(&cfg.TokenTTL, "token-ttl", identity.DefaultHumanTokenTTL, "lifetime of sign-on tokens, and of API tokens created without --ttl")
	f.DurationVar(&cfg.RevocationCheck, "revocation-check", 2*time.Second, "how often live sessions' tokens are rechecked (revoked token or disabled identity ends them)")
	f.StringVar(&cfg.Node, "node", "", "node name in audit events (default: the host name)")
	f.StringVar(&cfg.MasterKeyFile, "master-key-file", "", "master key file (default DATA_DIR/master.key, created on first start)")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "server certificate (PEM) replacing the dev CA's")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "private key (PEM) of --tls-cert")
	f.StringSliceVar(&cfg.Hostnames, "hostname", nil, "extra host names for the dev server certificate")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	for _, name := range []string{"data-dir", "store", "api-addr", "postgres-addr", "postgres-max-message", "recording-rows", "recording-session-bytes", "review-webhook", "review-webhook-format", "public-url", "node", "debug-addr", "master-key-file", "tls-cert", "tls-key", "hostname", "log-level", "log-format"} {
		configFlag(f, name)
	}
	return cmd
}

func newLogger(w interface{ Write([]byte) (int, error) }, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log-level %q is invalid (want debug, info, warn or error)", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log-format %q is invalid (want text or json)", format)
}
