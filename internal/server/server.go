package server

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/devca"
	"github.com/gatehouse-dev/gatehouse/internal/gate"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/mask"
	"github.com/gatehouse-dev/gatehouse/internal/proto"
	"github.com/gatehouse-dev/gatehouse/internal/proto/postgres"
	"github.com/gatehouse-dev/gatehouse/internal/recording"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/review"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/store"
	"github.com/gatehouse-dev/gatehouse/internal/web"
)

// Gateway is a started gateway.
type Gateway struct {
	cfg        Config
	Store      store.Store
	MasterKey  *secret.MasterKey
	SigningKey ed25519.PrivateKey
	TLS        *tls.Config

	Audit      *audit.Log
	Recordings *recording.Writer
	Gate       *gate.Gate
	Reviews    *review.Service
	webhook    *review.Webhook

	policies    *policyLoader
	apiListener net.Listener
	apiServer   *http.Server
	serveErr    chan error

	engineCancel context.CancelFunc
	engineDone   sync.WaitGroup
	listeners    map[string]net.Listener
}

// Start prepares the data directory, opens the store, bootstraps the admin
// token on first start, and starts the listeners. It returns once the
// gateway accepts connections.
func Start(ctx context.Context, cfg Config) (*Gateway, error) {
	if err := cfg.CheckAndSetDefaults(); err != nil {
		return nil, err
	}
	log := cfg.Log
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	g := &Gateway{cfg: cfg, serveErr: make(chan error, 1)}

	var err error
	if g.MasterKey, err = loadMasterKey(cfg); err != nil {
		return nil, err
	}
	var created bool
	if g.SigningKey, created, err = loadOrCreateSigningKey(filepath.Join(cfg.DataDir, SigningKeyFile), filepath.Join(cfg.DataDir, SigningPubFile)); err != nil {
		return nil, err
	} else if created {
		log.Info("created audit signing key", "public_key", filepath.Join(cfg.DataDir, SigningPubFile))
	}
	if g.TLS, err = serverTLS(cfg); err != nil {
		return nil, err
	}

	if g.Store, err = store.Open(ctx, cfg.Store, cfg.DataDir); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			g.Store.Close()
		}
	}()
	if err := checkMasterKey(ctx, g.Store, g.MasterKey); err != nil {
		return nil, err
	}
	var adminToken string
	created, err = identity.Bootstrap(ctx, g.Store, time.Now(), func(token string) error {
		adminToken = token
		return writeAdminToken(cfg.DataDir, token)
	})
	if err != nil {
		return nil, err
	}
	if created {
		fmt.Fprintf(cfg.Stdout, "\nAdmin token (shown once; also saved to %s):\n\n  %s\n\n", filepath.Join(cfg.DataDir, AdminTokenFile), adminToken)
	}

	signer, err := audit.NewSigner(g.SigningKey)
	if err != nil {
		return nil, fmt.Errorf("audit signer: %w", err)
	}
	if g.Audit, err = audit.Open(ctx, audit.Options{Dir: filepath.Join(cfg.DataDir, "audit"), Node: cfg.Node,
		Store: g.Store, Signer: signer, Log: log}); err != nil {
		return nil, err
	}
	defer func() {
		if !ok {
			g.Audit.Close()
		}
	}()
	g.Gate = &gate.Gate{Audit: g.Audit, Log: log, Masker: mask.NewMasker(g.MasterKey.Derive("mask hash"))}
	if cfg.UnsafeNoAudit {
		log.Warn("UNSAFE: --unsafe-no-audit: this gateway records nothing; use it only to measure the audit log's cost")
		g.Gate.Audit = discardAudit{}
	} else {
		if g.Recordings, err = recording.NewWriter(recording.Options{Store: g.Store, Audit: g.Audit, Node: cfg.Node, Log: log,
			RowsPerResult: cfg.RecordingRows, SessionBytes: cfg.RecordingSessionBytes}); err != nil {
			return nil, err
		}
		g.Gate.Recordings = g.Recordings
		defer func() {
			if !ok {
				g.Recordings.Close()
			}
		}()
	}
	g.Reviews = &review.Service{Store: g.Store, Audit: g.Gate.Audit.Append, Log: log}
	if cfg.ReviewWebhook != "" {
		g.webhook = &review.Webhook{URL: cfg.ReviewWebhook, Secret: []byte(cfg.ReviewWebhookSecret),
			Format: cfg.ReviewWebhookFormat, PublicURL: cfg.PublicURL, Log: log}
		g.Reviews.Notify = g.webhook
	}
	g.Gate.Reviews = g.Reviews
	loader := &policyLoader{g: g}
	g.policies = loader
	if err := loader.reload(ctx); err != nil {
		return nil, err
	}
	auth := &identity.Authenticator{Store: g.Store}
	var signOn *identity.SignOn
	if cfg.OIDC.Issuer != "" {
		signOn = &identity.SignOn{Config: cfg.OIDC, Store: g.Store, Key: g.MasterKey, Audit: g.Gate.Audit.Append, Log: log}
	}
	federator := &identity.Federator{Store: g.Store, Audit: g.Gate.Audit.Append}
	recheck := make(chan struct{}, 1)

	api := &web.API{
		Store: g.Store, Auth: auth, Key: g.MasterKey,
		Log: log, Version: cfg.Version,
		Access: func(id resource.Identity, c resource.Connection) bool {
			return g.Gate.Access(id, c).Action == gate.Allow
		},
		PoliciesChanged: loader.reload,
		AuditNode:       cfg.Node,
		AuditKey:        g.SigningKey.Public().(ed25519.PublicKey),
		AuditFlush:      g.Audit.Checkpoint,
		AuditSync:       g.Audit.Sync,
		RecordingSync:   g.Recordings.Sync,
		Audit:           g.Audit.Append,
		Reviews:         g.Reviews,
		RequestAccess:   g.Gate.RequestAccess,
		SignOn:          signOn,
		Federator:       federator,
		TokenTTL:        cfg.TokenTTL,
		IdentitiesChanged: func() {
			select {
			case recheck <- struct{}{}:
			default:
			}
		},
	}
	if g.apiListener, err = net.Listen("tcp", cfg.APIAddr); err != nil {
		return nil, fmt.Errorf("api listener: %w", err)
	}
	g.apiServer = &http.Server{
		Handler:           api.Handler(),
		TLSConfig:         g.TLS,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slogErrorLog(log),
	}
	// Protocol engines, wired by name in this one place.
	deps := proto.Deps{Store: g.Store, Auth: auth, Key: g.MasterKey, Gate: g.Gate, TLS: g.TLS, Log: log}
	engines := map[string]proto.Engine{}
	if cfg.PostgresAddr != "off" {
		engines[cfg.PostgresAddr] = postgres.New(deps, postgres.Options{MaxMessageBytes: cfg.PostgresMaxMessage})
	}
	g.listeners = map[string]net.Listener{}
	for addr, e := range engines {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range g.listeners {
				l.Close()
			}
			g.apiListener.Close()
			return nil, fmt.Errorf("%s listener: %w", e.Name(), err)
		}
		g.listeners[e.Name()] = l
	}
	var engineCtx context.Context
	engineCtx, g.engineCancel = context.WithCancel(context.Background())
	g.engineDone.Add(1)
	go func() {
		defer g.engineDone.Done()
		loader.poll(engineCtx)
	}()
	g.engineDone.Add(1)
	go func() {
		defer g.engineDone.Done()
		g.Reviews.Run(engineCtx, time.Second)
	}()
	g.engineDone.Add(1)
	go func() {
		defer g.engineDone.Done()
		endRevoked(engineCtx, g.Gate, auth, cfg.RevocationCheck, recheck)
	}()
	for _, e := range engines {
		l := g.listeners[e.Name()]
		g.engineDone.Add(1)
		go func() {
			defer g.engineDone.Done()
			if err := e.Serve(engineCtx, l); err != nil {
				g.serveErr <- fmt.Errorf("%s engine: %w", e.Name(), err)
			}
		}()
	}

	go func() {
		err := g.apiServer.ServeTLS(g.apiListener, "", "")
		if !errors.Is(err, http.ErrServerClosed) {
			g.serveErr <- fmt.Errorf("api server: %w", err)
		}
	}()
	if cfg.DebugAddr != "" {
		if err := serveDebug(cfg.DebugAddr, log); err != nil {
			return nil, err
		}
	}
	ok = true
	attrs := []any{"api", "https://" + g.APIAddr(), "store", g.Store.Backend(), "node", cfg.Node,
		"data_dir", cfg.DataDir, "ca", filepath.Join(cfg.DataDir, devca.CAFile), "master_key_id", g.MasterKey.ID()}
	for name, l := range g.listeners {
		attrs = append(attrs, name, l.Addr().String())
	}
	log.Info("gateway ready", attrs...)
	return g, nil
}

