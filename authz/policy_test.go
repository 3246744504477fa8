package authz

import (
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/token"
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

func (r *rig) route(audience string, p Policy) Route {
	return Route{
		Verifier: token.NewVerifier(token.VerifierOptions{Issuer: "silentauth", Audiences: []string{audience}, Leeway: 30 * time.Second, Keys: r.ring, Now: r.clock.Now, MaxTokenBytes: 8192, CacheSize: 100}),
		Minter:   token.NewMinter(token.MinterOptions{Issuer: "silentauth", Audience: audience, TTL: testAccessTTL, Keys: r.ring, Now: r.clock.Now}),
		Policy:   p,
	}
}

// routed is req with Envoy's per-route context_extensions naming policy.
func routed(policy, method, path string, kv ...string) *Request {
	cr := req(method, path, kv...)
	cr.Attributes.ContextExtensions = map[string]string{"policy": policy}
	r, _ := NewRequest(cr)
	return r
}

func TestPerRoutePolicies(t *testing.T) {
	r := newRig(t)
	r.withNamed(t, map[string]Route{
		"admin": r.route("admin-app", Policy{
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
		"admin": r.route("admin-app", Policy{RefreshPath: "/auth/refresh", LogoutPath: "/auth/logout", RequiredClaims: map[string][]string{"role": {"admin"}}}),
	})
	_, adminRT := r.login("alice", map[string]any{"role": "admin"})
	d := r.engine.Decide(t.Context(), routed("admin", "GET", "/x", "cookie", "__Host-sa-rt="+adminRT), nil)
	if !d.Allow || d.Reason != "refreshed" {
		t.Fatalf("admin refresh: allow=%v reason=%s", d.Allow, d.Reason)
	}
	c, err := r.engine.named["admin"].verifier.Verify(headerValue(d.Upstream, "authorization")[len("Bearer "):])
	if err != nil || c.Audience[0] != "admin-app" {
		t.Fatalf("refreshed token under the admin policy: %v %v", c, err)
	}

	_, userRT := r.login("bob", map[string]any{"role": "user"})
	d = r.engine.Decide(t.Context(), routed("admin", "GET", "/x", "cookie", "__Host-sa-rt="+userRT), nil)
	if d.Allow || d.Reason != "insufficient_claims" || len(d.SetCookie) != 3 {
		t.Fatalf("refused after rotation: allow=%v reason=%s cookies=%d", d.Allow, d.Reason, len(d.SetCookie))
	}
	if v, ok := cookieValue(d.SetCookie, "__Host-sa-rt"); !ok || v == userRT {
		t.Error("the rotated refresh cookie was not handed back")
	}
}
