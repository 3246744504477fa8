// Package authztest builds what the tests of authz and authz/httpauthz
// run an Engine over, the same way for both: a real ES256 keyring, a memory
// store (optionally seen through a wrapper), a session manager, a minter
// and verifiers, all on one fake clock. It does not import authz, so
// authz's own in-package tests can use it.
package authztest

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/access"
	"github.com/silentauth/silentauth/authz/cookie"
	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/authz/store/memstore"
	"github.com/silentauth/silentauth/authz/token"
	"github.com/silentauth/silentauth/internal/testenv/fakeclock"
)

// Cookies are the test cookie names and flags.
var Cookies = cookie.Policy{
	Access: "__Host-sa-at", Refresh: "__Host-sa-rt", Hint: "__Host-sa-exp",
	Path: "/", Secure: true, SameSite: http.SameSiteLaxMode,
}

// AccessTTL and Grace are the tokens' lifetime and the refresh grace.
const (
	AccessTTL = 15 * time.Minute
	Grace     = 30 * time.Second
)

// Lifetimes are the sessions' lifetimes.
var Lifetimes = session.Lifetimes{Idle: 30 * 24 * time.Hour, Absolute: 90 * 24 * time.Hour, Grace: Grace}

// Start is the fake clock's first instant.
var Start = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// Policy is the default route's policy of the tests: a login page, two
// public paths, two claim headers, the session endpoints.
func Policy() access.Policy {
	return access.Policy{
		LoginURL: "/login", ReturnToParam: "return_to",
		PublicPaths:  []string{"/healthz", "/static/"},
		ClaimHeaders: map[string]string{"x-user-id": "sub", "x-user-role": "role"},
		RefreshPath:  "/auth/refresh", LogoutPath: "/auth/logout",
		AccessTokenHeader: "x-silentauth-access-token",
	}
}

// Parts are an Engine's parts but its options.
type Parts struct {
	Clock    *fakeclock.Clock
	Ring     *keys.Holder
	Key      *keys.Key
	Mem      *memstore.Store // the records themselves, for assertions that must not count
	Store    store.Store     // what the session manager uses: Mem, or a wrapper of it
	Sessions *session.Manager
	Minter   *token.Minter // for audience "app"
}

// New builds Parts, the memory store seen through wrap (nil: no wrapper).
func New(t testing.TB, wrap func(store.Store) store.Store) *Parts {
	t.Helper()
	p := &Parts{Clock: fakeclock.New(Start), Ring: &keys.Holder{}}
	k, err := keys.Generate(keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keys.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	p.Key = k
	p.Ring.Store(kr)
	p.Mem = memstore.New(p.Clock.Now)
	p.Store = p.Mem
	if wrap != nil {
		p.Store = wrap(p.Mem)
	}
	p.Sessions = session.New(p.Store, Lifetimes, p.Clock.Now)
	p.Minter = p.MinterFor("app")
	return p
}

// MinterFor mints access tokens for audience.
func (p *Parts) MinterFor(audience string) *token.Minter {
	return token.NewMinter(token.MinterOptions{Issuer: "silentauth", Audience: audience, TTL: AccessTTL, Keys: p.Ring, Now: p.Clock.Now})
}

// Verifier verifies access tokens for audience.
func (p *Parts) Verifier(audience string) *token.Verifier {
	return token.NewVerifier(token.VerifierOptions{Issuer: "silentauth", Audiences: []string{audience}, Leeway: 30 * time.Second, Keys: p.Ring, Now: p.Clock.Now, MaxTokenBytes: 8192, CacheSize: 100})
}

// Login starts a session of sessions for policy as the session API would,
// its first access token minted by minter (that policy's), and returns its
// tokens.
func Login(t testing.TB, sessions *session.Manager, policy string, minter *token.Minter, subject string, claims map[string]any) (access, refresh string) {
	t.Helper()
	iss, err := sessions.Start(context.Background(), subject, policy, claims)
	if err != nil {
		t.Fatal(err)
	}
	extra, err := iss.Family.Claims.Map()
	if err != nil {
		t.Fatal(err)
	}
	access, _, err = minter.Mint(subject, iss.Family.ID, extra)
	if err != nil {
		t.Fatal(err)
	}
	return access, iss.RefreshToken
}
