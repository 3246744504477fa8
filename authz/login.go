package authz

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/silentauth/silentauth/authz/cookie"
	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/authz/oidc"
	"github.com/silentauth/silentauth/authz/seal"
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store"
)

// Login is provider login (OpenID Connect): a page load without a usable
// session is sent to the identity provider, and the provider's answer at
// the callback path starts a session exactly as the session API does.
//
// Each login flow has its own cookie named after its state (package
// cookie), holding its nonce, PKCE verifier, return path and policy sealed
// under the signing keys (package seal): several tabs logging in at once
// each find their own flow, and a flow is single-use (the store claims its
// state). The provider's tokens never reach the browser: they are sealed
// into the session family, bound to its subject.
type Login struct {
	Provider LoginProvider
	// Keys seal the flow cookies and the provider's tokens.
	Keys    keys.Source
	Options oidc.Options
	// Store claims each flow's state once.
	Store store.Store
	// Log receives what the operator must know of the provider's answers
	// (nil: discarded).
	Log *slog.Logger

	noRefresh sync.Once
}

// LoginProvider is the identity provider as the Check uses it (an
// *oidc.Provider).
type LoginProvider interface {
	AuthURL(redirectURL, state, nonce, verifier string) string
	Exchange(ctx context.Context, redirectURL, code, verifier, nonce string) (*oidc.Login, error)
	// Revoke revokes a session's grant at the provider (RFC 7009).
	Revoke(ctx context.Context, t oidc.Tokens) error
	// EndSessionURL is the provider's end-session request for an ID
	// token ("" when the provider has no end_session_endpoint).
	EndSessionURL(idTokenHint string) string
	// VerifyLogout verifies a back-channel logout token.
	VerifyLogout(ctx context.Context, raw string) (*oidc.LogoutToken, error)
}

var _ LoginProvider = (*oidc.Provider)(nil)

// Failures of a login flow's callback that are not the provider's.
var (
	// errLoginState: no pending flow matches the callback's state: the
	// flow expired, was already completed (a replay), or belongs to
	// another browser.
	errLoginState = errors.New("authz: no pending login flow for this state")
)

// flow is one login in progress, as sealed into its cookie.
type flow struct {
	Nonce    string    `json:"n"`
	Verifier string    `json:"v"`
	ReturnTo string    `json:"r"`
	Policy   string    `json:"p,omitempty"`
	Created  time.Time `json:"c"`
}

// flowAD binds a flow's sealed value to its state: a value moved into
// another state's cookie does not open.
func flowAD(state string) []byte { return []byte("silentauth login flow\x00" + state) }

// ProviderAD binds the provider's sealed tokens to the session's subject:
// tokens moved into another user's family do not open.
func ProviderAD(subject string) []byte { return []byte("silentauth provider tokens\x00" + subject) }

