// Package session owns the refresh-token lifecycle: the token format, family
// creation, rotation with a grace window, reuse detection (RFC 9700
// §4.14.2), idle and absolute lifetimes, and revocation. It decides; package
// store keeps the records and offers the atomic compare-and-swap.
//
// # Token
//
// A refresh token is "<familyID>.<body>", both unpadded base64url: the
// family id is 16 CSPRNG bytes (22 characters); the body (59 characters)
// is the generation g (8 bytes, big-endian), a key tag (4 bytes: the start
// of SHA-256 of a signing key's kid) and the generation's secret, 32 bytes:
//
//	HMAC-SHA256(k, "silentauth refresh v1" || familyID || g)
//
// with k = keys.Key.Secret("silentauth refresh v1") of the signing key the
// tag names (RefreshKeys). Parsing is strict and bounded; anything else is
// ErrMalformed before the store is asked. Tokens of the format before
// keyed MACs ("<familyID>.<random secret>", 66 characters) still parse,
// for the families written then (see Upgrade).
//
// # What the store holds
//
// Per family: the current generation, the tag of the key its secret was
// made under (4 bytes), when the previous generation stops being accepted, and
// whether the current one has been presented. No secret, no hash, no key:
// any generation's secret is derivable by the server alone, so a dump of
// the store cannot mint or present a token, and a family costs the same
// after any number of rotations.
//
// New secrets use the key that signs at the time of the rotation; a token
// is verified under the key it names, as long as that key is in the
// keyring (keys.Keyring.Key). A key rotation thus logs nobody out while
// the previous key stays in the keys Secret, and every family moves to the
// new key when it next rotates. A token whose MAC does not verify (a
// guess, a forgery, a key gone from the ring) is ErrUnknownSecret.
//
// # Upgrade
//
// A family written before keyed MACs holds SHA-256 hashes of its last 16
// random secrets and its current secret sealed under a key derived from
// the previous one (store.Family.Secrets and Successor). Its tokens are
// judged against the hashes as they were; its next rotation issues a token
// of the keyed format and rewrites it in the keyed form, keeping the
// hashes for that one generation (the old token is then the previous one,
// or a reuse) and dropping the sealed successor. After one more rotation
// the hashes go too, and an old-format token reads ErrUnknownSecret.
//
// # Refresh rules (RFC 9700 §4.14.2, rotation with reuse detection)
//
//   - unknown family: ErrUnknown; revoked: ErrRevoked; idle or absolute
//     lifetime over: ErrExpired. None of these changes anything.
//   - the current secret: rotate. A new secret, the idle deadline moved to
//     min(now+Idle, absolute), one compare-and-swap. Rotated is true.
//   - the previous secret, within Grace of its rotation or while its
//     successor has not been presented by any request: the same successor
//     again (derived once more), no write, Rotated false.
//     Parallel requests carrying the same cookie thus all get the same new
//     token, and so does a client whose answer was lost after the store
//     committed (a proxy that gave up, a client that disconnected).
//   - any older secret (any number of generations back: its MAC proves the
//     server issued it), or the previous one after Grace once its successor
//     has been presented: theft, since two parties have each used a token
//     of the family. The family is revoked ("reuse") and the answer is a
//     *ReuseError matching ErrReuse (or the store fault that prevented the
//     revocation: ErrReuse promises a revoked family).
//   - a secret never issued to the family (a MAC that does not verify, a
//     generation the family has not reached): ErrUnknownSecret. It never
//     revokes, so nobody can log a user out by guessing.
//
// A successor counts as presented once any request carries it (Presented,
// called for every request that brings a refresh cookie) or rotates it.
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
// # Deadlines
//
// Refresh reads the store within the caller's deadline and starts the
// compare-and-swap only when the deadline leaves at least as long as that
// read took (ErrDeadline otherwise): work whose answer nobody can receive
// is not begun. A swap or revocation that has started finishes on
// context.WithoutCancel, bounded in time, even if the caller leaves; its
// answer may then be lost, which the rule above makes harmless.
//
// The compare-and-swap is the guarantee; an in-process singleflight only
// saves work when one replica sees the same token many times at once.
//
// # Provider tokens
//
// A family started by provider login (StartLogin with Provider tokens)
// also carries the identity provider's sealed tokens. With a
// ProviderRefresher (WithProvider), the rotation of such a family once its
// ProviderRefreshAt has come refreshes them too, under one lease across
// replicas, and commits both in one compare-and-swap. See WithProvider for
// the rules.
//
// # Revocation
//
// A family ends for one of a closed set of causes (CauseReuse,
// CauseLogout, CauseBackChannel, CauseAdmin, CauseProvider), stored as its
// RevokeReason. Revoke ends one family, RevokeSubject every family of a
// user, RevokeSID every family started from one provider session
// (back-channel logout). The OnRevoke hook hears of each family once, from
// the Manager whose compare-and-swap revoked it.
//
// Store failures other than the store sentinels are returned wrapped with
// %w and match none of this package's sentinels. After one, Failing
// reports true for a few seconds, so callers can skip optional refreshes.
//
// Manager is safe for concurrent use.
package session

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/sync/singleflight"

	"github.com/silentauth/silentauth/authz/store"
)

