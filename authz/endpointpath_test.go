package authz

import (
	"testing"
)

// endpointSpellings are request paths as a client may send them, and the
// session endpoint silentauth answers them as ("" = an ordinary request).
// Proxies route the spellings of the endpoints to silentauth (Caddy's path
// matcher ignores case), so every one must be answered as the endpoint:
// taken for an ordinary request, it would be allowed, and a proxy that
// routes it straight to silentauth would show the browser the allow's
// upstream-only headers.
var endpointSpellings = []struct{ path, endpoint string }{
	{"/auth/refresh", "/auth/refresh"},
	{"/AUTH/REFRESH", "/auth/refresh"},
	{"/Auth/Refresh?next=1", "/auth/refresh"},
	{"/auth/%72efresh", "/auth/refresh"},
	{"/auth/%52%45FRESH", "/auth/refresh"},
	{"/auth//refresh", "/auth/refresh"},
	{"//auth/refresh", "/auth/refresh"},
	{"/auth/./refresh", "/auth/refresh"},
	{"/x/../auth/refresh", "/auth/refresh"},
	{"/AUTH/LOGOUT", "/auth/logout"},
	{"/auth/%6cogout", "/auth/logout"},
	{"/auth/refresh/", ""},
	{"/auth/refreshx", ""},
	{"/auth/refresh.", ""},
	{"/auth/refresh%20", ""},
	{"/api/auth/refresh", ""},
}

func TestSessionEndpointSpellings(t *testing.T) {
	for _, c := range endpointSpellings {
		r := newRig(t)
		_, rt := r.login("alice", nil)
		d, v := r.run(t, req("POST", c.path, "cookie", ours("", rt), "sec-fetch-site", "same-origin"))
		want := map[string]string{"/auth/refresh": "endpoint_refreshed", "/auth/logout": "endpoint_logout", "": "refreshed"}[c.endpoint]
		if d.Reason != want || v.allow != (c.endpoint == "") {
			t.Errorf("POST %s: allow=%v status %d reason %s, want %s", c.path, v.allow, v.status, d.Reason, want)
		}
		for _, ep := range []string{"/auth/refresh", "/auth/logout"} {
			if got := SessionEndpoint(c.path, ep); got != (ep == c.endpoint) {
				t.Errorf("SessionEndpoint(%q, %q) = %v", c.path, ep, got)
			}
		}
	}
}

func TestSessionEndpointPattern(t *testing.T) {
	if got, want := SessionEndpointPattern("/auth/refresh", "/auth/logout"), `(?i)^(?:/auth/refresh|/auth/logout)$`; got != want {
		t.Errorf("pattern %s, want %s", got, want)
	}
	if got, want := SessionEndpointPattern("/a.b/c+"), `(?i)^(?:/a\.b/c\+)$`; got != want {
		t.Errorf("pattern %s, want %s", got, want)
	}
}
