package web

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/identity"
	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// TokenRequest asks for a new token. TTL is a Go duration ("1h", "90m");
// empty means the gateway's --token-ttl (default 12h) and "0" means no expiry (admins only).
type TokenRequest struct {
	Identity    string `json:"identity"`
	Role        string `json:"role,omitempty"`
	TTL         string `json:"ttl,omitempty"`
	Description string `json:"description,omitempty"`
}

// TokenCreated carries the new token; it is the only time it is shown.
type TokenCreated struct {
	Token string    `json:"token"`
	Info  TokenInfo `json:"info"`
}

// TokenInfo describes a token without its secret.
type TokenInfo struct {
	ID          string        `json:"id"`
	Identity    string        `json:"identity"`
	Role        resource.Role `json:"role"`
	Description string        `json:"description,omitempty"`
	Status      string        `json:"status"` // active, expired or revoked
	CreatedAt   time.Time     `json:"createdAt"`
	ExpiresAt   time.Time     `json:"expiresAt,omitzero"`
	RevokedAt   time.Time     `json:"revokedAt,omitzero"`
}

func tokenInfo(t store.Token, now time.Time) TokenInfo {
	status := "active"
	switch {
	case !t.RevokedAt.IsZero():
		status = "revoked"
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		status = "expired"
	}
	return TokenInfo{ID: t.ID, Identity: t.Identity, Role: t.Role, Description: t.Description,
		Status: status, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, RevokedAt: t.RevokedAt}
}

// createToken issues a token. Admins may issue any token; a user may issue
// only user-role tokens for themselves that expire no later than the token
// they present, so a token can never mint a stronger or longer-lived one.
func (a *API) createToken(w http.ResponseWriter, r *http.Request, p identity.Principal) error {
	var req TokenRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Identity == "" {
		req.Identity = p.Identity.Name
	}
	role := resource.RoleUser
	if req.Role != "" {
		var err error
		if role, err = resource.ParseRole(req.Role); err != nil {
			return badRequest("%v", err)
		}
	}
	ttl := a.TokenTTL
	if ttl == 0 {
		ttl = identity.DefaultHumanTokenTTL
	}
	if req.TTL != "" {
		var err error
		if ttl, err = time.ParseDuration(req.TTL); err != nil || ttl < 0 {
			return badRequest("ttl %q is invalid: want a duration such as 1h or 30m, or 0 for no expiry", req.TTL)
		}
	}
	now := a.now()
	if p.Role != resource.RoleAdmin {
		switch {
		case req.Identity != p.Identity.Name:
			return forbidden("only admins may create tokens for another identity")
		case role != resource.RoleUser:
			return forbidden("only admins may create admin tokens")
		case !p.ExpiresAt.IsZero() && (ttl == 0 || now.Add(ttl).After(p.ExpiresAt)):
			return forbidden("a new token may not outlive the token that creates it (expires %s)", p.ExpiresAt.Format(time.RFC3339))
		case p.ExpiresAt.IsZero() && ttl == 0:
			return forbidden("only admins may create tokens that never expire")
		}
	}
	tok, rec, err := identity.NewToken(req.Identity, role, ttl, req.Description, now)
	if err != nil {
		return err
	}
	if err := a.Store.CreateToken(r.Context(), rec); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return notFound(fmt.Errorf("identity %q does not exist; apply an Identity document first", req.Identity))
		}
		return err
	}
	a.Log.Info("token created", "token_id", rec.ID, "identity", rec.Identity, "role", rec.Role, "by", p.Identity.Name)
	a.auditChange(r, p, fmt.Sprintf("token create %s for %s (role %s)", rec.ID, rec.Identity, rec.Role))
	return writeJSON(w, http.StatusCreated, TokenCreated{Token: tok, Info: tokenInfo(rec, now)})
}

func (a *API) listTokens(w http.ResponseWriter, r *http.Request, p identity.Principal) error {
	who := r.URL.Query().Get("identity")
	if p.Role != resource.RoleAdmin {
		if who != "" && who != p.Identity.Name {
			return forbidden("only admins may list another identity's tokens")
		}
		who = p.Identity.Name
	}
	toks, err := a.Store.ListTokens(r.Context(), who)
	if err != nil {
		return err
	}
	now := a.now()
	out := make([]TokenInfo, 0, len(toks))
	for _, t := range toks {
		out = append(out, tokenInfo(t, now))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *API) revokeToken(w http.ResponseWriter, r *http.Request, p identity.Principal) error {
	id := r.PathValue("id")
	t, err := a.Store.GetToken(r.Context(), id)
	if err != nil {
		return err
	}
	if p.Role != resource.RoleAdmin && t.Identity != p.Identity.Name {
		return notFound(fmt.Errorf("token %s: %w", id, store.ErrNotFound))
	}
	if err := a.Store.RevokeToken(r.Context(), id, a.now()); err != nil {
		return err
	}
	a.Log.Info("token revoked", "token_id", id, "identity", t.Identity, "by", p.Identity.Name)
	a.auditChange(r, p, fmt.Sprintf("token revoke %s of %s", id, t.Identity))
	a.identitiesChanged()
	t, err = a.Store.GetToken(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, tokenInfo(t, a.now()))
}