// Sentinel errors. Infrastructure failures are returned wrapped with %w and
// match none of these.
var (
	ErrMalformed     = errors.New("session: malformed refresh token")
	ErrUnknown       = errors.New("session: unknown family")           // never revokes anything
	ErrUnknownSecret = errors.New("session: secret never issued")      // never revokes anything
	ErrExpired       = errors.New("session: family expired")           // idle or absolute lifetime over
	ErrRevoked       = errors.New("session: family revoked")           //
	ErrReuse         = errors.New("session: superseded secret reused") // the family is now revoked
	// ErrDeadline: the caller's deadline leaves no time for the swap, so
	// nothing was changed. Not a verdict on the token: an outage.
	ErrDeadline    = errors.New("session: no time left before the request's deadline")
	ErrOtherPolicy = errors.New("session: family started for another policy") // changes nothing
	// ErrProviderGrant: the identity provider ended the grant behind the
	// family (its refresh token was refused as invalid): the family is
	// now revoked, RevokeReason CauseProvider.
	ErrProviderGrant = errors.New("session: the identity provider ended the grant")
	// ErrProviderUnavailable: the identity provider, or the request that
	// holds the family's provider lease, could not answer in time. Nothing
	// changed: not a verdict on the token, an outage.
	ErrProviderUnavailable = errors.New("session: identity provider unavailable")
)

// ReuseError is the ErrReuse of one family: which secret came back. It
// holds no token material.
type ReuseError struct {
	Subject, Family string
	// Presented and Current are the generations of the secret presented
	// and of the family's current one (0 when the record predates
	// generations).
	Presented, Current uint64
}

func (e *ReuseError) Error() string {
	return fmt.Sprintf("%v: family %s, generation %d presented, %d current", ErrReuse, e.Family, e.Presented, e.Current)
}

// Is makes errors.Is(err, ErrReuse) hold.
func (e *ReuseError) Is(target error) bool { return target == ErrReuse }

// Causes of a revocation: a closed set, written to
// store.Family.RevokeReason, passed to the OnRevoke hook and used as a
// metric label.
const (
	CauseReuse       = "reuse"       // a superseded refresh token came back (RFC 9700 §4.14.2)
	CauseLogout      = "logout"      // the user logged out (the logout endpoint)
	CauseBackChannel = "backchannel" // the identity provider's back-channel logout named the session
	CauseAdmin       = "admin"       // an operator: session API or kubectl plugin
	CauseProvider    = "provider"    // the identity provider ended the grant (its refresh token was refused)
)

// Causes lists every cause, for metrics created up front.
func Causes() []string {
	return []string{CauseReuse, CauseLogout, CauseBackChannel, CauseAdmin, CauseProvider}
}

// CauseOf maps a stored RevokeReason onto the closed set of causes:
// records revoked before it was closed say "api" or "subject" (both an
// operator's doing, CauseAdmin). Anything else unknown reads "" (and a
// live family's empty reason too).
func CauseOf(reason string) string {
	switch reason {
	case "api", "subject":
		return CauseAdmin
	case CauseReuse, CauseLogout, CauseBackChannel, CauseAdmin, CauseProvider:
		return reason
	}
	return ""
}

// Revocation is one family becoming revoked, as told to the OnRevoke hook.
// It holds no token material.
type Revocation struct {
	Cause       string // one of the Cause constants
	Subject     string
	Family      string // the family id (the access token's sid)
	ProviderSID string // the identity provider's session id, "" without provider login
	Generation  uint64 // the family's current generation when it was revoked
}

// OnRevoke has f called once for every family that this Manager revokes,
// whatever the cause (reuse, logout, back-channel logout, an operator,
// the provider ending the grant), right after the revocation is stored,
// and never twice for one family: a family someone else revoked first is
// not reported again. f is called synchronously and concurrently and must
// not block (a log line, a counter).
func OnRevoke(f func(Revocation)) Option {
	return func(m *Manager) { m.onRevoke = f }
}

// Bounds of the descriptive fields of Login (store.Family.UserAgent and
// ClientAddress): they come from request headers, and are kept per
// session.
const (
	MaxUserAgent     = 256
	MaxClientAddress = 64
)

