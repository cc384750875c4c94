package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/gate"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/review"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// AccessRequest asks for access to a connection for a while. For is a Go
// duration ("2h").
type AccessRequest struct {
	Connection string `json:"connection"`
	For        string `json:"for"`
	Reason     string `json:"reason,omitempty"`
}

// ReviewDecision approves or denies a review, or cancels one.
type ReviewDecision struct {
	Reason string `json:"reason,omitempty"`
}

func (a *API) reviews() (*review.Service, error) {
	if a.Reviews == nil {
		return nil, &Error{Status: http.StatusNotImplemented, Code: "unavailable", Message: "this gateway keeps no reviews"}
	}
	return a.Reviews, nil
}

func approver(p identity.Principal) review.Approver {
	return review.Approver{Name: p.Identity.Name, Groups: p.Identity.Groups, Admin: p.Role.Satisfies(resource.RoleAdmin)}
}

// mayView: admins see every review; others their own and those they may
// decide.
func mayView(p identity.Principal, r review.Review) bool {
	if p.Role.Satisfies(resource.RoleAdmin) || r.Requester == p.Identity.Name {
		return true
	}
	for _, g := range p.Identity.Groups {
		if slices.Contains(r.Approvers, g) {
			return true
		}
	}
	return false
}

// listReviews lists reviews, newest first: ?state=pending (the default),
// approved, …, or all; ?limit=N (default 200).
func (a *API) listReviews(w http.ResponseWriter, r *http.Request, p identity.Principal) error {
	svc, err := a.reviews()
	if err != nil {
		return err
	}
	f := review.Filter{Limit: 200}
	switch st := r.URL.Query().Get("state"); st {
	case "", string(review.Pending):
		f.States = []string{string(review.Pending)}
	case "all":
	case string(review.Approved), string(review.Denied), string(review.Expired), string(review.Cancelled), string(review.Executed):
		f.States = []string{st}
	default:
		return badRequest("state %q: want pending, approved, denied, expired, cancelled, executed or all", st)
	}
	if v := r.URL.Query().Get("limit"); v != "" {
		if _, err := fmt.Sscan(v, &f.Limit); err != nil || f.Limit <= 0 {
			return badRequest("limit %q: want a positive number", v)
		}
	}
	list, err := svc.List(r.Context(), f)
	if err != nil {
		return err
	}
	out := []review.Review{}
	for _, rv := range list {
		// A review that lapsed as it was read no longer has the state
		// asked for.
		if mayView(p, rv) && (len(f.States) == 0 || string(rv.State) == f.States[0]) {
			rv.Match = ""
			out = append(out, rv)
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) getReview(w http.ResponseWriter, r *http.Request, p identity.Principal) error {
	_, rv, err := a.visibleReview(r, p)
	if err != nil {
		return err
	}
	return writeReview(w, http.StatusOK, rv)
}

func (a *API) approveReview(w http.ResponseWriter, r *http.Request, p identity.Principal) error {
	return a.decideReview(w, r, p, true)
}

func (a *API) denyReview(w http.ResponseWriter, r *http.Request, p identity.Principal) error {
	return a.decideReview(w, r, p, false)
}

func (a *API) decideReview(w http.ResponseWriter, r *http.Request, p identity.Principal, approve bool) error {
	req, err := decisionBody(r)
	if err != nil {
		return err
	}
	svc, rv, err := a.visibleReview(r, p)
	if err != nil {
		return err
	}
	if rv, err = svc.Decide(r.Context(), rv.ID, approver(p), approve, req.Reason); err != nil {
		return reviewError(err)
	}
	return writeReview(w, http.StatusOK, rv)
}

// cancelReview withdraws a pending review: its requester's, or any for an
// admin.
func (a *API) cancelReview(w http.ResponseWriter, r *http.Request, p identity.Principal) error {
	svc, rv, err := a.visibleReview(r, p)
	if err != nil {
		return err
	}
	if rv.Requester != p.Identity.Name && !p.Role.Satisfies(resource.RoleAdmin) {
		return forbidden("only %s (who asked) or an admin may cancel review %s; deny it instead", rv.Requester, rv.ID)
	}
	req, err := decisionBody(r)
	if err != nil {
		return err
	}
	why := "cancelled by " + p.Identity.Name
	if req.Reason != "" {
		why += ": " + req.Reason
	}
	if rv, err = svc.Cancel(r.Context(), rv.ID, p.Identity.Name, why); err != nil {
		return reviewError(err)
	}
	return writeReview(w, http.StatusOK, rv)
}

// visibleReview reads the review the path names; one the caller may not
// see is answered as if it did not exist.
func (a *API) visibleReview(r *http.Request, p identity.Principal) (*review.Service, review.Review, error) {
	svc, err := a.reviews()
	if err != nil {
		return nil, review.Review{}, err
	}
	rv, err := svc.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		return nil, rv, err
	}
	if !mayView(p, rv) {
		return nil, rv, notFound(fmt.Errorf("review %s: %w", rv.ID, store.ErrNotFound))
	}
	return svc, rv, nil
}

// decisionBody reads the optional body of approve, deny and cancel.
func decisionBody(r *http.Request) (ReviewDecision, error) {
	var req ReviewDecision
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return req, err
		}
	}
	return req, nil
}

// writeReview answers with a review, without its match hash.
func writeReview(w http.ResponseWriter, status int, rv review.Review) error {
	rv.Match = ""
	return writeJSON(w, status, rv)
}

func reviewError(err error) error {
	switch {
	case errors.Is(err, review.ErrForbidden):
		return &Error{Status: http.StatusForbidden, Code: "forbidden", Message: err.Error()}
	case errors.Is(err, review.ErrNotPending):
		return &Error{Status: http.StatusConflict, Code: "conflict", Message: err.Error()}
	}
	return err
}

// requestAccess opens an access review for the caller.
func (a *API) requestAccess(w http.ResponseWriter, r *http.Request, p identity.Principal) error {
	if _, err := a.reviews(); err != nil {
		return err
	}
	var req AccessRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	window, err := time.ParseDuration(req.For)
	if err != nil || window <= 0 {
		return badRequest("for %q: want a positive duration such as 2h", req.For)
	}
	rec, err := a.Store.GetConnection(r.Context(), req.Connection)
	if err != nil {
		return err
	}
	rv, err := a.RequestAccess(r.Context(), p.Identity, rec.Connection, window, req.Reason)
	var ae *gate.AccessError
	switch {
	case errors.As(err, &ae) && ae.Forbidden:
		// As for a connection that does not exist: users learn nothing
		// about connections they may never use.
		return notFound(fmt.Errorf("connection %q: %w", req.Connection, store.ErrNotFound))
	case errors.As(err, &ae):
		return badRequest("%s", ae.Msg)
	case err != nil:
		return err
	}
	return writeReview(w, http.StatusCreated, rv)
}

// RequestAccessFunc opens an access review (gate.Gate.RequestAccess).
type RequestAccessFunc func(ctx context.Context, id resource.Identity, c resource.Connection, window time.Duration, reason string) (review.Review, error)
