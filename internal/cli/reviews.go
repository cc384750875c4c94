package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/review"
	"github.com/gatehouse-dev/gatehouse/internal/web"
)

func newReviewsCmd() *cobra.Command {
	var co clientOptions
	cmd := &cobra.Command{
		Use:   "reviews",
		Short: "List, approve and deny reviews: statements waiting for approval and requests for access",
	}
	co.addFlags(cmd.PersistentFlags())

	var state string
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List reviews you may see, newest first (pending ones by default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := co.client()
			if err != nil {
				return err
			}
			var rs []review.Review
			if err := c.getJSON(cmd.Context(), "/api/v1/reviews?"+url.Values{"state": {state}}.Encode(), &rs); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), rs)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			defer tw.Flush()
			fmt.Fprintln(tw, "REVIEW\tSTATE\tKIND\tREQUESTER\tCONNECTION\tAPPROVALS\tEXPIRES\tWHAT")
			for _, r := range rs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", r.ID, r.State, r.Kind, r.Requester, r.Connection,
					r.Approvals(), r.Quorum, r.Expires.Local().Format(time.DateTime), oneLine(what(r), 60))
			}
			return nil
		},
	}
	list.Flags().StringVar(&state, "state", "pending", "pending, approved, denied, expired, cancelled, executed or all")
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a review: the statement or access asked for, its votes and outcome",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := co.client()
			if err != nil {
				return err
			}
			var r review.Review
			if err := c.getJSON(cmd.Context(), "/api/v1/reviews/"+url.PathEscape(args[0]), &r); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), r)
			}
			printReview(cmd.OutOrStdout(), r)
			return nil
		},
	}
	show.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	decide := func(verb, short string) *cobra.Command {
		var reason string
		c := &cobra.Command{
			Use:   verb + " ID [--reason TEXT]",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := co.client()
				if err != nil {
					return err
				}
				body, _ := json.Marshal(web.ReviewDecision{Reason: reason})
				var r review.Review
				if err := c.do(cmd.Context(), http.MethodPost, "/api/v1/reviews/"+url.PathEscape(args[0])+"/"+verb, "application/json", body, &r); err != nil {
					return err
				}
				switch r.State {
				case review.Pending:
					fmt.Fprintf(cmd.OutOrStdout(), "review %s: approval recorded (%d of %d); it waits for more\n", r.ID, r.Approvals(), r.Quorum)
				default:
					fmt.Fprintf(cmd.OutOrStdout(), "review %s is %s: %s\n", r.ID, r.State, r.Outcome)
				}
				return nil
			},
		}
		c.Flags().StringVar(&reason, "reason", "", "why (shown to the requester; a denial's reason reaches the waiting client)")
		return c
	}

	cmd.AddCommand(list, show,
		decide("approve", "Approve a review (you cannot approve your own)"),
		decide("deny", "Deny a review; the waiting client gets your reason"),
		decide("cancel", "Withdraw a pending review you asked for (admins: any)"))
	return cmd
}

func newRequestCmd() *cobra.Command {
	var co clientOptions
	var window time.Duration
	var reason string
	cmd := &cobra.Command{
		Use:   "request CONNECTION --for DURATION --reason TEXT",
		Short: "Ask for time-boxed access to a connection whose policy requires an approved grant",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if window <= 0 {
				return usageError{fmt.Errorf("--for must be a positive duration such as 2h")}
			}
			c, err := co.client()
			if err != nil {
				return err
			}
			body, _ := json.Marshal(web.AccessRequest{Connection: args[0], For: window.String(), Reason: reason})
			var r review.Review
			if err := c.do(cmd.Context(), http.MethodPost, "/api/v1/reviews", "application/json", body, &r); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "review %s asks for access to %s for %s; it needs %d approval(s) by %s.\nApprovers run: gatehouse reviews approve %s\n",
				r.ID, r.Connection, r.Window, r.Quorum, r.Expires.Local().Format(time.DateTime), r.ID)
			return nil
		},
	}
	co.addFlags(cmd.Flags())
	cmd.Flags().DurationVar(&window, "for", time.Hour, "how long the access lasts once approved")
	cmd.Flags().StringVar(&reason, "reason", "", "why you need it (shown to approvers)")
	return cmd
}

func what(r review.Review) string {
	if r.Kind == review.KindAccess {
		s := "access for " + r.Window.String()
		if r.Reason != "" {
			s += ": " + r.Reason
		}
		return s
	}
	return r.Command
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len([]rune(s)) > max {
		s = string([]rune(s)[:max-1]) + "…"
	}
	return s
}

func printReview(w io.Writer, r review.Review) {
	fmt.Fprintf(w, "review %s (%s): %s\n", r.ID, r.Kind, r.State)
	fmt.Fprintf(w, "  requester:  %s\n  connection: %s\n", r.Requester, r.Connection)
	if r.Session != "" {
		fmt.Fprintf(w, "  session:    %s\n", r.Session)
	}
	if r.Rule != "" {
		fmt.Fprintf(w, "  rule:       %s\n", r.Rule)
	}
	if r.Kind == review.KindAccess {
		fmt.Fprintf(w, "  access for: %s\n", r.Window)
	} else {
		fmt.Fprintf(w, "  statement:  %s\n", strings.ReplaceAll(r.Command, "\n", "\n              "))
		if r.Fingerprint != "" {
			fmt.Fprintf(w, "  fingerprint: %s\n", r.Fingerprint)
		}
	}
	if r.Reason != "" {
		fmt.Fprintf(w, "  reason:     %s\n", r.Reason)
	}
	approvers := "admins"
	if len(r.Approvers) > 0 {
		approvers = "members of " + strings.Join(r.Approvers, ", ")
	}
	fmt.Fprintf(w, "  approvers:  %s, %d needed\n", approvers, r.Quorum)
	fmt.Fprintf(w, "  created:    %s\n  expires:    %s\n", r.Created.Local().Format(time.DateTime), r.Expires.Local().Format(time.DateTime))
	for _, v := range r.Votes {
		verb := "approved"
		if !v.Approve {
			verb = "denied"
		}
		line := fmt.Sprintf("  %s %s at %s", v.Identity, verb, v.Time.Local().Format(time.DateTime))
		if v.Reason != "" {
			line += ": " + v.Reason
		}
		fmt.Fprintln(w, line)
	}
	if r.Outcome != "" {
		fmt.Fprintf(w, "  outcome:    %s\n", r.Outcome)
	}
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
