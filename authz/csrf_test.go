package authz

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

var trustedOrigins = []string{"https://trusted.example", "https://admin.example.com"}

func withTrustedOrigins(o *Options) { o.Policy.TrustedOrigins = trustedOrigins }

// csrfCases is the truth table of http.CrossOriginProtection for a request
// to app.example.com with trustedOrigins: method, Sec-Fetch-Site, Origin,
// and whether it passes.
var csrfCases = []struct {
	method, site, origin string
	pass                 bool
}{
	{"GET", "cross-site", "https://evil.example", true},
	{"HEAD", "cross-site", "https://evil.example", true},
	{"OPTIONS", "cross-site", "https://evil.example", true},
	{"POST", "same-origin", "https://app.example.com", true},
	{"POST", "none", "", true},
	{"POST", "same-site", "https://sub.example.com", false},
	{"POST", "same-site", "https://admin.example.com", true},
	{"POST", "cross-site", "https://evil.example", false},
	{"POST", "cross-site", "https://trusted.example", true},
	{"POST", "cross-site", "", false},
	{"POST", "", "https://app.example.com", true},
	{"POST", "", "https://evil.example", false},
	{"POST", "", "https://trusted.example", true},
	{"POST", "", "null", false},
	{"POST", "", "", true},
	{"PUT", "same-origin", "", true},
	{"PUT", "cross-site", "https://evil.example", false},
	{"PATCH", "none", "", true},
	{"PATCH", "same-site", "https://sub.example.com", false},
	{"DELETE", "", "https://app.example.com", true},
	{"DELETE", "cross-site", "https://evil.example", false},
	{"DELETE", "cross-site", "https://trusted.example", true},
}

// csrfHeaders returns the Sec-Fetch-Site and Origin header pairs of a case.
func csrfHeaders(site, origin string) []string {
	var kv []string
	if site != "" {
		kv = append(kv, "sec-fetch-site", site)
	}
	if origin != "" {
		kv = append(kv, "origin", origin)
	}
	return kv
}

