package authz

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/oidc"
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store/redisstore"
	"github.com/silentauth/silentauth/internal/testenv/logbuf"
	"github.com/silentauth/silentauth/internal/testenv/oidctest"
	"github.com/silentauth/silentauth/internal/testenv/redistest"
)

const callbackURL = "https://app.example.com/auth/callback"

// loginRig is the Check rig with provider login through an in-process
// OpenID provider (zitadel/oidc's example, strict one-time refresh
// tokens), on a clock that starts at the provider's real time.
type loginRig struct {
	*rig
	op *oidctest.Provider
	p  *oidc.Provider
}

func newLoginRig(t *testing.T, mutate ...func(*oidc.Options)) *loginRig {
	t.Helper()
	return newLoginRigWith(t, oidctest.Config{}, mutate...)
}

// newLoginRigWith is newLoginRig over a provider shaped by cfg (its
// RedirectURIs are the rig's).
func newLoginRigWith(t *testing.T, cfg oidctest.Config, mutate ...func(*oidc.Options)) *loginRig {
	t.Helper()
	cfg.RedirectURIs = []string{callbackURL}
	op := oidctest.Start(t, cfg)
	o := oidc.Default()
	o.IssuerURL, o.ClientID, o.RedirectURL = op.Issuer, op.ClientID, callbackURL
	o.ProviderTimeout = 2 * time.Second
	o.RefreshLease = 3 * time.Second
	for _, m := range mutate {
		m(&o)
	}
	p, err := oidc.New(t.Context(), o, op.ClientSecret, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	lr := &loginRig{op: op, p: p, rig: newRig(t)}
	lr.clock.Set(time.Now())
	// Provider login over the rig's keys and store, and a session manager
	// that refreshes the provider's tokens in its rotations.
	login := &Login{Provider: p, Options: o, Keys: lr.ring, Store: lr.store}
	lr.sessions = session.New(lr.store, testLifetimes, lr.clock.Now,
		session.WithProvider(login.Refresher(p, lr.clock.Now, slog.New(slog.DiscardHandler)), o.RefreshLease))
	lr.opts.Sessions, lr.opts.Login = lr.sessions, login
	var err2 error
	if lr.engine, err2 = NewEngine(lr.opts); err2 != nil {
		t.Fatal(err2)
	}
	return lr
}

// page is a page load (navigation) of path with the Cookie header cookies.
func page(path, cookies string) []string {
	kv := []string{"sec-fetch-mode", "navigate", "sec-fetch-site", "none", "accept", "text/html"}
	if cookies != "" {
		kv = append(kv, "cookie", cookies)
	}
	return kv
}

// start loads path without a session and returns the provider URL the
// browser is sent to and the flow cookie ("name=value").
func (lr *loginRig) start(t *testing.T, path string) (authURL, flowCookie string) {
	t.Helper()
	d, v := lr.run(t, req("GET", path, page(path, "")...))
	if v.status != 302 || v.allow {
		t.Fatalf("page load without a session: status %d allow %v reason %s", v.status, v.allow, d.Reason)
	}
	if len(v.setCookie) != 1 {
		t.Fatalf("login start sets %d cookies, want the flow's: %q", len(v.setCookie), v.setCookie)
	}
	flowCookie, _, _ = strings.Cut(v.setCookie[0], ";")
	return v.response["location"], flowCookie
}

// finish logs in at the provider and brings its answer back to Check with
// the Cookie header cookies.
func (lr *loginRig) finish(t *testing.T, authURL, cookies string) (Decision, view) {
	t.Helper()
	cb, err := lr.op.Login(t.Context(), authURL, oidctest.DefaultUser.Username, oidctest.DefaultUser.Password)
	if err != nil {
		t.Fatal(err)
	}
	return lr.run(t, req("GET", cb.RequestURI(), page(cb.Path, cookies)...))
}

// A page load without a session is sent to the provider with a fresh
// state, nonce and PKCE S256 challenge and gets its own flow cookie; an API
// request gets 401, never a redirect it cannot follow.
func TestOIDCLoginStartsOnAPageLoad(t *testing.T) {
	lr := newLoginRig(t)
	authURL, flow := lr.start(t, "/orders?page=2")
	u, err := url.Parse(authURL)
	if err != nil || !strings.HasPrefix(authURL, lr.op.Issuer) {
		t.Fatalf("Location %q is not the provider's authorization endpoint", authURL)
	}
	q := u.Query()
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 22 {
			t.Errorf("authorization request: %s = %q", k, q.Get(k))
		}
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("redirect_uri") != callbackURL || q.Get("client_id") != lr.op.ClientID {
		t.Errorf("authorization request: %v", q)
	}
	if want := "__Host-sa-login-" + q.Get("state") + "="; !strings.HasPrefix(flow, want) {
		t.Errorf("flow cookie %q, want one named after the state (%s…)", flow, want)
	}
	authURL2, _ := lr.start(t, "/orders")
	if u2, _ := url.Parse(authURL2); u2.Query().Get("state") == q.Get("state") || u2.Query().Get("nonce") == q.Get("nonce") {
		t.Error("two flows share a state or nonce")
	}

	d, v := lr.run(t, req("GET", "/api/orders", "accept", "application/json", "sec-fetch-mode", "cors"))
	if v.status != 401 || len(v.setCookie) != 0 || v.response["location"] != "" {
		t.Errorf("API request without a session: status %d reason %s cookies %q location %q", v.status, d.Reason, v.setCookie, v.response["location"])
	}
}

// The provider's answer completes the login inside Check: the session's
// three cookies are set, the flow cookie is cleared, the browser goes back
// to the page it first asked for, and the session's access token carries
// the provider's mapped claims. The provider's tokens are in the family,
// sealed: the store holds nothing the provider issued in clear.
func TestOIDCLoginCompletes(t *testing.T) {
	lr := newLoginRig(t)
	authURL, flow := lr.start(t, "/orders?page=2")
	d, v := lr.finish(t, authURL, flow)
	if v.status != 302 || d.Reason != reasonLoginCompleted || v.response["location"] != "/orders?page=2" {
		t.Fatalf("callback: status %d reason %s location %q (%v)", v.status, d.Reason, v.response["location"], d.Err)
	}
	flowName, _, _ := strings.Cut(flow, "=")
	if c, ok := cookieValue(v.setCookie, flowName); !ok || c != "" {
		t.Errorf("flow cookie not cleared: %q", v.setCookie)
	}
	at, _ := cookieValue(v.setCookie, testCookies.Access)
	rt, _ := cookieValue(v.setCookie, testCookies.Refresh)
	if at == "" || rt == "" {
		t.Fatalf("callback sets no session: %q", v.setCookie)
	}
	claims, err := lr.engine.def.verifier.Verify(at)
	if err != nil {
		t.Fatal(err)
	}
	if claims.Subject != oidctest.DefaultUser.ID || fmt.Sprint(claims.Extra["email"]) != oidctest.DefaultUser.Email || fmt.Sprint(claims.Extra["groups"]) != "[dev ops]" {
		t.Errorf("access token: sub %q claims %v", claims.Subject, claims.Extra)
	}
	f := lr.family(claims.SessionID)
	if len(f.Provider) == 0 || f.ProviderRefreshAt.IsZero() {
		t.Fatalf("family keeps no provider tokens: %d bytes, refresh at %v", len(f.Provider), f.ProviderRefreshAt)
	}
	t.Logf("provider tokens sealed in the family: %d bytes (sid %d bytes)", len(f.Provider), len(f.ProviderSID))
	for _, tok := range lr.op.IssuedTokens() {
		if bytes.Contains(f.Provider, []byte(tok)) {
			t.Fatalf("the family holds a provider token in clear")
		}
	}

	// The session works like any other.
	_, v = lr.run(t, req("GET", "/orders", page("/orders", ours(at, rt))...))
	if !v.allow {
		t.Fatalf("request with the new session: status %d", v.status)
	}
}

// Several tabs logging in at once each complete, in any order: every flow
// has its own cookie.
func TestOIDCLoginInSeveralTabs(t *testing.T) {
	lr := newLoginRig(t)
	var urls, flows []string
	for i := range 3 {
		u, f := lr.start(t, fmt.Sprintf("/tab%d", i))
		urls, flows = append(urls, u), append(flows, f)
	}
	all := strings.Join(flows, "; ")
	for i := 2; i >= 0; i-- {
		d, v := lr.finish(t, urls[i], all)
		if v.status != 302 || v.response["location"] != fmt.Sprintf("/tab%d", i) {
			t.Fatalf("tab %d: status %d reason %s location %q (%v)", i, v.status, d.Reason, v.response["location"], d.Err)
		}
	}
}

// At most maxPendingLogins flows are pending in one browser: starting one
// more clears the oldest, so headers never grow past proxy limits; a flow
// cookie that does not open is cleared too.
func TestOIDCLoginPendingFlowsBounded(t *testing.T) {
	lr := newLoginRig(t, func(o *oidc.Options) { o.MaxPendingLogins = 3 })
	var flows []string
	for range 3 {
		_, f := lr.start(t, "/")
		flows = append(flows, f)
		lr.clock.Advance(time.Second)
	}
	pending := strings.Join(append(flows, "__Host-sa-login-forged=garbage"), "; ")
	_, v := lr.run(t, req("GET", "/", page("/", pending)...))
	var cleared []string
	for _, c := range v.setCookie[1:] {
		name, _, _ := strings.Cut(c, "=")
		if !strings.Contains(c, "Max-Age=0") {
			t.Errorf("not a clearing cookie: %q", c)
		}
		cleared = append(cleared, name)
	}
	oldest, _, _ := strings.Cut(flows[0], "=")
	if want := []string{"__Host-sa-login-forged", oldest}; strings.Join(cleared, " ") != strings.Join(want, " ") {
		t.Errorf("cleared %v, want %v (the forged one and the oldest: 2 kept + the new one)", cleared, want)
	}

}

// A callback that does not belong to a pending flow of this browser, or
// comes back twice, or too late, or with the provider's refusal, is
// refused precisely; nothing of a session is created.
func TestOIDCCallbackRefusals(t *testing.T) {
	lr := newLoginRig(t)
	authURL, flow := lr.start(t, "/")
	cb, err := lr.op.Login(t.Context(), authURL, oidctest.DefaultUser.Username, oidctest.DefaultUser.Password)
	if err != nil {
		t.Fatal(err)
	}
	state := cb.Query().Get("state")
	for _, tc := range []struct {
		name, path, cookies, method string
		status                      int
		reason                      string
	}{
		{"no flow cookie (another browser)", cb.RequestURI(), "", "GET", 400, "login_state"},
		{"no state", "/auth/callback?code=x", flow, "GET", 400, "login_state"},
		{"unknown state", "/auth/callback?code=x&state=nope", flow, "GET", 400, "login_state"},
		{"tampered flow cookie", cb.RequestURI(), "__Host-sa-login-" + state + "=AAAA", "GET", 400, "login_state"},
		{"provider refused", "/auth/callback?error=access_denied&error_description=no&state=" + state, flow, "GET", 403, "login_provider_error"},
		{"POST", cb.RequestURI(), flow, "POST", 405, "method"},
	} {
		d, v := lr.run(t, req(tc.method, tc.path, page("/auth/callback", tc.cookies)...))
		if v.status != tc.status || d.Reason != tc.reason || v.allow {
			t.Errorf("%s: status %d reason %s, want %d %s", tc.name, v.status, d.Reason, tc.status, tc.reason)
		}
		if _, ok := cookieValue(v.setCookie, testCookies.Refresh); ok {
			t.Errorf("%s: a session cookie was set: %q", tc.name, v.setCookie)
		}
	}

	// The provider's refusal ended that flow; a new one completes, once.
	authURL, flow = lr.start(t, "/")
	cb, err = lr.op.Login(t.Context(), authURL, oidctest.DefaultUser.Username, oidctest.DefaultUser.Password)
	if err != nil {
		t.Fatal(err)
	}
	if _, v := lr.run(t, req("GET", cb.RequestURI(), page("/auth/callback", flow)...)); v.status != 302 {
		t.Fatalf("first callback: %d", v.status)
	}
	if d, v := lr.run(t, req("GET", cb.RequestURI(), page("/auth/callback", flow)...)); v.status != 400 || d.Reason != "login_state" {
		t.Errorf("replayed callback (cookie kept by the client): status %d reason %s", v.status, d.Reason)
	}

	// Too late: the flow outlived loginTTL.
	authURL, flow = lr.start(t, "/")
	cb, _ = lr.op.Login(t.Context(), authURL, oidctest.DefaultUser.Username, oidctest.DefaultUser.Password)
	lr.clock.Advance(11 * time.Minute)
	if d, v := lr.run(t, req("GET", cb.RequestURI(), page("/auth/callback", flow)...)); v.status != 400 || d.Reason != "login_state" {
		t.Errorf("expired flow: status %d reason %s", v.status, d.Reason)
	}
}

// Only a path on this host is ever a return target.
func TestOIDCLoginReturnsSameOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"/a?b=c": "/a?b=c", "//evil.example/x": "/", "https://evil.example": "/", "/\\evil.example": "/", "": "/",
		"/" + strings.Repeat("a", maxHeaderValue): "/",
	} {
		if got := safeReturn(in); got != want {
			t.Errorf("safeReturn(%.40q) = %q, want %q", in, got, want)
		}
	}
}

