package cli

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/web"
)

func newApplyCmd() *cobra.Command {
	var (
		co     clientOptions
		file   string
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or update identities and connections from YAML documents",
		Long: `Create or update resources from a file of YAML (or JSON) documents separated
by "---"; "-f -" reads standard input. The file is checked before anything
is sent, and the gateway writes every document in one transaction: on any
error nothing is written.`,
		Example: `  gatehouse apply -f examples/connections.yaml
  cat conn.yaml | gatehouse apply -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageError{fmt.Errorf("apply needs -f FILE (or -f - for standard input)")}
			}
			name, manifest, err := readManifest(cmd.InOrStdin(), file)
			if err != nil {
				return err
			}
			// Check locally first: errors name the file and line, and a bad
			// file never reaches the gateway.
			if _, err := resource.Decode(manifest); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			c, err := co.client()
			if err != nil {
				return err
			}
			path := "/api/v1/apply"
			if dryRun {
				path += "?dryRun=true"
			}
			var out struct{ Results []web.ApplyResult }
			if err := c.do(cmd.Context(), http.MethodPost, path, "application/yaml", manifest, &out); err != nil {
				return err
			}
			for _, r := range out.Results {
				fmt.Fprintf(cmd.OutOrStdout(), "%s/%s %s\n", strings.ToLower(string(r.Kind)), r.Name, r.Action)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "file of YAML documents, or - for standard input")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "validate on the gateway without writing")
	co.addFlags(cmd.Flags())
	return cmd
}

func readManifest(stdin io.Reader, file string) (name string, data []byte, err error) {
	if file == "-" {
		data, err = io.ReadAll(io.LimitReader(stdin, resource.MaxManifestBytes+1))
		return "<stdin>", data, err
	}
	data, err = os.ReadFile(file)
	if err != nil {
		return file, nil, err
	}
	return file, data, nil
}
