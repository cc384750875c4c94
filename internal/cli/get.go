package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/web"
)

// apiKind maps what users type after get/delete to an API collection.
type apiKind struct {
	kind       string // singular display name
	collection string // /api/v1/<collection>
	docKind    resource.Kind
}

func parseAPIKind(s string) (apiKind, error) {
	switch strings.ToLower(s) {
	case "group", "groups":
		return apiKind{"group", "groups", ""}, nil
	case "token", "tokens":
		return apiKind{"token", "tokens", ""}, nil
	}
	k, err := resource.ParseKind(s)
	if err != nil {
		return apiKind{}, usageError{fmt.Errorf("unknown kind %q (known kinds: connections, identities, policies, groups, tokens)", s)}
	}
	switch k {
	case resource.KindConnection:
		return apiKind{"connection", "connections", k}, nil
	case resource.KindPolicy:
		return apiKind{"policy", "policies", k}, nil
	default:
		return apiKind{"identity", "identities", k}, nil
	}
}

func newGetCmd() *cobra.Command {
	var (
		co     clientOptions
		output string
	)
	cmd := &cobra.Command{
		Use:   "get KIND [NAME]",
		Short: "List or show connections, identities, policies, groups or tokens",
		Example: `  gatehouse get connections
  gatehouse get policy production -o yaml
  gatehouse get connection orders-db -o yaml
  gatehouse get identities -o json`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := parseAPIKind(args[0])
			if err != nil {
				return err
			}
			if output != "table" && output != "yaml" && output != "json" {
				return usageError{fmt.Errorf("-o %q is invalid (want table, yaml or json)", output)}
			}
			c, err := co.client()
			if err != nil {
				return err
			}
			path := "/api/v1/" + k.collection
			single := len(args) == 2
			if single {
				if k.collection == "groups" || k.collection == "tokens" {
					return usageError{fmt.Errorf("get %s takes no NAME", k.collection)}
				}
				path += "/" + url.PathEscape(args[1])
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), http.MethodGet, path, "", nil, &raw); err != nil {
				return err
			}
			return printResult(cmd.OutOrStdout(), k, single, raw, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, yaml or json")
	co.addFlags(cmd.Flags())
	return cmd
}

func printResult(w io.Writer, k apiKind, single bool, raw json.RawMessage, output string) error {
	if output == "json" {
		_, err := fmt.Fprintln(w, string(raw))
		return err
	}
	if output == "yaml" {
		return printYAML(w, k, single, raw)
	}
	if single {
		raw = json.RawMessage("[" + string(raw) + "]")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	switch k.collection {
	case "connections":
		var cs []resource.Connection
		if err := json.Unmarshal(raw, &cs); err != nil {
			return err
		}
		fmt.Fprintln(tw, "NAME\tTYPE\tADDRESS\tUSER\tDATABASE\tCREDENTIAL\tDEFAULT")
		for _, c := range cs {
			cred := string(c.CredentialSource)
			if c.Password != "" {
				cred = c.Password
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, c.Type, c.Address, dash(c.User), dash(c.Database), cred, dash(string(c.DefaultAction)))
		}
	case "policies":
		var ps []resource.Policy
		if err := json.Unmarshal(raw, &ps); err != nil {
			return err
		}
		fmt.Fprintln(tw, "NAME\tCONNECTIONS\tPRESETS\tRULES")
		for _, p := range ps {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", p.Name, selectorSummary(p.Connections), dash(strings.Join(p.Presets, ",")), len(p.Rules))
		}
	case "identities":
		var ids []resource.Identity
		if err := json.Unmarshal(raw, &ids); err != nil {
			return err
		}
		fmt.Fprintln(tw, "NAME\tTYPE\tGROUPS\tDISABLED")
		for _, id := range ids {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", id.Name, id.Type, dash(strings.Join(id.Groups, ",")), id.Disabled)
		}
	case "groups":
		var gs []web.Group
		if err := json.Unmarshal(raw, &gs); err != nil {
			return err
		}
		fmt.Fprintln(tw, "NAME\tMEMBERS")
		for _, g := range gs {
			fmt.Fprintf(tw, "%s\t%s\n", g.Name, strings.Join(g.Members, ","))
		}
	case "tokens":
		var ts []web.TokenInfo
		if err := json.Unmarshal(raw, &ts); err != nil {
			return err
		}
		printTokens(tw, ts)
	}
	return nil
}

func printTokens(tw *tabwriter.Writer, ts []web.TokenInfo) {
	fmt.Fprintln(tw, "ID\tIDENTITY\tROLE\tSTATUS\tCREATED\tEXPIRES\tDESCRIPTION")
	for _, t := range ts {
		exp := "never"
		if !t.ExpiresAt.IsZero() {
			exp = t.ExpiresAt.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Identity, t.Role, t.Status, t.CreatedAt.Local().Format(time.DateTime), exp, dash(t.Description))
	}
}

func selectorSummary(s resource.Selector) string {
	parts := append([]string(nil), s.Names...)
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, k+"="+s.Labels[k])
	}
	return dash(strings.Join(parts, ","))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printYAML prints resources as YAML documents that carry their kind, so
// the output of get can be edited and applied again (inline passwords are
// never part of it).
func printYAML(w io.Writer, k apiKind, single bool, raw json.RawMessage) error {
	var items []map[string]any
	if single {
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		items = []map[string]any{m}
	} else if err := json.Unmarshal(raw, &items); err != nil {
		return err
	}
	for i, m := range items {
		if i > 0 {
			fmt.Fprintln(w, "---")
		}
		if k.docKind != "" {
			// A declarative document: drop what the gateway fills in, so
			// the output can be applied again.
			m["kind"] = string(k.docKind)
			delete(m, "createdAt")
			delete(m, "updatedAt")
			delete(m, "credentialSource")
		}
		if err := encodeOrdered(w, m); err != nil {
			return err
		}
	}
	return nil
}

// encodeOrdered writes kind and name first, then the other keys sorted.
func encodeOrdered(w io.Writer, m map[string]any) error {
	node := &yaml.Node{Kind: yaml.MappingNode}
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != "kind" && k != "name" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range append([]string{"kind", "name"}, keys...) {
		v, ok := m[k]
		if !ok {
			continue
		}
		var vn yaml.Node
		if err := vn.Encode(v); err != nil {
			return err
		}
		node.Content = append(node.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, &vn)
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(node); err != nil {
		return err
	}
	return enc.Close()
}