// When the provider's tokens are due, the rotation refreshes them once at
// the provider, which sees no reuse; a grant the provider ended logs the
// user out cleanly; a provider outage logs nobody out.
func TestOIDCProviderRefreshInRotation(t *testing.T) {
	lr := newLoginRig(t)
	authURL, flow := lr.start(t, "/")
	_, v := lr.finish(t, authURL, flow)
	at, _ := cookieValue(v.setCookie, testCookies.Access)
	rt, _ := cookieValue(v.setCookie, testCookies.Refresh)
	claims, _ := lr.engine.def.verifier.Verify(at)
	due := lr.family(claims.SessionID).ProviderRefreshAt

	// Past the provider's due time (before our access token's end).
	lr.clock.Set(due.Add(time.Second))
	d, v := lr.run(t, req("GET", "/", page("/", ours("", rt))...))
	if !v.allow || d.Reason != reasonRefreshed {
		t.Fatalf("rotation with a provider refresh: status %d reason %s (%v)", v.status, d.Reason, d.Err)
	}
	if g := lr.op.Grants()["refresh_token"]; g != 1 || lr.op.Reuses() != 0 {
		t.Fatalf("provider saw %d refresh grants and %d reuses, want 1 and 0", g, lr.op.Reuses())
	}
	rt, _ = cookieValue(v.setCookie, testCookies.Refresh)

	// An outage at the provider: 503, cookies kept, nothing rotated.
	f := lr.family(claims.SessionID)
	lr.clock.Set(f.ProviderRefreshAt.Add(time.Second))
	lr.op.SetFault(oidctest.Unavailable)
	d, v = lr.run(t, req("GET", "/", page("/", ours("", rt))...))
	if v.status != 503 || len(v.setCookie) != 0 {
		t.Fatalf("provider outage: status %d reason %s cookies %q", v.status, d.Reason, v.setCookie)
	}
	lr.op.SetFault(oidctest.NoFault)

	// The provider ended the grant: the family is revoked, the cookies
	// cleared, and a page load goes to log in again.
	lr.op.Revoke(oidctest.DefaultUser.ID)
	d, v = lr.run(t, req("GET", "/", page("/", ours("", rt))...))
	if d.Reason != "provider_grant_ended" || v.status != 302 || !strings.HasPrefix(v.response["location"], lr.op.Issuer) {
		t.Fatalf("grant ended: status %d reason %s location %q (%v)", v.status, d.Reason, v.response["location"], d.Err)
	}
	if c, ok := cookieValue(v.setCookie, testCookies.Refresh); !ok || c != "" {
		t.Errorf("grant ended: refresh cookie not cleared: %q", v.setCookie)
	}
	if f := lr.family(claims.SessionID); f.RevokedAt.IsZero() || f.RevokeReason != "provider" {
		t.Errorf("family not revoked by the provider: %+v", f.RevokeReason)
	}
}

