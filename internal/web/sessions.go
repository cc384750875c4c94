package web

import (
	"fmt"
	"net/http"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// SessionDetail is a session and its timeline.
type SessionDetail struct {
	Session  audit.SessionSummary  `json:"session"`
	Timeline []audit.TimelineEntry `json:"timeline"`
}

// sessionLog reads a node's stored events once appended ones have landed.
func (a *API) sessionLog(r *http.Request) ([][]byte, error) {
	if a.AuditSync != nil {
		a.AuditSync()
	}
	bodies, _, err := audit.ReadStore(r.Context(), a.Store, a.auditNode(r))
	return bodies, err
}

func (a *API) listSessions(w http.ResponseWriter, r *http.Request, _ identity.Principal) error {
	bodies, err := a.sessionLog(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, nonNilSlice(audit.Sessions(bodies)))
}

func (a *API) getSession(w http.ResponseWriter, r *http.Request, _ identity.Principal) error {
	id := r.PathValue("id")
	bodies, err := a.sessionLog(r)
	if err != nil {
		return err
	}
	for _, s := range audit.Sessions(bodies) {
		if s.ID == id {
			return writeJSON(w, http.StatusOK, SessionDetail{Session: s, Timeline: nonNilSlice(audit.Timeline(bodies, id))})
		}
	}
	return notFound(fmt.Errorf("session %q: %w", id, store.ErrNotFound))
}
