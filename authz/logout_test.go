package authz

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/oidc"
	"github.com/silentauth/silentauth/authz/seal"
	"github.com/silentauth/silentauth/internal/testenv/oidctest"
)

const postLogoutURL = "https://app.example.com/logged-out"

// withPostLogout registers postLogoutURL as the post-logout redirect.
func withPostLogout(o *oidc.Options) {
	o.PostLogoutRedirectURL, o.PostLogoutRedirectURLs = postLogoutURL, []string{postLogoutURL}
}

// session logs in through the provider and returns the session's cookies
// and family id.
func (lr *loginRig) session(t *testing.T) (at, rt, id string) {
	t.Helper()
	authURL, flow := lr.start(t, "/")
	d, v := lr.finish(t, authURL, flow)
	if v.status != 302 || d.Reason != reasonLoginCompleted {
		t.Fatalf("login: status %d reason %s (%v)", v.status, d.Reason, d.Err)
	}
	at, _ = cookieValue(v.setCookie, testCookies.Access)
	rt, _ = cookieValue(v.setCookie, testCookies.Refresh)
	return at, rt, familyOf(t, rt)
}

// providerTokens opens the provider tokens sealed into family id.
func (lr *loginRig) providerTokens(t *testing.T, id string) oidc.Tokens {
	t.Helper()
	f := lr.family(id)
	plain, err := seal.Open(lr.ring, f.Provider, ProviderAD(f.Subject))
	if err != nil {
		t.Fatal(err)
	}
	var tok oidc.Tokens
	if err := tok.UnmarshalBinary(plain); err != nil {
		t.Fatal(err)
	}
	return tok
}

// logoutPage is the POST of the app's logout form, same-origin.
func logoutPage(cookies string) []string {
	return []string{"cookie", cookies, "sec-fetch-site", "same-origin", "sec-fetch-mode", "navigate", "accept", "text/html", "origin", "https://app.example.com"}
}

// logoutFetch is the app's script POSTing to the logout path.
func logoutFetch(cookies string) []string {
	return []string{"cookie", cookies, "sec-fetch-site", "same-origin", "sec-fetch-mode", "cors", "accept", "application/json", "origin", "https://app.example.com"}
}

// After provider login, the logout form ends the session on both sides:
// our family is revoked and the three cookies cleared, the provider's
// refresh token is revoked at its revocation endpoint (a refresh with it
// then fails there), and the browser is sent on to the provider's
// end_session_endpoint with the session's ID token as id_token_hint, our
// client_id and the registered post_logout_redirect_uri. The next page
// load goes to the provider to log in again.
func TestLogoutEndsProviderSession(t *testing.T) {
	lr := newLoginRig(t, withPostLogout)
	at, rt, id := lr.session(t)
	tokens := lr.providerTokens(t, id)

	d, v := lr.run(t, req("POST", "/auth/logout", logoutPage(ours(at, rt))...))
	if v.allow || v.status != 303 || d.Reason != reasonEndpointLogoutProvider {
		t.Fatalf("logout: status %d reason %s (%v)", v.status, d.Reason, d.Err)
	}
	if !slices.Equal(v.setCookie, lr.cookies.Clear()) {
		t.Errorf("Set-Cookie %q, want the three deletions", v.setCookie)
	}
	if f := lr.family(id); f.RevokedAt.IsZero() || f.RevokeReason != "logout" {
		t.Errorf("family: revoked %v reason %q", f.RevokedAt, f.RevokeReason)
	}
	loc, err := url.Parse(v.response["location"])
	if err != nil || loc.Scheme+"://"+loc.Host+loc.Path != lr.op.Issuer+oidctest.EndSessionPath {
		t.Fatalf("Location %q, want the provider's end_session_endpoint", v.response["location"])
	}
	q := loc.Query()
	if q.Get("id_token_hint") != tokens.IDToken || q.Get("client_id") != lr.op.ClientID || q.Get("post_logout_redirect_uri") != postLogoutURL {
		t.Errorf("end-session request: id_token_hint is the session's: %v, client_id %q, post_logout_redirect_uri %q",
			q.Get("id_token_hint") == tokens.IDToken, q.Get("client_id"), q.Get("post_logout_redirect_uri"))
	}
	if n := lr.op.Revocations(); n != 1 {
		t.Errorf("revocation endpoint called %d times, want once", n)
	}
	if _, err := lr.p.Refresh(t.Context(), tokens); !errors.Is(err, oidc.ErrGrantDead) {
		t.Errorf("refresh with the revoked provider token: %v, want ErrGrantDead", err)
	}

	// The old cookies, kept by a careless client, no longer work; the
	// page goes to the provider to log in again.
	lr.clock.Advance(testAccessTTL + time.Minute)
	d, v = lr.run(t, req("GET", "/", page("/", ours(at, rt))...))
	if v.status != 302 || !strings.HasPrefix(v.response["location"], lr.op.Issuer) || d.Reason != "refresh_revoked" {
		t.Errorf("page load after logout: status %d reason %s location %q", v.status, d.Reason, v.response["location"])
	}
	if _, v = lr.run(t, req("GET", "/", page("/", "")...)); v.status != 302 || !strings.HasPrefix(v.response["location"], lr.op.Issuer) {
		t.Errorf("page load without cookies: status %d location %q", v.status, v.response["location"])
	}
}