// clean returns s without control characters or invalid UTF-8, cut to at
// most max bytes on a character boundary: listings show it to operators
// (a terminal, a log), so nothing in it may steer them.
func clean(s string, max int) string {
	var b strings.Builder
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			continue // bidi overrides and zero-width characters too
		}
		if b.Len()+utf8.RuneLen(r) > max {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

const (
	// maxAttempts bounds the compare-and-swap loops. A loser of a rotation
	// race needs two (its retry takes the grace path), so eight is ample.
	maxAttempts = 8
	// maxCreates bounds Start's retries on a family id collision (2^-128).
	maxCreates = 4
	// detachedTimeout bounds the store calls of a rotation or revocation
	// once they no longer follow the caller's cancellation, so a hung
	// backend cannot hold a goroutine forever.
	detachedTimeout = 10 * time.Second
	// faultHold is how long Failing stays true after a store fault.
	faultHold = 5 * time.Second
)

// Lifetimes of a family. The yaml names are those of the configuration
// file's sessions section. New gives a zero (or negative) field its default
// from DefaultLifetimes.
type Lifetimes struct {
	// Idle ends a session unused for this long. Default 720h (30 days).
	Idle time.Duration `yaml:"idleTTL"`
	// Absolute ends every session this long after login; it is the refresh
	// cookie's Max-Age. Default 2160h (90 days).
	Absolute time.Duration `yaml:"absoluteTTL"`
	// Grace is how long a just-replaced refresh token still yields the same
	// successor (parallel requests). Default 30s.
	Grace time.Duration `yaml:"grace"`
}

// MaxLifetime is the longest Idle and Absolute that Validate accepts: the
// longest lifetime browsers keep a cookie. RFC 6265bis (§4.1.2.1, §4.1.2.2)
// has user agents cap Expires and Max-Age at 400 days, shortening longer
// ones, so a longer session would outlive its refresh cookie.
const MaxLifetime = 400 * 24 * time.Hour

// DefaultLifetimes returns the lifetimes documented on each field.
func DefaultLifetimes() Lifetimes {
	return Lifetimes{Idle: 30 * 24 * time.Hour, Absolute: 90 * 24 * time.Hour, Grace: 30 * time.Second}
}

func (l Lifetimes) withDefaults() Lifetimes {
	def := DefaultLifetimes()
	pick := func(d, v time.Duration) time.Duration {
		if d <= 0 {
			return v
		}
		return d
	}
	return Lifetimes{
		Idle:     pick(l.Idle, def.Idle),
		Absolute: pick(l.Absolute, def.Absolute),
		Grace:    pick(l.Grace, def.Grace),
	}
}

// Validate reports every problem of l at once (errors.Join), each prefixed
// by its field's YAML path under path (as "sessions.idleTTL"): every
// lifetime must be positive, Idle and Absolute at most MaxLifetime, and
// Absolute at least Idle. It judges the fields as given, without defaults,
// and does not change l.
func (l Lifetimes) Validate(path string) error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", path, field, fmt.Sprintf(format, args...)))
	}
	switch {
	case l.Idle <= 0:
		add("idleTTL", "must be positive (got %v)", l.Idle)
	case l.Idle > MaxLifetime:
		add("idleTTL", "%s", cookieAgeProblem(l.Idle))
	}
	switch {
	case l.Absolute <= 0:
		add("absoluteTTL", "must be positive (got %v)", l.Absolute)
	case l.Absolute > MaxLifetime:
		// The refresh cookie's Max-Age runs to the absolute end.
		add("absoluteTTL", "%s", cookieAgeProblem(l.Absolute))
	case l.Idle > 0 && l.Absolute < l.Idle:
		add("absoluteTTL", "must be at least %s.idleTTL (%v)", path, l.Idle)
	}
	if l.Grace <= 0 {
		add("grace", "must be positive (got %v)", l.Grace)
	}
	return errors.Join(errs...)
}

// cookieAgeProblem says why lifetime d, which becomes a cookie's Max-Age,
// is too long.
func cookieAgeProblem(d time.Duration) string {
	return fmt.Sprintf("must be at most %v (400 days): RFC 6265bis caps a cookie's Max-Age and Expires at 400 days, so the cookie would end before the session (got %v)", MaxLifetime, d)
}

// Manager creates, rotates and revokes families.
type Manager struct {
	st  store.Store
	l   Lifetimes
	now func() time.Time
	// sf coalesces concurrent Refresh calls of the same token in this
	// process. Only an optimisation: nil turns it off, leaving the
	// compare-and-swap alone.
	sf *singleflight.Group
	// accepts reports whether policy may refresh a family started for
	// from (never asked when they are equal). nil: no policy accepts
	// another's sessions.
	accepts func(policy, from string) bool
	// faultAt is when a store call last failed (Unix nanoseconds of now).
	faultAt atomic.Int64
	seen    seen
	bg      sync.WaitGroup // rotations and confirmations in flight
	// provider refreshes the provider tokens of families started by
	// provider login (nil: never), one request per family at a time,
	// holding a lease of this long (see provider.go).
	provider ProviderRefresher
	lease    time.Duration
	flights  flights
	onRevoke func(Revocation) // nil: nobody listens
	keys     macKeys          // the refresh MAC keys (RefreshKeys)
}

