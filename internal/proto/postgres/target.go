package postgres

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gatehouse-dev/gatehouse/internal/proto/postgres/pgwire"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// targetConn is a logged-in connection to the target, taken over from
// pgconn after authentication.
type targetConn struct {
	conn       net.Conn
	addr       string
	pid, key   uint32
	cancelable bool
	params     map[string]string
	txStatus   byte
}

// forwardedParams are client startup parameters never passed to the target:
// the gateway chooses user and database, and refuses replication.
var forwardedParams = map[string]bool{"user": false, "database": false, "replication": false}

// dialTarget logs in to the target with the held credential (pgconn does
// SCRAM-SHA-256, md5 or cleartext, and TLS when configured) and hands back
// the raw connection.
func (e *Engine) dialTarget(ctx context.Context, rec store.ConnectionRecord, st pgwire.Startup) (*targetConn, error) {
	password, err := e.credential(rec)
	if err != nil {
		e.deps.Log.Error("postgres: resolve credential", "connection", rec.Name, "err", err)
		return nil, fatal(codeConnectionFailure, "the gateway cannot use the credential of connection %q; an administrator must fix it", rec.Name)
	}
	host, port, err := net.SplitHostPort(rec.Address)
	if err != nil {
		return nil, fatal(codeConnectionFailure, "connection %q has an invalid address", rec.Name)
	}
	// Built from a fully explicit string so the gateway's own PG*
	// environment variables cannot change where or how it connects.
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable connect_timeout=%d",
		quoteConnParam(host), quoteConnParam(port), quoteConnParam(rec.User), quoteConnParam(rec.Database), int(dialTimeout.Seconds())))
	if err != nil {
		return nil, fatal(codeConnectionFailure, "connection %q: %v", rec.Name, err)
	}
	cfg.Password = password
	cfg.Fallbacks = nil
	if cfg.TLSConfig, err = targetTLS(rec.TLS, host); err != nil {
		return nil, fatal(codeConnectionFailure, "connection %q: tls: %v", rec.Name, err)
	}
	cfg.RuntimeParams = map[string]string{}
	for _, p := range st.Params {
		if _, skip := forwardedParams[p.Name]; !skip {
			cfg.RuntimeParams[p.Name] = p.Value
		}
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	pc, err := pgconn.ConnectConfig(dctx, cfg)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			// The target refused: pass its SQLSTATE on, e.g. 3D000 for a
			// missing database, but never its details about credentials.
			code := pgErr.Code
			if strings.HasPrefix(code, "28") {
				e.deps.Log.Error("postgres: target rejected the held credential", "connection", rec.Name, "sqlstate", code, "message", pgErr.Message)
				return nil, fatal(codeConnectionFailure, "the target of connection %q rejected the gateway's credential; an administrator must fix it", rec.Name)
			}
			return nil, fatal(code, "target of connection %q: %s", rec.Name, scrub(pgErr.Message, password))
		}
		e.deps.Log.Warn("postgres: target unreachable", "connection", rec.Name, "err", scrub(err.Error(), password))
		return nil, fatal(codeConnectionFailure, "could not connect to the target of connection %q at %s", rec.Name, rec.Address)
	}
	// pgconn may have a background reader in the middle of a read (it
	// starts one when a write is slow); SyncConn stops it and drains its
	// buffers, or it would steal the target's next message from the relay.
	if err := pc.SyncConn(dctx); err != nil {
		pc.Close(ctx)
		return nil, fatal(codeConnectionFailure, "could not take over the connection to the target of %q", rec.Name)
	}
	h, err := pc.Hijack()
	if err != nil {
		pc.Close(ctx)
		return nil, fatal(codeInternal, "take over target connection: %v", err)
	}
	t := &targetConn{conn: h.Conn, addr: rec.Address, params: h.ParameterStatuses, txStatus: h.TxStatus, pid: h.PID}
	if len(h.SecretKey) == 4 {
		t.key, t.cancelable = binary.BigEndian.Uint32(h.SecretKey), true
	}
	return t, nil
}

func quoteConnParam(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// targetTLS builds the client TLS configuration for a connection's mode.
func targetTLS(t resource.TargetTLS, host string) (*tls.Config, error) {
	if t.Mode == "" || t.Mode == resource.TLSDisable {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
	if t.ServerName != "" {
		cfg.ServerName = t.ServerName
	}
	var roots *x509.CertPool
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, err
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", t.CA)
		}
		cfg.RootCAs = roots
	}
	switch t.Mode {
	case resource.TLSRequire:
		cfg.InsecureSkipVerify = true
	case resource.TLSVerifyCA:
		// Verify the chain but not the host name, as libpq's verify-ca.
		cfg.InsecureSkipVerify = true
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			certs := make([]*x509.Certificate, len(raw))
			for i, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return err
				}
				certs[i] = c
			}
			if len(certs) == 0 {
				return errors.New("target sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range certs[1:] {
				inter.AddCert(c)
			}
			_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			return err
		}
	}
	return cfg, nil
}
