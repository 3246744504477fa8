package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/silentauth/silentauth/authz/store"
)

// ProviderRefresher refreshes the identity provider's tokens of a family.
type ProviderRefresher interface {
	// RefreshProvider returns the family's next sealed provider tokens and
	// when to refresh them next (zero: never). f is a private copy: its
	// Provider holds the tokens to refresh from. An error matching
	// ErrProviderGrant means the provider ended the grant (invalid_grant):
	// the family is revoked. Any other error leaves everything as it was.
	//
	// ctx is detached from the request that asked and ends when the
	// family's lease does: honour it, so that no other request takes over
	// while this call may still use the provider's refresh token.
	RefreshProvider(ctx context.Context, f *store.Family) (sealed []byte, refreshAt time.Time, err error)
}

const (
	// DefaultProviderLease is the lease WithProvider uses when given none.
	DefaultProviderLease = 10 * time.Second
	// leasePoll is how often a request waiting for another one's provider
	// refresh reads the family again.
	leasePoll = 25 * time.Millisecond
)

// errAgain tells refresh to read the family and decide again.
var errAgain = errors.New("session: read the family again")

// WithProvider has the Manager refresh the provider tokens of families
// started by provider login, with p, inside its own rotation.
//
// When the current secret of such a family is presented at or after its
// ProviderRefreshAt, one request across all replicas takes the family's
// lease (LeaseUntil = now+lease, by compare-and-swap) and calls p. Every
// other request for the family meanwhile waits, reading the family every
// 25 ms within its own deadline, until the lease holder commits or the
// lease runs out; it then decides again, and typically finds its secret
// now the previous one: the same successor, no provider call. A request
// whose deadline ends first gets ErrProviderUnavailable. Grace replays
// never call the provider.
//
// The holder commits our rotation and the new provider tokens (and clears
// the lease) in one compare-and-swap: a session never holds a new refresh
// token of ours with old provider tokens, or the other way round.
//
// A provider call that has started must not lose its answer: the provider
// may already have rotated its own refresh token, so the tokens in the
// store would be spent. It therefore runs detached from the request that
// asked, bounded by the lease alone, and its result is committed even if
// that request has left (like the swaps, see Deadlines); a lost answer is
// harmless, a replay of the same token yields the committed successor.
//
// lease bounds the provider call, so it must be longer than the provider
// answers in, and shorter than the provider's reuse window for refresh
// tokens (the time during which it still accepts a just-replaced refresh
// token): should the holder die after the provider answered but before the
// commit, the next request takes the lease once it runs out and refreshes
// again from the tokens in the store, which the provider then still
// accepts. A holder that dies before calling just delays the refresh by
// the lease. lease ≤ 0 means DefaultProviderLease (10s). LeaseUntil is
// written by the holder's clock and read by the others': replicas' clocks
// must agree to well within the lease.
//
// Should a holder commit after its lease ran out and another request took
// over, the first commit wins: a commit is made only while the family
// still holds the provider tokens it refreshed from, so two refreshes from
// the same tokens never overwrite each other, and the later one's tokens
// are dropped (the provider's reuse window covers the one used twice).
//
// The provider's answer ErrProviderGrant revokes the family (RevokeReason
// "provider") and Refresh returns an error matching ErrProviderGrant,
// unless the family holds other provider tokens by then (a late holder's
// spent tokens, refused: the session stands and the request decides
// again). Any
// other failure releases the lease (best effort) and Refresh returns an
// error matching ErrProviderUnavailable, the family otherwise unchanged.
// Families without provider tokens, Managers without WithProvider, and
// refreshes before ProviderRefreshAt rotate as before.
func WithProvider(p ProviderRefresher, lease time.Duration) Option {
	return func(m *Manager) {
		m.provider, m.lease = p, lease
		if lease <= 0 {
			m.lease = DefaultProviderLease
		}
	}
}

// providerDue reports whether rotating f at now must refresh its provider
// tokens first. A zero ProviderRefreshAt means never (the provider issued
// no refresh token, or its tokens no longer open).
func (m *Manager) providerDue(f *store.Family, now time.Time) bool {
	return m.provider != nil && f.Provider != nil && !f.ProviderRefreshAt.IsZero() && !now.Before(f.ProviderRefreshAt)
}