// flights holds the state of each singleflight call in progress, shared by
// its callers and its work: one record per key while anyone holds it.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	held       int
	inProvider atomic.Bool // the work waits for or calls the identity provider
}

func (fs *flights) hold(k string) *flight {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.m == nil {
		fs.m = make(map[string]*flight)
	}
	f := fs.m[k]
	if f == nil {
		f = new(flight)
		fs.m[k] = f
	}
	f.held++
	return f
}

func (fs *flights) release(k string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f := fs.m[k]; f != nil {
		if f.held--; f.held == 0 {
			delete(fs.m, k)
		}
	}
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
	m.seen.init()
	for _, o := range opts {
		o(m)
	}
	if m.keys.src == nil {
		m.keys.src = processKeys()
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
// true: the token is new). Claims are encoded once (store.Claims).
func (m *Manager) Start(ctx context.Context, subject, policy string, claims map[string]any) (Issued, error) {
	return m.StartLogin(ctx, Login{Subject: subject, Policy: policy, Claims: claims})
}

// Login is what a new family starts from.
type Login struct {
	Subject string         // who logged in; required
	Policy  string         // the policy the session is started for ("" = the default policy)
	Claims  map[string]any // copied into every access token; encoded once (store.Claims), numbers as json.Number
	// Provider, ProviderSID and ProviderRefreshAt are the identity
	// provider's sealed tokens, its session id and when to refresh the
	// tokens first, for a session started by provider login (see
	// store.Family); empty otherwise.
	Provider          []byte
	ProviderSID       string
	ProviderRefreshAt time.Time
	// UserAgent and ClientAddress describe where the login came from (the
	// request's User-Agent and client IP), shown in session listings;
	// empty when unknown. Control characters are dropped and they are cut
	// to MaxUserAgent and MaxClientAddress bytes.
	UserAgent     string
	ClientAddress string
}

// StartLogin creates a family for l and returns its first refresh token
// (Rotated is true: the token is new).
func (m *Manager) StartLogin(ctx context.Context, l Login) (Issued, error) {
	if l.Subject == "" {
		return Issued{}, errors.New("session: start: empty subject")
	}
	claims, err := store.EncodeClaims(l.Claims)
	if err != nil {
		return Issued{}, fmt.Errorf("session: start: %w", err)
	}
	now := m.now()
	absolute := now.Add(m.l.Absolute)
	f := (&store.Family{
		Subject:           l.Subject,
		Policy:            l.Policy,
		Claims:            claims,
		Provider:          l.Provider,
		ProviderSID:       l.ProviderSID,
		ProviderRefreshAt: l.ProviderRefreshAt,
		UserAgent:         clean(l.UserAgent, MaxUserAgent),
		ClientAddress:     clean(l.ClientAddress, MaxClientAddress),
		CreatedAt:         now,
		LastUsedAt:        now,
		IdleExpiresAt:     minTime(now.Add(m.l.Idle), absolute),
		AbsoluteExpiresAt: absolute,
		Generation:        1,
		CurrentSeen:       true, // nothing precedes it: nothing to confirm
		Version:           1,
	}).Clone()
	for range maxCreates {
		f.ID = newID()
		tag, rt, err := m.keys.issue(now, f.ID, f.Generation)
		if err != nil {
			return Issued{}, fmt.Errorf("session: start: %w", err)
		}
		f.RefreshKey = tag
		switch err := m.st.Create(ctx, f); {
		case err == nil:
			return Issued{Family: f, RefreshToken: rt, Rotated: true}, nil
		case errors.Is(err, store.ErrExists):
			continue // a new id (RFC 9700 needs unguessable, not just unique)
		default:
			return Issued{}, m.fault(fmt.Errorf("session: start: %w", err))
		}
	}
	return Issued{}, fmt.Errorf("session: start: %d id collisions: %w", maxCreates, store.ErrExists)
}

// Refresh rotates the refresh token rt for the routes of policy (""
// = the default policy). See the package doc for the rules; a family of
// another policy that policy does not accept is ErrOtherPolicy.
//
// It returns when ctx is done even if the work it started goes on: a
// started swap finishes on its own (see Deadlines in the package doc).
func (m *Manager) Refresh(ctx context.Context, rt, policy string) (Issued, error) {
	t, err := parse(rt)
	if err != nil {
		return Issued{}, err
	}
	if err := ctx.Err(); err != nil {
		return Issued{}, fmt.Errorf("session: refresh: %w", err)
	}
	if m.sf == nil {
		return m.refresh(ctx, t, policy, nil)
	}
	// The policy is part of the key: a follower asking for another policy
	// must not receive a successor its policy may not have.
	key := sha256.Sum256([]byte(rt))
	var leader atomic.Bool
	k := policy + "\x00" + string(key[:])
	// With a provider, the flight's stage, shared by its callers and its
	// work, tells a caller whose context ends what it was waiting for.
	var fl *flight
	if m.provider != nil {
		fl = m.flights.hold(k)
		defer m.flights.release(k)
	}
	ch := m.sf.DoChan(k, func() (any, error) {
		leader.Store(true)
		m.bg.Add(1)
		defer m.bg.Done()
		var inProvider *atomic.Bool
		if m.provider != nil {
			fl := m.flights.hold(k)
			defer m.flights.release(k)
			fl.inProvider.Store(false)
			inProvider = &fl.inProvider
		}
		return m.refresh(ctx, t, policy, inProvider)
	})
	select {
	case <-ctx.Done():
		// Nobody can receive the answer any more. What was started
		// finishes without us; a lost answer is harmless (package doc).
		if fl != nil && fl.inProvider.Load() {
			// Waiting for the provider, or for another request's
			// lease: not the store's fault.
			return Issued{}, fmt.Errorf("session: refresh: %w: %w", ErrProviderUnavailable, ctx.Err())
		}
		// A deadline that passed while the store worked is its slowness.
		return Issued{}, m.fault(fmt.Errorf("session: refresh: %w", ctx.Err()))
	case res := <-ch:
		is, _ := res.Val.(Issued)
		if res.Shared && !leader.Load() && isContextErr(res.Err) && ctx.Err() == nil {
			// The leader's caller left before its swap began, or while
			// it waited for the provider; ours has not.
			return m.refresh(ctx, t, policy, nil)
		}
		if res.Shared && !leader.Load() {
			// A follower got the leader's successor: for it, as for a
			// grace replay, nothing rotated. It gets its own copy.
			is.Rotated = false
			is.Family = is.Family.Clone()
		} else if res.Shared {
			is.Family = is.Family.Clone() // followers hold the original
		}
		return is, res.Err
	}
}

// refresh is Refresh without the coalescing. It sets inProvider (if not
// nil) once it waits for or calls the identity provider.
func (m *Manager) refresh(ctx context.Context, t token, policy string, inProvider *atomic.Bool) (Issued, error) {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		start := time.Now()
		f, err := m.get(ctx, t.id)
		if err != nil {
			return Issued{}, err
		}
		took := time.Since(start)
		// Another policy's session mints nothing here and changes nothing:
		// not rotated, not revoked, whatever the secret (see Policies).
		if !m.serves(policy, f) {
			return Issued{}, ErrOtherPolicy
		}
		now := m.now()
		if err := usable(f, now); err != nil {
			return Issued{}, err
		}
		gen, st, err := m.standing(f, t, now)
		if err != nil {
			return Issued{}, fmt.Errorf("session: refresh: %w", err)
		}
		switch st {
		case current:
			if err := ctx.Err(); err != nil {
				return Issued{}, fmt.Errorf("session: refresh: %w", err)
			}
			if m.providerDue(f, now) {
				if inProvider != nil {
					inProvider.Store(true)
				}
				if now.Before(f.LeaseUntil) {
					// Another request refreshes the provider tokens:
					// wait for its commit, then decide again (our
					// secret is then the previous one: the same
					// successor, no provider call). Not an attempt.
					if err := m.awaitLease(ctx, f); err != nil {
						return Issued{}, err
					}
					attempt--
					continue
				}
				if !timeFor(ctx, took) {
					return Issued{}, ErrDeadline
				}
				is, err := m.refreshProvider(ctx, f, t, now)
				if errors.Is(err, errAgain) {
					continue
				}
				return is, err
			}
			if !timeFor(ctx, took) {
				return Issued{}, ErrDeadline
			}
			next, rt, err := m.rotate(f, now)
			if err != nil {
				return Issued{}, fmt.Errorf("session: refresh: %w", err)
			}
			switch err := m.swap(ctx, f.Version, next); {
			case err == nil:
				return Issued{Family: next, RefreshToken: rt, Rotated: true}, nil
			case errors.Is(err, store.ErrConflict):
				continue // someone rotated first: our secret is now the previous one
			case errors.Is(err, store.ErrNotFound):
				return Issued{}, ErrUnknown
			default:
				return Issued{}, fmt.Errorf("session: refresh: swap: %w", err)
			}
		case replay: // the same successor
			rt, err := m.successor(f, t)
			if err != nil {
				return Issued{}, fmt.Errorf("session: refresh: %w", err)
			}
			return Issued{Family: f, RefreshToken: rt, Rotated: false}, nil
		case reuse: // RFC 9700 §4.14.2
			return Issued{}, m.revokeReuse(ctx, f, gen)
		default: // never issued: do not let a guess log anyone out
			return Issued{}, ErrUnknownSecret
		}
	}
	return Issued{}, fmt.Errorf("session: refresh: %d attempts: %w", maxAttempts, store.ErrConflict)
}

// standing is what presenting a secret means for its family.
type standing int

const (
	unknownSecret standing = iota // never issued (or a legacy hash no longer kept)
	current                       // the current secret: rotate it
	replay                        // the previous one, still answered with the same successor
	reuse                         // superseded: theft
)

// standing classifies token t against f at now, returning the generation
// t names too (0 when unknown). This is the one place the grace rule
// lives: see the package doc. Its error is an outage (no keyring), not a
// verdict.
func (m *Manager) standing(f *store.Family, t token, now time.Time) (uint64, standing, error) {
	previous := now.Before(f.PreviousUntil) || !f.CurrentSeen
	if t.legacy {
		i := match(f.Secrets, hashSecret(t.secret[:]))
		if i < 0 {
			return 0, unknownSecret, nil
		}
		back := uint64(i) // generations behind the current one
		if f.RefreshKey != "" {
			back++ // the first keyed generation followed Secrets[0]
		}
		gen := uint64(0)
		if f.Generation > back {
			gen = f.Generation - back
		}
		switch {
		case back == 0:
			return gen, current, nil
		case back == 1 && previous:
			return gen, replay, nil
		}
		return gen, reuse, nil
	}
	if f.RefreshKey == "" || t.gen > f.Generation {
		// No keyed token issued yet, or a generation not reached: not
		// issued as far as the store knows.
		return 0, unknownSecret, nil
	}
	genuine, err := m.keys.verify(t, now)
	switch {
	case err != nil:
		return 0, unknownSecret, err
	case !genuine: // a guess, a forgery, or a key gone from the ring
		return 0, unknownSecret, nil
	case t.gen == f.Generation && string(t.tag[:]) == f.RefreshKey:
		return t.gen, current, nil
	case t.gen == f.Generation: // under a key the generation was not made with
		return 0, unknownSecret, nil
	case t.gen == f.Generation-1 && previous:
		return t.gen, replay, nil
	}
	// A genuine MAC of an earlier generation: the server issued it, and it
	// was superseded, however long ago.
	return t.gen, reuse, nil
}

// successor returns f's current token again, for a replay of the previous
// one (t): derived under the family's key, or, in a family still in the
// form before keyed MACs, opened from the sealed copy with t's secret.
func (m *Manager) successor(f *store.Family, t token) (string, error) {
	if f.RefreshKey == "" {
		next, err := open(t.secret[:], t.id, f.Successor, f.Secrets[0])
		if err != nil {
			return "", err
		}
		return encodeLegacy(t.id, next), nil
	}
	return m.keys.token(f.RefreshKey, f.ID, f.Generation, m.now())
}

// timeFor reports whether ctx's deadline leaves more than took, the time a
// store round trip just took: a swap started later would likely finish
// after the caller has stopped waiting.
func timeFor(ctx context.Context, took time.Duration) bool {
	deadline, ok := ctx.Deadline()
	return !ok || time.Until(deadline) > took
}

// rotate returns the next version of f (a private copy from Get) and the
// new refresh token, made under the key that signs at now. The absolute
// lifetime never moves. A family in the form before keyed MACs is
// rewritten in the keyed form, keeping its hashes for this one generation
// (see Upgrade in the package doc).
func (m *Manager) rotate(f *store.Family, now time.Time) (*store.Family, string, error) {
	gen := f.Generation + 1
	tag, rt, err := m.keys.issue(now, f.ID, gen)
	if err != nil {
		return nil, "", err
	}
	next := *f
	next.Secrets, next.Successor = nil, nil
	if f.RefreshKey == "" {
		next.Secrets = f.Secrets
	}
	next.RefreshKey = tag
	next.PreviousUntil = now.Add(m.l.Grace)
	next.IdleExpiresAt = minTime(now.Add(m.l.Idle), f.AbsoluteExpiresAt)
	next.LastUsedAt = now
	next.Generation = gen
	next.CurrentSeen = false
	next.Version = f.Version + 1
	return &next, rt, nil
}

// revokeReuse revokes f after the secret of generation presented came
// again and returns a *ReuseError, or the store fault that prevented the
// revocation (then the family is not revoked and saying ErrReuse would be
// a lie).
func (m *Manager) revokeReuse(ctx context.Context, f *store.Family, presented uint64) error {
	if _, err := m.revoke(ctx, f, CauseReuse); err != nil && !errors.Is(err, ErrUnknown) {
		return err
	}
	return &ReuseError{Subject: f.Subject, Family: f.ID, Presented: presented, Current: f.Generation}
}

// Logout revokes the family of rt if rt is its current secret or one that
// Refresh would answer with the same successor. An already revoked family
// is not an error. A superseded secret is a reuse: the family is revoked
// and the answer is ErrReuse. A secret never issued is ErrUnknownSecret
// and changes nothing. Expiry does not matter: logging out of an
// idle-expired family still revokes it.
func (m *Manager) Logout(ctx context.Context, rt string) error {
	_, err := m.LogoutFamily(ctx, rt)
	return err
}

// Presented notes that a request carried refresh token rt. The first time
// this process sees a token, it confirms in the background that the
// token's generation reached its holder (store.Family.CurrentSeen), at
// most once per token and process; Presented itself never waits on the
// store and costs a hash and a map lookup. Malformed tokens are ignored.
func (m *Manager) Presented(rt string) {
	if (len(rt) != tokenLen && len(rt) != legacyLen) || rt[idLen] != '.' || m.Failing() {
		return // a failing store is spared: a later request confirms
	}
	if !m.seen.first(rt) {
		return
	}
	if !m.seen.begin() {
		m.seen.forget(rt) // too many in flight: a later request tries again
		return
	}
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		defer m.seen.end()
		ctx, cancel := context.WithTimeout(context.Background(), detachedTimeout)
		defer cancel()
		if err := m.Confirm(ctx, rt); err != nil {
			m.seen.forget(rt)
		}
	}()
}