// random returns n random bytes, base64url without padding.
func random(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// startLogin answers a page load without a usable session (deny keeps the
// reason it was denied for): a 302 to the
// provider's authorization endpoint with a fresh state, nonce and PKCE
// verifier, and the flow's cookie. Pending flows beyond
// maxPendingLogins-1 are dropped, oldest first, so that headers never
// grow past what proxies accept; a flow cookie that does not open is
// dropped too.
func (e *route) startLogin(r *Request, jar cookie.Jar, denied Decision) Decision {
	l := e.login
	now := e.now()
	state := random(16)
	f := flow{Nonce: random(16), Verifier: oauth2.GenerateVerifier(), ReturnTo: returnPath(r), Policy: e.name, Created: now}
	plain, _ := json.Marshal(f)
	sealed, err := seal.Seal(l.Keys, now, plain, flowAD(state))
	if err != nil {
		return e.deny(r, err)
	}
	d := Decision{Status: http.StatusFound, Reason: denied.Reason, Err: denied.Err, Level: denied.Level, Event: denied.Event}
	// Cookies the deny clears (a session that is over) go alongside.
	d.SetCookie = denied.SetCookie
	d.Response = []Header{
		{"cache-control", "no-store"},
		{"location", l.Provider.AuthURL(l.Options.RedirectURLFor(r.Scheme, r.Host), state, f.Nonce, f.Verifier)},
	}
	d.SetCookie = append(d.SetCookie, e.cookies.SetLogin(state, base64.RawURLEncoding.EncodeToString(sealed), l.Options.LoginTTL))
	d.SetCookie = append(d.SetCookie, e.dropLogins(e.cookies.Logins(jar), l.Options.MaxPendingLogins-1)...)
	return d
}

// dropLogins returns the Set-Cookie values that clear the flows beyond
// keep, oldest first, and every flow cookie that does not open.
func (e *route) dropLogins(pending []cookie.Login, keep int) []string {
	type aged struct {
		state   string
		created time.Time
	}
	var open []aged
	var clear []string
	for _, c := range pending {
		if f, err := e.openFlow(c); err == nil {
			open = append(open, aged{c.State, f.Created})
		} else {
			clear = append(clear, e.cookies.ClearLogin(c.State))
		}
	}
	slices.SortFunc(open, func(a, b aged) int { return a.created.Compare(b.created) })
	for len(open) > max(keep, 0) {
		clear = append(clear, e.cookies.ClearLogin(open[0].state))
		open = open[1:]
	}
	return clear
}

// openFlow opens a flow cookie.
func (e *route) openFlow(c cookie.Login) (flow, error) {
	var f flow
	sealed, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return f, errLoginState
	}
	plain, err := seal.Open(e.login.Keys, sealed, flowAD(c.State))
	if err != nil {
		return f, errLoginState
	}
	if err := json.Unmarshal(plain, &f); err != nil {
		return f, errLoginState
	}
	return f, nil
}

// callback answers the provider's redirect back: the flow of its state
// must be pending in this browser and unused, the code is exchanged with
// the flow's verifier, the ID token is verified against the flow's nonce,
// and then a session starts exactly as the session API starts one: the
// three cookies are set, the flow cookie is cleared, and the browser goes
// back to the page it first asked for (a path on this host: no open
// redirect).
func (e *route) callback(ctx context.Context, r *Request, jar cookie.Jar) Decision {
	if r.Method != http.MethodGet {
		return e.deny(r, errMethod)
	}
	q, err := url.ParseQuery(r.Query)
	if err != nil {
		return e.deny(r, errLoginState)
	}
	state := q.Get("state")
	pending := e.cookies.Logins(jar)
	i := slices.IndexFunc(pending, func(c cookie.Login) bool { return c.State == state })
	if state == "" || i < 0 {
		return e.deny(r, errLoginState)
	}
	clearFlow := e.cookies.ClearLogin(state)
	denyFlow := func(err error) Decision {
		d := e.deny(r, err)
		d.SetCookie = append(d.SetCookie, clearFlow)
		return d
	}
	f, err := e.openFlow(pending[i])
	now := e.now()
	if err != nil || now.After(f.Created.Add(e.login.Options.LoginTTL)) {
		return denyFlow(errLoginState)
	}
	if code := q.Get("error"); code != "" {
		return denyFlow(oidc.CallbackError(code, q.Get("error_description")))
	}
	// Single-use: a second callback with this state, from anywhere, is
	// refused even while the cookie lives.
	first, err := e.login.Store.Claim(ctx, "login:"+state, f.Created.Add(e.login.Options.LoginTTL))
	if err != nil {
		return e.deny(r, err) // an outage: the flow stays, the user may retry
	}
	if !first {
		return denyFlow(errLoginState)
	}
	rt := e.Engine.routeFor(f.Policy)
	redirect := e.login.Options.RedirectURLFor(r.Scheme, r.Host)
	login, err := e.login.Provider.Exchange(ctx, redirect, q.Get("code"), f.Verifier, f.Nonce)
	if err != nil {
		return denyFlow(err)
	}
	if login.Tokens.RefreshToken == "" {
		e.login.noRefresh.Do(func() {
			if e.login.Log != nil {
				e.login.Log.Warn("the identity provider issues no refresh token: its tokens are never refreshed, and sessions live to their own lifetime "+
					"(ask for the offline_access scope, or Google's authParams access_type=offline and prompt=consent)", "issuer", e.login.Options.IssuerURL)
			}
		})
	}
	provider, err := kept(login.Tokens).MarshalBinary()
	if err != nil {
		return denyFlow(err)
	}
	sealed, err := seal.Seal(e.login.Keys, now, provider, ProviderAD(login.Subject))
	if err != nil {
		return denyFlow(err)
	}
	iss, err := e.sessions.StartLogin(ctx, session.Login{
		Subject: login.Subject, Policy: f.Policy, Claims: login.Claims,
		Provider: sealed, ProviderSID: login.SID, ProviderRefreshAt: login.Tokens.DueAt(e.login.Options.RefreshInterval),
		UserAgent: r.Header("user-agent"), ClientAddress: r.Peer,
	})
	if err != nil {
		return denyFlow(err)
	}
	_, claims, set, err := rt.mint(iss)
	if err != nil {
		return denyFlow(err)
	}
	d := Decision{Status: http.StatusFound, Reason: reasonLoginCompleted, Level: slog.LevelInfo, Subject: claims.Subject, Session: claims.SessionID}
	d.SetCookie = append(set, clearFlow)
	d.Response = []Header{{"cache-control", "no-store"}, {"location", safeReturn(f.ReturnTo)}}
	return d
}

