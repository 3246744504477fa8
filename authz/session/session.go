// Package session owns the refresh-token lifecycle: the token format, family
// creation, rotation with a grace window, reuse detection (RFC 9700
// §4.14.2), idle and absolute lifetimes, and revocation. It decides; package
// store keeps the records and offers the atomic compare-and-swap.
//
// # Token
//
// A refresh token is "<familyID>.<secret>": 16 and 32 CSPRNG bytes, unpadded
// base64url (22 and 43 characters). Parsing is strict and bounded; anything
// else is ErrMalformed before the store is asked.
//
// # What the store holds
//
// Per family: SHA-256 hashes of the last 16 secrets issued, newest first,
// and the current secret sealed (AES-256-GCM, key = HKDF-SHA256 of the
// previous secret and the family id). No usable token is ever stored, so a
// dump of the store cannot refresh anything.
//
// # Refresh rules (RFC 9700 §4.14.2, rotation with reuse detection)
//
//   - unknown family: ErrUnknown; revoked: ErrRevoked; idle or absolute
//     lifetime over: ErrExpired. None of these changes anything.
//   - the current secret: rotate. A new secret, the idle deadline moved to
//     min(now+Idle, absolute), one compare-and-swap. Rotated is true.
//   - the previous secret within Grace of its rotation: the same successor
//     again (opened from the sealed copy), no write, Rotated false. Parallel
//     requests carrying the same cookie thus all get the same new token.
//   - any older secret, or the previous one after Grace: theft. The family
//     is revoked ("reuse") and the answer is ErrReuse (or the store fault
//     that prevented the revocation: ErrReuse promises a revoked family).
//   - a secret never issued to the family, or one more than 15 generations
//     old (its hash is gone): ErrUnknownSecret. It never revokes, so nobody
//     can log a user out by guessing.
//
// # Policies
//
// A family belongs to the policy it was started for (store.Family.Policy;
// "" is the default policy): tokens for a policy's audience come only from
// its own sessions. Refresh names the policy that asks, and a family
// started for another policy is ErrOtherPolicy, before anything is written,
// unless the Manager was told that the asking policy accepts that policy's
// sessions (AcceptSessions). Without this, one policy's session presented
// on another policy's route would be refreshed into the other audience, and
// alternating between routes would rotate the refresh token on every
// request. Logout is not bound to a policy: it only ever takes rights away,
// and whoever holds the current secret may end the session from any route.
//
// ErrExpired for the absolute lifetime is seen only until the store drops
// the family (the instant AbsoluteExpiresAt has passed, see store.Store);
// after that the same token reads ErrUnknown. Neither revokes anything.
//
// The compare-and-swap is the guarantee; an in-process singleflight only
// saves work when one replica sees the same token many times at once. A
// rotation or revocation that has started finishes even if the caller's
// context is cancelled: its store calls run on context.WithoutCancel.
//
// Store failures other than the store sentinels are returned wrapped with
// %w and match none of this package's sentinels.
//
// Manager is safe for concurrent use.
package session

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/silentauth/silentauth/authz/store"
)

// Sentinel errors. Infrastructure failures are returned wrapped with %w and
// match none of these.
var (
	ErrMalformed     = errors.New("session: malformed refresh token")
	ErrUnknown       = errors.New("session: unknown family")                    // never revokes anything
	ErrUnknownSecret = errors.New("session: secret never issued")               // never revokes anything
	ErrExpired       = errors.New("session: family expired")                    // idle or absolute lifetime over
	ErrRevoked       = errors.New("session: family revoked")                    //
	ErrReuse         = errors.New("session: superseded secret reused")          // the family is now revoked
	ErrOtherPolicy   = errors.New("session: family started for another policy") // changes nothing
)

// Revocation reasons written to store.Family.RevokeReason.
const (
	reasonLogout  = "logout"
	reasonReuse   = "reuse"
	reasonAPI     = "api"
	reasonSubject = "subject"
)

const (
	// maxSecrets caps store.Family.Secrets. A secret older than that many
	// generations is no longer recognised: it reads as ErrUnknownSecret,
	// not ErrReuse.
	maxSecrets = 16
	// maxAttempts bounds the compare-and-swap loops. A loser of a rotation
	// race needs two (its retry takes the grace path), so eight is ample.
	maxAttempts = 8
	// maxCreates bounds Start's retries on a family id collision (2^-128).
	maxCreates = 4
	// detachedTimeout bounds the store calls of a rotation or revocation
	// once they no longer follow the caller's cancellation, so a hung
	// backend cannot hold a goroutine forever.
	detachedTimeout = 10 * time.Second
)

