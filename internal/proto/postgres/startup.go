package postgres

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/gate"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/proto/postgres/pgwire"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// SQLSTATEs the gateway itself reports.
const (
	codeProtocolViolation  = "08P01"
	codeConnectionFailure  = "08006"
	codeInvalidPassword    = "28P01"
	codeInvalidAuthSpec    = "28000"
	codeInvalidCatalogName = "3D000"
	codeFeatureNotSupport  = "0A000"
	codeProgramLimit       = "54000"
	codeAdminShutdown      = "57P01"
	codeInternal           = "XX000"
	// codeInsufficientPrivilege is PostgreSQL's own code for a statement
	// the role may not run; a policy refusal uses it too.
	codeInsufficientPrivilege = "42501"
)

// clientError is a startup failure to report to the client as a FATAL
// ErrorResponse; its message is safe to show.
type clientError struct {
	code, msg, hint string
}

func (e *clientError) Error() string { return e.code + ": " + e.msg }

func fatal(code, format string, args ...any) *clientError {
	return &clientError{code: code, msg: fmt.Sprintf(format, args...)}
}

// handle serves one client connection from its first byte to its end.
func (e *Engine) handle(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	log := e.deps.Log.With("client", conn.RemoteAddr().String())
	conn.SetDeadline(time.Now().Add(startupTimeout))
	if !e.trackLogin(conn, true) {
		return
	}
	s, err := e.startup(ctx, conn)
	e.trackLogin(conn, false)
	if err != nil {
		var ce *clientError
		if errors.As(err, &ce) {
			if s != nil && s.client != nil {
				conn = s.client
			}
			conn.Write(pgwire.AppendError(nil, pgwire.SeverityFatal, ce.code, ce.msg, "", ce.hint))
			log.Info("postgres login refused", "sqlstate", ce.code, "reason", ce.msg)
		} else if !isClosed(err) {
			log.Debug("postgres startup ended", "err", err)
		}
		return
	}
	defer e.unregister(s)
	s.run()
}

// startup runs the protocol up to ReadyForQuery: TLS, authentication by
// token, the connection lookup and access decision, and the target login.
// It returns a nil session for a served CancelRequest.
func (e *Engine) startup(ctx context.Context, conn net.Conn) (*session, error) {
	client := conn
	isTLS := false
	var st pgwire.Startup
	for {
		var err error
		st, err = pgwire.ReadStartup(client)
		var pe *pgwire.ProtocolError
		if errors.As(err, &pe) {
			return nil, fatal(codeProtocolViolation, "%s", pe.Msg)
		}
		if err != nil {
			return nil, err
		}
		switch st.Kind {
		case pgwire.SSLRequest:
			if isTLS {
				return nil, fatal(codeProtocolViolation, "SSLRequest received on an encrypted connection")
			}
			if _, err := client.Write([]byte{'S'}); err != nil {
				return nil, err
			}
			tc := tls.Server(client, e.deps.TLS)
			if err := tc.HandshakeContext(ctx); err != nil {
				return nil, fmt.Errorf("tls handshake: %w", err)
			}
			client, isTLS = tc, true
			continue
		case pgwire.GSSENCRequest:
			// GSSAPI encryption is not offered: answer 'N' and let the
			// client go on with SSL or plaintext, as PostgreSQL does.
			if _, err := client.Write([]byte{'N'}); err != nil {
				return nil, err
			}
			continue
		case pgwire.CancelRequest:
			e.cancel(st.ProcessID, st.SecretKey)
			return nil, io.EOF
		}
		break
	}
	s := &session{engine: e, client: client, opts: e.opts}
	remote := conn.RemoteAddr().String()
	if !isTLS && !isLoopback(conn.RemoteAddr()) {
		e.deps.Gate.LoginFailed("postgres", remote, st.Get("database"), "TLS required for a non-loopback client")
		return s, &clientError{code: codeInvalidAuthSpec, msg: "the gateway requires TLS for connections that are not from loopback",
			hint: "connect with sslmode=require (or verify-full with the gateway's CA)"}
	}
	if st.Get("replication") != "" && st.Get("replication") != "false" && st.Get("replication") != "0" {
		return s, fatal(codeFeatureNotSupport, "replication connections are not supported through the gateway")
	}
	connName := st.Get("database")
	if connName == "" {
		connName = st.Get("user")
	}

	// Ask for the Gatehouse token as the password.
	if _, err := client.Write(pgwire.AppendAuthCleartext(nil)); err != nil {
		return nil, err
	}
	token, err := readPassword(client)
	if err != nil {
		return s, err
	}
	principal, err := e.deps.Auth.Authenticate(ctx, token)
	var ae *identity.AuthError
	if errors.As(err, &ae) {
		e.deps.Gate.LoginFailed("postgres", remote, connName, ae.Error())
		return s, fatal(codeInvalidPassword, "password authentication failed: %s (the password must be a Gatehouse token)", ae.Reason)
	}
	if err != nil {
		e.deps.Log.Error("postgres: authenticate", "err", err)
		return s, fatal(codeConnectionFailure, "the gateway cannot check tokens right now; try again")
	}

	rec, err := e.deps.Store.GetConnection(ctx, connName)
	if errors.Is(err, store.ErrNotFound) {
		e.deps.Gate.LoginFailed("postgres", remote, connName, "identity "+principal.Identity.Name+": no such connection")
		return s, fatal(codeInvalidCatalogName, "connection %q does not exist", connName)
	}
	if err != nil {
		e.deps.Log.Error("postgres: connection lookup", "err", err)
		return s, fatal(codeConnectionFailure, "the gateway cannot read its connections right now; try again")
	}
	if rec.Type != resource.TypePostgres {
		e.deps.Gate.LoginFailed("postgres", remote, connName, "identity "+principal.Identity.Name+": not a postgres connection")
		return s, fatal(codeInvalidCatalogName, "connection %q is a %s connection, not postgres", connName, rec.Type)
	}
	s.gs = &gate.Session{
		ID: gate.NewSessionID(), Identity: principal.Identity, Connection: rec.Connection,
		Protocol: "postgres", Client: remote, Start: time.Now(), TokenID: principal.TokenID,
		End: func(reason string) { s.end(codeAdminShutdown, "terminating connection: "+reason) },
	}
	if d := e.deps.Gate.Connect(s.gs); d.Action != gate.Allow {
		return s, fatal(codeInvalidAuthSpec, "access to connection %q denied: %s", connName, d.Message)
	}

	maskColumns, masking := e.deps.Gate.MaskColumns(rec.Connection)
	target, err := e.dialTarget(ctx, rec, st, maskColumns)
	if err != nil {
		e.deps.Gate.Close(s.gs, "target login failed: "+err.Error())
		return s, err
	}
	s.mu.Lock()
	s.target = target.conn
	s.mu.Unlock()
	s.targetAddr, s.targetPID, s.targetKey, s.cancelable = target.addr, target.pid, target.key, target.cancelable
	s.legacyStrings.Store(target.params["standard_conforming_strings"] == "off")
	s.masking, s.columns = masking, target.columns
	e.register(s)

	// Finish the client's login: the target's parameters, the gateway's
	// own cancellation key, and the target's transaction state.
	out := pgwire.AppendAuthOK(nil)
	names := make([]string, 0, len(target.params))
	for k := range target.params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		out = pgwire.AppendParameterStatus(out, k, target.params[k])
	}
	out = pgwire.AppendBackendKeyData(out, s.targetPID, s.key)
	out = pgwire.AppendReadyForQuery(out, target.txStatus)
	if _, err := client.Write(out); err != nil {
		e.unregister(s)
		s.target.Close()
		e.deps.Gate.Close(s.gs, "client went away during login")
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return s, nil
}

