package identity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gatehouse-dev/gatehouse/internal/resource"
	"github.com/gatehouse-dev/gatehouse/internal/store"
)

// AdminIdentity is the identity the first admin token belongs to.
const AdminIdentity = "admin"

const bootstrapKey = "bootstrap.admin_token_id"

// Bootstrap creates the admin identity and a non-expiring admin token the
// first time a store is used, and hands the token to deliver inside the
// same transaction: if deliver fails (say, the token file cannot be
// written) nothing is committed and the next start tries again, so the
// only admin token is never lost. On later calls, or on a store another
// node already bootstrapped, it does nothing and returns created=false.
func Bootstrap(ctx context.Context, st store.Store, now time.Time, deliver func(token string) error) (created bool, err error) {
	err = st.Tx(ctx, func(tx store.Store) error {
		if _, err := tx.GetMeta(ctx, bootstrapKey); err == nil {
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if _, err := tx.PutIdentity(ctx, resource.Identity{Name: AdminIdentity, Type: resource.IdentityUser, Groups: []string{"admins"}}); err != nil {
			return err
		}
		tok, rec, err := NewToken(AdminIdentity, resource.RoleAdmin, 0, "bootstrap admin token", now)
		if err != nil {
			return err
		}
		if err := tx.CreateToken(ctx, rec); err != nil {
			return err
		}
		if err := tx.SetMeta(ctx, bootstrapKey, rec.ID); err != nil {
			return err
		}
		if err := deliver(tok); err != nil {
			return err
		}
		created = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("bootstrap admin: %w", err)
	}
	return created, nil
}