// awaitLease waits until family f (as read, leased by another request)
// changes or its lease runs out, reading it every leasePoll. It returns
// nil then, ErrProviderUnavailable (with ctx's error) if ctx ends first.
func (m *Manager) awaitLease(ctx context.Context, f *store.Family) error {
	unavailable := func(err error) error {
		return fmt.Errorf("session: refresh: waiting for the provider refresh of another request: %w: %w", ErrProviderUnavailable, err)
	}
	t := time.NewTimer(leasePoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return unavailable(ctx.Err())
		case <-t.C:
		}
		g, err := m.get(ctx, f.ID)
		switch {
		case err != nil && ctx.Err() != nil:
			return unavailable(ctx.Err())
		case err != nil:
			return err
		case g.Version != f.Version || !m.now().Before(g.LeaseUntil):
			return nil
		}
		t.Reset(leasePoll)
	}
}

// refreshProvider takes f's lease, refreshes its provider tokens and
// commits them with our rotation of t (f's current secret). The provider
// call and the commit run detached from ctx, bounded by the lease and by
// detachedTimeout; if ctx ends first, the caller gets
// ErrProviderUnavailable and the work goes on. errAgain: read the family
// and decide again.
func (m *Manager) refreshProvider(ctx context.Context, f *store.Family, t token, now time.Time) (Issued, error) {
	leased := *f
	leased.LeaseUntil = now.Add(m.lease)
	leased.Version = f.Version + 1
	// The call's bound is taken before the lease is written, so the call
	// ends no later than the lease, whatever the swap took.
	bound := time.Now().Add(m.lease)
	switch err := m.swap(ctx, f.Version, &leased); {
	case errors.Is(err, store.ErrConflict):
		return Issued{}, errAgain // someone else changed it: perhaps took the lease
	case errors.Is(err, store.ErrNotFound):
		return Issued{}, ErrUnknown
	case err != nil:
		return Issued{}, fmt.Errorf("session: refresh: take the provider lease: %w", err)
	}

	type result struct {
		is  Issued
		err error
	}
	done := make(chan result, 1)
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		is, err := m.renewProvider(context.WithoutCancel(ctx), &leased, t, bound)
		done <- result{is, err}
	}()
	select {
	case r := <-done:
		return r.is, r.err
	case <-ctx.Done():
		// The refresh goes on and commits without us; a replay of the
		// same token then yields its successor.
		return Issued{}, fmt.Errorf("session: refresh: provider refresh still running: %w: %w", ErrProviderUnavailable, ctx.Err())
	}
}

// renewProvider calls the provider for leased (the family as this request
// leased it) and commits the answer; ctx is detached from the caller.
func (m *Manager) renewProvider(ctx context.Context, leased *store.Family, t token, bound time.Time) (Issued, error) {
	pctx, cancel := context.WithDeadline(ctx, bound)
	sealed, refreshAt, err := m.provider.RefreshProvider(pctx, leased.Clone())
	cancel()
	switch {
	case errors.Is(err, ErrProviderGrant):
		return Issued{}, m.revokeGrant(ctx, leased, err)
	case err == nil && len(sealed) == 0:
		err = errors.New("no tokens returned")
		fallthrough
	case err != nil:
		m.releaseLease(ctx, leased)
		// %v: the provider's own deadline or cancellation is not the
		// caller's, and must not read as one.
		return Issued{}, fmt.Errorf("session: refresh: %w: %v", ErrProviderUnavailable, err)
	}
	return m.commitProvider(ctx, leased, t, sealed, refreshAt)
}

