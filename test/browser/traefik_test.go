package browser

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/silentauth/silentauth/internal/testenv/logbuf"
	"github.com/silentauth/silentauth/internal/testenv/redistest"
	"github.com/silentauth/silentauth/internal/testenv/toolsdir"
)

// traefikSilentauthConfig is silentauthConfig with an access token short
// enough to let one expire during the test, and the Redis store, so that a
// store outage can be caused by killing redis-server.
const traefikSilentauthConfig = `
issuer: http://localhost
audience: app
keys:
  dir: KEYS_DIR
tokens:
  accessTTL: 3s
  refreshBefore: 1s
  leeway: 0s
sessions:
  grace: 2s
policy:
  loginURL: /login
  publicPaths: [/login]
  claimHeaders:
    x-user-id: sub
policies:
  other:
    audience: other-app
httpAuthz:
  enabled: true
  trustedProxies: [127.0.0.1]
store:
  backend: redis
  redis:
    addrs: [REDIS]
log:
  level: debug
shutdown:
  drain: 0s
  timeout: 5s
`

// TestTraefikContract runs manifests/proxies/traefik/dynamic.yaml in a real
// Traefik (scripts/tools/traefik.sh), only its two backend addresses
// replaced, in front of the app and silentauth's /authz/traefik, and checks
// over real HTTPS what Traefik makes of each answer: the app receives the
// bearer token and identity headers and never silentauth's cookies; a
// silent refresh reaches the client as three rotated Set-Cookie headers
// (addAuthCookiesToResponse) beside the app's own; denies reach the client
// as silentauth wrote them; a client's own X-Forwarded-* change nothing.
//
// The client is Go's, with a cookie jar: everything checked here is
// headers, so no browser is needed. Every host name resolves to Traefik's
// entry point, as DNS would send app.example.com there.
func TestTraefikContract(t *testing.T) {
	requireTools(t) // TestMain builds silentauth only when nginx and chromium are there
	bin := lookPath("SILENTAUTH_TRAEFIK", filepath.Join(toolsdir.Bin(), "traefik"), "traefik")
	// Traefik takes 10 to 15 minutes to build from source, so it is an
	// opt-in tool (make tools-traefik): the default tools keep CI on a fresh
	// machine within its budget. Where it is built, the test runs.
	if _, err := os.Stat(bin); err != nil && os.Getenv("SILENTAUTH_REQUIRE_TRAEFIK") != "1" {
		t.Skip("traefik is not built: run `make tools-traefik` (a 10-15 minute build) or set SILENTAUTH_REQUIRE_TRAEFIK=1 to fail")
	}
	requireTool(t, "traefik", bin)
	start := time.Now()

	redis := redistest.Start(t)
	sa := startSilentauth(t, strings.ReplaceAll(traefikSilentauthConfig, "REDIS", redis.Addr()))
	a := &app{sessionAPI: sa.addrs["sessionAPI"]}
	seen := &upstreamLog{}
	mux := http.NewServeMux()
	mux.Handle("/", a.handler())
	// A protected page that sets a cookie of the app's own: Traefik must
	// keep it beside silentauth's rotated ones.
	mux.HandleFunc("GET /api/pref", func(w http.ResponseWriter, r *http.Request) {
		a.check(r, true)
		w.Header().Add("Set-Cookie", "app_pref=wide; Path=/; SameSite=Lax")
		io.WriteString(w, "saved")
	})
	appAddr := serveLoopback(t, seen.wrap(mux))
	tr := startTraefik(t, bin, sa.addrs["public"], appAddr)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("silentauth log:\n%s", sa.logs.String())
		}
		if a.leaked.Load() != 0 || a.unauthed.Load() != 0 {
			t.Errorf("the app saw silentauth's cookies %d times and protected requests without a bearer token %d times", a.leaked.Load(), a.unauthed.Load())
		}
	})

	const origin = "https://app.example.com"
	site, _ := url.Parse(origin)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	browser := tr.client(jar) // keeps cookies as a browser does
	bare := tr.client(nil)    // sends exactly the Cookie header it is given
	do := func(c *http.Client, method, path, body string, kv ...string) (*http.Response, string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, origin+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			req.Header.Add(kv[i], kv[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	metric := func(decision, reason string) float64 {
		t.Helper()
		return sa.metric(t, `silentauth_check_decisions_total{decision="`+decision+`",reason="`+reason+`"}`)
	}
	jarValue := func(name string) string {
		for _, c := range jar.Cookies(site) {
			if c.Name == name {
				return c.Value
			}
		}
		return ""
	}
	ours := []string{"__Host-sa-at", "__Host-sa-rt", "__Host-sa-exp"}
	// rotated checks that resp sets each of our cookies exactly once, with
	// the attributes silentauth gave it (Traefik parses and re-serialises
	// them), and returns them by name.
	rotated := func(when string, resp *http.Response) map[string]*http.Cookie {
		t.Helper()
		got := map[string]*http.Cookie{}
		for _, c := range resp.Cookies() {
			if !slices.Contains(ours, c.Name) {
				continue
			}
			if got[c.Name] != nil {
				t.Errorf("%s: %s set twice", when, c.Name)
			}
			got[c.Name] = c
			if !c.Secure || c.Path != "/" || c.Domain != "" || c.SameSite != http.SameSiteLaxMode ||
				c.HttpOnly != (c.Name != "__Host-sa-exp") || c.MaxAge <= 0 || c.Value == "" {
				t.Errorf("%s: %s lost its attributes: %q", when, c.Name, c.Raw)
			}
		}
		if len(got) != len(ours) {
			t.Fatalf("%s: our cookies set: %v, want %v (Set-Cookie: %q)", when, slices.Sorted(maps.Keys(got)), ours, resp.Header.Values("Set-Cookie"))
		}
		return got
	}
	noCookies := func(when string, resp *http.Response) {
		t.Helper()
		if v := resp.Header.Values("Set-Cookie"); len(v) != 0 {
			t.Errorf("%s: Set-Cookie %q, want none", when, v)
		}
	}
	reason := func(body string) string {
		var v struct{ Reason string }
		json.Unmarshal([]byte(body), &v)
		return v.Reason
	}

	// 1. No session: a page load is sent to the login page on the app's own
	// origin; an API call gets silentauth's 401 as it is.
	resp, body := do(bare, "GET", "/", "", "Sec-Fetch-Mode", "navigate", "Sec-Fetch-Dest", "document", "Accept", "text/html")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/login?return_to=%2F" {
		t.Errorf("page without session: %d Location %q, want 302 /login?return_to=%%2F", resp.StatusCode, resp.Header.Get("Location"))
	}
	noCookies("page without session", resp)
	resp, body = do(bare, "GET", "/api/me", "", "Accept", "application/json")
	if resp.StatusCode != http.StatusUnauthorized || reason(body) != "no_credentials" ||
		!strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("api without session: %d %s WWW-Authenticate %q Content-Type %q", resp.StatusCode, body,
			resp.Header.Get("WWW-Authenticate"), resp.Header.Get("Content-Type"))
	}
	noCookies("api without session", resp)

	// 2. A client's own forwarded headers describe a public path: ForwardAuth
	// with trustForwardHeader false deletes them and sets its own, so
	// silentauth decides the real request. A 200 would mean it believed the
	// client, a 400 (bad_request) that it got the client's copy beside
	// Traefik's.
	spoof := []string{
		"X-Forwarded-Method", "GET", "X-Forwarded-Uri", "/login", "X-Forwarded-Host", "evil.example.com",
		"X-Forwarded-Proto", "http", "X-Forwarded-Prefix", "/login", "X-Original-Uri", "/login",
		"X-Original-Method", "GET", "Forwarded", "host=evil.example.com;proto=http",
	}
	resp, body = do(bare, "GET", "/api/me", "", append([]string{"Accept", "application/json"}, spoof...)...)
	if resp.StatusCode != http.StatusUnauthorized || reason(body) != "no_credentials" {
		t.Errorf("spoofed X-Forwarded-*: %d %s, want 401 no_credentials", resp.StatusCode, body)
	}
	// A client that reaches silentauth around Traefik, from an address
	// outside httpAuthz.trustedProxies, is decided as it arrived: the auth
	// URI's GET /, not the public path its headers describe.
	direct := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)},
	}).DialContext}}
	req, _ := http.NewRequest("GET", "http://"+sa.addrs["public"]+"/authz/traefik", nil)
	for i := 0; i+1 < len(spoof); i += 2 {
		req.Header.Add(spoof[i], spoof[i+1])
	}
	if resp, err := direct.Do(req); err != nil {
		t.Errorf("direct call from 127.0.0.2: %v", err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || reason(string(b)) != "no_credentials" {
			t.Errorf("direct call with spoofed X-Forwarded-*: %d %s, want 401 no_credentials", resp.StatusCode, b)
		}
	}
	// A client's own identity header on a public path: silentauth's answer
	// lacks it, so Traefik deletes it (authResponseHeaders). Its aliases,
	// which a CGI, WSGI or PHP app would read as the same variable, are
	// dropped by the entry point (aliasHeadersStrategy: delete).
	resp, _ = do(bare, "GET", "/login", "", "X-User-Id", "mallory", "X_User_Id", "mallory", "X.User.Id", "mallory")
	if h := seen.last(); resp.StatusCode != http.StatusOK || h.path != "/login" || len(cgiAliases(h.header, "X-User-Id")) != 0 {
		t.Errorf("public path with a client's X-User-Id: %d, the app saw %s %q", resp.StatusCode, h.path, cgiAliases(h.header, "X-User-Id"))
	}

	// 3. Sign in through the app: it starts a session from its server and
	// hands the cookies over; Traefik passes the app's Set-Cookie through.
	resp, _ = do(browser, "POST", "/login", "return_to=%2Fapi%2Fme",
		"Content-Type", "application/x-www-form-urlencoded", "Origin", origin, "Sec-Fetch-Site", "same-origin")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/api/me" {
		t.Fatalf("login: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	at, rt := jarValue("__Host-sa-at"), jarValue("__Host-sa-rt")
	if at == "" || rt == "" || jarValue("__Host-sa-exp") == "" || jarValue("app_pref") != "compact" {
		t.Fatalf("after login the jar holds %v", jar.Cookies(site))
	}

	// 4. Allowed: the app receives the access token and the identity
	// silentauth vouches for (the client's own X-User-Id replaced), its own
	// cookie, and none of ours; nothing is set on the way back.
	resp, body = do(browser, "GET", "/api/me", "", "Accept", "application/json", "X-User-Id", "mallory", "X_User_Id", "mallory")
	h := seen.last()
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"user":"alice"`) {
		t.Fatalf("valid session: %d %s", resp.StatusCode, body)
	}
	if h.header.Get("Authorization") != "Bearer "+at || !slices.Equal(cgiAliases(h.header, "X-User-Id"), []string{"X-User-Id: alice"}) ||
		!slices.Equal(h.header.Values("Cookie"), []string{"app_pref=compact"}) {
		t.Errorf("valid session: the app received Authorization %.20q… identity %q Cookie %q",
			h.header.Get("Authorization"), cgiAliases(h.header, "X-User-Id"), h.header.Values("Cookie"))
	}
	noCookies("valid session", resp)
	// The policy is the address's (?policy= there, never the client's):
	// a client's ?policy= or X-Silentauth-Policy selects nothing. Selected,
	// "other" would refuse this session.
	resp, body = do(browser, "GET", "/api/me?policy=other", "", "Accept", "application/json", "X-Silentauth-Policy", "other")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"user":"alice"`) {
		t.Errorf("client-chosen policy: %d %s", resp.StatusCode, body)
	}

	// 5. The access token expires; the refresh cookie renews it inside the
	// request. The client receives the three rotated cookies, through
	// addAuthCookiesToResponse, beside the cookie the app set itself; the
	// app receives the new token.
	exp := tokenExpiry(t, at)
	// Real time must pass: silentauth runs in its own process, on its own
	// clock. JWT times are whole seconds; a second more is past any doubt.
	time.Sleep(time.Until(exp.Add(time.Second)))
	refreshed := metric("allow", "refreshed")
	resp, body = do(bare, "GET", "/api/pref", "", "Cookie", "__Host-sa-at="+at+"; __Host-sa-rt="+rt+"; app_pref=compact")
	h = seen.last()
	if resp.StatusCode != http.StatusOK || body != "saved" {
		t.Fatalf("expired access token with refresh cookie: %d %s", resp.StatusCode, body)
	}
	got := rotated("silent refresh", resp)
	if got["__Host-sa-at"].Value == at || got["__Host-sa-rt"].Value == rt {
		t.Errorf("silent refresh: the cookies did not change")
	}
	if !slices.ContainsFunc(resp.Cookies(), func(c *http.Cookie) bool { return c.Name == "app_pref" && c.Value == "wide" }) {
		t.Errorf("silent refresh: the app's own Set-Cookie was lost: %q", resp.Header.Values("Set-Cookie"))
	}
	if h.path != "/api/pref" || h.header.Get("Authorization") != "Bearer "+got["__Host-sa-at"].Value ||
		!slices.Equal(h.header.Values("Cookie"), []string{"app_pref=compact"}) {
		t.Errorf("silent refresh: the app received Authorization %.20q… Cookie %q", h.header.Get("Authorization"), h.header.Values("Cookie"))
	}
	if n := metric("allow", "refreshed") - refreshed; n != 1 {
		t.Errorf("silent refresh: %v rotations counted, want 1", n)
	}
	// silentauth asks for no-store on an answer that sets tokens; ForwardAuth
	// copies nothing but the listed cookies from a 2xx to the client, so
	// the app's own Cache-Control (here none) is what the client gets.
	t.Logf("silent refresh through Traefik: Cache-Control %q", resp.Header.Get("Cache-Control"))
	jar.SetCookies(site, resp.Cookies()) // the browser keeps the rotation
	at, rt = got["__Host-sa-at"].Value, got["__Host-sa-rt"].Value

	// 6. CSRF: a same-site page on another origin posts a form with the
	// refresh cookie, and claims through X-Forwarded-* to be the app's own
	// host and a GET. Refused as csrf; nothing rotates or is cleared, and
	// the app never sees it.
	csrf := metric("deny", "csrf")
	resp, body = do(bare, "POST", "/api/transfer", "amount=1000&to=mallory",
		"Cookie", "__Host-sa-rt="+rt, "Content-Type", "application/x-www-form-urlencoded",
		"Origin", "https://static.example.com", "Sec-Fetch-Site", "same-site", "Sec-Fetch-Mode", "navigate",
		"X-Forwarded-Host", "static.example.com", "X-Forwarded-Method", "GET")
	if resp.StatusCode != http.StatusForbidden || reason(body) != "csrf" {
		t.Errorf("same-site POST: %d %s, want 403 csrf", resp.StatusCode, body)
	}
	noCookies("same-site POST", resp)
	if a.transfers.Load() != 0 {
		t.Fatalf("the forged transfer reached the app")
	}
	if n := metric("deny", "csrf") - csrf; n != 1 {
		t.Errorf("csrf denies counted: %v, want 1", n)
	}

	// 7. The session endpoints go to silentauth directly (the
	// app-session router): the refresh token the CSRF attempt carried is
	// still the current one.
	// A client's X-Silentauth-Policy, which Traefik would forward to
	// /authz/envoy, is deleted by the snippet: selected, the policy
	// "other" would refuse this session (session_other_policy).
	resp, body = do(browser, "POST", "/auth/refresh", "", "Origin", origin, "Sec-Fetch-Site", "same-origin", "X-Silentauth-Policy", "other")
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /auth/refresh (client-chosen policy other): %d %s", resp.StatusCode, body)
	}
	if got := rotated("POST /auth/refresh", resp); got["__Host-sa-rt"].Value == rt {
		t.Errorf("POST /auth/refresh did not rotate")
	}
	resp, body = do(browser, "POST", "/auth/refresh", "", "Origin", origin, "Sec-Fetch-Site", "same-origin", "Accept", "application/json")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"access_token":"`) {
		t.Errorf("POST /auth/refresh (JSON): %d %s", resp.StatusCode, body)
	}
	rotated("POST /auth/refresh (JSON)", resp)
	// Every spelling goes the same way (app-session's PathRegexp is
	// silentauth's own rule): 204 and rotated cookies, never an allow whose
	// Authorization would reach the client.
	for _, p := range sessionSpellings {
		resp, _ = do(browser, "POST", p, "", "Origin", origin, "Sec-Fetch-Site", "same-origin")
		if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Authorization") != "" {
			t.Errorf("POST %s: %d, authorization %v", p, resp.StatusCode, resp.Header.Get("Authorization") != "")
		}
		rotated("POST "+p, resp)
	}
	resp, _ = do(browser, "POST", "/auth/logout", "", "Origin", origin, "Sec-Fetch-Site", "same-origin")
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("POST /auth/logout: %d", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if slices.Contains(ours, c.Name) && (c.MaxAge >= 0 || c.Value != "") {
			t.Errorf("logout did not clear %s: %q", c.Name, c.Raw)
		}
	}
	if c := jar.Cookies(site); len(c) != 1 || c[0].Name != "app_pref" {
		t.Errorf("after logout the jar holds %v, want only the app's own cookie", c)
	}
	if n := seen.sessionPaths.Load(); n != 0 {
		t.Errorf("the app received %d requests for the session endpoints", n)
	}

	// 8. The store goes down. A valid access token still passes (it needs
	// no store); a refresh is refused with 503, even for a page load (no
	// login redirect), and the cookies are kept so the client can retry.
	at, rt = newSession(t, sa.addrs["sessionAPI"])
	redis.Stop()
	resp, _ = do(bare, "GET", "/api/me", "", "Cookie", "__Host-sa-at="+at+"; __Host-sa-rt="+rt)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("valid access token, store down: %d, want 200", resp.StatusCode)
	}
	unavailable := metric("deny", "unavailable")
	resp, body = do(bare, "GET", "/api/me", "", "Cookie", "__Host-sa-rt="+rt, "Accept", "application/json")
	if resp.StatusCode != http.StatusServiceUnavailable || reason(body) != "unavailable" {
		t.Errorf("refresh, store down: %d %s, want 503 unavailable", resp.StatusCode, body)
	}
	noCookies("refresh, store down", resp)
	resp, _ = do(bare, "GET", "/", "", "Cookie", "__Host-sa-rt="+rt, "Sec-Fetch-Mode", "navigate", "Accept", "text/html")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("page load, store down: %d Location %q, want 503", resp.StatusCode, resp.Header.Get("Location"))
	}
	noCookies("page load, store down", resp)
	if n := metric("deny", "unavailable") - unavailable; n != 2 {
		t.Errorf("unavailable denies counted: %v, want 2", n)
	}

	if n := metric("deny", "bad_request"); n != 0 {
		t.Errorf("silentauth refused %v auth requests as ambiguous (bad_request)", n)
	}
	if a.transfers.Load() != 0 {
		t.Errorf("a refused request reached the app")
	}
	// The manifest's parts load without a complaint: Traefik warns about
	// options it finds unsafe (maxResponseBodySize, trustForwardHeader,
	// aliasHeadersStrategy) per entry point and middleware.
	for _, line := range tr.warnings() {
		if strings.Contains(line, " ERR ") || strings.Contains(line, "entryPointName=websecure") || strings.Contains(line, "@file") {
			t.Errorf("traefik: %s", line)
		}
	}
	t.Logf("Traefik %s, %.1fs", tr.version, time.Since(start).Seconds())
}