// Wait waits for the background work started so far: rotations whose
// caller left, and Presented's confirmations (shutdown calls it).
func (m *Manager) Wait() { m.bg.Wait() }

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// Confirm records that rt was presented: if it is its family's current
// secret and not yet marked, the family's CurrentSeen is set. Anything
// else (an older secret, a revoked or expired family) changes nothing and
// is not an error; a malformed token or a store fault is.
func (m *Manager) Confirm(ctx context.Context, rt string) error {
	t, err := parse(rt)
	if err != nil {
		return err
	}
	for range maxAttempts {
		f, err := m.get(ctx, t.id)
		switch {
		case errors.Is(err, ErrUnknown):
			return nil
		case err != nil:
			return err
		}
		if f.CurrentSeen || usable(f, m.now()) != nil {
			return nil
		}
		if _, st, err := m.standing(f, t, m.now()); err != nil || st != current {
			return err
		}
		next := *f
		next.CurrentSeen = true
		next.Version = f.Version + 1
		switch err := m.swap(ctx, f.Version, &next); {
		case err == nil, errors.Is(err, store.ErrNotFound):
			return nil
		case !errors.Is(err, store.ErrConflict):
			return fmt.Errorf("session: confirm: swap: %w", err)
		}
	}
	return fmt.Errorf("session: confirm: %d attempts: %w", maxAttempts, store.ErrConflict)
}

