package authz

import (
	"strings"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/access"
	"github.com/silentauth/silentauth/authz/session"
)

// withNamed rebuilds the rig's engine with named per-route policies.
func (r *rig) withNamed(t *testing.T, named map[string]Route) {
	t.Helper()
	o := r.opts
	o.Named = named
	e, err := NewEngine(o)
	if err != nil {
		t.Fatal(err)
	}
	r.engine = e
}

func (r *rig) route(audience string, p access.Policy) Route {
	return Route{
		Verifier: r.parts.Verifier(audience),
		Minter:   r.parts.MinterFor(audience),
		Policy:   p,
	}
}

// routed is req with Envoy's per-route context_extensions naming policy.
func routed(policy, method, path string, kv ...string) *Request {
	cr := req(method, path, kv...)
	cr.Attributes.ContextExtensions = map[string]string{"policy": policy}
	r, _ := FromCheckRequest(cr)
	return r
}

func TestPerRoutePolicies(t *testing.T) {
	r := newRig(t)
	r.withNamed(t, map[string]Route{
		"admin": r.route("admin-app", access.Policy{
			LoginURL: "/admin/login", ReturnToParam: "next", RefreshPath: "/auth/refresh", LogoutPath: "/auth/logout",
			PublicPaths:    []string{"/admin/health"},
			RequiredClaims: map[string][]string{"role": {"admin", "owner"}},
			ClaimHeaders:   map[string]string{"x-admin": "sub"},
		}),
	})
	appAT, _ := r.login("alice", map[string]any{"role": "admin"})
	adminMinter := r.engine.named["admin"].minter
	adminAT, _, _ := adminMinter.Mint("alice", "sid-0000000000000000000", map[string]any{"role": "admin"})
	userAT, _, _ := adminMinter.Mint("bob", "sid-0000000000000000000", map[string]any{"role": "user"})
	listAT, _, _ := adminMinter.Mint("carol", "sid-0000000000000000000", map[string]any{"role": []any{"user", "owner"}})
	noRoleAT, _, _ := adminMinter.Mint("dave", "sid-0000000000000000000", nil)

	ctx := t.Context()
	cases := []struct {
		name   string
		req    *Request
		allow  bool
		status int
		reason string
	}{
		{"default policy, app audience", routed("", "GET", "/x", "authorization", "Bearer "+appAT), true, 200, "valid"},
		{"admin policy refuses the app audience", routed("admin", "GET", "/x", "authorization", "Bearer "+appAT), false, 401, "token_audience"},
		{"admin policy, admin audience and role", routed("admin", "GET", "/x", "authorization", "Bearer "+adminAT), true, 200, "valid"},
		{"admin policy, wrong role", routed("admin", "GET", "/x", "authorization", "Bearer "+userAT), false, 403, "insufficient_claims"},
		{"admin policy, role list holds owner", routed("admin", "GET", "/x", "authorization", "Bearer "+listAT), true, 200, "valid"},
		{"admin policy, no role claim", routed("admin", "GET", "/x", "authorization", "Bearer "+noRoleAT), false, 403, "insufficient_claims"},
		{"admin public path", routed("admin", "GET", "/admin/health"), true, 200, "public"},
		{"default public path is not admin's", routed("admin", "GET", "/healthz", "accept", "application/json"), false, 401, "no_credentials"},
		{"admin login URL", routed("admin", "GET", "/admin/x", "sec-fetch-mode", "navigate"), false, 302, "no_credentials"},
		{"unknown policy fails closed", routed("nope", "GET", "/x", "authorization", "Bearer "+adminAT), false, 500, "unknown_policy"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := r.engine.Decide(ctx, c.req, nil)
			status := d.Status
			if d.Allow {
				status = 200
			}
			if d.Allow != c.allow || status != c.status || d.Reason != c.reason {
				t.Fatalf("allow=%v status=%d reason=%s", d.Allow, status, d.Reason)
			}
			if c.status == 302 && headerValue(d.Response, "location") != "/admin/login?next=%2Fadmin%2Fx" {
				t.Errorf("location %q", headerValue(d.Response, "location"))
			}
			if c.name == "admin policy, admin audience and role" && headerValue(d.Upstream, "x-admin") != "alice" {
				t.Errorf("admin claim header missing: %v", d.Upstream)
			}
		})
	}
}

