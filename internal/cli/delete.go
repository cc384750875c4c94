package cli

import (
	"fmt"
	"net/http"
	"net/url"

	"github.com/spf13/cobra"
)

func newDeleteCmd() *cobra.Command {
	var co clientOptions
	cmd := &cobra.Command{
		Use:     "delete KIND NAME",
		Short:   "Delete a connection or identity, or revoke a token",
		Example: "  gatehouse delete connection orders-db\n  gatehouse delete token 0123456789abcdef",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := parseAPIKind(args[0])
			if err != nil {
				return err
			}
			if k.collection == "groups" {
				return usageError{fmt.Errorf("groups exist by being named on identities: edit the identities instead")}
			}
			c, err := co.client()
			if err != nil {
				return err
			}
			if err := c.do(cmd.Context(), http.MethodDelete, "/api/v1/"+k.collection+"/"+url.PathEscape(args[1]), "", nil, nil); err != nil {
				return err
			}
			verb := "deleted"
			if k.collection == "tokens" {
				verb = "revoked"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s/%s %s\n", k.kind, args[1], verb)
			return nil
		},
	}
	co.addFlags(cmd.Flags())
	return cmd
}