// Lifetimes of a family. A zero (or negative) field takes its default.
type Lifetimes struct {
	Idle     time.Duration // default 30 days
	Absolute time.Duration // default 90 days
	Grace    time.Duration // default 30 s: the previous secret still yields the same successor
}

func (l Lifetimes) withDefaults() Lifetimes {
	def := func(d, v time.Duration) time.Duration {
		if d <= 0 {
			return v
		}
		return d
	}
	return Lifetimes{
		Idle:     def(l.Idle, 30*24*time.Hour),
		Absolute: def(l.Absolute, 90*24*time.Hour),
		Grace:    def(l.Grace, 30*time.Second),
	}
}

// Manager creates, rotates and revokes families.
type Manager struct {
	st  store.Store
	l   Lifetimes
	now func() time.Time
	// sf coalesces concurrent Refresh calls of the same token in this
	// process. Only an optimisation: nil turns it off (tests do, to prove
	// the compare-and-swap alone is correct).
	sf *singleflight.Group
	// accepts reports whether policy may refresh a family started for
	// from (never asked when they are equal). nil: no policy accepts
	// another's sessions.
	accepts func(policy, from string) bool
}

// Option configures a Manager.
type Option func(*Manager)

// AcceptSessions lets a policy refresh families started for another one:
// accepts(policy, from) reports whether the routes of policy may refresh
// a family started for from ("" is the default policy). It is called
// concurrently and must not block. Without this option a family is
// refreshed only for its own policy.
func AcceptSessions(accepts func(policy, from string) bool) Option {
	return func(m *Manager) { m.accepts = accepts }
}

// New returns a Manager over st. now defaults to time.Now.
func New(st store.Store, l Lifetimes, now func() time.Time, opts ...Option) *Manager {
	if now == nil {
		now = time.Now
	}
	m := &Manager{st: st, l: l.withDefaults(), now: now, sf: new(singleflight.Group)}
	for _, o := range opts {
		o(m)
	}
	return m
}

// serves reports whether policy may refresh family f.
func (m *Manager) serves(policy string, f *store.Family) bool {
	return f.Policy == policy || (m.accepts != nil && m.accepts(policy, f.Policy))
}

// Issued is the result of Start or Refresh.
type Issued struct {
	Family       *store.Family // the family after the change (read-only)
	RefreshToken string        // the current refresh token (secret; never log)
	Rotated      bool          // false when a grace replay returned the existing successor
}

// String describes i without the refresh token.
func (i Issued) String() string {
	id := ""
	if i.Family != nil {
		id = i.Family.ID
	}
	return fmt.Sprintf("session.Issued{Family: %q, Rotated: %t, RefreshToken: [redacted]}", id, i.Rotated)
}

// GoString is String, so %#v does not print the token either.
func (i Issued) GoString() string { return i.String() }

// LogValue implements slog.LogValuer: the family id, never the token.
func (i Issued) LogValue() slog.Value {
	id := ""
	if i.Family != nil {
		id = i.Family.ID
	}
	return slog.GroupValue(slog.String("family", id), slog.Bool("rotated", i.Rotated), slog.String("refresh_token", "[redacted]"))
}

// SessionEnd is when the session ends if unused: min(idle, absolute).
// It is the zero time when Family is nil.
func (i Issued) SessionEnd() time.Time {
	if i.Family == nil {
		return time.Time{}
	}
	return minTime(i.Family.IdleExpiresAt, i.Family.AbsoluteExpiresAt)
}

// Start creates a family for subject with claims, started for policy (""
// = the default policy), and returns its first refresh token (Rotated is
// true: the token is new). Claims are deep-copied (see store.Family.Clone).
func (m *Manager) Start(ctx context.Context, subject, policy string, claims map[string]any) (Issued, error) {
	if subject == "" {
		return Issued{}, errors.New("session: start: empty subject")
	}
	secret := newSecret()
	now := m.now()
	absolute := now.Add(m.l.Absolute)
	f := (&store.Family{
		Subject:           subject,
		Policy:            policy,
		Claims:            claims,
		CreatedAt:         now,
		IdleExpiresAt:     minTime(now.Add(m.l.Idle), absolute),
		AbsoluteExpiresAt: absolute,
		Secrets:           [][]byte{hashSecret(secret[:])},
		Version:           1,
	}).Clone()
	for range maxCreates {
		f.ID = newID()
		switch err := m.st.Create(ctx, f); {
		case err == nil:
			return Issued{Family: f, RefreshToken: encode(f.ID, secret[:]), Rotated: true}, nil
		case errors.Is(err, store.ErrExists):
			continue // a new id (RFC 9700 needs unguessable, not just unique)
		default:
			return Issued{}, fmt.Errorf("session: start: %w", err)
		}
	}
	return Issued{}, fmt.Errorf("session: start: %d id collisions: %w", maxCreates, store.ErrExists)
}

