// Package web serves Gatehouse's HTTPS JSON API under /api/v1, plus
// /healthz and /metrics. Every /api/v1 route is registered with the role it
// needs and passes through one authentication middleware, except the
// sign-on and federation routes under /api/v1/auth/, which are how a
// caller gets a token and are rate-limited per address instead; errors are
// JSON objects naming the cause, never a secret.
package web

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/review"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// API is the HTTP API. Fill the fields, then call Handler.
type API struct {
	Store   store.Store
	Auth    *identity.Authenticator
	Key     *secret.MasterKey
	Log     *slog.Logger
	Metrics *Metrics
	Version string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Access reports whether an identity may open a session on a
	// connection (the gate's access rules); non-admins see only those.
	Access func(resource.Identity, resource.Connection) bool
	// PoliciesChanged reloads the gateway's policies after a change.
	PoliciesChanged func(context.Context) error
	// AuditNode is this gateway's audit chain; AuditKey verifies its
	// checkpoints; AuditFlush stores the events appended so far and signs
	// a checkpoint over them.
	AuditNode  string
	AuditKey   ed25519.PublicKey
	AuditFlush func()
	// AuditSync waits until appended events are in the store.
	AuditSync func()
	// RecordingSync waits until closed recording chunks are in the store
	// and attested.
	RecordingSync func()
	// Audit records administrative changes (nil: not recorded).
	Audit func(audit.Event) uint64
	// Reviews keeps reviews and grants (nil: the review routes answer
	// 501); RequestAccess opens an access review.
	Reviews       *review.Service
	RequestAccess RequestAccessFunc
	// SignOn is the OIDC relying party (nil: sign-on is off); Federator
	// exchanges workload tokens.
	SignOn    *identity.SignOn
	Federator *identity.Federator
	// TokenTTL is the lifetime of tokens created without one (default
	// identity.DefaultHumanTokenTTL).
	TokenTTL time.Duration
	// IdentitiesChanged is told when tokens or identities change, so
	// that live sessions of a revoked token or disabled identity end at
	// once (nil: at the next periodic check).
	IdentitiesChanged func()
}

// route is one API endpoint and the role it requires. A zero role means
// no authentication (only /healthz and /metrics).
type route struct {
	pattern string
	role    resource.Role
	handle  func(w http.ResponseWriter, r *http.Request, p identity.Principal) error
}

func (a *API) routes() []route {
	return []route{
		{"GET /api/v1/whoami", resource.RoleUser, a.whoami},
		{"POST /api/v1/apply", resource.RoleAdmin, a.apply},
		{"GET /api/v1/connections", resource.RoleUser, a.listConnections},
		{"GET /api/v1/connections/{name}", resource.RoleUser, a.getConnection},
		{"DELETE /api/v1/connections/{name}", resource.RoleAdmin, a.deleteConnection},
		{"GET /api/v1/policies", resource.RoleAdmin, a.listPolicies},
		{"GET /api/v1/policies/{name}", resource.RoleAdmin, a.getPolicy},
		{"DELETE /api/v1/policies/{name}", resource.RoleAdmin, a.deletePolicy},
		{"GET /api/v1/audit/verify", resource.RoleAdmin, a.auditVerify},
		{"GET /api/v1/audit/export", resource.RoleAdmin, a.auditExport},
		{"GET /api/v1/audit/events", resource.RoleAdmin, a.auditEvents},
		{"GET /api/v1/audit/proof", resource.RoleAdmin, a.auditProof},
		{"GET /api/v1/audit/key", resource.RoleUser, a.auditKey},
		{"GET /api/v1/sessions", resource.RoleAdmin, a.listSessions},
		{"GET /api/v1/sessions/{id}", resource.RoleAdmin, a.getSession},
		{"GET /api/v1/identities", resource.RoleAdmin, a.listIdentities},
		{"GET /api/v1/identities/{name}", resource.RoleAdmin, a.getIdentity},
		{"DELETE /api/v1/identities/{name}", resource.RoleAdmin, a.deleteIdentity},
		{"GET /api/v1/groups", resource.RoleAdmin, a.listGroups},
		{"GET /api/v1/reviews", resource.RoleUser, a.listReviews},
		{"POST /api/v1/reviews", resource.RoleUser, a.requestAccess},
		{"GET /api/v1/reviews/{id}", resource.RoleUser, a.getReview},
		{"POST /api/v1/reviews/{id}/approve", resource.RoleUser, a.approveReview},
		{"POST /api/v1/reviews/{id}/deny", resource.RoleUser, a.denyReview},
		{"POST /api/v1/reviews/{id}/cancel", resource.RoleUser, a.cancelReview},
		{"POST /api/v1/tokens", resource.RoleUser, a.createToken},
		{"GET /api/v1/tokens", resource.RoleUser, a.listTokens},
		{"DELETE /api/v1/tokens/{id}", resource.RoleUser, a.revokeToken},
		{"POST /api/v1/auth/logout", resource.RoleUser, a.logout},
	}
}