// returnPath is the request's own normalised path and query, the only
// place a login may send the browser back to.
func returnPath(r *Request) string {
	back := r.Path
	if r.Query != "" {
		back += "?" + r.Query
	}
	return safeReturn(back)
}

// safeReturn keeps a path on this host: anything else ("//host", a scheme,
// a backslash some browsers read as a slash) becomes "/". A path too long
// for a Location header becomes "/" too.
func safeReturn(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n") || len(p) > maxHeaderValue {
		return "/"
	}
	return p
}

// kept is what a family keeps of the provider's tokens: the refresh token
// (to refresh), the ID token (the logout hint) and the access token's
// expiry (when to refresh). The access token itself is never used after
// the login and is not stored: it would double what a family costs.
func kept(t oidc.Tokens) oidc.Tokens {
	t.AccessToken = ""
	return t
}

// ProviderTokens refreshes the identity provider's tokens of a session.
type ProviderTokens interface {
	Refresh(ctx context.Context, t oidc.Tokens) (oidc.Tokens, error)
}

// Refresher returns the session package's provider refresh: it opens the
// family's sealed provider tokens, refreshes them with p, and seals the
// answer again under the key in use. A grant the provider ended is
// session.ErrProviderGrant (the family is revoked); anything else the
// provider answers is session.ErrProviderUnavailable (nothing changes).
// Tokens that no longer open (their key has left the keyring) are kept as
// they are and never refreshed again: the session lives on to its own
// lifetime, as with a provider that issues no refresh token.
func (l *Login) Refresher(p ProviderTokens, now func() time.Time, log *slog.Logger) session.ProviderRefresher {
	return providerRefresher{l: l, p: p, now: now, log: log}
}

type providerRefresher struct {
	l   *Login
	p   ProviderTokens
	now func() time.Time
	log *slog.Logger
}

func (r providerRefresher) RefreshProvider(ctx context.Context, f *store.Family) ([]byte, time.Time, error) {
	var t oidc.Tokens
	plain, err := seal.Open(r.l.Keys, f.Provider, ProviderAD(f.Subject))
	if err == nil {
		err = t.UnmarshalBinary(plain)
	}
	if err != nil {
		r.log.Warn("provider tokens of a session do not open; its provider refresh is skipped from now on",
			"subject", f.Subject, "session", f.ID, "error", err)
		return f.Provider, time.Time{}, nil
	}
	next, err := r.p.Refresh(ctx, t)
	switch {
	case errors.Is(err, oidc.ErrGrantDead):
		return nil, time.Time{}, fmt.Errorf("%w: %w", session.ErrProviderGrant, err)
	case err != nil:
		return nil, time.Time{}, fmt.Errorf("%w: %w", session.ErrProviderUnavailable, err)
	}
	b, err := kept(next).MarshalBinary()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %w", session.ErrProviderUnavailable, err)
	}
	sealed, err := seal.Seal(r.l.Keys, r.now(), b, ProviderAD(f.Subject))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %w", session.ErrProviderUnavailable, err)
	}
	return sealed, next.DueAt(r.l.Options.RefreshInterval), nil
}