// Refresh rotates the refresh token rt for the routes of policy (""
// = the default policy). See the package doc for the rules; a family of
// another policy that policy does not accept is ErrOtherPolicy.
//
// A cancelled ctx stops Refresh only before it reads the store; from then
// on it runs to completion.
func (m *Manager) Refresh(ctx context.Context, rt, policy string) (Issued, error) {
	t, err := parse(rt)
	if err != nil {
		return Issued{}, err
	}
	if err := ctx.Err(); err != nil {
		return Issued{}, fmt.Errorf("session: refresh: %w", err)
	}
	if m.sf == nil {
		return m.refresh(ctx, t, policy)
	}
	// The policy is part of the key: a follower asking for another policy
	// must not receive a successor its policy may not have.
	key := sha256.Sum256([]byte(rt))
	leader := false // Do runs fn in the leader's goroutine: no data race
	v, err, _ := m.sf.Do(policy+"\x00"+string(key[:]), func() (any, error) {
		leader = true
		return m.refresh(ctx, t, policy)
	})
	is := v.(Issued)
	if !leader {
		// A follower got the leader's successor: for it, as for a grace
		// replay, nothing rotated. It gets its own copy of the family.
		is.Rotated = false
		is.Family = is.Family.Clone()
	}
	return is, err
}

func (m *Manager) refresh(ctx context.Context, t token, policy string) (Issued, error) {
	ctx, cancel := detach(ctx)
	defer cancel()
	h := hashSecret(t.secret[:])
	for range maxAttempts {
		f, err := m.get(ctx, t.id)
		if err != nil {
			return Issued{}, err
		}
		// Another policy's session mints nothing here and changes nothing:
		// not rotated, not revoked, whatever the secret (see Policies).
		if !m.serves(policy, f) {
			return Issued{}, ErrOtherPolicy
		}
		now := m.now()
		if err := usable(f, now); err != nil {
			return Issued{}, err
		}
		switch i := match(f.Secrets, h); {
		case i == 0: // the current secret: rotate
			next, rt, err := m.rotate(f, t, now)
			if err != nil {
				return Issued{}, err
			}
			switch err := m.st.Swap(ctx, f.Version, next); {
			case err == nil:
				return Issued{Family: next, RefreshToken: rt, Rotated: true}, nil
			case errors.Is(err, store.ErrConflict):
				continue // someone rotated first: our secret is now Secrets[1]
			case errors.Is(err, store.ErrNotFound):
				return Issued{}, ErrUnknown
			default:
				return Issued{}, fmt.Errorf("session: refresh: swap: %w", err)
			}
		case i == 1 && now.Before(f.PreviousUntil): // grace: the same successor
			next, err := open(t.secret[:], t.id, f.Successor, f.Secrets[0])
			if err != nil {
				return Issued{}, fmt.Errorf("session: refresh: %w", err)
			}
			return Issued{Family: f, RefreshToken: encode(t.id, next), Rotated: false}, nil
		case i >= 1: // superseded secret presented again: RFC 9700 §4.14.2
			return Issued{}, m.revokeReuse(ctx, f)
		default: // never issued: do not let a guess log anyone out
			return Issued{}, ErrUnknownSecret
		}
	}
	return Issued{}, fmt.Errorf("session: refresh: %d attempts: %w", maxAttempts, store.ErrConflict)
}

// rotate returns the next version of f (a private copy from Get) and the
// new refresh token. The absolute lifetime never moves.
func (m *Manager) rotate(f *store.Family, t token, now time.Time) (*store.Family, string, error) {
	secret := newSecret()
	sealed, err := seal(t.secret[:], t.id, secret[:])
	if err != nil {
		return nil, "", err
	}
	next := *f
	next.Secrets = make([][]byte, 0, min(len(f.Secrets)+1, maxSecrets))
	next.Secrets = append(next.Secrets, hashSecret(secret[:]))
	next.Secrets = append(next.Secrets, f.Secrets[:min(len(f.Secrets), maxSecrets-1)]...)
	next.PreviousUntil = now.Add(m.l.Grace)
	next.Successor = sealed
	next.IdleExpiresAt = minTime(now.Add(m.l.Idle), f.AbsoluteExpiresAt)
	next.Version = f.Version + 1
	return &next, encode(t.id, secret[:]), nil
}

// revokeReuse revokes f after a reuse and returns ErrReuse, or the store
// fault that prevented the revocation (then the family is not revoked and
// saying ErrReuse would be a lie).
func (m *Manager) revokeReuse(ctx context.Context, f *store.Family) error {
	if _, err := m.revoke(ctx, f, reasonReuse); err != nil && !errors.Is(err, ErrUnknown) {
		return err
	}
	return ErrReuse
}