// commitProvider stores the provider's new tokens with our rotation of t,
// clearing the lease, in one compare-and-swap. On a conflict it reads the
// family again: while it still holds the provider tokens we refreshed
// from, the change was another (a confirmation, a revocation, another
// replica's rotation without provider) and ours is applied on top; once
// it holds others, someone committed a refresh from the same tokens first
// and ours are dropped (see WithProvider). If t is no longer current when
// the tokens are committed, only they are, and errAgain has the caller
// decide again.
func (m *Manager) commitProvider(ctx context.Context, leased *store.Family, t token, sealed []byte, refreshAt time.Time) (Issued, error) {
	f := leased
	for range maxAttempts {
		now := m.now()
		if usable(f, now) != nil {
			return Issued{}, errAgain // revoked or expired meanwhile: say so
		}
		var (
			next *store.Family
			rt   string
		)
		_, st, err := m.standing(f, t, now)
		if err != nil {
			return Issued{}, fmt.Errorf("session: refresh: %w", err)
		}
		if st == current {
			if next, rt, err = m.rotate(f, now); err != nil {
				return Issued{}, fmt.Errorf("session: refresh: %w", err)
			}
		} else {
			n := *f
			n.Version = f.Version + 1
			next = &n
		}
		next.Provider, next.ProviderRefreshAt, next.LeaseUntil = sealed, refreshAt, time.Time{}
		switch err := m.swap(ctx, f.Version, next); {
		case err == nil && rt != "":
			return Issued{Family: next, RefreshToken: rt, Rotated: true}, nil
		case err == nil:
			return Issued{}, errAgain
		case errors.Is(err, store.ErrNotFound):
			return Issued{}, ErrUnknown
		case !errors.Is(err, store.ErrConflict):
			// The provider's new tokens are lost with this answer; the
			// lease runs out and the next request refreshes again from
			// the stored ones, within the provider's reuse window.
			return Issued{}, fmt.Errorf("session: refresh: commit provider tokens: %w", err)
		}
		g, err := m.get(ctx, f.ID)
		if err != nil {
			return Issued{}, err
		}
		if !bytes.Equal(g.Provider, leased.Provider) {
			return Issued{}, errAgain // a refresh from the same tokens was committed first
		}
		f = g
	}
	return Issued{}, fmt.Errorf("session: refresh: commit provider tokens: %d attempts: %w", maxAttempts, store.ErrConflict)
}

// revokeGrant revokes the family after the provider refused the tokens
// leased holds (cause), and returns an error matching ErrProviderGrant. As
// with ErrReuse, the sentinel promises a revoked family: a store fault
// that prevented the revocation is returned instead. If the family holds
// other provider tokens by now, the refusal was of spent tokens (this
// request outlived its lease and another committed a refresh first): the
// session is not revoked, and errAgain has the caller decide again.
func (m *Manager) revokeGrant(ctx context.Context, leased *store.Family, cause error) error {
	f := leased
	for range maxAttempts {
		switch {
		case !bytes.Equal(f.Provider, leased.Provider):
			return errAgain
		case f.RevokedAt.IsZero():
			next := *f
			next.RevokedAt, next.RevokeReason = m.now(), CauseProvider
			next.Version = f.Version + 1
			err := m.swap(ctx, f.Version, &next)
			if err == nil {
				m.revoked(&next)
			}
			switch {
			case errors.Is(err, store.ErrConflict):
				g, err := m.get(ctx, f.ID)
				if err != nil {
					return err
				}
				f = g
				continue
			case err != nil && !errors.Is(err, store.ErrNotFound):
				return fmt.Errorf("session: refresh: the provider ended the grant, but revoking the family failed: %w", err)
			}
		}
		return fmt.Errorf("session: refresh: %w: %v", ErrProviderGrant, cause)
	}
	return fmt.Errorf("session: refresh: revoke after the provider ended the grant: %d attempts: %w", maxAttempts, store.ErrConflict)
}

// releaseLease clears the lease this request took on leased, best effort:
// if it cannot, the lease runs out by itself. A lease taken over by
// someone else (another LeaseUntil) is left alone.
func (m *Manager) releaseLease(ctx context.Context, leased *store.Family) {
	f := leased
	for range maxAttempts {
		if !f.LeaseUntil.Equal(leased.LeaseUntil) {
			return
		}
		n := *f
		n.LeaseUntil = time.Time{}
		n.Version = f.Version + 1
		if err := m.swap(ctx, f.Version, &n); !errors.Is(err, store.ErrConflict) {
			return
		}
		g, err := m.get(ctx, f.ID)
		if err != nil {
			return
		}
		f = g
	}
}
