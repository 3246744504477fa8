package authz

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// decide runs the engine on cr and returns its Decision.
func (r *rig) decide(cr *authv3.CheckRequest) Decision {
	req, err := FromCheckRequest(cr)
	return r.engine.Decide(context.Background(), req, err)
}

func TestFixtureBearerOverGRPC(t *testing.T) {
	r := newRig(t)
	at, _ := r.login("alice", map[string]any{"role": "admin"})
	cr := fixture(t, "envoy_get_bearer.json", at, "")
	resp, err := r.client().Check(context.Background(), cr)
	if err != nil {
		t.Fatal(err)
	}
	v := flatten(t, resp)
	if !v.allow {
		t.Fatalf("valid bearer token denied: %+v", v)
	}
	// The request's own Authorization header already says it: Envoy
	// forwards it untouched, and the answer does not repeat it.
	if got, set := v.upstream["authorization"]; set {
		t.Errorf("answer repeats the request's authorization header: %.20q…", got)
	}
	if got := upstreamAfter(cr.GetAttributes().GetRequest().GetHttp().GetHeaders(), resp)["authorization"]; got != "Bearer "+at {
		t.Errorf("upstream receives authorization %.20q…", got)
	}
	if v.upstream["x-user-id"] != "alice" || v.upstream["x-user-role"] != "admin" {
		t.Errorf("identity headers = %v", v.upstream)
	}
	if _, ok := v.upstream["cookie"]; ok || slices.Contains(v.remove, "cookie") {
		t.Errorf("cookie header without our cookies was touched: %v %v", v.upstream, v.remove)
	}
	if len(v.setCookie) != 0 {
		t.Errorf("a valid token set cookies: %v", v.setCookie)
	}
}

func TestFixtureCookieNavigationStripsOurCookies(t *testing.T) {
	r := newRig(t)
	at, rt := r.login("alice", nil)
	v := flatten(t, r.check(fixture(t, "envoy_navigate_cookie.json", at, rt)))
	if !v.allow {
		t.Fatalf("valid cookie denied: %+v", v)
	}
	if got := v.upstream["cookie"]; got != "theme=dark" {
		t.Errorf("upstream cookie = %q, want only the app's cookie", got)
	}
	if v.upstream["authorization"] != "Bearer "+at {
		t.Error("upstream authorization not set from the cookie")
	}
	if _, ok := v.upstream["x-user-role"]; ok {
		t.Error("a claim the session lacks produced a header")
	}
}

func TestFixtureRawHeaderMap(t *testing.T) {
	r := newRig(t)
	at, _ := r.login("bob", nil)
	v := flatten(t, r.check(fixture(t, "envoy_raw_header_map.json", at, "")))
	if !v.allow || v.upstream["x-user-id"] != "bob" {
		t.Fatalf("header_map request: %+v", v)
	}
	if v.upstream["cookie"] != "theme=dark" {
		t.Errorf("upstream cookie = %q", v.upstream["cookie"])
	}
}

func TestFixtureMissingAttributesIsADenyNotAnError(t *testing.T) {
	r := newRig(t)
	resp, err := r.client().Check(context.Background(), fixture(t, "envoy_missing_http.json", "", ""))
	if err != nil {
		t.Fatalf("gRPC error for a malformed CheckRequest: %v", err)
	}
	if v := flatten(t, resp); v.allow || v.status != 400 || !strings.Contains(v.body, "bad_request") {
		t.Fatalf("got %+v", v)
	}
	if resp, err := r.client().Check(context.Background(), &authv3.CheckRequest{}); err != nil || resp.GetDeniedResponse() == nil {
		t.Fatalf("empty CheckRequest: %v %v", resp, err)
	}
}

func TestFixtureNavigationWithoutSessionRedirectsToLogin(t *testing.T) {
	r := newRig(t)
	v := flatten(t, r.check(fixture(t, "envoy_navigate_cookie.json", "", "")))
	loc := v.response["location"]
	if v.status != 302 || loc != "/login?return_to="+url.QueryEscape("/dashboard?tab=1") {
		t.Fatalf("status %d location %q", v.status, loc)
	}
}

func TestFixtureCrossSitePostWithCookieIsCSRF(t *testing.T) {
	r := newRig(t)
	at, rt := r.login("alice", nil)
	d := r.decide(fixture(t, "envoy_post_cross_site.json", at, rt))
	if d.Allow || d.Status != 403 || d.Reason != "csrf" {
		t.Fatalf("got allow=%v status=%d reason=%s", d.Allow, d.Status, d.Reason)
	}
}