// readPassword reads the client's PasswordMessage.
func readPassword(r io.Reader) (string, error) {
	br := bufio.NewReaderSize(r, 512)
	var hdr [pgwire.HeaderLen]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return "", err
	}
	typ, total, _ := pgwire.Header(hdr[:])
	if typ != pgwire.MsgPassword {
		return "", fatal(codeProtocolViolation, "expected a password response, got message type %q", typ)
	}
	if err := pgwire.CheckLength(typ, total, pgwire.MaxStartupLen); err != nil {
		return "", fatal(codeProtocolViolation, "%v", err)
	}
	frame := make([]byte, total)
	copy(frame, hdr[:])
	if _, err := io.ReadFull(br, frame[pgwire.HeaderLen:]); err != nil {
		return "", err
	}
	if br.Buffered() > 0 {
		return "", fatal(codeProtocolViolation, "unexpected data after the password message")
	}
	pw, err := pgwire.PasswordText(frame)
	if err != nil {
		return "", fatal(codeProtocolViolation, "%v", err)
	}
	return pw, nil
}

// cancel forwards a client's CancelRequest to the session's target backend
// when the key matches. Like PostgreSQL, it never answers.
func (e *Engine) cancel(pid, key uint32) {
	s := e.lookup(pid, key)
	if s != nil && s.cancelWait(gate.ErrClientCancelled) {
		e.deps.Log.Info("postgres: cancel withdrew a statement waiting for review", "session", s.gs.ID)
		return
	}
	if s == nil || !s.cancelable {
		return
	}
	c, err := net.DialTimeout("tcp", s.targetAddr, dialTimeout)
	if err != nil {
		e.deps.Log.Warn("postgres: forward cancel", "session", s.gs.ID, "err", err)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(dialTimeout))
	c.Write(pgwire.AppendCancelRequest(nil, s.targetPID, s.targetKey))
	// PostgreSQL closes the connection once the cancel is processed.
	io.Copy(io.Discard, c)
	e.deps.Log.Info("postgres: cancel forwarded", "session", s.gs.ID)
}

func putUint32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

func isLoopback(a net.Addr) bool {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.IsLoopback()
	}
	return false
}

func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF)
}

// credential resolves a connection's held credential.
func (e *Engine) credential(rec store.ConnectionRecord) (string, error) {
	return secret.Resolve(rec.Credential, rec.Sealed, e.deps.Key, secret.ConnectionAAD(rec.Name))
}

// scrub removes a secret from a message that may echo it.
func scrub(msg, secretValue string) string {
	if secretValue == "" {
		return msg
	}
	return strings.ReplaceAll(msg, secretValue, "xxxxx")
}
