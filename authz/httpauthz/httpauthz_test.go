package httpauthz

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/silentauth/silentauth/authz"
	"github.com/silentauth/silentauth/authz/access"
)

// The HTTP mode is tested the way each proxy calls it: an original request
// (what the browser sent) is shaped into the auth request that proxy sends,
// and the answer is read back the way that proxy reads it. The same
// expectations then hold for every profile.

// Peers: the proxy, and a client that reaches silentauth directly. Only
// addresses in a string; nothing is dialled.
const (
	proxyPeer  = "192.0.2.10:41000"
	clientPeer = "203.0.113.7:52000"
)

var allProfiles = []Profile{ProfileEnvoy, ProfileNginx, ProfileTraefik, ProfileCaddy}

// original is the request the browser sent to the proxy.
type original struct {
	method, uri, host string
	header            http.Header
}

// orig builds an original request to app.example.com with header pairs.
func orig(method, uri string, kv ...string) original {
	o := original{method: method, uri: uri, host: "app.example.com", header: http.Header{}}
	for i := 0; i+1 < len(kv); i += 2 {
		o.header.Add(kv[i], kv[i+1])
	}
	return o
}

// shape returns the auth request profile p's proxy sends for o, as the
// documented snippets in manifests/proxies configure it.
func shape(p Profile, o original) *http.Request {
	var r *http.Request
	switch p {
	case ProfileEnvoy:
		// http_service, path_prefix /authz/envoy: the original method,
		// path and :authority, allowed headers, x-forwarded-proto.
		r = httptest.NewRequest(o.method, "/authz/envoy"+o.uri, nil)
		r.Host = o.host
		r.Header = o.header.Clone()
		r.Header.Set("X-Forwarded-Proto", "https")
	case ProfileNginx:
		// auth_request subrequest: a GET to the auth location with every
		// original header; the snippet adds X-Original-*, X-Forwarded-*.
		r = httptest.NewRequest("GET", "/authz/nginx", nil)
		r.Host = "silentauth"
		r.Header = o.header.Clone()
		r.Header.Set("X-Original-Method", o.method)
		r.Header.Set("X-Original-URI", o.uri)
		r.Header.Set("X-Forwarded-Host", o.host)
		r.Header.Set("X-Forwarded-Proto", "https")
	case ProfileTraefik, ProfileCaddy:
		r = httptest.NewRequest("GET", "/authz/"+string(p), nil)
		r.Host = "silentauth:9002"
		r.Header = o.header.Clone()
		r.Header.Set("X-Forwarded-Method", o.method)
		r.Header.Set("X-Forwarded-Uri", o.uri)
		r.Header.Set("X-Forwarded-Host", o.host)
		r.Header.Set("X-Forwarded-Proto", "https")
	}
	r.RemoteAddr = proxyPeer
	return r
}

// httpAnswer is an answer as the proxy acts on it.
type httpAnswer struct {
	code      int  // the auth response's own status
	allow     bool // the proxy forwards to the upstream
	status    int  // what the client receives when denied
	action    string
	location  string
	reason    string
	upstream  http.Header // headers the proxy copies to the upstream on allow
	setCookie []string    // cookies the browser receives
	header    http.Header
}