// cgiAliases lists, as "Name: value", every header in h that a CGI, WSGI or
// PHP app would read as name: HTTP_ + the name upper-cased, with each
// character other than a letter or digit made an underscore.
func cgiAliases(h http.Header, name string) []string {
	cgi := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
				return r
			}
			return '_'
		}, strings.ToUpper(s))
	}
	var out []string
	for k, vs := range h {
		if cgi(k) == cgi(name) {
			for _, v := range vs {
				out = append(out, k+": "+v)
			}
		}
	}
	slices.Sort(out)
	return out
}

// newSession starts a session for alice through the session API and
// returns its access and refresh tokens.
func newSession(t *testing.T, sessionAPI string) (at, rt string) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+sessionAPI+"/v1/sessions", strings.NewReader(`{"subject":"alice"}`))
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	b, _ := io.ReadAll(resp.Body)
	if json.Unmarshal(b, &out) != nil || out.AccessToken == "" || out.RefreshToken == "" {
		t.Fatalf("session API: %d %s", resp.StatusCode, b)
	}
	return out.AccessToken, out.RefreshToken
}

// tokenExpiry reads the exp claim of a JWT without verifying it.
func tokenExpiry(t *testing.T, jwt string) time.Time {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %.20q", jwt)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct{ Exp int64 }
	if err != nil || json.Unmarshal(payload, &claims) != nil || claims.Exp == 0 {
		t.Fatalf("access token without exp: %v", err)
	}
	return time.Unix(claims.Exp, 0)
}