// A refresh under a policy mints for that policy's audience; a refresh
// whose claims the policy refuses still hands the browser its rotated
// cookies, so the browser never falls behind the store.
func TestPerRouteRefresh(t *testing.T) {
	r := newRig(t)
	r.withNamed(t, map[string]Route{
		"admin": r.route("admin-app", access.Policy{RefreshPath: "/auth/refresh", LogoutPath: "/auth/logout", RequiredClaims: map[string][]string{"role": {"admin"}}}),
	})
	adminMinter := r.engine.named["admin"].minter
	_, adminRT := r.loginFor("admin", adminMinter, "alice", map[string]any{"role": "admin"})
	d := r.engine.Decide(t.Context(), routed("admin", "GET", "/x", "cookie", "__Host-sa-rt="+adminRT), nil)
	if !d.Allow || d.Reason != "refreshed" {
		t.Fatalf("admin refresh: allow=%v reason=%s", d.Allow, d.Reason)
	}
	c, err := r.engine.named["admin"].verifier.Verify(headerValue(d.Upstream, "authorization")[len("Bearer "):])
	if err != nil || c.Audience[0] != "admin-app" {
		t.Fatalf("refreshed token under the admin policy: %v %v", c, err)
	}

	_, userRT := r.loginFor("admin", adminMinter, "bob", map[string]any{"role": "user"})
	d = r.engine.Decide(t.Context(), routed("admin", "GET", "/x", "cookie", "__Host-sa-rt="+userRT), nil)
	if d.Allow || d.Reason != "insufficient_claims" || len(d.SetCookie) != 3 {
		t.Fatalf("refused after rotation: allow=%v reason=%s cookies=%d", d.Allow, d.Reason, len(d.SetCookie))
	}
	if v, ok := cookieValue(d.SetCookie, "__Host-sa-rt"); !ok || v == userRT {
		t.Error("the rotated refresh cookie was not handed back")
	}
}

// shopAndAdmin rebuilds the rig with two named policies, shop (audience
// shop-app) and admin (admin-app, login page /admin/login), its sessions
// shared as accepts says (nil: not at all).
func shopAndAdmin(t *testing.T, r *rig, accepts func(policy, from string) bool) {
	t.Helper()
	var opts []session.Option
	if accepts != nil {
		opts = append(opts, session.AcceptSessions(accepts))
	}
	r.sessions = session.New(r.store, testLifetimes, r.clock.Now, opts...)
	r.opts.Sessions = r.sessions
	paths := access.Policy{RefreshPath: "/auth/refresh", LogoutPath: "/auth/logout"}
	admin := paths
	admin.LoginURL, admin.ReturnToParam = "/admin/login", "return_to"
	r.withNamed(t, map[string]Route{"shop": r.route("shop-app", paths), "admin": r.route("admin-app", admin)})
}

// A session belongs to the policy it was started for: on another policy's
// route it is refused before anything is written (401, or this policy's
// login page for navigations), and its cookies stay, since it is still
// good for its own application.
func TestSessionOfAnotherPolicy(t *testing.T) {
	r := newRig(t)
	shopAndAdmin(t, r, nil)
	shopAT, shopRT := r.loginFor("shop", r.engine.named["shop"].minter, "alice", nil)
	_, defaultRT := r.login("bob", nil) // a family from before policies: ""
	id := familyOf(t, shopRT)

	tests := []struct {
		name   string
		req    *Request
		status int
	}{
		{"api call", routed("admin", "GET", "/api/x", "cookie", ours(shopAT, shopRT), "accept", "application/json"), 401},
		{"page navigation", routed("admin", "GET", "/admin/x", "cookie", ours(shopAT, shopRT), "sec-fetch-mode", "navigate"), 302},
		{"refresh cookie only", routed("admin", "GET", "/api/x", "cookie", "__Host-sa-rt="+shopRT), 401},
		{"refresh endpoint", routed("admin", "POST", "/auth/refresh", "cookie", "__Host-sa-rt="+shopRT, "sec-fetch-site", "same-origin"), 401},
		{"default-policy session on a named route", routed("shop", "GET", "/api/x", "cookie", "__Host-sa-rt="+defaultRT), 401},
		{"named session on the default route", routed("", "GET", "/api/x", "cookie", "__Host-sa-rt="+shopRT), 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := r.family(id).Version
			d := r.engine.Decide(t.Context(), tc.req, nil)
			if d.Allow || d.Status != tc.status || d.Reason != "session_other_policy" {
				t.Fatalf("allow=%v status=%d reason=%s, want %d session_other_policy", d.Allow, d.Status, d.Reason, tc.status)
			}
			if len(d.SetCookie) != 0 {
				t.Errorf("cookies touched: %d Set-Cookie", len(d.SetCookie))
			}
			if tc.status == 302 && headerValue(d.Response, "location") != "/admin/login?return_to=%2Fadmin%2Fx" {
				t.Errorf("location %q, want admin's login page", headerValue(d.Response, "location"))
			}
			if f := r.family(id); f.Version != before || !f.RevokedAt.IsZero() {
				t.Errorf("family written: version %d → %d, revoked %v", before, f.Version, f.RevokedAt)
			}
		})
	}
	// The session still works where it belongs.
	r.clock.Advance(testAccessTTL + time.Minute)
	if d := r.engine.Decide(t.Context(), routed("shop", "GET", "/api/x", "cookie", "__Host-sa-rt="+shopRT), nil); !d.Allow || d.Reason != "refreshed" {
		t.Fatalf("own policy afterwards: allow=%v reason=%s", d.Allow, d.Reason)
	}
}

