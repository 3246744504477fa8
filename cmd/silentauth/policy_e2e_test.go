package main

import (
	"context"
	"strings"
	"testing"
)

// One silentauth serving two applications: Envoy's per-route
// context_extensions select the named policy.
func TestEndToEndPerRoutePolicy(t *testing.T) {
	dir, _ := keyDir(t)
	cfg := writeConfig(t, `
keys: {dir: `+dir+`}
policies:
  admin:
    audience: admin-app
    requiredClaims: {role: [admin]}
    claimHeaders: {x-admin: sub}
  shop:
    audience: shop-app
    acceptSessionsFrom: [default]
shutdown: {drain: 0s, timeout: 5s}
`)
	p := start(t, []string{"--config", cfg})
	client := p.authz(t)
	if code, r := p.createSession(t, apiToken, `{"subject":"x","policy":"nope"}`); code != 400 || !strings.Contains(r.Message, "nope") {
		t.Fatalf("unknown policy at the session API: %d %+v", code, r)
	}
	_, admin := p.createSession(t, apiToken, `{"subject":"alice","claims":{"role":"admin"},"policy":"admin"}`)
	_, user := p.createSession(t, apiToken, `{"subject":"bob","claims":{"role":"user"},"policy":"admin"}`)
	_, plain := p.createSession(t, apiToken, `{"subject":"carol"}`)

	routed := func(policy, token string) (int, string) {
		cr := envoyRequest("GET", "/admin/users", "authorization", "Bearer "+token)
		cr.Attributes.ContextExtensions = map[string]string{"policy": policy}
		resp, err := client.Check(context.Background(), cr)
		if err != nil {
			t.Fatal(err)
		}
		if ok := resp.GetOkResponse(); ok != nil {
			return 200, upstream(resp)["x-admin"]
		}
		return int(resp.GetDeniedResponse().GetStatus().GetCode()), resp.GetDeniedResponse().GetBody()
	}
	cases := []struct {
		name, policy, token string
		status              int
		want                string
	}{
		{"admin route, admin token", "admin", admin.AccessToken, 200, "alice"},
		{"admin route, admin audience without the role", "admin", user.AccessToken, 403, "insufficient_claims"},
		{"admin route, default audience", "admin", plain.AccessToken, 401, "token_audience"},
		{"default route, default audience", "", plain.AccessToken, 200, ""},
		{"unknown policy fails closed", "ghost", admin.AccessToken, 500, "unknown_policy"},
	}
	for _, c := range cases {
		if status, got := routed(c.policy, c.token); status != c.status || !strings.Contains(got, c.want) {
			t.Errorf("%s: %d %q", c.name, status, got)
		}
	}

	// A session belongs to the policy it was started for; the shop policy
	// accepts the default policy's sessions (acceptSessionsFrom: [default]),
	// the admin policy does not.
	refresh := func(policy, rt string) (int, string) {
		cr := envoyRequest("GET", "/x", "cookie", "__Host-sa-rt="+rt, "accept", "application/json")
		cr.Attributes.ContextExtensions = map[string]string{"policy": policy}
		resp, err := client.Check(context.Background(), cr)
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetOkResponse() != nil {
			return 200, ""
		}
		return int(resp.GetDeniedResponse().GetStatus().GetCode()), resp.GetDeniedResponse().GetBody()
	}
	if status, body := refresh("admin", plain.RefreshToken); status != 401 || !strings.Contains(body, "session_other_policy") {
		t.Errorf("default session on the admin route: %d %s", status, body)
	}
	if status, body := refresh("shop", plain.RefreshToken); status != 200 {
		t.Errorf("default session on shop, which accepts it: %d %s", status, body)
	}
	if status, body := refresh("", admin.RefreshToken); status != 401 || !strings.Contains(body, "session_other_policy") {
		t.Errorf("admin session on the default route: %d %s", status, body)
	}
}
