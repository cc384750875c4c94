package cli

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
)

func newAuditCmd() *cobra.Command {
	var co clientOptions
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify, export and prove the tamper-evident audit log",
		Long: `Each gateway node keeps a hash-chained audit log whose Merkle tree root is
signed in checkpoints with the node's key (DATA_DIR/signing.pub).

  verify         checks the log the gateway stores (online), or an export
                 with --file and --pubkey (offline: nothing else needed)
  export         writes the log as JSON lines, events then checkpoints (or,
                 with filters, the matching events alone)
  tail           prints the newest events; -f follows
  prove SEQ      writes the inclusion proof of one event
  verify-proof   checks such a proof with the public key alone`,
	}
	co.addFlags(cmd.PersistentFlags())
	var node string
	cmd.PersistentFlags().StringVar(&node, "node", "", "gateway node whose chain to use (default: the gateway's own)")
	query := func(extra url.Values) string {
		q := url.Values{}
		if node != "" {
			q.Set("node", node)
		}
		for k, v := range extra {
			q[k] = v
		}
		if len(q) == 0 {
			return ""
		}
		return "?" + q.Encode()
	}

	var file, pubkey string
	verify := &cobra.Command{
		Use:   "verify [--file EXPORT --pubkey KEY]",
		Short: "Verify the audit log; exit status 1 names the first bad event",
		Example: `  gatehouse audit verify
  gatehouse audit verify --file audit.jsonl --pubkey signing.pub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var r audit.Report
			if file != "" || pubkey != "" {
				if file == "" || pubkey == "" {
					return usageError{fmt.Errorf("offline verification needs both --file and --pubkey")}
				}
				v, err := loadVerifier(pubkey)
				if err != nil {
					return err
				}
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				n, bodies, cps, err := audit.ReadExport(f)
				if err != nil {
					return fmt.Errorf("%s: %w", file, err)
				}
				r = audit.Verify(n, bodies, cps, v)
			} else {
				c, err := co.client()
				if err != nil {
					return err
				}
				if err := c.getJSON(cmd.Context(), "/api/v1/audit/verify"+query(nil), &r); err != nil {
					return err
				}
			}
			fmt.Fprintln(cmd.OutOrStdout(), r.String())
			if !r.OK() {
				return fmt.Errorf("the audit log of node %s does not verify", r.Node)
			}
			return nil
		},
	}
	verify.Flags().StringVar(&file, "file", "", "an export (gatehouse audit export) to verify offline")
	verify.Flags().StringVar(&pubkey, "pubkey", "", "the gateway's audit public key, PEM (DATA_DIR/signing.pub)")

	var out, format string
	filter := url.Values{}
	filterFlags := []string{"since", "until", "identity", "connection", "session", "type"}
	export := &cobra.Command{
		Use:   "export [-o FILE] [--format jsonl|ocsf] [--since T] [--until T] [--identity N] [--connection N] [--session ID] [--type T]",
		Short: "Write the audit log as JSON lines (events, then signed checkpoints)",
		Long: `Write the audit log as JSON lines: every event, then the signed checkpoints,
which gatehouse audit verify --file checks offline. With a filter only the
matching events are written, without checkpoints: a selection to read, not
to verify. --format ocsf writes Open Cybersecurity Schema Framework events
(Authentication, Datastore Activity, API Activity) for a SIEM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := co.client()
			if err != nil {
				return err
			}
			path := "/api/v1/audit/export" + query(nil)
			for _, name := range filterFlags {
				if v, _ := cmd.Flags().GetString(name); v != "" {
					filter.Set(name, v)
				}
			}
			switch format {
			case "jsonl":
			case "ocsf":
				filter.Set("format", "ocsf")
			default:
				return usageError{fmt.Errorf("--format %q is unknown (want jsonl or ocsf)", format)}
			}
			if len(filter) > 0 {
				path = "/api/v1/audit/events" + query(filter)
			}
			var data []byte
			if err := c.do(cmd.Context(), http.MethodGet, path, "", nil, &data); err != nil {
				return err
			}
			return writeOut(cmd.OutOrStdout(), out, data)
		},
	}
	export.Flags().StringVarP(&out, "output", "o", "", "file to write (default: standard output)")
	export.Flags().StringVar(&format, "format", "jsonl", "jsonl (verifiable with checkpoints) or ocsf (OCSF events for a SIEM, no checkpoints)")
	export.Flags().String("since", "", "only events at or after this time (RFC 3339)")
	export.Flags().String("until", "", "only events before this time (RFC 3339)")
	export.Flags().String("identity", "", "only this identity's events")
	export.Flags().String("connection", "", "only events on this connection")
	export.Flags().String("session", "", "only this session's events")
	export.Flags().String("type", "", "only events of this type (command, result, session.open, admin, …)")

	var follow bool
	var lines int
	tail := &cobra.Command{
		Use:   "tail [-n N] [-f]",
		Short: "Print the newest audit events; -f keeps printing new ones",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := co.client()
			if err != nil {
				return err
			}
			var data []byte
			if err := c.do(cmd.Context(), http.MethodGet, "/api/v1/audit/events"+query(url.Values{"limit": {strconv.Itoa(lines)}}), "", nil, &data); err != nil {
				return err
			}
			cmd.OutOrStdout().Write(data)
			last := lastSeq(data)
			for follow {
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(time.Second):
				}
				data = nil
				if err := c.do(cmd.Context(), http.MethodGet, "/api/v1/audit/events"+query(url.Values{"after": {strconv.FormatUint(last, 10)}}), "", nil, &data); err != nil {
					if cmd.Context().Err() != nil {
						return nil
					}
					return err
				}
				cmd.OutOrStdout().Write(data)
				if s := lastSeq(data); s > last {
					last = s
				}
			}
			return nil
		},
	}
	tail.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing events as they are written")
	tail.Flags().IntVarP(&lines, "lines", "n", 10, "how many of the newest events to print first")

	prove := &cobra.Command{
		Use:   "prove SEQ [-o FILE]",
		Short: "Write the inclusion proof of event SEQ in a signed checkpoint",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			seq, err := strconv.ParseUint(args[0], 10, 64)
			if err != nil || seq == 0 {
				return usageError{fmt.Errorf("SEQ %q is not an event's sequence number", args[0])}
			}
			c, err := co.client()
			if err != nil {
				return err
			}
			var data []byte
			if err := c.do(cmd.Context(), http.MethodGet, "/api/v1/audit/proof"+query(url.Values{"seq": {args[0]}}), "", nil, &data); err != nil {
				return err
			}
			return writeOut(cmd.OutOrStdout(), out, append(bytes.TrimSpace(data), '\n'))
		},
	}
	prove.Flags().StringVarP(&out, "output", "o", "", "file to write (default: standard output)")

	verifyProof := &cobra.Command{
		Use:   "verify-proof FILE --pubkey KEY",
		Short: "Check an inclusion proof with the gateway's public key alone",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if pubkey == "" {
				return usageError{fmt.Errorf("--pubkey is required (DATA_DIR/signing.pub)")}
			}
			v, err := loadVerifier(pubkey)
			if err != nil {
				return err
			}
			data, err := readInput(cmd.InOrStdin(), args[0])
			if err != nil {
				return err
			}
			var p audit.Proof
			if err := json.Unmarshal(data, &p); err != nil {
				return fmt.Errorf("%s: not a proof: %w", args[0], err)
			}
			if err := audit.VerifyProof(&p, v); err != nil {
				fmt.Fprintf(cmd.OutOrStdout(), "FAILED: %v\n", err)
				return fmt.Errorf("the proof does not verify")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "OK: event %d of node %s is in the signed checkpoint\n", p.Seq, p.Node)
			return nil
		},
	}
	verifyProof.Flags().StringVar(&pubkey, "pubkey", "", "the gateway's audit public key, PEM (DATA_DIR/signing.pub)")

	cmd.AddCommand(verify, export, tail, prove, verifyProof)
	return cmd
}

// lastSeq returns the sequence number of the last event in JSON lines.
func lastSeq(data []byte) uint64 {
	lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	var e struct {
		Seq uint64 `json:"seq"`
	}
	if len(lines) > 0 {
		json.Unmarshal(lines[len(lines)-1], &e)
	}
	return e.Seq
}

// loadVerifier reads an ed25519 public key in PEM (as in signing.pub).
func loadVerifier(path string) (note.Verifier, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block (want the gateway's signing.pub)", path)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ed25519 public key", path)
	}
	return audit.NewVerifier(pub)
}

func writeOut(stdout io.Writer, path string, data []byte) error {
	if path == "" || path == "-" {
		_, err := stdout.Write(data)
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

func readInput(stdin io.Reader, path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(stdin)
	}
	return os.ReadFile(path)
}