// read interprets rec as profile p's proxy does, and checks the rules of
// that proxy's contract: nginx sees only 200, 401 and 403 and every cookie
// numbered; Caddy's numbered cookies appear only on allows (its denies go
// to the browser as they are); Traefik and Envoy use Set-Cookie.
func read(t *testing.T, p Profile, rec *httptest.ResponseRecorder) httpAnswer {
	t.Helper()
	h := rec.Result().Header
	a := httpAnswer{code: rec.Code, header: h, upstream: http.Header{}}
	a.allow = rec.Code == http.StatusOK
	a.status, a.location, a.action = rec.Code, h.Get("Location"), h.Get(HeaderAction)
	body := rec.Body.String()
	numbered := numberedCookies(h)
	switch {
	case p == ProfileNginx:
		if rec.Code != 200 && rec.Code != 401 && rec.Code != 403 {
			t.Fatalf("nginx: auth answer %d, nginx turns it into a 500", rec.Code)
		}
		if len(h.Values("Set-Cookie")) > 0 {
			t.Errorf("nginx: Set-Cookie in the auth answer (auth_request_set keeps only the first)")
		}
		a.setCookie = numbered
		if !a.allow {
			a.status, _ = strconv.Atoi(h.Get(HeaderStatus))
			a.location, body = h.Get(HeaderLocation), h.Get(HeaderBody)
			if a.action == "" {
				t.Errorf("nginx deny without %s", HeaderAction)
			}
		}
	case p == ProfileCaddy && a.allow:
		if len(h.Values("Set-Cookie")) > 0 {
			t.Errorf("caddy allow: Set-Cookie (forward_auth drops it; cookies must be numbered)")
		}
		a.setCookie = numbered
	default:
		if len(numbered) > 0 {
			t.Errorf("%s: numbered cookie headers in an answer the browser may see", p)
		}
		a.setCookie = h.Values("Set-Cookie")
	}
	if a.allow {
		for _, name := range []string{"Authorization", "Cookie", "X-User-Id", "X-User-Role"} {
			if v := h.Get(name); v != "" {
				a.upstream.Set(name, v)
			}
		}
	} else {
		a.reason = reason(t, body)
	}
	return a
}

func numberedCookies(h http.Header) []string {
	var out []string
	for i := 1; ; i++ {
		v := h.Get(HeaderCookiePrefix + strconv.Itoa(i))
		if v == "" {
			return out
		}
		out = append(out, v)
	}
}

