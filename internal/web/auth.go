package web

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
)

// The sign-on and exchange routes take no token: they are how a caller
// gets one. Each answers 401 naming the cause when it refuses.

// LoginStartRequest begins a code flow whose redirect lands on the CLI's
// loopback listener.
type LoginStartRequest struct {
	RedirectURI string `json:"redirectURI"`
}

// LoginFinishRequest completes a code flow.
type LoginFinishRequest struct {
	Handle string `json:"handle"`
	State  string `json:"state"`
	Code   string `json:"code"`
}

// HandleRequest carries an opaque handle: a device flow's or a refresh's.
type HandleRequest struct {
	Handle string `json:"handle"`
}

// FederateRequest exchanges a workload's JWT; Identity names the identity
// when several trust the issuer.
type FederateRequest struct {
	Token    string `json:"token"`
	Identity string `json:"identity,omitempty"`
}

// DevicePending answers a device poll the user has not approved yet.
type DevicePending struct {
	Pending  bool  `json:"pending"`
	Interval int64 `json:"interval"`
}

// The sign-on and federation routes take at most SignOnRate requests per
// second from one address, in bursts of up to SignOnBurst.
const (
	SignOnRate  = 5
	SignOnBurst = 30
)

// devicePollWait is how long one device poll waits for the user.
const devicePollWait = 20 * time.Second

type publicRoute struct {
	pattern string
	handle  func(w http.ResponseWriter, r *http.Request) error
}

func (a *API) publicRoutes() []publicRoute {
	return []publicRoute{
		{"GET /api/v1/auth/config", a.authConfig},
		{"POST /api/v1/auth/oidc/start", a.oidcStart},
		{"POST /api/v1/auth/oidc/finish", a.oidcFinish},
		{"POST /api/v1/auth/oidc/device", a.oidcDevice},
		{"POST /api/v1/auth/oidc/device/poll", a.oidcDevicePoll},
		{"POST /api/v1/auth/refresh", a.authRefresh},
		{"POST /api/v1/auth/federate", a.federate},
	}
}

func (a *API) public(rt publicRoute) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := rt.handle(w, r)
		var le *identity.LoginError
		var ae *identity.AuthError
		var ue *identity.UnavailableError
		switch {
		case err == nil:
		case errors.As(err, &le), errors.As(err, &ae):
			a.Metrics.authFailures.WithLabelValues("sign-on refused").Inc()
			writeError(w, &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: err.Error()})
		case errors.As(err, &ue):
			a.Log.Warn("sign-on: provider unavailable", "err", err)
			writeError(w, &Error{Status: http.StatusBadGateway, Code: "provider_unavailable", Message: err.Error()})
		default:
			a.fail(w, r, err)
		}
	})
}

// AuthConfig tells the CLI how this gateway signs people in.
type AuthConfig struct {
	OIDC *identity.Info `json:"oidc,omitempty"`
}

func (a *API) authConfig(w http.ResponseWriter, r *http.Request) error {
	var out AuthConfig
	if a.SignOn != nil {
		info, err := a.SignOn.Info(r.Context())
		if err != nil {
			return err
		}
		out.OIDC = &info
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) signOn() (*identity.SignOn, error) {
	if a.SignOn == nil {
		return nil, &Error{Status: http.StatusNotImplemented, Code: "not_configured",
			Message: "this gateway has no sign-on configured (start it with --oidc-issuer and --oidc-client-id); use a token"}
	}
	return a.SignOn, nil
}

// signOnRequest returns the sign-on that serves r and r's decoded body.
func signOnRequest[T any](a *API, r *http.Request) (*identity.SignOn, T, error) {
	var req T
	so, err := a.signOn()
	if err == nil {
		err = decodeJSON(r, &req)
	}
	return so, req, err
}

func (a *API) oidcStart(w http.ResponseWriter, r *http.Request) error {
	so, req, err := signOnRequest[LoginStartRequest](a, r)
	if err != nil {
		return err
	}
	out, err := so.Start(r.Context(), req.RedirectURI)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) oidcFinish(w http.ResponseWriter, r *http.Request) error {
	so, req, err := signOnRequest[LoginFinishRequest](a, r)
	if err != nil {
		return err
	}
	out, err := so.Finish(r.Context(), req.Handle, req.State, req.Code, r.RemoteAddr)
	if err != nil {
		return err
	}
	return a.issued(w, out)
}

func (a *API) oidcDevice(w http.ResponseWriter, r *http.Request) error {
	so, err := a.signOn()
	if err != nil {
		return err
	}
	out, err := so.StartDevice(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) oidcDevicePoll(w http.ResponseWriter, r *http.Request) error {
	so, req, err := signOnRequest[HandleRequest](a, r)
	if err != nil {
		return err
	}
	out, err := so.PollDevice(r.Context(), req.Handle, r.RemoteAddr, devicePollWait)
	if errors.Is(err, identity.ErrPending) {
		return writeJSON(w, http.StatusAccepted, DevicePending{Pending: true, Interval: 1})
	}
	if err != nil {
		return err
	}
	return a.issued(w, out)
}

func (a *API) authRefresh(w http.ResponseWriter, r *http.Request) error {
	so, req, err := signOnRequest[HandleRequest](a, r)
	if err != nil {
		return err
	}
	out, err := so.Refresh(r.Context(), req.Handle, r.RemoteAddr)
	if err != nil {
		return err
	}
	return a.issued(w, out)
}

func (a *API) federate(w http.ResponseWriter, r *http.Request) error {
	if a.Federator == nil {
		return &Error{Status: http.StatusNotImplemented, Code: "not_configured", Message: "this gateway does not exchange workload tokens"}
	}
	var req FederateRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	out, err := a.Federator.Exchange(r.Context(), req.Token, req.Identity, r.RemoteAddr)
	if err != nil {
		return err
	}
	return a.issued(w, out)
}

func (a *API) issued(w http.ResponseWriter, out identity.Issued) error {
	a.Log.Info("token issued", "identity", out.Identity, "token_id", out.TokenID, "role", out.Role, "expires", out.ExpiresAt)
	return writeJSON(w, http.StatusOK, out)
}

// logout revokes the token that calls it.
func (a *API) logout(w http.ResponseWriter, r *http.Request, p identity.Principal) error {
	if err := a.Store.RevokeToken(r.Context(), p.TokenID, a.now()); err != nil {
		return err
	}
	a.Log.Info("token revoked by logout", "token_id", p.TokenID, "identity", p.Identity.Name)
	a.auditChange(r, p, fmt.Sprintf("logout: token revoke %s of %s", p.TokenID, p.Identity.Name))
	a.identitiesChanged()
	return writeJSON(w, http.StatusOK, map[string]string{"revoked": p.TokenID})
}

func (a *API) identitiesChanged() {
	if a.IdentitiesChanged != nil {
		a.IdentitiesChanged()
	}
}