// upstreamLog records what the app received. The test's requests are
// sequential, so the last one is the one just made.
type upstreamLog struct {
	mu           sync.Mutex
	path         string
	header       http.Header
	sessionPaths atomic.Int64 // requests for /auth/…, which silentauth answers itself
}

type upstreamRequest struct {
	path   string
	header http.Header
}

func (u *upstreamLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.path, u.header = r.URL.Path, r.Header.Clone()
		u.mu.Unlock()
		if strings.HasPrefix(r.URL.Path, "/auth/") {
			u.sessionPaths.Add(1)
		}
		h.ServeHTTP(w, r)
	})
}

func (u *upstreamLog) last() upstreamRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return upstreamRequest{u.path, u.header}
}

// traefik is a running Traefik.
type traefik struct {
	addr    string // the websecure entry point, host:port
	version string
	logs    *logbuf.Buffer
}

// traefikDynamic is the shipped dynamic configuration.
var traefikDynamic = filepath.Join("..", "..", "manifests", "proxies", "traefik", "dynamic.yaml")

// startTraefik runs Traefik with the shipped dynamic configuration, its
// backends pointed at silentauth and the app, and its websecure entry point
// on a free loopback port; it returns once the file's routers are active.
func startTraefik(t *testing.T, bin, silentauthAddr, appAddr string) *traefik {
	t.Helper()
	b, err := os.ReadFile(traefikDynamic)
	if err != nil {
		t.Fatal(err)
	}
	dynamic := string(b)
	for from, to := range map[string]string{
		"http://silentauth.silentauth.svc.cluster.local:9002": "http://" + silentauthAddr,
		"http://app.app.svc.cluster.local:8000":               "http://" + appAddr,
	} {
		if !strings.Contains(dynamic, from) {
			t.Fatalf("%s no longer names %s: update the test's replacements", traefikDynamic, from)
		}
		dynamic = strings.ReplaceAll(dynamic, from, to)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "dynamic.yaml")
	if err := os.WriteFile(path, []byte(dynamic), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("traefik version: %v\n%s", err, out)
	}
	version := "?"
	for line := range strings.SplitSeq(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Version:"); ok {
			version = strings.TrimSpace(v)
		}
	}
	for attempt := 0; attempt < 3; attempt++ {
		p := &traefik{addr: "127.0.0.1:" + strconv.Itoa(freePort(t)), version: version, logs: &logbuf.Buffer{}}
		api := "127.0.0.1:" + strconv.Itoa(freePort(t))
		// The static configuration: the entry point the manifest's routers
		// name, with the aliasHeadersStrategy its comments ask for, and the
		// API, only to learn when those routers are active. The entry
		// point trusts the client's X-Forwarded-* as it would a load
		// balancer's in front of it: otherwise it would drop them itself,
		// and the manifest's trustForwardHeader: false, which is what must
		// keep them from silentauth, would go untested.
		cmd := exec.Command(bin,
			"--global.checkNewVersion=false", "--global.sendAnonymousUsage=false",
			"--log.level=INFO", "--log.noColor=true",
			"--entryPoints.websecure.address="+p.addr, "--entryPoints.websecure.http.aliasHeadersStrategy=delete",
			"--entryPoints.websecure.forwardedHeaders.trustedIPs=127.0.0.1",
			"--entryPoints.traefik.address="+api, "--api.insecure=true", "--api.dashboard=false",
			"--providers.file.filename="+path, "--providers.file.watch=false")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+dir)
		d := daemon{name: "traefik", addr: p.addr, ready: 15 * time.Second, quit: syscall.SIGTERM, inUse: "address already in use"}
		if !d.run(t, cmd, p.logs) {
			continue
		}
		if err := waitTraefikRouters(api); err != nil {
			t.Fatalf("traefik: %v\n%s", err, p.logs.String())
		}
		return p
	}
	t.Fatal("traefik: no free port after 3 tries")
	return nil
}

