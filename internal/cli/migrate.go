package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/server"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

func newMigrateCmd() *cobra.Command {
	var dataDir, dsn string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Bring the store's schema up to date (the server also does this at start)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := store.OpenNoMigrate(cmd.Context(), dsn, dataDir)
			if err != nil {
				return err
			}
			defer s.Close()
			applied, err := store.Migrate(cmd.Context(), s)
			for _, v := range applied {
				fmt.Fprintf(cmd.OutOrStdout(), "applied migration %04d\n", v)
			}
			if err != nil {
				return err
			}
			v, err := store.SchemaVersion(cmd.Context(), s)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s store schema is at version %d (latest known %d)\n", s.Backend(), v, store.LatestVersion())
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", server.DefaultDataDir, "data directory holding the embedded store")
	cmd.Flags().StringVar(&dsn, "store", "", "store: empty for SQLite in the data directory, or postgres://…")
	configFlag(cmd.Flags(), "data-dir")
	configFlag(cmd.Flags(), "store")
	return cmd
}
