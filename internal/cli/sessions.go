package cli

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/web"
)

func newSessionsCmd() *cobra.Command {
	var co clientOptions
	cmd := &cobra.Command{
		Use:   "sessions",
		Short: "List sessions and replay what happened in one, from the audit log",
	}
	co.addFlags(cmd.PersistentFlags())
	var node string
	cmd.PersistentFlags().StringVar(&node, "node", "", "gateway node whose sessions to read (default: the gateway's own)")
	q := func() string {
		if node == "" {
			return ""
		}
		return "?" + url.Values{"node": {node}}.Encode()
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List sessions, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := co.client()
			if err != nil {
				return err
			}
			var ss []audit.SessionSummary
			if err := c.getJSON(cmd.Context(), "/api/v1/sessions"+q(), &ss); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			defer tw.Flush()
			fmt.Fprintln(tw, "SESSION\tIDENTITY\tCONNECTION\tSTART\tEND\tSTATEMENTS\tREFUSED")
			for _, s := range ss {
				end := "open"
				if !s.End.IsZero() {
					end = s.End.Local().Format(time.TimeOnly)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\n", s.ID, dash(s.Identity), dash(s.Connection),
					s.Start.Local().Format(time.DateTime), end, s.Statements, s.Refused)
			}
			return nil
		},
	}

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a session's timeline: statements, decisions, results, timings",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := getSessionDetail(cmd, &co, args[0], q())
			if err != nil {
				return err
			}
			printSession(cmd.OutOrStdout(), d)
			for _, e := range d.Timeline {
				printStep(cmd.OutOrStdout(), d.Session.Start, e)
			}
			return nil
		},
	}

	var speed float64
	var noWait bool
	replay := &cobra.Command{
		Use:   "replay ID [--speed N] [--no-wait]",
		Short: "Replay a session's timeline at its own pace (or --speed times faster)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if speed <= 0 {
				return usageError{fmt.Errorf("--speed must be above 0")}
			}
			d, err := getSessionDetail(cmd, &co, args[0], q())
			if err != nil {
				return err
			}
			printSession(cmd.OutOrStdout(), d)
			prev := d.Session.Start
			for _, e := range d.Timeline {
				if wait := time.Duration(float64(e.Time.Sub(prev)) / speed); !noWait && wait > 0 {
					select {
					case <-cmd.Context().Done():
						return nil
					case <-time.After(wait):
					}
				}
				prev = e.Time
				printStep(cmd.OutOrStdout(), d.Session.Start, e)
			}
			return nil
		},
	}
	replay.Flags().Float64Var(&speed, "speed", 1, "how many times faster than it happened")
	replay.Flags().BoolVar(&noWait, "no-wait", false, "print every step at once")

	cmd.AddCommand(list, show, replay)
	return cmd
}

func getSessionDetail(cmd *cobra.Command, co *clientOptions, id, query string) (web.SessionDetail, error) {
	var d web.SessionDetail
	c, err := co.client()
	if err != nil {
		return d, err
	}
	err = c.getJSON(cmd.Context(), "/api/v1/sessions/"+url.PathEscape(id)+query, &d)
	return d, err
}

func printSession(w io.Writer, d web.SessionDetail) {
	s := d.Session
	fmt.Fprintf(w, "session %s: %s on %s (%s from %s), started %s\n", s.ID, s.Identity, s.Connection, dash(s.Protocol), dash(s.Client),
		s.Start.Local().Format(time.DateTime))
	for _, p := range d.Recording.Problems {
		fmt.Fprintf(w, "WARNING: %s; the timeline stops before it\n", p.Error())
	}
}

// printStep prints one timeline entry at its offset from the start.
func printStep(w io.Writer, start time.Time, e audit.TimelineEntry) {
	at := fmt.Sprintf("+%9.3fs", e.Time.Sub(start).Seconds())
	switch e.Kind {
	case "open":
		fmt.Fprintf(w, "%s  opened (%s)\n", at, e.Decision)
	case "close":
		fmt.Fprintf(w, "%s  closed: %s\n", at, e.Text)
	default:
		res := ""
		switch {
		case e.Decision == "review":
			res = fmt.Sprintf("HELD for review by %s", e.Rule)
			if e.SQLState != "" {
				res += fmt.Sprintf(", then refused: %s", e.Error)
			}
		case e.Decision != "allow":
			res = fmt.Sprintf("REFUSED by %s: %s", e.Rule, e.Error)
		case e.Review != "" && e.SQLState != "":
			res = fmt.Sprintf("approved in review %s; error %s: %s", e.Review, e.SQLState, e.Error)
		case e.Review != "" && e.Rows != nil:
			res = fmt.Sprintf("approved in review %s; %d rows", e.Review, *e.Rows)
		case e.SQLState != "":
			res = fmt.Sprintf("error %s: %s", e.SQLState, e.Error)
		case e.Rows != nil:
			res = fmt.Sprintf("%d rows", *e.Rows)
		}
		if e.DurationUS > 0 {
			res += fmt.Sprintf(" in %.3f ms", float64(e.DurationUS)/1000)
		}
		fmt.Fprintf(w, "%s  %s\n", at, strings.ReplaceAll(e.Text, "\n", " "))
		if len(e.Params) > 0 {
			ps := make([]string, len(e.Params))
			for i, p := range e.Params {
				ps[i] = fmt.Sprintf("$%d=%s", i+1, quoteValue(p))
			}
			fmt.Fprintf(w, "%13sparameters: %s\n", "", strings.Join(ps, ", "))
		}
		fmt.Fprintf(w, "%13s→ %s\n", "", strings.TrimSpace(res))
		printRows(w, e)
	}
}

// printRows prints the rows a recording kept of a statement's result.
func printRows(w io.Writer, e audit.TimelineEntry) {
	if len(e.Columns) == 0 && len(e.Result) == 0 {
		return
	}
	const indent = "               │ "
	if len(e.Columns) > 0 {
		fmt.Fprintf(w, "%s%s\n", indent, strings.Join(e.Columns, " | "))
	}
	for _, row := range e.Result {
		vs := make([]string, len(row))
		for i, v := range row {
			if v == nil {
				vs[i] = "NULL"
			} else {
				vs[i] = strings.ReplaceAll(*v, "\n", `\n`)
			}
		}
		fmt.Fprintf(w, "%s%s\n", indent, strings.Join(vs, " | "))
	}
	if e.NotRecorded > 0 {
		fmt.Fprintf(w, "%s(%d more not recorded)\n", indent, e.NotRecorded)
	}
}

func quoteValue(v *string) string {
	if v == nil {
		return "NULL"
	}
	return "'" + strings.ReplaceAll(*v, "'", "''") + "'"
}
