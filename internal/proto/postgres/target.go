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
	"strconv"
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
	// columns are the masked columns' identities in the target's catalog.
	columns map[colKey]string
}

// colKey is a column as RowDescription names it: its table's OID and its
// attribute number.
type colKey struct {
	table  uint32
	attnum int16
}

// resolveColumns finds the columns named schema.table.column in the
// target's catalog, and the columns of views (and materialized views) that
// select them under the same name, so a rule on a column also holds
// through a view over it.
func resolveColumns(ctx context.Context, pc *pgconn.PgConn, names []string) (map[colKey]string, error) {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = "'" + strings.ReplaceAll(n, "'", "''") + "'"
	}
	sql := `WITH base AS (
  SELECT c.oid AS relid, a.attnum, a.attname, n.nspname || '.' || c.relname || '.' || a.attname AS name
  FROM pg_catalog.pg_attribute a
  JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE a.attnum > 0 AND NOT a.attisdropped AND n.nspname || '.' || c.relname || '.' || a.attname IN (` + strings.Join(quoted, ", ") + `))
SELECT relid, attnum, name FROM base
UNION
SELECT v.oid, va.attnum, b.name FROM base b
  JOIN pg_catalog.pg_depend d ON d.refobjid = b.relid AND d.refobjsubid = b.attnum AND d.classid = 'pg_catalog.pg_rewrite'::regclass
  JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
  JOIN pg_catalog.pg_class v ON v.oid = r.ev_class AND v.relkind IN ('v', 'm')
  JOIN pg_catalog.pg_attribute va ON va.attrelid = v.oid AND va.attname = b.attname AND NOT va.attisdropped`
	res, err := pc.Exec(ctx, sql).ReadAll()
	if err != nil {
		return nil, err
	}
	out := map[colKey]string{}
	for _, r := range res {
		if r.Err != nil {
			return nil, r.Err
		}
		for _, row := range r.Rows {
			oid, err1 := strconv.ParseUint(string(row[0]), 10, 32)
			att, err2 := strconv.ParseInt(string(row[1]), 10, 16)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("catalog row %q", row)
			}
			out[colKey{uint32(oid), int16(att)}] = string(row[2])
		}
	}
	return out, nil
}

// forwardedParams are client startup parameters never passed to the target:
// the gateway chooses user and database, and refuses replication.
var forwardedParams = map[string]bool{"user": false, "database": false, "replication": false}

// dialTarget logs in to the target with the held credential (pgconn does
// SCRAM-SHA-256, md5 or cleartext, and TLS when configured) and hands back
// the raw connection.
func (e *Engine) dialTarget(ctx context.Context, rec store.ConnectionRecord, st pgwire.Startup, maskColumns []string) (*targetConn, error) {
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
	var columns map[colKey]string
	if len(maskColumns) > 0 {
		if columns, err = resolveColumns(dctx, pc, maskColumns); err != nil {
			pc.Close(ctx)
			e.deps.Log.Error("postgres: resolve masked columns", "connection", rec.Name, "err", err)
			return nil, fatal(codeConnectionFailure, "the gateway cannot look up the masked columns of connection %q, so it cannot mask them: %v", rec.Name, err)
		}
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
	t := &targetConn{conn: h.Conn, addr: rec.Address, params: h.ParameterStatuses, txStatus: h.TxStatus, pid: h.PID, columns: columns}
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
