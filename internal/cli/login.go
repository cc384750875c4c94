package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/web"
)

type loginOptions struct {
	clientOptions
	device         bool
	noBrowser      bool
	federatedToken string
	identity       string
	printToken     bool
	refresh        bool
	timeout        time.Duration
}

func newLoginCmd() *cobra.Command {
	var o loginOptions
	cmd := &cobra.Command{
		Use:   "login [--server URL] [--device | --federated-token-file PATH]",
		Short: "Sign in to a gateway and cache a short-lived token",
		Long: `Sign in to a gateway and cache its short-lived token (mode 0600, in the
user's config directory or GATEHOUSE_CREDENTIALS); later commands use it and
renew it before it expires.

People sign in through the gateway's OpenID provider: the browser opens at
the provider's sign-in page (the URL is printed too) and returns to a
listener of this command on 127.0.0.1. --device signs in from a machine
without a browser: open the printed URL anywhere and enter the code.

Workloads (CI jobs, agents) exchange the token their platform issued for
one of the gateway's, with --federated-token-file; --print-token prints
the gateway token instead of caching it.`,
		Example: `  gatehouse login --server https://gatehouse.example.com:8443
  gatehouse login --device
  export GATEHOUSE_TOKEN=$(gatehouse login --federated-token-file $CI_JOB_JWT_FILE --print-token)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd)
		},
	}
	o.addFlags(cmd.Flags())
	f := cmd.Flags()
	f.BoolVar(&o.device, "device", false, "device flow: sign in on another device with a code")
	f.BoolVar(&o.noBrowser, "no-browser", false, "do not open a browser; print the sign-in URL only")
	f.StringVar(&o.federatedToken, "federated-token-file", "", "exchange the workload JWT in this file (\"-\": standard input) for a gateway token")
	f.StringVar(&o.identity, "identity", "", "with --federated-token-file: the identity to act as, when several trust the issuer")
	f.BoolVar(&o.printToken, "print-token", false, "print the token alone on standard output instead of caching it")
	f.BoolVar(&o.refresh, "refresh", false, "renew the cached sign-on now (groups are read afresh)")
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long to wait for the sign-in to complete")
	cmd.MarkFlagsMutuallyExclusive("device", "federated-token-file", "refresh")
	return cmd
}

func (o *loginOptions) run(cmd *cobra.Command) error {
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()
	c, err := o.anonymous()
	if err != nil {
		return err
	}
	c.token = ""
	var out identity.Issued
	switch {
	case o.federatedToken != "":
		out, err = o.federate(ctx, cmd, c)
	case o.refresh:
		out, err = o.renew(ctx, c)
	case o.device:
		out, err = o.deviceFlow(ctx, cmd, c)
	default:
		out, err = o.codeFlow(ctx, cmd, c)
	}
	if err != nil {
		return err
	}
	if o.printToken {
		fmt.Fprintln(cmd.OutOrStdout(), out.Token)
		return nil
	}
	creds, path, err := loadCredentials()
	if err != nil {
		return err
	}
	creds[c.base] = credentialOf(out, time.Now())
	if err := saveCredentials(path, creds); err != nil {
		return err
	}
	groups := "none"
	if len(out.Groups) > 0 {
		groups = strings.Join(out.Groups, ", ")
	}
	fmt.Fprintf(cmd.OutOrStdout(), "Signed in to %s as %s (role %s; groups %s) until %s.\n",
		c.base, out.Identity, out.Role, groups, out.ExpiresAt.Local().Format(time.RFC3339))
	return nil
}

// codeFlow: authorization code with PKCE, redirected to a loopback
// listener (RFC 8252). The gateway keeps the verifier sealed in a handle
// only this command holds.
func (o *loginOptions) codeFlow(ctx context.Context, cmd *cobra.Command, c *apiClient) (identity.Issued, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return identity.Issued{}, fmt.Errorf("listen for the sign-in redirect: %w", err)
	}
	defer l.Close()
	redirect := "http://" + l.Addr().String() + "/callback"
	var start identity.LoginStart
	if err := c.postJSON(ctx, "/api/v1/auth/oidc/start", web.LoginStartRequest{RedirectURI: redirect}, &start); err != nil {
		return identity.Issued{}, err
	}
	type answer struct{ code, err string }
	answers := make(chan answer, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/callback" || q.Get("state") != start.State {
			http.Error(w, "not the sign-in this command is waiting for", http.StatusBadRequest)
			return
		}
		a := answer{code: q.Get("code"), err: q.Get("error")}
		if d := q.Get("error_description"); d != "" {
			a.err += ": " + d
		}
		msg := "Signed in. You can close this tab and return to the terminal."
		if a.err != "" {
			msg = "Sign-in failed: " + a.err
		}
		fmt.Fprintf(w, "<!doctype html><title>Gatehouse</title><p>%s</p>\n", html.EscapeString(msg))
		select {
		case answers <- a:
		default:
		}
	})}
	go srv.Serve(l)
	defer srv.Close()

	fmt.Fprintf(cmd.ErrOrStderr(), "To sign in, open this URL in a browser:\n\n  %s\n\n", start.AuthURL)
	if !o.noBrowser {
		if err := openBrowser(start.AuthURL); err == nil {
			fmt.Fprintln(cmd.ErrOrStderr(), "(a browser was opened for you)")
		}
	}
	var a answer
	select {
	case a = <-answers:
	case <-ctx.Done():
		return identity.Issued{}, fmt.Errorf("no sign-in within %s", o.timeout)
	}
	if a.err != "" {
		return identity.Issued{}, fmt.Errorf("the identity provider refused the sign-in: %s", a.err)
	}
	var out identity.Issued
	err = c.postJSON(ctx, "/api/v1/auth/oidc/finish", web.LoginFinishRequest{Handle: start.Handle, State: start.State, Code: a.code}, &out)
	return out, err
}

// deviceFlow: RFC 8628; the gateway holds the device code sealed in the
// handle, and each poll waits up to 20 s for the user.
func (o *loginOptions) deviceFlow(ctx context.Context, cmd *cobra.Command, c *apiClient) (identity.Issued, error) {
	var start identity.DeviceStart
	if err := c.postJSON(ctx, "/api/v1/auth/oidc/device", struct{}{}, &start); err != nil {
		return identity.Issued{}, err
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "To sign in, open %s on any device and enter the code %s\n", start.VerificationURI, start.UserCode)
	if start.VerificationURIComplete != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "(or open %s)\n", start.VerificationURIComplete)
	}
	for {
		resp, err := c.postRaw(ctx, "/api/v1/auth/oidc/device/poll", web.HandleRequest{Handle: start.Handle})
		if err != nil {
			if ctx.Err() != nil {
				return identity.Issued{}, fmt.Errorf("no sign-in within %s", o.timeout)
			}
			return identity.Issued{}, err
		}
		var pending web.DevicePending
		if json.Unmarshal(resp, &pending) == nil && pending.Pending {
			continue // the gateway waited for us
		}
		var out identity.Issued
		if err := json.Unmarshal(resp, &out); err != nil {
			return identity.Issued{}, fmt.Errorf("decode response: %w", err)
		}
		return out, nil
	}
}

func (o *loginOptions) federate(ctx context.Context, cmd *cobra.Command, c *apiClient) (identity.Issued, error) {
	var raw []byte
	var err error
	if o.federatedToken == "-" {
		raw, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), identity.MaxFederatedTokenBytes+1))
	} else {
		raw, err = os.ReadFile(o.federatedToken)
	}
	if err != nil {
		return identity.Issued{}, fmt.Errorf("--federated-token-file: %w", err)
	}
	token := strings.TrimSpace(string(raw))
	if token == "" {
		return identity.Issued{}, fmt.Errorf("--federated-token-file %s is empty", o.federatedToken)
	}
	var out identity.Issued
	err = c.postJSON(ctx, "/api/v1/auth/federate", web.FederateRequest{Token: token, Identity: o.identity}, &out)
	return out, err
}

func (o *loginOptions) renew(ctx context.Context, c *apiClient) (identity.Issued, error) {
	creds, _, err := loadCredentials()
	if err != nil {
		return identity.Issued{}, err
	}
	cred, ok := creds[c.base]
	if !ok || cred.Refresh == "" {
		return identity.Issued{}, fmt.Errorf("no renewable sign-on to %s is cached: run gatehouse login --server %s", c.base, c.base)
	}
	return c.renew(ctx, cred)
}

func newLogoutCmd() *cobra.Command {
	var co clientOptions
	cmd := &cobra.Command{
		Use:   "logout [--server URL]",
		Short: "Revoke the cached sign-on's token and forget it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := co.anonymous()
			if err != nil {
				return err
			}
			creds, path, err := loadCredentials()
			if err != nil {
				return err
			}
			cred, ok := creds[c.base]
			if !ok {
				return fmt.Errorf("no sign-on to %s is cached", c.base)
			}
			c.token = cred.Token
			err = c.do(cmd.Context(), http.MethodPost, "/api/v1/auth/logout", "", nil, nil)
			var ae *apiError
			if err != nil && !(errors.As(err, &ae) && ae.Status == http.StatusUnauthorized) {
				return fmt.Errorf("revoke the token (the sign-on stays cached; try again): %w", err)
			}
			delete(creds, c.base)
			if err := saveCredentials(path, creds); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Signed out of %s (token %s revoked).\n", c.base, cred.TokenID)
			return nil
		},
	}
	co.addFlags(cmd.Flags())
	return cmd
}

// openBrowser opens url in the user's browser, without waiting for it.
func openBrowser(url string) error {
	var name string
	var args []string
	switch {
	case os.Getenv("BROWSER") != "":
		name = os.Getenv("BROWSER")
	case runtime.GOOS == "darwin":
		name = "open"
	case runtime.GOOS == "windows":
		name, args = "rundll32", []string{"url.dll,FileProtocolHandler"}
	default:
		name = "xdg-open"
	}
	cmd := exec.Command(name, append(args, url)...)
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	return nil
}

func (c *apiClient) postJSON(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, path, "application/json", body, out)
}

func (c *apiClient) postRaw(ctx context.Context, path string, in any) ([]byte, error) {
	var raw []byte
	err := c.postJSON(ctx, path, in, &raw)
	return raw, err
}