// Handler returns the API's HTTP handler.
func (a *API) Handler() http.Handler {
	if a.Log == nil {
		a.Log = slog.Default()
	}
	if a.Metrics == nil {
		a.Metrics = NewMetrics(a.Version)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.Handle("GET /metrics", a.Metrics.Handler())
	for _, rt := range a.routes() {
		mux.Handle(rt.pattern, a.authenticated(rt))
	}
	signOnLimit := newLimiter(SignOnRate, SignOnBurst)
	for _, rt := range a.publicRoutes() {
		mux.Handle(rt.pattern, signOnLimit.limit(a.public(rt)))
	}
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &Error{Status: http.StatusNotFound, Code: "not_found", Message: fmt.Sprintf("no API route %s %s", r.Method, r.URL.Path)})
	})
	return a.observe(mux)
}

// Error is an API error whose message is safe to show the caller.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

func badRequest(format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: fmt.Sprintf(format, args...)}
}

func notFound(err error) *Error {
	return &Error{Status: http.StatusNotFound, Code: "not_found", Message: err.Error()}
}

func forbidden(format string, args ...any) *Error {
	return &Error{Status: http.StatusForbidden, Code: "forbidden", Message: fmt.Sprintf(format, args...)}
}

type principalKey struct{}

// authenticated wraps a handler with token authentication and its role check.
func (a *API) authenticated(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.Auth.Authenticate(r.Context(), bearer(r))
		var ae *identity.AuthError
		switch {
		case errors.As(err, &ae):
			a.Metrics.authFailures.WithLabelValues(string(ae.Reason)).Inc()
			w.Header().Set("WWW-Authenticate", `Bearer realm="gatehouse"`)
			writeError(w, &Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: ae.Error()})
			return
		case err != nil:
			a.Log.Error("authenticate", "err", err)
			writeError(w, &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "the store is unavailable; try again"})
			return
		}
		if !p.Role.Satisfies(rt.role) {
			writeError(w, forbidden("%s needs the %s role; this token has the %s role", rt.pattern, rt.role, p.Role))
			return
		}
		if lw, ok := w.(*loggingWriter); ok {
			lw.identity = p.Identity.Name
		}
		r = r.WithContext(context.WithValue(r.Context(), principalKey{}, p))
		if err := rt.handle(w, r, p); err != nil {
			a.fail(w, r, err)
		}
	})
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) > len(prefix) && (h[:len(prefix)] == prefix || h[:len(prefix)] == "bearer ") {
		return h[len(prefix):]
	}
	return ""
}

// fail writes err: API errors as they are, store misses as 404, anything
// else as a logged 500 whose details stay in the log.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var apiErr *Error
	switch {
	case errors.As(err, &apiErr):
		writeError(w, apiErr)
	case errors.Is(err, store.ErrNotFound):
		writeError(w, notFound(err))
	default:
		a.Log.Error("api handler failed", "route", r.Pattern, "err", err)
		writeError(w, &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error; the gateway log has details"})
	}
}

func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.Status, map[string]*Error{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// decodeJSON reads a small JSON request body strictly.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("request body: %v", err)
	}
	return nil
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := a.Store.GetMeta(ctx, "healthz"); err != nil && !errors.Is(err, store.ErrNotFound) {
		a.Log.Warn("healthz: store unreachable", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "store": "unreachable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": a.Version, "store": a.Store.Backend()})
}

func (a *API) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// loggingWriter records the status for logs and metrics.
type loggingWriter struct {
	http.ResponseWriter
	status   int
	identity string
}

func (w *loggingWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *loggingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *loggingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// observe logs every request and counts it by route pattern (never by raw
// path, which would let callers create unbounded label values).
func (a *API) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		lw := &loggingWriter{ResponseWriter: w}
		next.ServeHTTP(lw, r)
		if lw.status == 0 {
			lw.status = http.StatusOK
		}
		pattern := r.Pattern
		if pattern == "" {
			pattern = "unmatched"
		}
		d := time.Since(start)
		a.Metrics.requests.WithLabelValues(pattern, strconv.Itoa(lw.status)).Inc()
		a.Metrics.latency.WithLabelValues(pattern).Observe(d.Seconds())
		if pattern == "GET /healthz" || pattern == "GET /metrics" {
			return
		}
		a.Log.Info("api request", "method", r.Method, "route", pattern, "status", lw.status,
			"identity", lw.identity, "remote", r.RemoteAddr, "duration", d)
	})
}