// endRevoked ends live sessions whose token was revoked or whose identity
// was disabled: every interval (for changes made on other nodes), and at
// once when this node's API changes tokens or identities.
func endRevoked(ctx context.Context, g *gate.Gate, auth *identity.Authenticator, interval time.Duration, now <-chan struct{}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-now:
		}
		g.EndRevoked(ctx, auth.Fallen)
	}
}

// discardAudit records nothing (--unsafe-no-audit).
type discardAudit struct{}

func (discardAudit) Append(audit.Event) uint64 { return 0 }

// ReloadPolicies loads the stored policies into the gate now, instead of at
// the next poll.
func (g *Gateway) ReloadPolicies(ctx context.Context) error { return g.policies.reload(ctx) }

// APIAddr is the bound API address (useful when configured with port 0).
func (g *Gateway) APIAddr() string { return g.apiListener.Addr().String() }

// Addr is the bound address of a protocol engine's listener ("" if off).
func (g *Gateway) Addr(engine string) string {
	if l, ok := g.listeners[engine]; ok {
		return l.Addr().String()
	}
	return ""
}

// Wait blocks until ctx ends or a listener fails.
func (g *Gateway) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-g.serveErr:
		return err
	}
}

// Shutdown stops accepting, lets requests in flight finish within the
// context's deadline, and closes the store.
func (g *Gateway) Shutdown(ctx context.Context) error {
	err := g.apiServer.Shutdown(ctx)
	g.engineCancel()
	g.engineDone.Wait()
	g.Recordings.Close() // its chunks' events go into the audit log
	if g.webhook != nil {
		g.webhook.Close(ctx)
	}
	if aerr := g.Audit.Close(); err == nil {
		err = aerr
	}
	if cerr := g.Store.Close(); err == nil {
		err = cerr
	}
	g.cfg.Log.Info("gateway stopped")
	return err
}

