package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/proto/postgres"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
)

// tunnel is what `gatehouse connect` runs for one connection type.
type tunnel interface {
	Serve(ctx context.Context, l net.Listener) error
}

// tunnelFor builds the local tunnel for a connection type: the one place
// the client side picks an engine by protocol.
func tunnelFor(typ resource.ConnectionType, gatewayAddr, gatewayHost, name, token string, tlsCfg *tls.Config, log *slog.Logger) (tunnel, string, error) {
	switch typ {
	case resource.TypePostgres:
		if gatewayAddr == "" {
			gatewayAddr = net.JoinHostPort(gatewayHost, portOf(postgres.DefaultAddr))
		}
		return &postgres.Tunnel{GatewayAddr: gatewayAddr, Connection: name, Token: token, TLS: tlsCfg, Log: log},
			"psql 'host=127.0.0.1 port=%d dbname=%s'", nil
	}
	return nil, "", fmt.Errorf("connection %q is of type %s, which gatehouse connect does not support yet", name, typ)
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func newConnectCmd() *cobra.Command {
	var (
		co          clientOptions
		port        int
		gatewayAddr string
	)
	cmd := &cobra.Command{
		Use:   "connect CONNECTION [--port N]",
		Short: "Open a local port that reaches a connection through the gateway with your token",
		Long: `Listen on 127.0.0.1 and let any tool connect there with no password: each
client is logged in to the gateway over TLS with your token and sent to
CONNECTION. Anyone who can connect to the local port acts with your token,
so keep it on a machine you do not share.`,
		Example: "  gatehouse connect orders-db --port 5433\n  psql 'host=127.0.0.1 port=5433 dbname=orders-db'",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if co.token == "" {
				return usageError{fmt.Errorf("connect needs a token: set GATEHOUSE_TOKEN or pass --token")}
			}
			c, err := co.client()
			if err != nil {
				return err
			}
			var conn resource.Connection
			if err := c.getJSON(cmd.Context(), "/api/v1/connections/"+url.PathEscape(args[0]), &conn); err != nil {
				return err
			}
			u, err := url.Parse(c.base)
			if err != nil {
				return err
			}
			tlsCfg := c.tls.Clone()
			tlsCfg.ServerName = u.Hostname()
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			t, hint, err := tunnelFor(conn.Type, gatewayAddr, u.Hostname(), conn.Name, co.token, tlsCfg, log)
			if err != nil {
				return err
			}
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				return fmt.Errorf("local listener: %w", err)
			}
			bound := l.Addr().(*net.TCPAddr).Port
			fmt.Fprintf(cmd.OutOrStdout(), "Forwarding 127.0.0.1:%d to connection %s through the gateway; Ctrl-C stops.\nConnect with: "+hint+"\n",
				bound, conn.Name, bound, conn.Name)
			return t.Serve(cmd.Context(), l)
		},
	}
	cmd.Flags().IntVar(&port, "port", 0, "local port (default: any free port)")
	cmd.Flags().StringVar(&gatewayAddr, "gateway-addr", "", "the gateway's protocol listener (default: the API's host with the protocol's default port)")
	co.addFlags(cmd.Flags())
	return cmd
}
