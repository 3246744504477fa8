package session

import (
	"context"
	"fmt"

	"github.com/silentauth/silentauth/authz/store"
)

// LogoutFamily is Logout that also returns the family rt belongs to, as it
// was read before the revocation (its Provider tokens included), so that
// the caller can end the identity provider's side of the session too
// (RP-initiated logout). The family is returned only when rt is the
// current secret or one Refresh would answer with the same successor,
// whether this call revoked the family or it was revoked already: its
// provider tokens are handed only to whoever holds the session. For a
// superseded secret the family is revoked and the answer is a *ReuseError
// with a nil family; a secret never issued is ErrUnknownSecret and changes
// nothing. The returned family is a private copy.
func (m *Manager) LogoutFamily(ctx context.Context, rt string) (*store.Family, error) {
	t, err := parse(rt)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("session: logout: %w", err)
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	f, err := m.get(ctx, t.id)
	if err != nil {
		return nil, err
	}
	gen, st, err := m.standing(f, t, m.now())
	if err != nil {
		return nil, fmt.Errorf("session: logout: %w", err)
	}
	switch st {
	case current, replay:
		if f.RevokedAt.IsZero() {
			if _, err := m.revoke(ctx, f.Clone(), CauseLogout); err != nil {
				return nil, err
			}
		}
		return f, nil
	case reuse:
		if !f.RevokedAt.IsZero() {
			return nil, nil // as Logout: a revoked family is not an error
		}
		return nil, m.revokeReuse(ctx, f, gen)
	default:
		if !f.RevokedAt.IsZero() {
			return nil, nil
		}
		return nil, ErrUnknownSecret
	}
}