// hostile tokens, each with the deny reason it must produce.
func TestAccessTokenDenies(t *testing.T) {
	r := newRig(t)
	at, _ := r.login("alice", nil)
	head, rest, _ := strings.Cut(at, ".")
	payload, sig, _ := strings.Cut(rest, ".")
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	flip := func(s string) string {
		b := []byte(s)
		if b[len(b)/2] == 'A' {
			b[len(b)/2] = 'B'
		} else {
			b[len(b)/2] = 'A'
		}
		return string(b)
	}
	cases := []struct {
		name, token, reason string
	}{
		{"two segments", head + "." + payload, "token_malformed"},
		{"four segments", at + ".x", "token_malformed"},
		{"b64token but not base64url", "a+b.c/d.e~f", "token_malformed"},
		// A payload is read only once its signature holds, so tampering
		// with it is a forgery whatever the bytes now decode to.
		{"tampered payload", head + "." + flip(payload) + "." + sig, "token_signature"},
		{"tampered signature", head + "." + payload + "." + flip(sig), "token_signature"},
		{"alg none", b64(`{"alg":"none","typ":"at+jwt","kid":"`+r.key.ID+`"}`) + "." + payload + ".", "token_malformed"},
		{"unknown kid", b64(`{"alg":"ES256","typ":"at+jwt","kid":"nope"}`) + "." + payload + "." + sig, "token_unknown_key"},
		{"jku header", b64(`{"alg":"ES256","typ":"at+jwt","kid":"`+r.key.ID+`","jku":"https://evil.example/jwks"}`) + "." + payload + "." + sig, "token_header"},
		{"oversized", strings.Repeat("a", 9000), "token_too_large"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := r.decide(req("GET", "/api", "authorization", "Bearer "+c.token))
			if d.Allow || d.Status != 401 || !strings.HasPrefix(d.Reason, "token_") {
				t.Fatalf("allow=%v status=%d reason=%s", d.Allow, d.Status, d.Reason)
			}
			if d.Reason != c.reason {
				t.Errorf("reason %s, want %s", d.Reason, c.reason)
			}
			if !strings.Contains(d.Body, d.Reason) || !hasHeader(d.Response, "www-authenticate", `error="invalid_token"`) {
				t.Errorf("deny body %q headers %v", d.Body, d.Response)
			}
		})
	}
}

func hasHeader(hs []Header, name, contains string) bool {
	for _, h := range hs {
		if h.Name == name && strings.Contains(h.Value, contains) {
			return true
		}
	}
	return false
}

func TestExpiredAccessTokenWithoutRefreshIsDenied(t *testing.T) {
	r := newRig(t)
	at, _ := r.login("alice", nil)
	r.clock.Advance(testAccessTTL + time.Minute)
	d := r.decide(req("GET", "/api", "authorization", "Bearer "+at))
	if d.Allow || d.Reason != "token_expired" || d.Status != 401 {
		t.Fatalf("got %+v", d)
	}
	if len(d.SetCookie) != 0 {
		t.Error("an expired access token alone cleared cookies")
	}
}

func TestNoCredentials(t *testing.T) {
	r := newRig(t)
	cases := []struct {
		name   string
		cr     *authv3.CheckRequest
		status int
	}{
		{"api call", req("GET", "/api", "accept", "application/json"), 401},
		{"navigation by fetch metadata", req("GET", "/page", "sec-fetch-mode", "navigate"), 302},
		{"navigation by accept", req("GET", "/page", "accept", "text/html"), 302},
		{"post is never redirected", req("POST", "/page", "accept", "text/html"), 401},
		{"cors fetch is not a navigation", req("GET", "/page", "sec-fetch-mode", "cors", "accept", "text/html"), 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := r.decide(c.cr)
			if d.Allow || d.Status != c.status || d.Reason != "no_credentials" {
				t.Fatalf("got allow=%v status=%d reason=%s", d.Allow, d.Status, d.Reason)
			}
			if c.status == 401 && !hasHeader(d.Response, "www-authenticate", `Bearer realm="silentauth"`) {
				t.Errorf("www-authenticate missing: %v", d.Response)
			}
		})
	}
}

func TestLoginRedirectIsNeverOpen(t *testing.T) {
	r := newRig(t)
	for _, p := range []string{"/a?next=https://evil.example", "//evil.example/x", "/./evil", "/a/../../b"} {
		d := r.decide(req("GET", p, "sec-fetch-mode", "navigate"))
		if d.Status != 302 {
			t.Fatalf("%s: status %d", p, d.Status)
		}
		loc, _ := url.Parse(headerValue(d.Response, "location"))
		back := loc.Query().Get("return_to")
		if !strings.HasPrefix(back, "/") || strings.HasPrefix(back, "//") {
			t.Errorf("%s: return_to %q is not a same-origin path", p, back)
		}
	}
}