// The table itself is Go's rules: checked against net/http's own
// CrossOriginProtection, so the engine is held to exactly them.
func TestCSRFTableIsGoRules(t *testing.T) {
	cop := http.NewCrossOriginProtection()
	for _, o := range trustedOrigins {
		if err := cop.AddTrustedOrigin(o); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range csrfCases {
		hr := &http.Request{Method: c.method, Host: "app.example.com", URL: &url.URL{Path: "/api"}, Header: http.Header{}}
		if c.site != "" {
			hr.Header.Set("Sec-Fetch-Site", c.site)
		}
		if c.origin != "" {
			hr.Header.Set("Origin", c.origin)
		}
		if pass := cop.Check(hr) == nil; pass != c.pass {
			t.Errorf("%s site=%q origin=%q: net/http says pass=%v, table %v", c.method, c.site, c.origin, pass, c.pass)
		}
	}
}

// Requirement 10: whenever one of our cookies decides an unsafe request,
// the CSRF rules apply; a refused refresh rotates nothing.
func TestCSRF(t *testing.T) {
	paths := []struct {
		name    string
		advance time.Duration
		cookie  func(at, rt string) string
		bearer  bool   // the access token comes in Authorization instead
		reason  string // of a pass
		// crossSite is the reason of a pass from a cross-site subresource
		// (requirement 11: never rotate there); "" = the same as reason.
		crossSite string
	}{
		{"valid cookie", time.Minute, ours, false, "valid", ""},
		{"refresh: expired cookie", testAccessTTL + time.Minute, ours, false, "refreshed", "cross_site_refresh"},
		{"refresh: expiring cookie", testAccessTTL - 30*time.Second, ours, false, "refreshed", "valid"},
		{"refresh: refresh cookie only", time.Minute, func(_, rt string) string { return ours("", rt) }, false, "refreshed", "cross_site_refresh"},
		{"refresh: expired bearer", testAccessTTL + time.Minute, func(_, rt string) string { return ours("", rt) }, true, "refreshed", "cross_site_refresh"},
		{"expiring cookie, no refresh cookie", testAccessTTL - 30*time.Second, func(at, _ string) string { return ours(at, "") }, false, "valid", ""},
	}
	for _, p := range paths {
		t.Run(p.name, func(t *testing.T) {
			for _, c := range csrfCases {
				r := newRig(t, withTrustedOrigins)
				at, rt := r.login("alice", nil)
				r.clock.Advance(p.advance)
				kv := append([]string{"cookie", p.cookie(at, rt)}, csrfHeaders(c.site, c.origin)...)
				if p.bearer {
					kv = append(kv, "authorization", "Bearer "+at)
				}
				d, v := r.run(t, req(c.method, "/api", kv...))
				want := p.reason
				if c.site == "cross-site" && p.crossSite != "" {
					want = p.crossSite
				}
				switch {
				case c.pass && want == "cross_site_refresh":
					if v.status != 401 || d.Reason != want || r.family(familyOf(t, rt)).Version != 1 {
						t.Errorf("%s site=%q origin=%q: status %d reason %s, want 401 %s", c.method, c.site, c.origin, v.status, d.Reason, want)
					}
				case c.pass && (!v.allow || d.Reason != want):
					t.Errorf("%s site=%q origin=%q: status %d reason %s, want allowed (%s)", c.method, c.site, c.origin, v.status, d.Reason, want)
				case !c.pass && (v.allow || v.status != 403 || d.Reason != "csrf" || len(v.setCookie) != 0):
					t.Errorf("%s site=%q origin=%q: allow=%v status %d reason %s cookies %d, want 403 csrf", c.method, c.site, c.origin, v.allow, v.status, d.Reason, len(v.setCookie))
				}
				if f := r.family(familyOf(t, rt)); !c.pass && f.Version != 1 {
					t.Errorf("%s site=%q origin=%q: a refused request rotated (version %d)", c.method, c.site, c.origin, f.Version)
				}
			}
		})
	}
}

// Requirement 10: an Authorization header is not ambient: a cross-site
// POST that carries it alone is not a CSRF. The session endpoints are
// cookie-authenticated and follow the rules.
func TestCSRFBearerAndEndpoints(t *testing.T) {
	r := newRig(t)
	at, rt := r.login("alice", nil)
	cross := []string{"sec-fetch-site", "cross-site", "origin", "https://evil.example"}
	if d := r.decide(req("POST", "/api", append(cross, "authorization", "Bearer "+at)...)); !d.Allow || d.Reason != "valid" {
		t.Fatalf("bearer cross-site POST: allow=%v reason %s", d.Allow, d.Reason)
	}
	for _, path := range []string{"/auth/refresh", "/auth/logout"} {
		d, v := r.run(t, req("POST", path, append(cross, "cookie", ours(at, rt))...))
		if v.status != 403 || d.Reason != "csrf" || len(v.setCookie) != 0 {
			t.Errorf("%s cross-site POST: status %d reason %s cookies %q", path, v.status, d.Reason, v.setCookie)
		}
	}
	if f := r.family(familyOf(t, rt)); f.Version != 1 || !f.RevokedAt.IsZero() {
		t.Fatalf("a refused endpoint changed the family: version %d revoked %v", f.Version, f.RevokedAt)
	}
}

// Requirement 11: a cross-site subresource's Set-Cookie may be dropped by
// the browser, so it never rotates; a cross-site navigation does.
func TestCrossSiteSubresourceNeverRotates(t *testing.T) {
	tests := []struct {
		site, mode string
		refresh    bool
	}{
		{"cross-site", "cors", false},
		{"cross-site", "no-cors", false},
		{"cross-site", "", false},
		{"cross-site", "navigate", true},
		{"same-site", "cors", true},
		{"same-origin", "no-cors", true},
		{"", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.site+"/"+tc.mode, func(t *testing.T) {
			r := newRig(t)
			at, rt := r.login("alice", nil)
			r.clock.Advance(testAccessTTL + time.Minute)
			kv := []string{"cookie", ours(at, rt)}
			if tc.site != "" {
				kv = append(kv, "sec-fetch-site", tc.site)
			}
			if tc.mode != "" {
				kv = append(kv, "sec-fetch-mode", tc.mode)
			}
			d, v := r.run(t, req("GET", "/page", kv...))
			version := r.family(familyOf(t, rt)).Version
			if tc.refresh {
				refreshed(t, r, v, at, rt)
				return
			}
			if v.allow || v.status != 401 || d.Reason != "cross_site_refresh" || len(v.setCookie) != 0 || version != 1 {
				t.Fatalf("allow=%v status %d reason %s cookies %q version %d; want 401 cross_site_refresh, nothing set or rotated",
					v.allow, v.status, d.Reason, v.setCookie, version)
			}
		})
	}
}

// The refresh endpoint keeps the same rule: a cross-site subresource POST
// from a trusted origin (which passes CSRF) still never rotates.
func TestRefreshEndpointNeverRotatesCrossSiteSubresource(t *testing.T) {
	r := newRig(t, func(o *Options) { o.Policy.TrustedOrigins = []string{"https://other.example"} })
	_, rt := r.login("alice", nil)
	d, v := r.run(t, req("POST", "/auth/refresh", "cookie", "__Host-sa-rt="+rt,
		"origin", "https://other.example", "sec-fetch-site", "cross-site", "sec-fetch-mode", "cors"))
	if v.status != 401 || d.Reason != "cross_site_refresh" || len(v.setCookie) != 0 || r.family(familyOf(t, rt)).Version != 1 {
		t.Fatalf("status %d reason %s cookies %q", v.status, d.Reason, v.setCookie)
	}
}

// Methods are case-sensitive, as for http.CrossOriginProtection: "get" is
// not a safe method, so a cross-site "get" riding on a cookie is refused.
func TestLowerCaseMethodIsNotSafe(t *testing.T) {
	r := newRig(t)
	at, _ := r.login("alice", nil)
	d := r.decide(req("get", "/api", "cookie", "__Host-sa-at="+at, "sec-fetch-site", "cross-site"))
	if d.Allow || d.Reason != "csrf" {
		t.Fatalf("allow=%v reason=%s", d.Allow, d.Reason)
	}
}

// Without a keyring nothing rotates: the refresh would be lost with no
// token to follow it, and the next use would look like theft.
func TestNoRotationWithoutKeyring(t *testing.T) {
	r := newRig(t)
	_, rt := r.login("alice", nil)
	r.ring.Store(nil)
	for _, cr := range []*authv3.CheckRequest{
		req("GET", "/api", "cookie", "__Host-sa-rt="+rt),
		req("POST", "/auth/refresh", "cookie", "__Host-sa-rt="+rt, "sec-fetch-site", "same-origin"),
	} {
		d, v := r.run(t, cr)
		if v.status != 503 || d.Reason != "no_keyring" || len(v.setCookie) != 0 || r.family(familyOf(t, rt)).Version != 1 {
			t.Fatalf("status %d reason %s cookies %q", v.status, d.Reason, v.setCookie)
		}
	}
}