// A provider whose revocation endpoint is down never keeps anyone logged
// in: our family is revoked and the cookies cleared all the same; the
// form still goes on to the provider's end-session page, and a script
// gets 200 with a body saying the provider's logout failed.
func TestLogoutProviderDown(t *testing.T) {
	lr := newLoginRig(t)
	lr.op.SetRevocationFault(oidctest.Unavailable)
	for _, tc := range []struct {
		name    string
		headers func(string) []string
		status  int
	}{
		{"form", logoutPage, 303},
		{"fetch", logoutFetch, 200},
	} {
		at, rt, id := lr.session(t)
		d, v := lr.run(t, req("POST", "/auth/logout", tc.headers(ours(at, rt))...))
		if v.status != tc.status || d.Reason != reasonEndpointLogoutProviderFailed || d.Err == nil {
			t.Fatalf("%s: status %d reason %s (%v)", tc.name, v.status, d.Reason, d.Err)
		}
		if !slices.Equal(v.setCookie, lr.cookies.Clear()) {
			t.Errorf("%s: Set-Cookie %q, want the three deletions", tc.name, v.setCookie)
		}
		if f := lr.family(id); f.RevokedAt.IsZero() {
			t.Errorf("%s: family not revoked", tc.name)
		}
		switch tc.status {
		case 303:
			if !strings.HasPrefix(v.response["location"], lr.op.Issuer+oidctest.EndSessionPath) {
				t.Errorf("%s: Location %q", tc.name, v.response["location"])
			}
		case 200:
			if !strings.Contains(v.body, `"provider_logout":"failed"`) || v.response["location"] != "" {
				t.Errorf("%s: body %s location %q", tc.name, v.body, v.response["location"])
			}
		}
	}
	if n := lr.op.Revocations(); n != 2 {
		t.Errorf("revocation endpoint called %d times, want 2", n)
	}

	// A session of ours that provider login did not start is logged out
	// as before: no call at the provider.
	at, rt := lr.login("bob", nil)
	if d, v := lr.run(t, req("POST", "/auth/logout", logoutFetch(ours(at, rt))...)); v.status != 204 || d.Reason != reasonEndpointLogout {
		t.Errorf("session API session: status %d reason %s", v.status, d.Reason)
	}
	if n := lr.op.Revocations(); n != 2 {
		t.Errorf("revocation endpoint called %d times, want still 2", n)
	}
}

// A cross-site POST to the logout path is refused before anything is
// revoked, here or at the provider.
func TestLogoutCrossSiteRefused(t *testing.T) {
	lr := newLoginRig(t)
	at, rt, id := lr.session(t)
	d, v := lr.run(t, req("POST", "/auth/logout", "cookie", ours(at, rt), "sec-fetch-site", "cross-site", "sec-fetch-mode", "navigate", "origin", "https://evil.example"))
	if v.status != 403 || d.Reason != "csrf" || len(v.setCookie) != 0 {
		t.Fatalf("cross-site logout: status %d reason %s cookies %q", v.status, d.Reason, v.setCookie)
	}
	if f := lr.family(id); !f.RevokedAt.IsZero() {
		t.Error("family revoked by a cross-site request")
	}
	if n := lr.op.Revocations(); n != 0 {
		t.Errorf("revocation endpoint called %d times", n)
	}
}