// A provider that issues no refresh token still logs users in: the
// session lives to its own lifetime, its provider tokens are never
// refreshed (no call at the provider), and the operator is told once.
func TestOIDCProviderWithoutRefreshToken(t *testing.T) {
	lr := newLoginRig(t)
	var logs logbuf.Buffer
	lr.engine.login.Log = slog.New(slog.NewJSONHandler(&logs, nil))
	lr.op.RewriteTokenResponses(func(m map[string]any) { delete(m, "refresh_token") })
	var rt string
	for range 2 {
		authURL, flow := lr.start(t, "/")
		d, v := lr.finish(t, authURL, flow)
		if v.status != 302 || d.Reason != reasonLoginCompleted {
			t.Fatalf("login without a provider refresh token: status %d reason %s (%v)", v.status, d.Reason, d.Err)
		}
		rt, _ = cookieValue(v.setCookie, testCookies.Refresh)
	}
	if n := strings.Count(logs.String(), "issues no refresh token"); n != 1 {
		t.Errorf("operator told %d times, want once:\n%s", n, logs.String())
	}
	lr.clock.Advance(time.Hour)
	if d, v := lr.run(t, req("GET", "/", page("/", ours("", rt))...)); !v.allow || d.Reason != reasonRefreshed {
		t.Fatalf("rotation: status %d reason %s (%v)", v.status, d.Reason, d.Err)
	}
	if g := lr.op.Grants()["refresh_token"]; g != 0 {
		t.Errorf("provider saw %d refresh grants, want none", g)
	}
}

