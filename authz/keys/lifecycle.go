package keys

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// member is one key of a Keyring.
type member struct {
	key        *Key
	entry      Entry  // Name and timestamps; zero for NewKeyring keys
	verifyOnly bool   // NewKeyring's other keys: never sign, verify forever
	jwk        []byte // the public JWK, as published

	// until is when the key stops verifying and leaves the JWKS; zero:
	// never. It is retire-at + keep, or later for a key that kept signing
	// after its retire-at (see signsUntil).
	until time.Time
	// refreshUntil is when the key stops verifying refresh-token MACs;
	// zero: never. It is retire-at + Lifecycle.RefreshKeep, or later like
	// until.
	refreshUntil time.Time
}

// verifiesAt reports whether m may verify tokens at now.
func (m *member) verifiesAt(now time.Time) bool { return m.until.IsZero() || now.Before(m.until) }

// refreshesAt reports whether m may verify refresh-token MACs at now.
func (m *member) refreshesAt(now time.Time) bool {
	return m.refreshUntil.IsZero() || now.Before(m.refreshUntil)
}

// stateAt is the state table of the Secret format: the state at now of a
// key with entry e that verifies until until (zero: forever).
func stateAt(e Entry, until, now time.Time) State {
	switch {
	case !until.IsZero() && !now.Before(until):
		return StateGone
	case !e.RetireAt.IsZero() && !now.Before(e.RetireAt):
		return StateRetiring
	case !e.ActivateAt.IsZero() && now.Before(e.ActivateAt):
		return StateNext
	default:
		return StateActive
	}
}

// activated reports whether e's activate-at has come by now (whatever its
// retire-at).
func activated(e Entry, now time.Time) bool {
	return e.ActivateAt.IsZero() || !now.Before(e.ActivateAt)
}

// newer orders the active keys: the latest activate-at signs, ties broken
// by the greatest name, so every replica picks the same key.
func newer(a, b Entry) bool {
	if c := a.ActivateAt.Compare(b.ActivateAt); c != 0 {
		return c > 0
	}
	return a.Name > b.Name
}

// signerAt chooses the key that signs at now, and whether that is a
// fallback because no key is active at now. It never returns nil for
// members of which one may sign.
func signerAt(ms []*member, now time.Time) (signer *member, degraded bool) {
	var active, retired, early *member
	for _, m := range ms {
		e := m.entry
		switch {
		case m.verifyOnly:
		case !activated(e, now):
			// Before every activate-at (a clock behind the one that built
			// the ring): the key due first, ties by the least name.
			if early == nil || e.ActivateAt.Before(early.entry.ActivateAt) ||
				e.ActivateAt.Equal(early.entry.ActivateAt) && e.Name < early.entry.Name {
				early = m
			}
		case e.RetireAt.IsZero() || now.Before(e.RetireAt):
			if active == nil || newer(e, active.entry) {
				active = m
			}
		default:
			// Every activated key has retired: keep the one whose active
			// time ended last rather than fail every Mint. Its tokens must
			// still verify, so signsUntil keeps it verifying.
			if retired == nil || e.RetireAt.After(retired.entry.RetireAt) ||
				e.RetireAt.Equal(retired.entry.RetireAt) && newer(e, retired.entry) {
				retired = m
			}
		}
	}
	switch {
	case active != nil:
		return active, false
	case retired != nil:
		return retired, true
	default:
		return early, true
	}
}

// signsUntil returns the last moment m may sign (zero: never ends): its
// retire-at, unless it is the degraded signer from then on (no key active
// at its retire-at, and it retired last): then it signs until the next key
// activates, or forever. A key stops verifying access TTL + leeway after
// it, and refresh tokens Lifecycle.RefreshKeep after it.
func signsUntil(m *member, ms []*member) time.Time {
	retire := m.entry.RetireAt
	if m.verifyOnly || retire.IsZero() {
		return time.Time{}
	}
	if s, degraded := signerAt(ms, retire); degraded && s == m {
		var next time.Time
		for _, o := range ms {
			if a := o.entry.ActivateAt; !o.verifyOnly && a.After(retire) && (next.IsZero() || a.Before(next)) {
				next = a
			}
		}
		return next // zero: it signs as long as no successor comes
	}
	return retire
}