func loadMasterKey(cfg Config) (*secret.MasterKey, error) {
	if cfg.MasterKey != "" {
		k, err := secret.ParseMasterKey(cfg.MasterKey)
		if err != nil {
			return nil, fmt.Errorf("master key from configuration: %w", err)
		}
		return k, nil
	}
	k, created, err := secret.LoadOrCreateMasterKeyFile(cfg.MasterKeyFile)
	if err != nil {
		return nil, err
	}
	if created {
		cfg.Log.Info("created master key; back it up: credentials stored inline cannot be decrypted without it", "file", cfg.MasterKeyFile)
	}
	return k, nil
}

const keyCheckMeta = "master_key_check"

var keyCheckAAD = []byte("gatehouse/master-key-check")

// checkMasterKey refuses to start with a master key other than the one the
// store's credentials were sealed with, instead of failing later at each
// decryption.
func checkMasterKey(ctx context.Context, st store.Store, key *secret.MasterKey) error {
	v, err := st.GetMeta(ctx, keyCheckMeta)
	if errors.Is(err, store.ErrNotFound) {
		sealed, err := key.Seal([]byte(key.ID()), keyCheckAAD)
		if err != nil {
			return err
		}
		return st.SetMeta(ctx, keyCheckMeta, fmt.Sprintf("%x", sealed))
	}
	if err != nil {
		return fmt.Errorf("read master key check: %w", err)
	}
	var sealed []byte
	if _, err := fmt.Sscanf(v, "%x", &sealed); err != nil {
		return fmt.Errorf("master key check in store is corrupt: %w", err)
	}
	if _, err := key.Open(sealed, keyCheckAAD); err != nil {
		return fmt.Errorf("the master key (id %s) is not the one this store's credentials were sealed with; start with the original key (master.key or GATEHOUSE_MASTER_KEY)", key.ID())
	}
	return nil
}

func serverTLS(cfg Config) (*tls.Config, error) {
	var cert tls.Certificate
	var err error
	if cfg.TLSCert != "" {
		if cert, err = tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey); err != nil {
			return nil, fmt.Errorf("load tls-cert/tls-key: %w", err)
		}
	} else {
		ca, created, err := devca.LoadOrCreate(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		if created {
			cfg.Log.Info("created development CA; clients trust it with --ca", "ca", filepath.Join(cfg.DataDir, devca.CAFile))
		}
		if cert, err = ca.ServerCertificate(cfg.DataDir, devca.DefaultHosts(cfg.Hostnames...)); err != nil {
			return nil, err
		}
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// writeAdminToken stores the first admin token in DIR/admin-token (0600).
func writeAdminToken(dataDir, token string) error {
	path := filepath.Join(dataDir, AdminTokenFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write admin token: %w", err)
	}
	_, werr := f.WriteString(token + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("write admin token: %w", werr)
	}
	return nil
}
