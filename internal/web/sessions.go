package web

import (
	"fmt"
	"net/http"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/recording"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// SessionDetail is a session, its timeline and the state of its recording.
type SessionDetail struct {
	Session   audit.SessionSummary  `json:"session"`
	Timeline  []audit.TimelineEntry `json:"timeline"`
	Recording RecordingState        `json:"recording"`
}

// RecordingState tells how much of a session's recording the timeline
// holds: its stored chunks and, if any chunk does not match the audit log,
// the problems; the timeline then stops before the first bad chunk.
type RecordingState struct {
	Chunks   int                 `json:"chunks"`
	Problems []recording.Problem `json:"problems,omitempty"`
}

// sessionLog reads a node's stored events once appended ones (and closed
// recording chunks) have landed.
func (a *API) sessionLog(r *http.Request) ([][]byte, error) {
	if a.RecordingSync != nil {
		a.RecordingSync()
	}
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
		if s.ID != id {
			continue
		}
		d := SessionDetail{Session: s, Timeline: audit.Timeline(bodies, id)}
		if d.Timeline, d.Recording, err = a.withRecording(r, bodies, id, d.Timeline); err != nil {
			return err
		}
		d.Timeline = nonNilSlice(d.Timeline)
		return writeJSON(w, http.StatusOK, d)
	}
	return notFound(fmt.Errorf("session %q: %w", id, store.ErrNotFound))
}

// withRecording merges the session's recording, checked against the audit
// log, into its timeline.
func (a *API) withRecording(r *http.Request, bodies [][]byte, id string, tl []audit.TimelineEntry) ([]audit.TimelineEntry, RecordingState, error) {
	chunks, err := a.Store.RecordingChunks(r.Context(), id)
	if err != nil {
		return nil, RecordingState{}, err
	}
	st := RecordingState{Chunks: len(chunks), Problems: recording.Check(a.auditNode(r), chunks, recording.Attestations(bodies, id))}
	good := chunks
	if len(st.Problems) > 0 {
		first := st.Problems[0].Chunk
		good = good[:0:0]
		for _, c := range chunks {
			if c.Chunk < first {
				good = append(good, c)
			}
		}
	}
	stmts, err := recording.Statements(good)
	if err != nil {
		st.Problems = append(st.Problems, recording.Problem{Session: id, Reason: err.Error()})
	}
	return recording.Timeline(tl, stmts), st, nil
}