// newKeyring builds a Keyring from members in JWKS order: their JWKs, the
// kid index (refusing a kid twice) and the algorithms.
func newKeyring(ms []*member) (*Keyring, error) {
	r := &Keyring{members: ms, byKID: make(map[string]*member, len(ms))}
	for _, m := range ms {
		if prev, dup := r.byKID[m.key.ID]; dup {
			if m.entry.Name == "" {
				return nil, fmt.Errorf("%w: %s", ErrDuplicateKID, m.key.ID)
			}
			return nil, fmt.Errorf("%w: %s and %s hold the same key %s", ErrDuplicateKID, prev.entry.Name, m.entry.Name, m.key.ID)
		}
		r.byKID[m.key.ID] = m
		j, err := publicJWK(m.key.Public) // public members only: never d, p, q
		if err != nil {
			return nil, err
		}
		j.Kid, j.Alg, j.Use = m.key.ID, string(m.key.Alg), "sig"
		if m.jwk, err = json.Marshal(j); err != nil {
			return nil, fmt.Errorf("keys: marshal JWK: %w", err)
		}
		if !r.HasAlg(string(m.key.Alg)) {
			r.algs = append(r.algs, string(m.key.Alg))
		}
	}
	return r, nil
}

// jwksAt assembles the JWKS of the keys visible at now and its ETag: a
// hash of the body, so the same set of keys gives the same ETag on every
// replica.
func (r *Keyring) jwksAt(now time.Time) (body []byte, etag string) {
	body = append(body, `{"keys":[`...)
	sep := ""
	for _, m := range r.members {
		if m.verifiesAt(now) {
			body = append(append(body, sep...), m.jwk...)
			sep = ","
		}
	}
	body = append(body, `]}`...)
	sum := sha256.Sum256(body)
	return body, `"` + hex.EncodeToString(sum[:16]) + `"`
}

// KeyStatus describes one key of a Keyring at a given time, for `keys
// list`-style views, the verbose health view and metrics.
type KeyStatus struct {
	Name  string // entry name; "" for NewKeyring and LoadDir keys
	KID   string
	Alg   Alg
	State State
	// Signing is true for the one key that signs at that time.
	Signing bool
	// The entry's timestamps; zero when absent (and for NewKeyring keys).
	PublishedAt, ActivateAt, RetireAt time.Time
	// VerifiesUntil is when the key leaves the JWKS and stops verifying;
	// zero while no such time is set.
	VerifiesUntil time.Time
	// RefreshesUntil is when the key stops verifying refresh tokens
	// (RefreshKey), at or after VerifiesUntil: until then its entry must
	// stay in the Secret to keep the sessions it last rotated. Zero while
	// no such time is set.
	RefreshesUntil time.Time
}

// States describes every key of the ring at now, in JWKS order. A key's
// State follows the table of the Secret format, except that a key that
// still verifies is never reported gone: a retired key that signed as a
// degraded fallback verifies until its tokens expire, and reads retiring.
// Keys of NewKeyring and LoadDir read active (the one that signs) or
// retiring (verification only). The slice is the caller's.
func (r *Keyring) States(now time.Time) []KeyStatus {
	signer, _ := signerAt(r.members, now)
	out := make([]KeyStatus, len(r.members))
	for i, m := range r.members {
		st := stateAt(m.entry, m.until, now)
		if m.verifyOnly {
			st = StateRetiring
		}
		out[i] = KeyStatus{
			Name: m.entry.Name, KID: m.key.ID, Alg: m.key.Alg, State: st, Signing: m == signer,
			PublishedAt: m.entry.PublishedAt, ActivateAt: m.entry.ActivateAt, RetireAt: m.entry.RetireAt,
			VerifiesUntil: m.until, RefreshesUntil: m.refreshUntil,
		}
	}
	return out
}

// Degraded explains why signing at now is not as the Secret intends, or
// returns "" when a key is active. It is not "" when every key's retire-at
// has passed without a successor (the most recently active key keeps
// signing and verifying), or when now is before every activate-at.
func (r *Keyring) Degraded(now time.Time) string {
	s, degraded := signerAt(r.members, now)
	switch {
	case !degraded:
		return ""
	case activated(s.entry, now):
		return fmt.Sprintf("no key is active: every key's retire-at has passed; still signing with %s (kid %s, retire-at %s) until a new key is activated",
			s.entry.Name, s.key.ID, stamp(s.entry.RetireAt))
	default:
		return fmt.Sprintf("no key is active yet: signing early with %s (kid %s, activate-at %s)", s.entry.Name, s.key.ID, stamp(s.entry.ActivateAt))
	}
}
