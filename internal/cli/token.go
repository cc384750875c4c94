package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/web"
)

func newTokenCmd() *cobra.Command {
	var co clientOptions
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens",
	}
	co.addFlags(cmd.PersistentFlags())

	var req web.TokenRequest
	create := &cobra.Command{
		Use:   "create --identity NAME [--ttl 1h] [--role user|admin]",
		Short: "Create a token; prints it alone on standard output, once",
		Long: `Create a token for an identity and print it alone on standard output; it is
shown this once and stored only as a hash. --ttl 0 makes a token that never
expires (admins only). Users may create user tokens for themselves that
expire no later than the token they use.`,
		Example: `  export GATEHOUSE_TOKEN=$(gatehouse token create --identity ci-bot --ttl 1h)`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := co.client()
			if err != nil {
				return err
			}
			body, _ := json.Marshal(req)
			var out web.TokenCreated
			if err := c.do(cmd.Context(), http.MethodPost, "/api/v1/tokens", "application/json", body, &out); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out.Token)
			return nil
		},
	}
	create.Flags().StringVar(&req.Identity, "identity", "", "identity the token acts as (default: the caller's)")
	create.Flags().StringVar(&req.TTL, "ttl", "", "lifetime, e.g. 1h or 30m (default: the gateway's --token-ttl, 12h; 0 = never expires)")
	create.Flags().StringVar(&req.Role, "role", "user", "role: user or admin")
	create.Flags().StringVar(&req.Description, "description", "", "what the token is for")

	var who string
	list := &cobra.Command{
		Use:   "list [--identity NAME]",
		Short: "List tokens (yours, or everyone's for admins)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := co.client()
			if err != nil {
				return err
			}
			path := "/api/v1/tokens"
			if who != "" {
				path += "?identity=" + url.QueryEscape(who)
			}
			var ts []web.TokenInfo
			if err := c.getJSON(cmd.Context(), path, &ts); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			printTokens(tw, ts)
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&who, "identity", "", "only this identity's tokens")

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token by its ID (see token list)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := co.client()
			if err != nil {
				return err
			}
			if err := c.do(cmd.Context(), http.MethodDelete, "/api/v1/tokens/"+url.PathEscape(args[0]), "", nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token/%s revoked\n", args[0])
			return nil
		},
	}
	print := &cobra.Command{
		Use:   "print",
		Short: "Print the cached sign-on's token (renewed when due), for clients that take a password",
		Long: `Print the token of the cached sign-on to the gateway (see gatehouse login)
alone on standard output, renewing it first when it is in the last quarter
of its life; for clients that take the token as their password.`,
		Example: `  PGPASSWORD=$(gatehouse token print) psql "host=127.0.0.1 port=15432 dbname=orders-db sslmode=verify-full sslrootcert=ca.pem"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := co.client()
			if err != nil {
				return err
			}
			if c.token == "" {
				return fmt.Errorf("no sign-on to %s is cached: run gatehouse login --server %s", c.base, c.base)
			}
			fmt.Fprintln(cmd.OutOrStdout(), c.token)
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke, print)
	return cmd
}

func newWhoamiCmd() *cobra.Command {
	var co clientOptions
	cmd := &cobra.Command{
		Use:   "whoami",
		Short: "Show the identity and role of the current token",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := co.client()
			if err != nil {
				return err
			}
			var out struct {
				Identity struct {
					Name   string
					Type   string
					Groups []string
				}
				Role      string
				TokenID   string    `json:"tokenId"`
				ExpiresAt time.Time `json:"expiresAt"`
			}
			if err := c.getJSON(cmd.Context(), "/api/v1/whoami", &out); err != nil {
				return err
			}
			expires := "never"
			if !out.ExpiresAt.IsZero() {
				expires = out.ExpiresAt.Local().Format(time.RFC3339)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "identity: %s (%s)\nrole: %s\ngroups: %v\ntoken: %s\nexpires: %s\n",
				out.Identity.Name, out.Identity.Type, out.Role, out.Identity.Groups, out.TokenID, expires)
			return nil
		},
	}
	co.addFlags(cmd.Flags())
	return cmd
}