// Failing reports whether a store call failed within the last few seconds
// (see faultHold), so that work which may be skipped is skipped.
func (m *Manager) Failing() bool {
	at := m.faultAt.Load()
	return at != 0 && m.now().Before(time.Unix(0, at).Add(faultHold))
}

// fault notes a store failure for Failing and returns err. A caller's
// cancellation is not the store's fault; its deadline is (the store was
// slower than the request could wait).
func (m *Manager) fault(err error) error {
	if !errors.Is(err, context.Canceled) {
		m.faultAt.Store(m.now().UnixNano())
	}
	return err
}

// Revoke revokes family id for cause (one of the Cause constants, else an
// error; "" reads CauseAdmin). ErrUnknown if absent. Revoking a revoked family is a
// no-op that keeps the first cause.
func (m *Manager) Revoke(ctx context.Context, id, cause string) error {
	cause = cmp.Or(cause, CauseAdmin)
	if CauseOf(cause) != cause {
		return fmt.Errorf("session: revoke: unknown cause %q", cause)
	}
	if !validID(id) {
		return ErrUnknown // cannot exist: spare the store
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	f, err := m.get(ctx, id)
	if err != nil {
		return err
	}
	_, err = m.revoke(ctx, f, cause)
	return err
}

// RevokeSubject revokes every live family of subject started before
// startedBefore (zero: whenever) for cause ("" reads CauseAdmin), one by
// one, and returns how many it revoked. Families already revoked or
// expired are skipped and not counted. A failure on one family does not
// stop the others; the failures are returned joined.
//
// The bound lets a logout reported for a moment end the sessions that
// existed then and no later one, so delivering the report again is
// harmless (OpenID Connect back-channel logout retries).
func (m *Manager) RevokeSubject(ctx context.Context, subject, cause string, startedBefore time.Time) (int, error) {
	cause = cmp.Or(cause, CauseAdmin)
	if CauseOf(cause) != cause {
		return 0, fmt.Errorf("session: revoke subject: unknown cause %q", cause)
	}
	fams, err := m.st.Subject(ctx, subject)
	if err != nil {
		return 0, m.fault(fmt.Errorf("session: revoke subject: %w", err))
	}
	return m.revokeAll(ctx, fams, cause, startedBefore)
}

// RevokeSID revokes every live family started by provider login whose
// provider session id is sid (OpenID Connect back-channel logout names
// the provider's session, one or more of ours), for cause (""
// reads CauseBackChannel), and returns how many it newly revoked. An empty
// sid revokes nothing. startedBefore and failures are as in
// RevokeSubject.
func (m *Manager) RevokeSID(ctx context.Context, sid, cause string, startedBefore time.Time) (int, error) {
	cause = cmp.Or(cause, CauseBackChannel)
	if CauseOf(cause) != cause {
		return 0, fmt.Errorf("session: revoke sid: unknown cause %q", cause)
	}
	if sid == "" {
		return 0, nil
	}
	fams, err := m.st.BySID(ctx, sid)
	if err != nil {
		return 0, m.fault(fmt.Errorf("session: revoke sid: %w", err))
	}
	return m.revokeAll(ctx, fams, cause, startedBefore)
}

// revokeAll revokes the live families among fams started before
// startedBefore (zero: all) for cause and counts those it revoked itself.
func (m *Manager) revokeAll(ctx context.Context, fams []*store.Family, cause string, startedBefore time.Time) (int, error) {
	ctx, cancel := detach(ctx)
	defer cancel()
	n := 0
	var errs []error
	for _, f := range fams {
		if usable(f, m.now()) != nil || (!startedBefore.IsZero() && !f.CreatedAt.Before(startedBefore)) {
			continue
		}
		switch did, err := m.revoke(ctx, f, cause); {
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
		return nil, m.fault(fmt.Errorf("session: list: %w", err))
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
	ctx, cancel := detach(ctx) // a revocation that has started finishes
	defer cancel()
	for range maxAttempts {
		if !f.RevokedAt.IsZero() {
			return false, nil
		}
		next := *f
		next.RevokedAt = m.now()
		next.RevokeReason = reason
		next.Version = f.Version + 1
		err := m.swap(ctx, f.Version, &next)
		switch {
		case err == nil:
			m.revoked(&next)
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

// revoked tells the OnRevoke hook that this Manager has just revoked f
// (the stored revocation: each family is revoked by one swap only).
func (m *Manager) revoked(f *store.Family) {
	if m.onRevoke != nil {
		m.onRevoke(Revocation{Cause: f.RevokeReason, Subject: f.Subject, Family: f.ID, ProviderSID: f.ProviderSID, Generation: f.Generation})
	}
}

// swap runs the store's compare-and-swap on a context detached from the
// caller's cancellation: once started, a change finishes (bounded by
// detachedTimeout) whether or not anyone waits for its answer.
func (m *Manager) swap(ctx context.Context, expected uint64, next *store.Family) error {
	ctx, cancel := detach(ctx)
	defer cancel()
	err := m.st.Swap(ctx, expected, next)
	if err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
		return m.fault(err)
	}
	return err
}

// get reads family id: ErrUnknown if absent, other failures wrapped.
func (m *Manager) get(ctx context.Context, id string) (*store.Family, error) {
	f, err := m.st.Get(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, ErrUnknown
	case err != nil:
		return nil, m.fault(fmt.Errorf("session: get family: %w", err))
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

// detach returns a context that ignores the caller's cancellation and
// deadline but is still bounded in time.
func detach(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), detachedTimeout)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// maxSeen bounds the tokens a process remembers as confirmed; past it the
// memory starts afresh (a forgotten token is only confirmed again).
const maxSeen = 1 << 20

// maxConfirming bounds the confirmations in flight at once.
const maxConfirming = 64

// seen remembers the refresh tokens this process has confirmed (or is
// confirming), by family id and a keyed hash of the token: no token is
// kept in memory.
type seen struct {
	seed maphash.Seed
	mu   sync.Mutex
	m    atomic.Pointer[sync.Map] // family id → uint64 hash of the token
	n    atomic.Int64
	sem  chan struct{}
}

func (s *seen) init() {
	s.seed = maphash.MakeSeed()
	s.m.Store(new(sync.Map))
	s.sem = make(chan struct{}, maxConfirming)
}

// first reports whether rt is new to this process, and remembers it.
func (s *seen) first(rt string) bool {
	h := maphash.String(s.seed, rt)
	m := s.m.Load()
	if v, ok := m.Load(rt[:idLen]); ok && v.(uint64) == h {
		return false
	}
	if s.n.Add(1) > maxSeen {
		s.mu.Lock()
		if s.n.Load() > maxSeen {
			s.m.Store(new(sync.Map))
			s.n.Store(1)
		}
		s.mu.Unlock()
		m = s.m.Load()
	}
	prev, loaded := m.Swap(strings.Clone(rt[:idLen]), h)
	return !loaded || prev.(uint64) != h
}

// forget drops rt, so that the next request carrying it tries again.
func (s *seen) forget(rt string) {
	h := maphash.String(s.seed, rt)
	s.m.Load().CompareAndDelete(rt[:idLen], h)
}

func (s *seen) begin() bool {
	select {
	case s.sem <- struct{}{}:
		return true
	default:
		return false
	}
}

func (s *seen) end() { <-s.sem }