func headerValue(hs []Header, name string) string {
	for _, h := range hs {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

func TestPublicPaths(t *testing.T) {
	r := newRig(t)
	cases := []struct {
		path   string
		public bool
	}{
		{"/healthz", true},
		{"/healthz?x=1", true},
		{"/healthz/", false},
		{"/healthzz", false},
		{"/static/app.js", true},
		{"/static", false},
		{"/static/../api", false},
		{"//static/app.js", true},
		{"/%73tatic/app.js", true},
		{"/static%2f../api", false},
	}
	for _, c := range cases {
		d := r.decide(req("GET", c.path))
		if d.Allow != c.public {
			t.Errorf("%s: allow=%v reason=%s", c.path, d.Allow, d.Reason)
		}
	}
}

func TestPublicPathStillStripsOurCookiesAndIdentityHeaders(t *testing.T) {
	r := newRig(t)
	d := r.decide(req("GET", "/static/x.css", "cookie", "__Host-sa-rt=secret; a=b", "x-user-id", "spoof"))
	if !d.Allow || headerValue(d.Upstream, "cookie") != "a=b" || !slices.Contains(d.Remove, "x-user-id") {
		t.Fatalf("got %+v", d)
	}
}

func TestNormalizePath(t *testing.T) {
	cases := []struct {
		raw, clean, query string
		bad               bool
	}{
		{"/", "/", "", false},
		{"/a/b?c=d#e", "/a/b", "c=d", false},
		{"/a//b/", "/a/b/", "", false},
		{"/a/./b/../c", "/a/c", "", false},
		{"/../../etc", "/etc", "", false},
		{"/%61pi", "/api", "", false},
		{"/a%2fb", "/", "", true},
		{"/a%2Fb", "/", "", true},
		{"/a%5cb", "/", "", true},
		{"/a%3bb", "/", "", true},
		{"/a;b", "/", "", true},
		{"/a\\b", "/", "", true},
		{"/a%zz", "/", "", true},
		{"/a%00", "/", "", true},
		{"a/b", "/", "", true},
		{"*", "/", "", true},
	}
	for _, c := range cases {
		clean, q, err := normalizePath(c.raw)
		if (err != nil) != c.bad || clean != c.clean || q != c.query {
			t.Errorf("normalizePath(%q) = %q, %q, %v", c.raw, clean, q, err)
		}
	}
}

func TestHeaderLimits(t *testing.T) {
	r := newRig(t)
	many := req("GET", "/api")
	for i := 0; i < maxHeaders+1; i++ {
		many.Attributes.Request.Http.Headers["x-h-"+strings.Repeat("a", i%50)+string(rune('a'+i%26))+strings.Repeat("b", i/26)] = "v"
	}
	huge := req("GET", "/api", "x-big", strings.Repeat("a", maxHeaderBytes+1))
	longPath := req("GET", "/"+strings.Repeat("a", maxPathBytes))
	for name, cr := range map[string]*authv3.CheckRequest{"many": many, "huge": huge, "long path": longPath} {
		if d := r.decide(cr); d.Allow || d.Status != 400 || d.Reason != "bad_request" {
			t.Errorf("%s: got allow=%v status=%d reason=%s", name, d.Allow, d.Status, d.Reason)
		}
	}
}

func TestDenyBodyIsJSON(t *testing.T) {
	r := newRig(t)
	d := r.decide(req("GET", "/api"))
	var body map[string]string
	if err := json.Unmarshal([]byte(d.Body), &body); err != nil || body["reason"] != "no_credentials" || body["error"] != "invalid_token" {
		t.Fatalf("body %q: %v", d.Body, err)
	}
}

func TestLogsNeverHoldTokens(t *testing.T) {
	r := newRig(t)
	at, rt := r.login("alice", nil)
	r.check(req("GET", "/api", "authorization", "Bearer "+at))
	r.check(req("GET", "/api", "cookie", "__Host-sa-rt="+rt+"; __Host-sa-at=garbage"))
	r.check(req("GET", "/api", "authorization", "Bearer "+at+"x"))
	r.clock.Advance(time.Hour)
	r.check(req("GET", "/api", "cookie", "__Host-sa-rt="+rt))
	logs := r.logs.String()
	if logs == "" {
		t.Fatal("nothing was logged")
	}
	_, secret, _ := strings.Cut(rt, ".")
	for _, s := range []string{at, strings.Split(at, ".")[2], secret} {
		if strings.Contains(logs, s) {
			t.Fatalf("logs hold a token or secret:\n%s", logs)
		}
	}
}

// An Authorization header that is not exactly "Bearer <token>" (another
// case, extra spaces) is replaced by the canonical form, so the upstream
// never has to parse a variant.
func TestNonCanonicalBearerIsRewritten(t *testing.T) {
	r := newRig(t)
	at, _ := r.login("alice", nil)
	for _, h := range []string{"bearer " + at, "BEARER " + at, "Bearer  " + at, "Bearer " + at + " "} {
		_, v := r.run(t, req("GET", "/api", "authorization", h))
		if !v.allow || v.upstream["authorization"] != "Bearer "+at {
			t.Errorf("%.10q…: allow %v, answer sets authorization %.12q…", h, v.allow, v.upstream["authorization"])
		}
	}
	_, v := r.run(t, req("GET", "/api", "authorization", "Bearer "+at))
	if _, set := v.upstream["authorization"]; set || v.received["authorization"] != "Bearer "+at {
		t.Errorf("canonical header: answer sets it %v; upstream receives %.12q…", set, v.received["authorization"])
	}
}