// The post-logout redirect must be one of the allow-list, absolute, https
// (http on loopback only), without user information or fragment.
func TestLogoutPostLogoutRedirectNotAllowed(t *testing.T) {
	good := oidc.Default()
	good.IssuerURL, good.ClientID = "https://accounts.example.com", "c"
	for _, tc := range []struct {
		name, url string
		list      []string
		want      string // "" valid, else the field the error names
	}{
		{"none", "", nil, ""},
		{"listed", "https://app.example.com/bye", []string{"https://app.example.com/bye"}, ""},
		{"loopback http", "http://127.0.0.1:8080/bye", []string{"http://127.0.0.1:8080/bye"}, ""},
		{"not listed", "https://evil.example/bye", []string{"https://app.example.com/bye"}, "oidc.postLogoutRedirectURL:"},
		{"empty list", "https://app.example.com/bye", nil, "oidc.postLogoutRedirectURL:"},
		{"relative", "/bye", []string{"/bye"}, "oidc.postLogoutRedirectURL:"},
		{"http", "http://app.example.com/bye", []string{"http://app.example.com/bye"}, "oidc.postLogoutRedirectURLs[0]:"},
		{"fragment in list", "", []string{"https://app.example.com/#x"}, "oidc.postLogoutRedirectURLs[0]:"},
	} {
		o := good
		o.PostLogoutRedirectURL, o.PostLogoutRedirectURLs = tc.url, tc.list
		err := o.Validate("oidc")
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error naming %s", tc.name, err, tc.want)
		}
	}
}

// A revocation endpoint that never answers holds the logout no longer
// than providerTimeout, nor past half of the request's own deadline: the
// answer that clears the cookies is never lost to the provider.
func TestLogoutProviderHangs(t *testing.T) {
	lr := newLoginRig(t, func(o *oidc.Options) { o.ProviderTimeout = 300 * time.Millisecond })
	lr.op.SetRevocationFault(oidctest.Hang)
	at, rt, id := lr.session(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	r, err := FromCheckRequest(req("POST", "/auth/logout", logoutPage(ours(at, rt))...))
	began := time.Now()
	d := lr.engine.Decide(ctx, r, err)
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("logout took %v with a hanging provider", took)
	}
	if d.Status != 303 || d.Reason != reasonEndpointLogoutProviderFailed || !slices.Equal(d.SetCookie, lr.cookies.Clear()) {
		t.Errorf("status %d reason %s cookies %q", d.Status, d.Reason, d.SetCookie)
	}
	if lr.family(id).RevokedAt.IsZero() {
		t.Error("family not revoked")
	}

	// A short deadline of the request itself bounds it too.
	at, rt, _ = lr.session(t)
	ctx, cancel = context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	r, err = FromCheckRequest(req("POST", "/auth/logout", logoutPage(ours(at, rt))...))
	d = lr.engine.Decide(ctx, r, err)
	if ctx.Err() != nil || d.Status != 303 {
		t.Errorf("logout within a 200ms deadline: deadline passed %v, status %d reason %s", ctx.Err() != nil, d.Status, d.Reason)
	}
}

// A provider that lists neither a revocation nor an end-session endpoint:
// our logout is complete, and the form goes to the post-logout redirect
// URL (else the policy's login page).
func TestLogoutProviderWithoutLogoutEndpoints(t *testing.T) {
	lr := newLoginRigWith(t, oidctest.Config{NoLogoutEndpoints: true}, withPostLogout)
	at, rt, id := lr.session(t)
	d, v := lr.run(t, req("POST", "/auth/logout", logoutPage(ours(at, rt))...))
	if v.status != 303 || d.Reason != reasonEndpointLogout || v.response["location"] != postLogoutURL {
		t.Fatalf("status %d reason %s location %q (%v)", v.status, d.Reason, v.response["location"], d.Err)
	}
	if lr.family(id).RevokedAt.IsZero() || lr.op.Revocations() != 0 {
		t.Errorf("family revoked %v, revocations %d", !lr.family(id).RevokedAt.IsZero(), lr.op.Revocations())
	}

	lr = newLoginRigWith(t, oidctest.Config{NoLogoutEndpoints: true})
	at, rt, _ = lr.session(t)
	if _, v := lr.run(t, req("POST", "/auth/logout", logoutPage(ours(at, rt))...)); v.status != 303 || v.response["location"] != "/login" {
		t.Errorf("without a post-logout URL: status %d location %q", v.status, v.response["location"])
	}
	at, rt, _ = lr.session(t)
	if d, v := lr.run(t, req("POST", "/auth/logout", logoutFetch(ours(at, rt))...)); v.status != 204 || d.Reason != reasonEndpointLogout {
		t.Errorf("fetch: status %d reason %s", v.status, d.Reason)
	}
}