// httpMode returns the rig's engine behind the HTTP mode, trusting the
// proxy peer, with its registry.
func (r *rig) httpMode(mutate ...func(*Options)) (http.Handler, *prometheus.Registry) {
	o := Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
	for _, m := range mutate {
		m(&o)
	}
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return NewHandler(r.engine, o, log, authz.NewMetrics(reg, 0)), reg
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

// ask sends o through profile p's proxy and reads the answer.
func ask(t *testing.T, h http.Handler, p Profile, o original) httpAnswer {
	t.Helper()
	return read(t, p, serve(h, shape(p, o)))
}

func cookieNames(setCookie []string) []string {
	var out []string
	for _, c := range setCookie {
		name, _, _ := strings.Cut(c, "=")
		out = append(out, name)
	}
	return out
}

var ourNames = []string{testCookies.Access, testCookies.Refresh, testCookies.Hint}

func TestHTTPModeAllowSetsUpstreamHeaders(t *testing.T) {
	for _, p := range allProfiles {
		t.Run(string(p), func(t *testing.T) {
			r := newRig(t)
			h, _ := r.httpMode()
			at, rt := r.login("alice", map[string]any{"role": "admin"})

			// The app's own cookie survives, ours do not reach it, and a
			// client's identity header is replaced by the claim.
			a := ask(t, h, p, orig("GET", "/api/data?x=1", "cookie", ours(at, rt)+"; theme=dark", "x-user-id", "mallory", "accept", "application/json"))
			if !a.allow || len(a.setCookie) != 0 {
				t.Fatalf("allow=%v set-cookie %v (%d %s)", a.allow, a.setCookie, a.code, a.reason)
			}
			want := http.Header{"Authorization": {"Bearer " + at}, "X-User-Id": {"alice"}, "X-User-Role": {"admin"}, "Cookie": {"theme=dark"}}
			for name := range want {
				if a.upstream.Get(name) != want.Get(name) {
					t.Errorf("upstream %s = %q, want %q", name, a.upstream.Get(name), want.Get(name))
				}
			}

			// Only our cookies: the upstream gets no cookie header at all
			// (forward-auth proxies delete what the answer lacks; Envoy is
			// told to remove it).
			a = ask(t, h, p, orig("GET", "/api/data", "cookie", ours(at, rt)))
			if !a.allow || a.upstream.Get("Cookie") != "" {
				t.Fatalf("allow=%v upstream cookie %q", a.allow, a.upstream.Get("Cookie"))
			}
			if p == ProfileEnvoy && a.header.Get(headerRemove) != "cookie" {
				t.Errorf("envoy: %s = %q, want cookie", headerRemove, a.header.Get(headerRemove))
			}

			// A bearer client's header passes as it came; a public path
			// keeps the client's own Authorization for the upstream.
			a = ask(t, h, p, orig("GET", "/static/app.js", "authorization", "Basic dXNlcjpwdw=="))
			if !a.allow || a.upstream.Get("Authorization") != "Basic dXNlcjpwdw==" || a.upstream.Get("X-User-Id") != "" {
				t.Fatalf("public path: allow=%v upstream %v", a.allow, a.upstream)
			}
		})
	}
}

func TestHTTPModeRefreshSetsThreeCookies(t *testing.T) {
	for _, p := range allProfiles {
		t.Run(string(p), func(t *testing.T) {
			r := newRig(t)
			h, _ := r.httpMode()
			at, rt := r.login("alice", nil)
			r.clock.Advance(testAccessTTL + time.Minute)

			a := ask(t, h, p, orig("GET", "/api/data", "cookie", ours(at, rt), "sec-fetch-site", "same-origin", "sec-fetch-mode", "cors"))
			if !a.allow {
				t.Fatalf("refresh denied: %d %s", a.status, a.reason)
			}
			if got := cookieNames(a.setCookie); !slices.Equal(got, ourNames) {
				t.Fatalf("cookies %v, want %v, each its own header", got, ourNames)
			}
			newAT, _ := cookieValue(a.setCookie, testCookies.Access)
			newRT, _ := cookieValue(a.setCookie, testCookies.Refresh)
			if newAT == at || newRT == rt || a.upstream.Get("Authorization") != "Bearer "+newAT {
				t.Fatalf("upstream %q does not carry the new access token", a.upstream.Get("Authorization"))
			}
			if a.header.Get("Cache-Control") != "no-store" {
				t.Errorf("refreshed answer without Cache-Control: no-store")
			}
			if p == ProfileNginx && len(a.header.Values(HeaderCookiePrefix+"1")) != 1 {
				t.Errorf("nginx: cookie 1 not in a header of its own")
			}

			// The browser now holds the new cookies: valid, nothing rotates.
			a = ask(t, h, p, orig("GET", "/api/data", "cookie", ours(newAT, newRT)))
			if !a.allow || len(a.setCookie) != 0 {
				t.Fatalf("after refresh: allow=%v cookies %d", a.allow, len(a.setCookie))
			}
		})
	}
}

// The denies, one line each, through every profile: the client-facing
// status, reason, location and cookie effect are those of Check; nginx
// additionally says 401 or 403 and which action its error_page takes.
func TestHTTPModeDenies(t *testing.T) {
	r, fs := newFaultRig(t, withTrustedOrigins)
	h, _ := r.httpMode()
	at, rt := r.login("alice", nil)
	expiredAT, expiredRT := r.login("bob", nil)
	r.clock.Advance(testAccessTTL - 30*time.Second) // at: valid, within refreshBefore; expired*: too
	_, freshRT := r.login("carol", nil)
	r.clock.Advance(time.Minute) // at and expiredAT now expired
	at2, _ := r.login("dave", nil)

	cases := []struct {
		name      string
		o         original
		storeDown bool
		status    int
		reason    string
		location  string
		cookies   []string // names set (cleared) for the browser
		nginx     int      // the auth answer nginx receives
		action    string
	}{
		{"api without credentials", orig("GET", "/api/data", "accept", "application/json"), false, 401, "no_credentials", "", nil, 401, "deny"},
		{"page without session", orig("GET", "/account?tab=1", "sec-fetch-mode", "navigate", "accept", "text/html"), false, 302, "no_credentials", "/login?return_to=%2Faccount%3Ftab%3D1", nil, 401, "login"},
		{"unknown refresh token", orig("GET", "/api/data", "cookie", ours("", "AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")), false, 401, "refresh_unknown", "", ourNames, 401, "deny"},
		{"store outage on refresh", orig("GET", "/api/data", "cookie", ours(expiredAT, expiredRT)), true, 503, "unavailable", "", nil, 403, "unavailable"},
		{"csrf with a valid token", orig("POST", "/api/transfer", "cookie", ours(at2, ""), "sec-fetch-site", "same-site", "origin", "https://sub.example.com"), false, 403, "csrf", "", nil, 403, "deny"},
		{"csrf with a refresh", orig("POST", "/api/transfer", "cookie", ours(at, rt), "sec-fetch-site", "cross-site", "origin", "https://evil.example"), false, 403, "csrf", "", nil, 403, "deny"},
		{"ambiguous path", orig("GET", "/api/%2e%2e%2fadmin;x", "cookie", ours(at2, "")), false, 400, "bad_path", "", nil, 403, "deny"},
		{"logout from a form", orig("POST", "/auth/logout", "cookie", ours(at2, freshRT), "sec-fetch-site", "same-origin", "sec-fetch-mode", "navigate"), false, 303, "endpoint_logout", "/login", ourNames, 401, "login"},
		{"refresh endpoint GET", orig("GET", "/auth/refresh", "cookie", ours(at2, freshRT)), false, 405, "method", "", nil, 403, "deny"},
	}
	for _, c := range cases {
		for _, p := range allProfiles {
			t.Run(c.name+"/"+string(p), func(t *testing.T) {
				fs.getErr = nil
				if c.storeDown {
					fs.getErr = errBackend
				}
				swaps := fs.swaps.Load()
				rec := serve(h, shape(p, c.o))
				a := read(t, p, rec)
				if a.allow || a.status != c.status || a.reason != c.reason && c.status != 303 && c.status != 302 || a.location != c.location {
					t.Fatalf("allow=%v status %d reason %q location %q; want %d %q %q", a.allow, a.status, a.reason, a.location, c.status, c.reason, c.location)
				}
				if got := cookieNames(a.setCookie); !slices.Equal(got, c.cookies) {
					t.Errorf("cookies %v, want %v", got, c.cookies)
				}
				if c.reason == "csrf" && fs.swaps.Load() != swaps {
					t.Errorf("a refused request rotated the refresh token")
				}
				if p == ProfileNginx && (a.code != c.nginx || a.action != c.action) {
					t.Errorf("nginx: %d %s, want %d %s", a.code, a.action, c.nginx, c.action)
				}
				if p != ProfileNginx && a.code != c.status {
					t.Errorf("%s: auth answer %d, want %d", p, a.code, c.status)
				}
				if c.status == 401 && !strings.HasPrefix(a.header.Get("Www-Authenticate"), "Bearer") {
					// nginx copies WWW-Authenticate from a 401 subrequest.
					t.Errorf("401 without WWW-Authenticate")
				}
			})
		}
	}
	fs.getErr = nil
	if r.logs.Len() == 0 || strings.Contains(r.logs.String(), at) || strings.Contains(r.logs.String(), rt) {
		t.Error("tokens in the log, or nothing logged")
	}
}

// csrfCase is a request to app.example.com: method, Sec-Fetch-Site, Origin,
// and whether Go's CrossOriginProtection with trustedOrigins passes it.
type csrfCase struct {
	method, site, origin string
	pass                 bool
}

// csrfCases spans methods, Sec-Fetch-Site and Origin values, each decided
// by net/http itself.
func csrfCases(t *testing.T) []csrfCase {
	cop := http.NewCrossOriginProtection()
	for _, o := range trustedOrigins {
		if err := cop.AddTrustedOrigin(o); err != nil {
			t.Fatal(err)
		}
	}
	var out []csrfCase
	for _, m := range []string{"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"} {
		for _, site := range []string{"", "same-origin", "none", "same-site", "cross-site"} {
			for _, origin := range []string{"", "https://app.example.com", "https://sub.example.com", "https://admin.example.com", "https://evil.example", "https://trusted.example", "null"} {
				hr := httptest.NewRequest(m, "https://app.example.com/api", nil)
				if site != "" {
					hr.Header.Set("Sec-Fetch-Site", site)
				}
				if origin != "" {
					hr.Header.Set("Origin", origin)
				}
				out = append(out, csrfCase{m, site, origin, cop.Check(hr) == nil})
			}
		}
	}
	return out
}

// The CSRF truth table of Go's CrossOriginProtection holds through every
// proxy: method and host travel in the forwarded headers.
func TestHTTPModeCSRFTable(t *testing.T) {
	r := newRig(t, withTrustedOrigins)
	h, _ := r.httpMode()
	at, _ := r.login("alice", nil)
	for _, p := range allProfiles {
		for _, c := range csrfCases(t) {
			kv := []string{"cookie", ours(at, "")}
			if c.site != "" {
				kv = append(kv, "sec-fetch-site", c.site)
			}
			if c.origin != "" {
				kv = append(kv, "origin", c.origin)
			}
			a := ask(t, h, p, orig(c.method, "/api", kv...))
			if a.allow != c.pass || (!c.pass && (a.status != 403 || a.reason != "csrf")) {
				t.Errorf("%s %s site=%q origin=%q: allow=%v %d %s, want pass=%v", p, c.method, c.site, c.origin, a.allow, a.status, a.reason, c.pass)
			}
		}
	}
}

// A client that reaches silentauth itself cannot describe another request:
// forwarded headers and policy selection from an untrusted peer change
// nothing; the decision is that of the same request without them.
func TestHTTPModeSpoofedForwardingIgnored(t *testing.T) {
	r := newRig(t)
	r.withNamed(t, map[string]authz.Route{"open": r.route("app", access.Policy{PublicPaths: []string{"/"}})})
	h, _ := r.httpMode()
	at, _ := r.login("alice", nil)

	spoofs := []struct {
		name   string
		target string
		method string
		kv     []string
	}{
		{"nginx: public path", "/authz/nginx", "GET", []string{"x-original-method", "GET", "x-original-uri", "/static/x.js", "x-forwarded-host", "app.example.com"}},
		{"traefik: public path", "/authz/traefik", "GET", []string{"x-forwarded-method", "GET", "x-forwarded-uri", "/static/x.js"}},
		{"caddy: public path", "/authz/caddy", "GET", []string{"x-forwarded-method", "GET", "x-forwarded-uri", "/healthz"}},
		{"nginx: named policy", "/authz/nginx?policy=open", "GET", []string{"x-original-method", "GET", "x-original-uri", "/api"}},
		{"envoy: named policy", "/authz/envoy/api", "GET", []string{"x-silentauth-policy", "open"}},
		{"envoy: POST called GET", "/authz/envoy/api", "POST", []string{"cookie", ours(at, ""), "sec-fetch-site", "cross-site", "x-forwarded-method", "GET", "x-original-method", "GET"}},
		{"traefik: POST called GET", "/authz/traefik", "POST", []string{"cookie", ours(at, ""), "sec-fetch-site", "cross-site", "x-forwarded-method", "GET", "x-forwarded-uri", "/api"}},
	}
	for _, s := range spoofs {
		t.Run(s.name, func(t *testing.T) {
			with := httptest.NewRequest(s.method, s.target, nil)
			without := httptest.NewRequest(s.method, s.target, nil)
			for i := 0; i+1 < len(s.kv); i += 2 {
				with.Header.Add(s.kv[i], s.kv[i+1])
				if n := strings.ToLower(s.kv[i]); !strings.HasPrefix(n, "x-") {
					without.Header.Add(s.kv[i], s.kv[i+1])
				}
			}
			with.RemoteAddr, without.RemoteAddr = clientPeer, clientPeer
			got, want := serve(h, with), serve(h, without)
			if got.Code == 200 || got.Code != want.Code || got.Body.String() != want.Body.String() {
				t.Fatalf("spoofed: %d %s; plain: %d %s", got.Code, got.Body, want.Code, want.Body)
			}
			// The same headers from the trusted proxy do count: they are
			// what the test above ignored.
			with.RemoteAddr = proxyPeer
			if trusted := serve(h, with); trusted.Code == got.Code && trusted.Body.String() == got.Body.String() && !strings.Contains(s.name, "POST called GET") {
				t.Errorf("the trusted proxy's headers changed nothing either: %d", trusted.Code)
			}
		})
	}
	if !strings.Contains(r.logs.String(), "untrusted peer") {
		t.Error("spoofed forwarding was not logged")
	}

	// Through Envoy, a client's X-Forwarded-Method cannot turn its POST
	// into a GET: Envoy's profile reads the method of the request itself.
	a := ask(t, h, ProfileEnvoy, orig("POST", "/api", "cookie", ours(at, ""), "sec-fetch-site", "cross-site", "x-forwarded-method", "GET"))
	if a.allow || a.reason != "csrf" {
		t.Fatalf("envoy: spoofed method passed: allow=%v %s", a.allow, a.reason)
	}
	// A client's copy beside the proxy's is ambiguous: refused, not guessed.
	req := shape(ProfileTraefik, orig("POST", "/api", "cookie", ours(at, "")))
	req.Header.Add("X-Forwarded-Method", "GET")
	if a := read(t, ProfileTraefik, serve(h, req)); a.allow || a.status != 400 {
		t.Fatalf("two X-Forwarded-Method values: allow=%v %d", a.allow, a.status)
	}
	// A trusted proxy that omits the method is misconfigured: 400.
	req = shape(ProfileNginx, orig("POST", "/api", "cookie", ours(at, "")))
	req.Header.Del("X-Original-Method")
	if a := read(t, ProfileNginx, serve(h, req)); a.allow || a.status != 400 {
		t.Fatalf("no X-Original-Method: allow=%v %d", a.allow, a.status)
	}
}

func TestHTTPModeNamedPolicyFromTrustedProxy(t *testing.T) {
	r := newRig(t)
	r.withNamed(t, map[string]authz.Route{"open": r.route("app", access.Policy{PublicPaths: []string{"/"}})})
	h, _ := r.httpMode()
	req := shape(ProfileNginx, orig("GET", "/api"))
	req.URL.RawQuery, req.RequestURI = "policy=open", "/authz/nginx?policy=open"
	if a := read(t, ProfileNginx, serve(h, req)); !a.allow {
		t.Fatalf("nginx ?policy=open: %d %s", a.status, a.reason)
	}
	req = shape(ProfileEnvoy, orig("GET", "/api"))
	req.Header.Set(HeaderPolicy, "open")
	if a := read(t, ProfileEnvoy, serve(h, req)); !a.allow {
		t.Fatalf("envoy %s: open: %d %s", HeaderPolicy, a.status, a.reason)
	}
	// A proxy that adds its own header beside a client's copy sends two:
	// refused, whichever comes first.
	req = shape(ProfileEnvoy, orig("GET", "/api"))
	req.Header.Add(HeaderPolicy, "open")
	req.Header.Add(HeaderPolicy, "nope")
	if a := read(t, ProfileEnvoy, serve(h, req)); a.allow || a.status != 400 {
		t.Fatalf("two %s values: allow=%v %d", HeaderPolicy, a.allow, a.status)
	}
	// The forward-auth profiles read the policy from the auth URI only: a
	// client's header, which their proxies forward, selects nothing.
	req = shape(ProfileCaddy, orig("GET", "/api", "accept", "application/json"))
	req.Header.Set(HeaderPolicy, "open")
	if a := read(t, ProfileCaddy, serve(h, req)); a.allow || a.reason != "no_credentials" {
		t.Fatalf("caddy with a client's %s: allow=%v %d %s", HeaderPolicy, a.allow, a.status, a.reason)
	}
	req = shape(ProfileTraefik, orig("GET", "/api"))
	req.URL.RawQuery, req.RequestURI = "policy=nope", "/authz/traefik?policy=nope"
	if a := read(t, ProfileTraefik, serve(h, req)); a.allow || a.status != 500 {
		t.Fatalf("unknown policy: allow=%v %d", a.allow, a.status)
	}
}

func TestHTTPModeRoutes(t *testing.T) {
	r := newRig(t)
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	cases := []struct {
		profile Profile // Options.Profile
		target  string
		code    int // 401: reached the Engine (no credentials); 418: Next
	}{
		{"", "/authz", 418},
		{ProfileNginx, "/authz", 401},
		{ProfileNginx, "/authz?policy=x", 403}, // unknown policy: 500, told to nginx as 403
		{ProfileEnvoy, "/authz", 418},
		{"", "/authz/nginx", 401},
		{"", "/authz/traefik?x=1", 401},
		{"", "/authz/caddy", 401},
		{"", "/authz/unknown", 418},
		{"", "/authz/nginxx", 418},
		{"", "/authzx", 418},
		{"", "/.well-known/jwks.json", 418},
		{"", "/authz/envoy", 401},
		{"", "/authz/envoy?q=1", 401},
		{"", "/authz/envoy/api", 401},
		{"", "/authz/envoyx/api", 418},
		{"", "/authz/envoy/static/../healthz", 200}, // judged as /healthz, not redirected
		{"", "/authz/envoy//static//x.js", 200},
		{"", "/authz/envoy/api;/static/x", 400},
	}
	for _, c := range cases {
		h, _ := r.httpMode(func(o *Options) { o.Profile, o.Next = c.profile, next })
		req := httptest.NewRequest("GET", "http://silentauth"+c.target, nil)
		req.RequestURI = c.target
		req.RemoteAddr = proxyPeer
		req.Header.Set("X-Original-Method", "GET")
		req.Header.Set("X-Original-URI", "/api")
		req.Header.Set("X-Forwarded-Method", "GET")
		req.Header.Set("X-Forwarded-Uri", "/api")
		if got := serve(h, req).Code; got != c.code {
			t.Errorf("profile %q %s: %d, want %d", c.profile, c.target, got, c.code)
		}
	}
	// Without Next, other paths are 404.
	h, _ := r.httpMode()
	if got := serve(h, httptest.NewRequest("GET", "/other", nil)).Code; got != 404 {
		t.Errorf("no Next: %d", got)
	}
}

// Decisions are counted and logged like Check's, with the transport and
// profile, never with a token.
func TestHTTPModeMetricsAndLogs(t *testing.T) {
	r := newRig(t, withTrustedOrigins)
	h, reg := r.httpMode()
	at, rt := r.login("alice", nil)
	ask(t, h, ProfileNginx, orig("POST", "/api", "cookie", ours(at, rt), "sec-fetch-site", "cross-site", "x-request-id", "req-42"))
	ask(t, h, ProfileTraefik, orig("GET", "/api", "cookie", ours(at, rt)))

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "silentauth_check_decisions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				key += l.GetName() + "=" + l.GetValue() + " "
			}
			counts[strings.TrimSpace(key)] = m.GetCounter().GetValue()
		}
	}
	if counts["decision=deny reason=csrf"] != 1 || counts["decision=allow reason=valid"] != 1 {
		t.Fatalf("decision counts %v", counts)
	}
	logs := r.logs.String()
	for _, want := range []string{`"transport":"http"`, `"profile":"nginx"`, `"reason":"csrf"`, `"request_id":"req-42"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, at) || strings.Contains(logs, rt) {
		t.Error("a token reached the log")
	}
}

// FuzzHTTPModeNginx feeds arbitrary descriptions of the original request
// from the trusted proxy: nginx must only ever get 200, 401 or 403, and
// nothing without credentials passes but a public path.
func FuzzHTTPModeNginx(f *testing.F) {
	f.Add("GET", "/api", "app.example.com")
	f.Add("POST", "/static/../api", "app.example.com:8443")
	f.Add("get", "/%2e%2e/static/x", "")
	f.Add("GET\r\nX: y", "//static//x.js?q=1#f", "a b")
	f.Add("", "http://evil.example/static/x", "evil.example")
	r := newRig(f)
	// Logged as in production, into nothing: r.logs would grow with every
	// input.
	h := NewHandler(r.engine, Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}},
		slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug})), authz.NewMetrics(prometheus.NewRegistry(), 0))
	f.Fuzz(func(t *testing.T, method, uri, host string) {
		// Built by hand: httptest.NewRequest parses a request line each
		// time, a third of an input's cost.
		req := &http.Request{Method: "GET", URL: &url.URL{Path: "/authz/nginx"}, RequestURI: "/authz/nginx",
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "silentauth.internal", RemoteAddr: proxyPeer, Header: http.Header{}}
		req.Header.Set("X-Original-Method", method)
		req.Header.Set("X-Original-URI", uri)
		req.Header.Set("X-Forwarded-Host", host)
		rec := serve(h, req)
		if rec.Code != 200 && rec.Code != 401 && rec.Code != 403 {
			t.Fatalf("nginx answer %d", rec.Code)
		}
		if rec.Code == 200 {
			r, err := authz.NewRequest("GET", "", "app.example.com", uri, authz.Headers{}, "")
			p := ""
			if r != nil {
				p = r.Path
			}
			if err != nil || !(p == "/healthz" || strings.HasPrefix(p, "/static/")) {
				t.Fatalf("%q %q allowed without credentials (path %q, %v)", method, uri, p, err)
			}
		}
	})
}

// The reuse event names the client: in HTTP mode, the entry the trusted
// proxy appended to X-Forwarded-For, never one a client wrote itself.
func TestHTTPModeReuseEventNamesTheClient(t *testing.T) {
	r := newRig(t)
	h, _ := r.httpMode()
	at, rt := r.login("alice", nil)
	r.clock.Advance(testAccessTTL + time.Minute)
	a := ask(t, h, ProfileNginx, orig("GET", "/api", "cookie", ours(at, rt)))
	at1, _ := cookieValue(a.setCookie, testCookies.Access)
	rt1, _ := cookieValue(a.setCookie, testCookies.Refresh)
	if !a.allow || rt1 == "" {
		t.Fatalf("refresh: allow=%v", a.allow)
	}
	ask(t, h, ProfileNginx, orig("GET", "/api", "cookie", ours(at1, rt1))) // its holder uses it
	r.sessions.Wait()
	r.clock.Advance(time.Minute)
	stale := shape(ProfileNginx, orig("GET", "/api", "cookie", ours(at, rt), "user-agent", "stolen/1.0",
		"x-forwarded-for", "198.51.100.9, 192.0.2.44"))
	if a := read(t, ProfileNginx, serve(h, stale)); a.allow || a.reason != "refresh_reuse" {
		t.Fatalf("stale token: allow=%v reason %s", a.allow, a.reason)
	}
	for _, want := range []string{`"event":"refresh_token_reuse"`, `"client_address":"192.0.2.44"`, `"user_agent":"stolen/1.0"`} {
		if !strings.Contains(r.logs.String(), want) {
			t.Fatalf("log lacks %s:\n%s", want, r.logs.String())
		}
	}
}

// endpointSpellings are spellings of the session endpoints a client may
// send; each is answered as the endpoint (the authz package's table holds
// the ordinary look-alikes too).
var endpointSpellings = []struct{ path string }{
	{"/auth/refresh"}, {"/AUTH/REFRESH"}, {"/Auth/Refresh?next=1"}, {"/auth/%72efresh"}, {"/auth/%52%45FRESH"},
	{"/auth//refresh"}, {"//auth/refresh"}, {"/auth/./refresh"}, {"/x/../auth/refresh"}, {"/AUTH/LOGOUT"}, {"/auth/%6cogout"},
}

// The HTTP mode decides the same way through every profile, whether the
// proxy asks about the request (forward auth) or routes it straight to
// silentauth (/authz/envoy, as the Caddy and Traefik snippets do for the
// endpoints): an endpoint spelling is answered 204, never allowed with
// upstream headers.
func TestHTTPModeSessionEndpointSpellings(t *testing.T) {
	for _, p := range allProfiles {
		for _, c := range endpointSpellings {
			r := newRig(t)
			h, _ := r.httpMode()
			_, rt := r.login("alice", nil)
			a := ask(t, h, p, orig("POST", c.path, "cookie", ours("", rt), "sec-fetch-site", "same-origin"))
			if a.allow || a.status != 204 || len(a.setCookie) != 3 || a.header.Get("Authorization") != "" {
				t.Errorf("%s: POST %s: allow=%v status %d, %d cookies, authorization %v", p, c.path, a.allow, a.status, len(a.setCookie), a.header.Get("Authorization") != "")
			}
		}
	}
}

// The HTTP mode answers through the same Decision: Envoy's http_service is
// told to remove each spelling.
func TestHTTPModeRemovesSpellings(t *testing.T) {
	r := newRig(t)
	h, _ := r.httpMode()
	at, _ := r.login("alice", nil)
	a := ask(t, h, ProfileEnvoy, orig("GET", "/api", "authorization", "Bearer "+at, "X_User_Id", "mallory", "x-user_role", "admin"))
	if !a.allow || a.header.Get(headerRemove) != "x-user_role,x_user_id" || a.upstream.Get("X-User-Id") != "alice" {
		t.Errorf("allow=%v %s %q x-user-id %q", a.allow, headerRemove, a.header.Get(headerRemove), a.upstream.Get("X-User-Id"))
	}
}

// Every header that describes another request is read only from trusted
// proxies: the Engine never sees it.
func TestDescribingHeadersAreForwarding(t *testing.T) {
	for _, n := range describing {
		if !isForwarding(strings.ToLower(n)) {
			t.Errorf("%s describes the original request but reaches the Engine", n)
		}
	}
}
