package postgres

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/proto/postgres/pgwire"
)

// Tunnel is the client side of `gatehouse connect`: a loopback listener
// that accepts PostgreSQL clients without a password, logs each one in to
// the gateway over TLS with the user's token, and then relays bytes. The
// client's database is replaced by the tunnel's connection name.
type Tunnel struct {
	// GatewayAddr is the gateway's PostgreSQL listener (host:port).
	GatewayAddr string
	// Connection is the Gatehouse connection every client is sent to.
	Connection string
	// Token authenticates to the gateway; it never reaches the client.
	Token string
	// TLS verifies the gateway (RootCAs, ServerName).
	TLS *tls.Config
	Log *slog.Logger
}

// Serve accepts clients on l until ctx ends.
func (t *Tunnel) Serve(ctx context.Context, l net.Listener) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			if err := t.serve(ctx, c); err != nil && !isClosed(err) {
				t.Log.Warn("tunnel session failed", "err", err)
			}
		}()
	}
}

func (t *Tunnel) serve(ctx context.Context, client net.Conn) error {
	client.SetDeadline(time.Now().Add(startupTimeout))
	var st pgwire.Startup
	for {
		var err error
		if st, err = pgwire.ReadStartup(client); err != nil {
			var pe *pgwire.ProtocolError
			if errors.As(err, &pe) {
				client.Write(pgwire.AppendError(nil, pgwire.SeverityFatal, codeProtocolViolation, pe.Msg, "", ""))
			}
			return err
		}
		if st.Kind == pgwire.SSLRequest || st.Kind == pgwire.GSSENCRequest {
			// The local leg stays on loopback in plaintext; the leg to the
			// gateway is TLS.
			if _, err := client.Write([]byte{'N'}); err != nil {
				return err
			}
			continue
		}
		break
	}
	gw, err := t.dialGateway(ctx)
	if err != nil {
		client.Write(pgwire.AppendError(nil, pgwire.SeverityFatal, codeConnectionFailure, "gatehouse connect: "+err.Error(), "", ""))
		return err
	}
	defer gw.Close()
	if st.Kind == pgwire.CancelRequest {
		_, err := gw.Write(pgwire.AppendCancelRequest(nil, st.ProcessID, st.SecretKey))
		return err
	}
	if _, err := gw.Write(startupPacket(st, t.Connection)); err != nil {
		return err
	}
	br := bufio.NewReader(gw)
	hdr, err := br.Peek(pgwire.HeaderLen + 4)
	if err != nil {
		return fmt.Errorf("gateway login: %w", err)
	}
	if hdr[0] == pgwire.MsgAuthentication && hdr[8] == 3 { // cleartext password request
		br.Discard(len(hdr))
		pw := []byte{pgwire.MsgPassword, 0, 0, 0, 0}
		pw = append(append(pw, t.Token...), 0)
		putUint32(pw[1:], uint32(len(pw)-1))
		if _, err := gw.Write(pw); err != nil {
			return err
		}
	}
	// From here the gateway's answer (AuthenticationOk … or an error) is
	// exactly what the client expects after its startup message.
	client.SetDeadline(time.Time{})
	gw.SetDeadline(time.Time{})
	done := make(chan struct{})
	go func() {
		io.Copy(gw, client)
		gw.Close()
		close(done)
	}()
	io.Copy(client, br)
	client.Close()
	<-done
	return nil
}

func (t *Tunnel) dialGateway(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: dialTimeout}
	c, err := d.DialContext(ctx, "tcp", t.GatewayAddr)
	if err != nil {
		return nil, fmt.Errorf("dial gateway %s: %w", t.GatewayAddr, err)
	}
	c.SetDeadline(time.Now().Add(startupTimeout))
	req := []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}
	if _, err := c.Write(req); err != nil {
		c.Close()
		return nil, err
	}
	var answer [1]byte
	if _, err := io.ReadFull(c, answer[:]); err != nil || answer[0] != 'S' {
		c.Close()
		return nil, fmt.Errorf("gateway %s did not accept TLS", t.GatewayAddr)
	}
	tc := tls.Client(c, t.TLS)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("TLS to gateway %s: %w", t.GatewayAddr, err)
	}
	return tc, nil
}

// startupPacket re-encodes a client's StartupMessage with the database
// replaced by the tunnel's connection.
func startupPacket(st pgwire.Startup, connection string) []byte {
	b := []byte{0, 0, 0, 0, 0, 3, 0, 0}
	hasDB := false
	for _, p := range st.Params {
		v := p.Value
		if p.Name == "database" {
			v, hasDB = connection, true
		}
		b = append(append(b, p.Name...), 0)
		b = append(append(b, v...), 0)
	}
	if !hasDB {
		b = append(append(b, "database"...), 0)
		b = append(append(b, connection...), 0)
	}
	b = append(b, 0)
	putUint32(b, uint32(len(b)))
	return b
}
