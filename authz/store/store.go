// Package store defines where refresh-token families live and the one atomic
// primitive every backend offers: compare-and-swap on a family's version.
// The rotation policy (grace, reuse, lifetimes) lives in package session;
// a backend only keeps records and swaps them atomically.
//
// A Family holds no secret: a refresh token's secret is a MAC under a key
// the server derives from its signing keys, so nothing in a store can be
// presented as a token (a store dump must not let anyone refresh).
package store

import (
	"bytes"
	"context"
	"errors"
	"time"
)

// Sentinel errors every backend returns (wrapped or not).
var (
	ErrNotFound = errors.New("store: family not found")
	ErrConflict = errors.New("store: family changed concurrently")
	ErrExists   = errors.New("store: family already exists")
)

// Family is one refresh-token family: a login session and the generation
// of its current refresh token.
type Family struct {
	ID      string // random public id, also the access token's sid
	Subject string // who the session belongs to
	Claims  Claims // the session's own claims, encoded once, copied into every access token
	// Policy names the policy the session was started for ("" = the
	// default policy): only that policy's routes, and those configured to
	// accept its sessions, may refresh it. Fixed at creation.
	Policy string

	// The times are kept to the millisecond at least (redisstore
	// truncates to it, memstore keeps nanoseconds) and come back in UTC.
	CreatedAt time.Time
	// LastUsedAt is when a refresh token of the family was last used to
	// rotate it (CreatedAt until the first rotation).
	LastUsedAt        time.Time
	IdleExpiresAt     time.Time // moved forward by each rotation, never past AbsoluteExpiresAt
	AbsoluteExpiresAt time.Time // fixed at creation

	// Generation counts the secrets issued to the family: 1 at creation,
	// one more with every rotation (0 in records written before it was
	// kept). Generation g's secret is a MAC over the family id and g, so
	// the server can derive any generation and the store keeps none.
	Generation uint64
	// RefreshKey names the signing key whose derived MAC key made the
	// current generation's secret: its 4-byte tag (package session's
	// keyTag), the one a token carries; "" while the current secret is
	// still one of the format before keyed MACs (in Secrets).
	RefreshKey string
	// PreviousUntil is when the previous generation stops being accepted
	// (grace window).
	PreviousUntil time.Time
	// Secrets and Successor are kept by families written before keyed
	// MACs: SHA-256 hashes of the random secrets issued, newest first,
	// and the current one sealed under a key derived from the previous
	// one. Package session rewrites such a family in the keyed form on
	// its next rotation, keeping Secrets (and dropping Successor) for that
	// one generation so an old token is still recognised as the previous
	// one or as reuse; both are nil for families started since.
	Secrets   [][]byte
	Successor []byte
	// CurrentSeen reports that a request has presented the current secret
	// since it was issued: whoever rotated to it received the answer. Until
	// then the previous secret still yields the same successor, so an
	// answer lost on its way (a proxy timeout, a client gone) never turns
	// the holder's next refresh into a reuse.
	CurrentSeen bool

	RevokedAt time.Time // zero while the family is live
	// RevokeReason is why: one of package session's causes ("reuse",
	// "logout", "backchannel", "admin", "provider"); records revoked
	// before the causes were a closed set may also say "api" or "subject"
	// (both meaning "admin").
	RevokeReason string

	// UserAgent and ClientAddress describe where the session was started
	// (the login request's User-Agent and client IP), for listings only;
	// package session bounds and cleans them. Fixed at creation; "" when
	// unknown.
	UserAgent     string
	ClientAddress string

	// Provider holds the identity provider's tokens of a session started
	// by provider login, sealed by the server: opaque to the store and to
	// package session. nil for other sessions.
	Provider []byte
	// ProviderSID is the provider's session id (the ID token's sid), kept
	// for back-channel logout: Store.BySID finds the families by it.
	ProviderSID string
	// ProviderRefreshAt is when the provider tokens must next be
	// refreshed (zero: never).
	ProviderRefreshAt time.Time
	// LeaseUntil: while it is in the future, one request owns the
	// provider refresh of this family and the others wait for its commit
	// (see package session).
	LeaseUntil time.Time

	// Version increases by one with every swap; the CAS compares it.
	Version uint64
}

// Clone returns a deep copy of f: changing the copy or its byte slices
// never changes f, and the other way round (Claims are immutable). A nil f
// clones to nil. Clone is safe for concurrent use as long as nobody
// mutates f meanwhile.
func (f *Family) Clone() *Family {
	if f == nil {
		return nil
	}
	c := *f
	if f.Secrets != nil {
		// One backing array for every hash: a family is cloned on each
		// store read and write, and it keeps up to 16 hashes.
		size := 0
		for _, h := range f.Secrets {
			size += len(h)
		}
		buf := make([]byte, 0, size)
		c.Secrets = make([][]byte, len(f.Secrets))
		for i, h := range f.Secrets {
			if h != nil {
				start := len(buf)
				buf = append(buf, h...)
				c.Secrets[i] = buf[start:len(buf):len(buf)] // capped: an append cannot spill into the next hash
			}
		}
	}
	c.Successor = bytes.Clone(f.Successor)
	c.Provider = bytes.Clone(f.Provider)
	return &c
}

// Store keeps families. Implementations are safe for concurrent use and
// drop a family once its AbsoluteExpiresAt has passed (now strictly after
// it; at the instant itself the family is still there, so package session
// can still answer "expired"). They copy what they are given and what they
// return: a caller never shares memory with the stored record.
//
// Every backend must pass storetest.Run (and storetest.RunSession).
type Store interface {
	// Create stores a new family (Version 1). ErrExists if the id is taken.
	Create(ctx context.Context, f *Family) error
	// Get returns a copy of the family, or ErrNotFound.
	Get(ctx context.Context, id string) (*Family, error)
	// Swap replaces the family whose Version is expected by next
	// (next.Version must be expected+1) in one atomic step. ErrConflict if
	// the stored version differs, ErrNotFound if it is gone.
	Swap(ctx context.Context, expected uint64, next *Family) error
	// Subject lists the families of subject, live or revoked, not expired.
	Subject(ctx context.Context, subject string) ([]*Family, error)
	// BySID lists the families whose ProviderSID is sid, live or revoked,
	// not expired (OpenID Connect back-channel logout names a provider
	// session, not a family). The index behind it follows Create and Swap
	// like the subject index. An empty sid has no families.
	BySID(ctx context.Context, sid string) ([]*Family, error)
	// Claim records key until until and reports true to the first caller,
	// false to every later one while the record lives: single-use markers
	// (an OIDC login's state, a logout token's jti). Like a family, the
	// record lives through the instant until itself and is gone once the
	// store's clock is past it; after that the key can be claimed again,
	// so until must outlast whatever the marker guards. Keys live apart
	// from family ids. An until not after now is an error.
	Claim(ctx context.Context, key string, until time.Time) (bool, error)
}