// 50 parallel page loads presenting the same refresh cookie at the moment
// the provider's tokens are due, spread over two replicas sharing one real
// Redis: all are allowed with the same successor, and the provider (strict
// one-time refresh tokens) sees exactly one refresh and no reuse.
func TestOIDCProviderRefreshOnceAcrossReplicas(t *testing.T) {
	lr := newLoginRig(t)
	srv := redistest.Start(t)
	opts := redisstore.DefaultOptions()
	opts.Addrs, opts.Now = []string{srv.Addr()}, lr.clock.Now
	st, err := redisstore.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	login := lr.engine.login
	replica := func() *Engine {
		l := &Login{Provider: login.Provider, Options: login.Options, Keys: login.Keys, Store: st}
		sessions := session.New(st, testLifetimes, lr.clock.Now,
			session.WithProvider(l.Refresher(lr.p, lr.clock.Now, slog.New(slog.DiscardHandler)), login.Options.RefreshLease))
		o := lr.opts
		o.Sessions, o.Login = sessions, l
		e, err := NewEngine(o)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	replicas := []*Engine{replica(), replica()}
	lr.engine = replicas[0]
	authURL, flow := lr.start(t, "/")
	_, v := lr.finish(t, authURL, flow)
	rt, _ := cookieValue(v.setCookie, testCookies.Refresh)
	at, _ := cookieValue(v.setCookie, testCookies.Access)
	claims, _ := lr.engine.def.verifier.Verify(at)
	f, err := st.Get(t.Context(), claims.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	lr.clock.Set(f.ProviderRefreshAt.Add(time.Second))

	const n = 50
	successors := make(chan string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			r, err := FromCheckRequest(req("GET", "/", page("/", ours("", rt))...))
			d := replicas[i%2].Decide(ctx, r, err)
			got, _ := cookieValue(d.SetCookie, testCookies.Refresh)
			if !d.Allow {
				got = "denied: " + d.Reason
			}
			successors <- got
		})
	}
	wg.Wait()
	close(successors)
	seen := map[string]int{}
	for s := range successors {
		seen[s]++
	}
	if len(seen) != 1 {
		t.Fatalf("50 requests over two replicas got %d different answers: %v", len(seen), seen)
	}
	if g, reuses := lr.op.Grants()["refresh_token"], lr.op.Reuses(); g != 1 || reuses != 0 {
		t.Fatalf("provider saw %d refresh grants and %d reuses, want exactly 1 and 0", g, reuses)
	}
}