// A still-valid access token of the route's own audience is unaffected by
// a refresh cookie of another policy's session: it passes until it
// expires, only without being renewed from that session.
func TestValidTokenBesideAnotherPolicysSession(t *testing.T) {
	r := newRig(t)
	shopAndAdmin(t, r, nil)
	adminAT, _ := r.loginFor("admin", r.engine.named["admin"].minter, "alice", nil)
	_, shopRT := r.loginFor("shop", r.engine.named["shop"].minter, "alice", nil)
	r.clock.Advance(testAccessTTL - 30*time.Second) // within RefreshBefore
	d := r.engine.Decide(t.Context(), routed("admin", "GET", "/api/x", "authorization", "Bearer "+adminAT, "cookie", "__Host-sa-rt="+shopRT), nil)
	if !d.Allow || d.Reason != "valid_session_other_policy" || headerValue(d.Upstream, "authorization") != "" || len(d.SetCookie) != 0 {
		t.Fatalf("allow=%v reason=%s cookies=%d", d.Allow, d.Reason, len(d.SetCookie))
	}
	if f := r.family(familyOf(t, shopRT)); f.Version != 1 {
		t.Errorf("shop's family rotated: version %d", f.Version)
	}
	r.clock.Advance(2 * time.Minute) // expired: nothing left to pass on
	d = r.engine.Decide(t.Context(), routed("admin", "GET", "/api/x", "authorization", "Bearer "+adminAT, "cookie", "__Host-sa-rt="+shopRT), nil)
	if d.Allow || d.Reason != "session_other_policy" {
		t.Fatalf("expired: allow=%v reason=%s", d.Allow, d.Reason)
	}
}

// Moving between two policies' routes on one host used to rotate the
// refresh token on every switch (each route refreshed the other's token
// into its own audience). Now only the session's own route refreshes, and
// only when its token expires.
func TestAlternatingPoliciesDoesNotRotate(t *testing.T) {
	r := newRig(t)
	shopAndAdmin(t, r, nil)
	at, rt := r.loginFor("shop", r.engine.named["shop"].minter, "alice", nil)
	id := familyOf(t, rt)
	for i := range 6 {
		policy := []string{"shop", "admin"}[i%2]
		d := r.engine.Decide(t.Context(), routed(policy, "GET", "/api/x", "cookie", ours(at, rt), "accept", "application/json"), nil)
		if want := policy == "shop"; d.Allow != want {
			t.Fatalf("request %d on %s: allow=%v reason=%s", i, policy, d.Allow, d.Reason)
		}
	}
	if f := r.family(id); f.Version != 1 {
		t.Fatalf("alternating routes rotated the session %d times", f.Version-1)
	}
}

// With sharing configured (admin accepts shop's sessions), a shop session
// is refreshed into admin's audience on admin's routes, and stays shop's;
// the other way round is still refused.
func TestSharedSessions(t *testing.T) {
	r := newRig(t)
	shopAndAdmin(t, r, func(policy, from string) bool { return policy == "admin" && from == "shop" })
	_, shopRT := r.loginFor("shop", r.engine.named["shop"].minter, "alice", nil)
	d := r.engine.Decide(t.Context(), routed("admin", "GET", "/api/x", "cookie", "__Host-sa-rt="+shopRT), nil)
	if !d.Allow || d.Reason != "refreshed" {
		t.Fatalf("shop session on admin: allow=%v reason=%s", d.Allow, d.Reason)
	}
	raw, _ := strings.CutPrefix(headerValue(d.Upstream, "authorization"), "Bearer ")
	if c, err := r.engine.named["admin"].verifier.Verify(raw); err != nil || c.Audience[0] != "admin-app" {
		t.Fatalf("token minted on admin: %v, %v", c, err)
	}
	if f := r.family(familyOf(t, shopRT)); f.Policy != "shop" || f.Version != 2 {
		t.Fatalf("family after the shared refresh: policy %q version %d", f.Policy, f.Version)
	}

	_, adminRT := r.loginFor("admin", r.engine.named["admin"].minter, "alice", nil)
	if d := r.engine.Decide(t.Context(), routed("shop", "GET", "/api/x", "cookie", "__Host-sa-rt="+adminRT), nil); d.Allow || d.Reason != "session_other_policy" {
		t.Fatalf("admin session on shop: allow=%v reason=%s", d.Allow, d.Reason)
	}
}

// Logout is not bound to a policy: whoever holds the current refresh token
// ends its session from any route, and the cookies are cleared.
func TestLogoutThroughAnotherPolicy(t *testing.T) {
	r := newRig(t)
	shopAndAdmin(t, r, nil)
	_, shopRT := r.loginFor("shop", r.engine.named["shop"].minter, "alice", nil)
	d := r.engine.Decide(t.Context(), routed("admin", "POST", "/auth/logout", "cookie", "__Host-sa-rt="+shopRT, "sec-fetch-site", "same-origin"), nil)
	if d.Status != 204 || len(d.SetCookie) != 3 {
		t.Fatalf("logout on admin: status %d, %d Set-Cookie", d.Status, len(d.SetCookie))
	}
	if f := r.family(familyOf(t, shopRT)); f.RevokedAt.IsZero() || f.RevokeReason != "logout" {
		t.Fatalf("shop session not revoked: %+v", f)
	}
}