// traefikObject is a router, middleware or service as Traefik's API lists it.
type traefikObject struct {
	Name   string   `json:"name"`
	Status string   `json:"status"`
	Error  []string `json:"error"`
}

// waitTraefikRouters polls Traefik's API until every router, middleware and
// service of the dynamic configuration is enabled. One that Traefik
// rejected (an unknown option, a bad rule) fails at once with its errors.
func waitTraefikRouters(api string) error {
	want := map[string][]string{
		"routers":     {"app@file", "app-session@file"},
		"middlewares": {"silentauth@file", "silentauth-session-prefix@file"},
		"services":    {"app@file", "silentauth@file"},
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		var missing []string
		for kind, names := range want {
			// Refused, then 404, until the API's own router is built.
			var items []traefikObject
			if resp, err := http.Get("http://" + api + "/api/http/" + kind); err == nil {
				if resp.StatusCode == http.StatusOK {
					err = json.NewDecoder(resp.Body).Decode(&items)
				}
				resp.Body.Close()
				if err != nil {
					return fmt.Errorf("/api/http/%s: %v", kind, err)
				}
			}
			for _, name := range names {
				i := slices.IndexFunc(items, func(it traefikObject) bool { return it.Name == name })
				switch {
				case i < 0:
					missing = append(missing, name)
				case items[i].Status != "enabled":
					return fmt.Errorf("%s %s is %s: %q", kind, name, items[i].Status, items[i].Error)
				}
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not loaded after 15s: %v", missing)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// client returns an HTTPS client whose every connection goes to Traefik's
// entry point, as DNS would send app.example.com (and any other name of the
// site) there. It follows no redirects.
func (p *traefik) client(jar http.CookieJar) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return d.DialContext(ctx, network, p.addr)
			},
			// The manifest's `tls: {}` names no certificate: Traefik
			// serves its self-signed default one.
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			ForceAttemptHTTP2: true,
		},
		Jar:           jar,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       15 * time.Second,
	}
}

// warnings returns Traefik's log lines at level WRN or above.
func (p *traefik) warnings() []string {
	var out []string
	for line := range strings.SplitSeq(p.logs.String(), "\n") {
		if strings.Contains(line, " WRN ") || strings.Contains(line, " ERR ") || strings.Contains(line, " FTL ") {
			out = append(out, line)
		}
	}
	return out
}