// Logout revokes the family of rt if rt is its current or in-grace secret.
// An already revoked family is not an error. A superseded secret is a reuse:
// the family is revoked and the answer is ErrReuse. A secret never issued is
// ErrUnknownSecret and changes nothing. Expiry does not matter: logging out
// of an idle-expired family still revokes it.
func (m *Manager) Logout(ctx context.Context, rt string) error {
	t, err := parse(rt)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("session: logout: %w", err)
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	f, err := m.get(ctx, t.id)
	if err != nil {
		return err
	}
	if !f.RevokedAt.IsZero() {
		return nil
	}
	switch i := match(f.Secrets, hashSecret(t.secret[:])); {
	case i == 0, i == 1 && m.now().Before(f.PreviousUntil):
		_, err := m.revoke(ctx, f, reasonLogout)
		return err
	case i >= 1:
		return m.revokeReuse(ctx, f)
	default:
		return ErrUnknownSecret
	}
}

// Revoke revokes family id (session API). ErrUnknown if absent. Revoking a
// revoked family is a no-op that keeps the first reason. An empty reason
// reads "api".
func (m *Manager) Revoke(ctx context.Context, id, reason string) error {
	if !validID(id) {
		return ErrUnknown // cannot exist: spare the store
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	f, err := m.get(ctx, id)
	if err != nil {
		return err
	}
	_, err = m.revoke(ctx, f, cmp.Or(reason, reasonAPI))
	return err
}

// RevokeSubject revokes every live family of subject, one by one, and
// returns how many it revoked. Families already revoked or expired are
// skipped and not counted. A failure on one family does not stop the
// others; the failures are returned joined.
func (m *Manager) RevokeSubject(ctx context.Context, subject string) (int, error) {
	fams, err := m.st.Subject(ctx, subject)
	if err != nil {
		return 0, fmt.Errorf("session: revoke subject: %w", err)
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	n := 0
	var errs []error
	for _, f := range fams {
		if usable(f, m.now()) != nil {
			continue
		}
		switch did, err := m.revoke(ctx, f, reasonSubject); {
		case err == nil && did:
			n++
		case err != nil && !errors.Is(err, ErrUnknown): // gone meanwhile: nothing to do
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// List returns the families of subject, live or revoked, not expired past
// their absolute lifetime, oldest first.
func (m *Manager) List(ctx context.Context, subject string) ([]*store.Family, error) {
	fams, err := m.st.Subject(ctx, subject)
	if err != nil {
		return nil, fmt.Errorf("session: list: %w", err)
	}
	slices.SortFunc(fams, func(a, b *store.Family) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return fams, nil
}

// FamilyID returns the family id of a well-formed refresh token.
func FamilyID(rt string) (string, error) {
	t, err := parse(rt)
	if err != nil {
		return "", err
	}
	return t.id, nil
}

// revoke marks f revoked with reason by compare-and-swap, re-reading the
// family on conflict. It reports whether this call did the revoking (false
// when someone else revoked it first). ErrUnknown if the family is gone.
func (m *Manager) revoke(ctx context.Context, f *store.Family, reason string) (bool, error) {
	for range maxAttempts {
		if !f.RevokedAt.IsZero() {
			return false, nil
		}
		next := *f
		next.RevokedAt = m.now()
		next.RevokeReason = reason
		next.Version = f.Version + 1
		err := m.st.Swap(ctx, f.Version, &next)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, store.ErrNotFound):
			return false, ErrUnknown
		case !errors.Is(err, store.ErrConflict):
			return false, fmt.Errorf("session: revoke: swap: %w", err)
		}
		if f, err = m.get(ctx, f.ID); err != nil {
			return false, err
		}
	}
	return false, fmt.Errorf("session: revoke: %d attempts: %w", maxAttempts, store.ErrConflict)
}

// get reads family id: ErrUnknown if absent, other failures wrapped.
func (m *Manager) get(ctx context.Context, id string) (*store.Family, error) {
	f, err := m.st.Get(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, ErrUnknown
	case err != nil:
		return nil, fmt.Errorf("session: get family: %w", err)
	}
	return f, nil
}

// usable reports why f cannot be refreshed: revoked, or past its idle or
// absolute deadline (deadlines are exclusive: at the instant, it is over).
func usable(f *store.Family, now time.Time) error {
	switch {
	case !f.RevokedAt.IsZero():
		return ErrRevoked
	case !now.Before(f.AbsoluteExpiresAt), !now.Before(f.IdleExpiresAt):
		return ErrExpired
	}
	return nil
}

// detach returns a context that ignores the caller's cancellation (a
// started rotation or revocation must finish: STYLE "A rotation in flight
// finishes on context.WithoutCancel") but is still bounded in time.
func detach(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), detachedTimeout)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
