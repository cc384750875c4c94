package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/policy"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/secret"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// ApplyResult reports what apply did to one document.
type ApplyResult struct {
	Kind   resource.Kind `json:"kind"`
	Name   string        `json:"name"`
	Action string        `json:"action"` // created, configured, or valid (dry run)
}

// apply takes a YAML or JSON manifest of one or more documents and writes
// all of them in one transaction, or none.
func (a *API) apply(w http.ResponseWriter, r *http.Request, p identity.Principal) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, resource.MaxManifestBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: fmt.Sprintf("manifest is larger than the %d-byte limit", resource.MaxManifestBytes)}
	}
	if err != nil {
		return badRequest("read manifest: %v", err)
	}
	docs, err := resource.Decode(body)
	if err != nil {
		return badRequest("%v", err)
	}
	// Conditions are compiled before anything is written: a policy that
	// does not compile refuses the whole manifest.
	policies := false
	for _, d := range docs {
		if d.Kind == resource.KindPolicy {
			policies = true
			if _, err := policy.Compile(*d.Policy); err != nil {
				return badRequest("%v", err)
			}
		}
		if d.Kind == resource.KindIdentity && d.Identity.Federation != nil {
			if _, err := identity.CompileCondition(d.Identity.Federation.Condition); err != nil {
				return badRequest("line %d: identity %q: federation.%v", d.Line, d.Name, err)
			}
		}
	}
	dryRun := r.URL.Query().Get("dryRun") == "true"
	sort.SliceStable(docs, func(i, j int) bool { // identities before connections
		return slices.Index(resource.Kinds, docs[i].Kind) < slices.Index(resource.Kinds, docs[j].Kind)
	})
	results := make([]ApplyResult, 0, len(docs))
	err = a.Store.Tx(r.Context(), func(tx store.Store) error {
		for _, d := range docs {
			var created bool
			var err error
			switch d.Kind {
			case resource.KindIdentity:
				if !dryRun {
					created, err = tx.PutIdentity(r.Context(), *d.Identity)
				}
			case resource.KindConnection:
				var rec store.ConnectionRecord
				if rec, err = a.sealConnection(*d.Connection); err == nil && !d.Connection.PasswordSet {
					err = keepCredential(r.Context(), tx, &rec)
				}
				if err == nil && !dryRun {
					created, err = tx.PutConnection(r.Context(), rec)
				}
			case resource.KindPolicy:
				if !dryRun {
					created, err = tx.PutPolicy(r.Context(), *d.Policy)
				}
			}
			if err != nil {
				return fmt.Errorf("line %d: %s %q: %w", d.Line, d.Kind, d.Name, err)
			}
			action := "configured"
			switch {
			case dryRun:
				action = "valid"
			case created:
				action = "created"
			}
			results = append(results, ApplyResult{Kind: d.Kind, Name: d.Name, Action: action})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, res := range results {
		a.Log.Info("applied", "kind", res.Kind, "name", res.Name, "action", res.Action)
		if !dryRun {
			a.auditChange(r, p, fmt.Sprintf("apply %s %s (%s)", res.Kind, res.Name, res.Action))
		}
	}
	if policies && !dryRun {
		a.policiesChanged(r.Context())
	}
	if !dryRun {
		a.identitiesChanged() // an identity may have been disabled
	}
	return writeJSON(w, http.StatusOK, map[string]any{"results": results})
}

// sealConnection turns an applied connection into a record: an inline
// credential is encrypted under the master key and dropped from the spec.
func (a *API) sealConnection(c resource.Connection) (store.ConnectionRecord, error) {
	cred, err := resource.ParseCredential(c.Password)
	if err != nil {
		return store.ConnectionRecord{}, badRequest("connection %q: password: %v", c.Name, err)
	}
	rec := store.ConnectionRecord{Connection: c, Credential: cred}
	rec.Password = ""
	if cred.Source == resource.CredentialInline {
		rec.Sealed, err = a.Key.Seal([]byte(cred.Inline), secret.ConnectionAAD(c.Name))
		if err != nil {
			return store.ConnectionRecord{}, fmt.Errorf("seal credential: %w", err)
		}
		rec.Credential.Inline = ""
	}
	return rec, nil
}

// keepCredential carries the stored credential over to a connection applied
// without a password field.
func keepCredential(ctx context.Context, tx store.Store, rec *store.ConnectionRecord) error {
	old, err := tx.GetConnection(ctx, rec.Name)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	rec.Credential, rec.Sealed = old.Credential, old.Sealed
	return nil
}

// connectionView is what the API returns for a connection: references are
// shown as written, inline secrets never.
func connectionView(rec store.ConnectionRecord) resource.Connection {
	c := rec.Connection
	c.CredentialSource = rec.Credential.Source
	c.Password = ""
	if rec.Credential.Source == resource.CredentialEnv || rec.Credential.Source == resource.CredentialFile {
		c.Password = rec.Credential.String()
	}
	return c
}

// mayUse reports whether p may see and use a connection: admins see all,
// others the connections the access rules let them open.
func (a *API) mayUse(p identity.Principal, c resource.Connection) bool {
	return p.Role == resource.RoleAdmin || (a.Access != nil && a.Access(p.Identity, c))
}

// policiesChanged tells the gateway to load the policies again.
func (a *API) policiesChanged(ctx context.Context) {
	if a.PoliciesChanged == nil {
		return
	}
	if err := a.PoliciesChanged(ctx); err != nil {
		a.Log.Error("reload policies", "err", err)
	}
}

func (a *API) listPolicies(w http.ResponseWriter, r *http.Request, _ identity.Principal) error {
	ps, err := a.Store.ListPolicies(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, nonNilSlice(ps))
}

func (a *API) getPolicy(w http.ResponseWriter, r *http.Request, _ identity.Principal) error {
	p, err := a.Store.GetPolicy(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

func (a *API) deletePolicy(w http.ResponseWriter, r *http.Request, p identity.Principal) error {
	name := r.PathValue("name")
	if err := a.Store.DeletePolicy(r.Context(), name); err != nil {
		return err
	}
	a.Log.Info("deleted", "kind", resource.KindPolicy, "name", name)
	a.auditChange(r, p, "delete Policy "+name)
	a.policiesChanged(r.Context())
	return writeJSON(w, http.StatusOK, map[string]string{"deleted": name})
}

func (a *API) listConnections(w http.ResponseWriter, r *http.Request, p identity.Principal) error {
	recs, err := a.Store.ListConnections(r.Context())
	if err != nil {
		return err
	}
	out := []resource.Connection{}
	for _, rec := range recs {
		if a.mayUse(p, rec.Connection) {
			out = append(out, connectionView(rec))
		}
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) getConnection(w http.ResponseWriter, r *http.Request, p identity.Principal) error {
	name := r.PathValue("name")
	rec, err := a.Store.GetConnection(r.Context(), name)
	if err != nil {
		return err
	}
	if !a.mayUse(p, rec.Connection) {
		// Same answer as a missing connection: users learn nothing about
		// connections they may not use.
		return notFound(fmt.Errorf("connection %q: %w", name, store.ErrNotFound))
	}
	return writeJSON(w, http.StatusOK, connectionView(rec))
}

func (a *API) deleteConnection(w http.ResponseWriter, r *http.Request, p identity.Principal) error {
	name := r.PathValue("name")
	if err := a.Store.DeleteConnection(r.Context(), name); err != nil {
		return err
	}
	a.Log.Info("deleted", "kind", resource.KindConnection, "name", name)
	a.auditChange(r, p, "delete Connection "+name)
	return writeJSON(w, http.StatusOK, map[string]string{"deleted": name})
}

func (a *API) listIdentities(w http.ResponseWriter, r *http.Request, _ identity.Principal) error {
	ids, err := a.Store.ListIdentities(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, nonNilSlice(ids))
}

func (a *API) getIdentity(w http.ResponseWriter, r *http.Request, _ identity.Principal) error {
	id, err := a.Store.GetIdentity(r.Context(), r.PathValue("name"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, id)
}

func (a *API) deleteIdentity(w http.ResponseWriter, r *http.Request, p identity.Principal) error {
	name := r.PathValue("name")
	if name == p.Identity.Name {
		return badRequest("refusing to delete the identity of the calling token (%s)", name)
	}
	if err := a.Store.DeleteIdentity(r.Context(), name); err != nil {
		return err
	}
	a.Log.Info("deleted", "kind", resource.KindIdentity, "name", name)
	a.auditChange(r, p, "delete Identity "+name)
	a.identitiesChanged()
	return writeJSON(w, http.StatusOK, map[string]string{"deleted": name})
}

// Group is a group and its members; groups exist by being named on
// identities.
type Group struct {
	Name    string   `json:"name"`
	Members []string `json:"members"`
}

func (a *API) listGroups(w http.ResponseWriter, r *http.Request, _ identity.Principal) error {
	ids, err := a.Store.ListIdentities(r.Context())
	if err != nil {
		return err
	}
	members := map[string][]string{}
	for _, id := range ids {
		for _, g := range id.Groups {
			members[g] = append(members[g], id.Name)
		}
	}
	out := []Group{}
	for g, m := range members {
		out = append(out, Group{Name: g, Members: m})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) whoami(w http.ResponseWriter, r *http.Request, p identity.Principal) error {
	return writeJSON(w, http.StatusOK, map[string]any{
		"identity": p.Identity, "role": p.Role, "tokenId": p.TokenID, "expiresAt": p.ExpiresAt,
	})
}

func nonNilSlice[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
