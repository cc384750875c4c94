// Package cli implements the gatehouse command line: the server, and the
// client verbs that talk to its API. One file per verb group; Run decides
// the exit code in one place.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError marks errors in how the command was called.
type usageError struct{ error }

// Run executes the command line args and returns the process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "gatehouse: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "unknown flag") ||
		strings.HasPrefix(err.Error(), "unknown shorthand flag") || strings.Contains(err.Error(), "flag needs an argument") ||
		strings.Contains(err.Error(), "required flag") || strings.Contains(err.Error(), "accepts ") {
		return exitUsage
	}
	return exitError
}

// configAnnotation marks flags that may also come from GATEHOUSE_* variables
// and gatehouse.yaml.
const configAnnotation = "gatehouse/config"

func configFlag(fs *pflag.FlagSet, name string) {
	fs.SetAnnotation(name, configAnnotation, []string{"true"})
}

func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "gatehouse",
		Short: "Gatehouse: a Layer-7 gateway that records, masks, reviews and blocks access to databases, Kubernetes, SSH and APIs",
		Long: `Gatehouse is a Layer-7 access gateway. People, CI bots and AI agents reach
databases, Kubernetes, SSH hosts and APIs through it with their native tools;
it holds the target credentials, records every session, masks sensitive
values, blocks dangerous commands and pauses risky ones for approval.

Settings come from flags, then GATEHOUSE_* environment variables (for
example GATEHOUSE_API_ADDR for --api-addr), then gatehouse.yaml.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().String("config", "gatehouse.yaml", "configuration file (keys are flag names); used when it exists")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		return loadSettings(cmd, root)
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		newServerCmd(),
		newVersionCmd(),
		newMigrateCmd(),
		newApplyCmd(),
		newGetCmd(),
		newDeleteCmd(),
		newTokenCmd(),
		newWhoamiCmd(),
		newLoginCmd(),
		newLogoutCmd(),
		newConnectCmd(),
		newAuditCmd(),
		newSessionsCmd(),
		newReviewsCmd(),
		newRequestCmd(),
	)
	return root
}

// loadSettings fills flags the user did not set from GATEHOUSE_* variables,
// then from the configuration file.
func loadSettings(cmd, root *cobra.Command) error {
	file, err := readConfigFile(cmd)
	if err != nil {
		return err
	}
	known := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Annotations[configAnnotation] != nil {
				known[f.Name] = true
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for k := range file {
		if !known[k] {
			return fmt.Errorf("configuration file: unknown setting %q", k)
		}
	}
	var setErr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if setErr != nil || f.Changed || f.Annotations[configAnnotation] == nil {
			return
		}
		env := "GATEHOUSE_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if err := setFlag(f, v); err != nil {
				setErr = fmt.Errorf("%s: %w", env, err)
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if err := setFlag(f, v); err != nil {
				setErr = fmt.Errorf("configuration file %s: %w", f.Name, err)
			}
		}
	})
	return setErr
}

func setFlag(f *pflag.Flag, v any) error {
	if list, ok := v.([]any); ok {
		for _, item := range list {
			if err := f.Value.Set(fmt.Sprint(item)); err != nil {
				return err
			}
		}
		return nil
	}
	return f.Value.Set(fmt.Sprint(v))
}

func readConfigFile(cmd *cobra.Command) (map[string]any, error) {
	path, _ := cmd.Flags().GetString("config")
	explicit := cmd.Flags().Changed("config")
	if !explicit {
		if v, ok := os.LookupEnv("GATEHOUSE_CONFIG"); ok {
			path, explicit = v, true
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		if !explicit && errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("configuration file: %w", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("configuration file %s: %w", path, err)
	}
	return m, nil
}
