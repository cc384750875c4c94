package web

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/gatehouse-dev/gatehouse/internal/audit"
	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/recording"
)

// auditChange records an administrative change in the audit log.
func (a *API) auditChange(r *http.Request, p identity.Principal, what string) {
	if a.Audit == nil {
		return
	}
	a.Audit(audit.Event{Type: audit.TypeAdmin, Identity: p.Identity.Name, Protocol: "api", Client: r.RemoteAddr,
		Command: what, Decision: "allow"})
}

// auditLog stores the events appended so far, signs a checkpoint over
// them, and reads one node's log from the store; node "" is this
// gateway's.
func (a *API) auditLog(r *http.Request) (node string, bodies [][]byte, checkpoints []string, err error) {
	if a.AuditFlush != nil {
		a.AuditFlush()
	}
	node = a.auditNode(r)
	bodies, checkpoints, err = audit.ReadStore(r.Context(), a.Store, node)
	return node, bodies, checkpoints, err
}

// auditNode is the node named by ?node=, or this gateway's.
func (a *API) auditNode(r *http.Request) string {
	if node := r.URL.Query().Get("node"); node != "" {
		return node
	}
	return a.AuditNode
}

// auditLogAndKey is auditLog with the verifier of this gateway's key.
func (a *API) auditLogAndKey(r *http.Request) (string, [][]byte, []string, note.Verifier, error) {
	node, bodies, cps, err := a.auditLog(r)
	if err != nil {
		return "", nil, nil, nil, err
	}
	v, err := audit.NewVerifier(a.AuditKey)
	return node, bodies, cps, v, err
}

// auditVerify verifies a node's log as stored, with this gateway's key.
func (a *API) auditVerify(w http.ResponseWriter, r *http.Request, _ identity.Principal) error {
	if a.RecordingSync != nil {
		a.RecordingSync() // chunks closed so far are attested
	}
	node, bodies, cps, v, err := a.auditLogAndKey(r)
	if err != nil {
		return err
	}
	rep := audit.Verify(node, bodies, cps, v)
	if rep.OK() {
		// The log holds the recordings' digests: check the chunks too.
		chunks, err := a.Store.RecordingChunks(r.Context(), "")
		if err != nil {
			return err
		}
		for _, c := range chunks {
			if c.Node == node {
				rep.Recordings++
			}
		}
		if p := recording.Check(node, chunks, recording.Attestations(bodies, "")); len(p) > 0 {
			rep.Problem = &audit.Problem{Kind: "recording", Detail: p[0].Error()}
		}
	}
	return writeJSON(w, http.StatusOK, rep)
}

// auditExport streams a node's log as JSON lines: events, then signed
// checkpoints; `gatehouse audit verify --file` checks it offline.
func (a *API) auditExport(w http.ResponseWriter, r *http.Request, _ identity.Principal) error {
	_, bodies, cps, err := a.auditLog(r)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/jsonl")
	w.Header().Set("Cache-Control", "no-store")
	return audit.WriteExport(w, bodies, cps)
}

// auditEvents returns a node's events as JSON lines, filtered (since,
// until as RFC 3339; identity, connection, session, type; after, a
// sequence number; limit, the last that many), as stored (format=jsonl)
// or as OCSF events (format=ocsf). Without checkpoints, a
// filtered selection is for reading, not for verifying.
func (a *API) auditEvents(w http.ResponseWriter, r *http.Request, _ identity.Principal) error {
	q := r.URL.Query()
	var f audit.Filter
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return badRequest("%s %q is not an RFC 3339 time such as 2026-11-22T10:00:00Z", name, v)
			}
			*dst = t
		}
	}
	f.Identity, f.Connection, f.Session, f.Type = q.Get("identity"), q.Get("connection"), q.Get("session"), q.Get("type")
	if format := q.Get("format"); format != "" && format != "jsonl" && format != "ocsf" {
		return badRequest("format %q is unknown (want jsonl or ocsf)", format)
	}
	after, limit := uint64(0), 0
	var err error
	if v := q.Get("after"); v != "" {
		if after, err = strconv.ParseUint(v, 10, 64); err != nil {
			return badRequest("after must be a sequence number")
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 {
			return badRequest("limit must be a count")
		}
	}
	if a.AuditSync != nil {
		a.AuditSync()
	}
	events, err := a.Store.AuditEvents(r.Context(), a.auditNode(r), after, 0)
	if err != nil {
		return err
	}
	bodies := make([][]byte, len(events))
	for i, e := range events {
		bodies[i] = e.Body
	}
	bodies = f.Select(bodies)
	if limit > 0 && len(bodies) > limit {
		bodies = bodies[len(bodies)-limit:]
	}
	w.Header().Set("Content-Type", "application/jsonl")
	w.Header().Set("Cache-Control", "no-store")
	if q.Get("format") == "ocsf" {
		enc := json.NewEncoder(w)
		for _, b := range bodies {
			o, err := audit.OCSF(b)
			if err != nil {
				return err
			}
			if err := enc.Encode(o); err != nil {
				return err
			}
		}
		return nil
	}
	return audit.WriteExport(w, bodies, nil)
}

// auditProof returns the inclusion proof of one event.
func (a *API) auditProof(w http.ResponseWriter, r *http.Request, _ identity.Principal) error {
	seq, err := strconv.ParseUint(r.URL.Query().Get("seq"), 10, 64)
	if err != nil || seq == 0 {
		return badRequest("seq must be an event's sequence number (1, 2, …)")
	}
	node, bodies, cps, v, err := a.auditLogAndKey(r)
	if err != nil {
		return err
	}
	p, err := audit.Prove(node, bodies, cps, v, seq)
	if err != nil {
		return badRequest("%v", err)
	}
	return writeJSON(w, http.StatusOK, p)
}

// auditKey returns the public key that verifies checkpoints, as PEM.
func (a *API) auditKey(w http.ResponseWriter, r *http.Request, _ identity.Principal) error {
	der, err := x509.MarshalPKIXPublicKey(ed25519.PublicKey(a.AuditKey))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, err = w.Write(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	return err
}
