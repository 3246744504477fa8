package browser

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Lifetimes short enough that several access tokens expire within the test:
// a token lives 12 s and is renewed once it has less than 4 s left, so a
// page in use rotates its refresh token about every 8 s.
const accessTTL = 12 * time.Second // tokens.accessTTL below

const silentauthConfig = `
issuer: http://localhost
audience: app
keys:
  dir: KEYS_DIR
tokens:
  accessTTL: 12s
  refreshBefore: 4s
  leeway: 0s
sessions:
  grace: 6s
policy:
  loginURL: /login
  publicPaths: [/login]
  claimHeaders:
    x-user-id: sub
# A policy the proxy never selects: a client that could select it would
# see its sessions refused (session_other_policy).
policies:
  other:
    audience: other-app
` + behindProxy

// behindProxy ends the configurations of the stacks where nginx asks
// silentauth (HTTP mode, from loopback), logging at debug with no drain.
const behindProxy = `httpAuthz:
  enabled: true
  trustedProxies: [127.0.0.1]
log:
  level: debug
shutdown:
  drain: 0s
  timeout: 5s
`

// nginxSite is the http block's site: the snippets of manifests/proxies/nginx
// included as they are, as its site.conf shows.
const nginxSite = `
upstream silentauth { server SILENTAUTH; keepalive 8; }
upstream app { server APP; keepalive 8; }
server {
    listen LISTEN;
    server_name localhost;
    include MANIFESTS/silentauth-server.conf;
    location / {
        include MANIFESTS/silentauth-protect.conf;
        auth_request_set $silentauth_user_id $upstream_http_x_user_id;
        proxy_set_header X-User-Id $silentauth_user_id;
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_pass http://app;
    }
}
`

// stack is silentauth, the app and nginx in front of both.
type stack struct {
	sa      *silentauth
	app     *app
	appAddr string
	nginx   *nginx
	origin  string // http://localhost:PORT, the site the browser sees
}

func newStack(t *testing.T) *stack {
	t.Helper()
	requireTools(t)
	sa := startSilentauth(t, silentauthConfig)
	a := &app{sessionAPI: sa.addrs["sessionAPI"]}
	appAddr := serveLoopback(t, a.handler())
	manifests, err := filepath.Abs(filepath.Join("..", "..", "manifests", "proxies", "nginx"))
	if err != nil {
		t.Fatal(err)
	}
	site := strings.NewReplacer("SILENTAUTH", sa.addrs["public"], "APP", appAddr, "MANIFESTS", manifests).Replace(nginxSite)
	n := startNginx(t, site)
	_, port, _ := net.SplitHostPort(n.addr)
	s := &stack{sa: sa, app: a, appAddr: appAddr, nginx: n, origin: "http://localhost:" + port}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("silentauth log:\n%s", sa.logs.String())
		}
		if a.leaked.Load() != 0 || a.unauthed.Load() != 0 {
			t.Errorf("the app saw silentauth's cookies %d times and protected requests without a bearer token %d times", a.leaked.Load(), a.unauthed.Load())
		}
	})
	return s
}

// artifacts is where screenshots go.
func artifacts(t *testing.T) string {
	if os.Getenv("SILENTAUTH_BROWSER_ARTIFACTS") == "1" {
		dir, _ := filepath.Abs("artifacts")
		return dir
	}
	return filepath.Join(t.TempDir(), "artifacts")
}

func TestSilentRefreshInBrowser(t *testing.T) {
	s := newStack(t)
	b := startChromium(t, tools.chromium)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	p, err := b.newPage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	shots := artifacts(t)
	shot := func(name string) {
		t.Helper()
		if err := p.screenshot(ctx, filepath.Join(shots, name)); err != nil {
			t.Errorf("screenshot %s: %v", name, err)
		}
	}
	jar := func() map[string]browserCookie {
		t.Helper()
		c, err := b.cookies(ctx, "localhost")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	type apiResult struct {
		Status         int    `json:"status"`
		User           string `json:"user"`
		Tail           string `json:"tail"`
		Bearer         bool   `json:"bearer"`
		UpstreamCookie string `json:"upstreamCookie"`
		DocCookie      string `json:"docCookie"`
	}
	checkResult := func(r apiResult, when string) {
		t.Helper()
		if r.Status != 200 || r.User != "alice" || !r.Bearer {
			t.Fatalf("%s: status %d user %q bearer %v", when, r.Status, r.User, r.Bearer)
		}
		if strings.Contains(r.DocCookie, "__Host-sa-rt") || strings.Contains(r.DocCookie, "__Host-sa-at") {
			t.Fatalf("%s: page script can read an HttpOnly token cookie: %q", when, r.DocCookie)
		}
		if !strings.Contains(r.DocCookie, "__Host-sa-exp=") {
			t.Fatalf("%s: the expiry hint is not readable by page script: %q", when, r.DocCookie)
		}
		if strings.Contains(r.UpstreamCookie, "__Host-sa-") || !strings.Contains(r.UpstreamCookie, "app_pref=compact") {
			t.Fatalf("%s: the app received cookie header %q", when, r.UpstreamCookie)
		}
	}

	// 1. No session: the page load is sent to the login page.
	must(p.navigate(ctx, s.origin+"/"))
	must(p.waitFor(ctx, "the login page", `location.pathname === '/login' && document.getElementById('signin')`, 15*time.Second))
	var href string
	must(p.eval(ctx, "location.href", &href))
	if !strings.HasSuffix(href, "/login?return_to=%2F") {
		t.Fatalf("login redirect went to %s", href)
	}
	if c := jar(); len(c) != 0 {
		t.Fatalf("cookies before login: %v", c)
	}
	shot("01-login.png")

	// 2. Sign in: the app starts a session server-side and sets the cookies.
	must(p.eval(ctx, "document.getElementById('signin').click()", nil))
	must(p.waitFor(ctx, "the signed-in page", `location.pathname === '/' && document.getElementById('who').textContent.startsWith('Signed in as alice')`, 15*time.Second))
	c := jar()
	for _, name := range []string{"__Host-sa-at", "__Host-sa-rt", "__Host-sa-exp"} {
		k, ok := c[name]
		if !ok {
			t.Fatalf("after login the jar lacks %s: %v", name, c)
		}
		if !k.Secure || k.Path != "/" || k.SameSite != "Lax" || k.HTTPOnly != (name != "__Host-sa-exp") {
			t.Errorf("%s: secure=%v path=%q sameSite=%q httpOnly=%v", name, k.Secure, k.Path, k.SameSite, k.HTTPOnly)
		}
	}
	var first apiResult
	must(p.eval(ctx, "window.ready", &first))
	checkResult(first, "first load")
	shot("02-signed-in.png")

	// 3. Keep using the page past several access-token expiries. Every
	// request succeeds; the refresh cookie rotates in the jar, each new
	// value exactly once.
	seen := map[string]bool{c["__Host-sa-rt"].Value: true}
	rotations, calls := 0, 0
	lastRT := c["__Host-sa-rt"].Value
	tails := map[string]bool{first.Tail: true}
	deadline := time.Now().Add(40 * time.Second)
	for rotations < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d refresh-token rotations after %d requests", rotations, calls)
		}
		var r apiResult
		must(p.eval(ctx, "callAPI()", &r))
		calls++
		checkResult(r, "request "+strconv.Itoa(calls))
		tails[r.Tail] = true
		if rt := jar()["__Host-sa-rt"].Value; rt != lastRT {
			if seen[rt] {
				t.Fatalf("a refresh token came back: rotation is not one-time")
			}
			seen[rt], lastRT = true, rt
			rotations++
			t.Logf("%5.1fs: refresh token rotated (%d), after %d requests", time.Since(start).Seconds(), rotations, calls)
			if rotations == 2 {
				shot("03-refreshed.png")
			}
		}
		// The pace of a user clicking around, not a wait for a condition.
		time.Sleep(700 * time.Millisecond)
	}
	if len(tails) < 4 {
		t.Errorf("the app received only %d distinct access tokens over %d rotations", len(tails), rotations)
	}

	// 4. Parallel requests fired the moment the access token expires all
	// succeed: one rotates, the others converge on the same successor.
	before := s.sa.metric(t, `silentauth_check_decisions_total{decision="allow",reason="refreshed_grace"}`)
	var results []apiResult
	must(p.eval(ctx, "parallel(8)", &results))
	if len(results) != 8 {
		t.Fatalf("parallel: %d results", len(results))
	}
	for i, r := range results {
		checkResult(r, "parallel request "+strconv.Itoa(i+1))
	}
	if rt := jar()["__Host-sa-rt"].Value; rt == lastRT || seen[rt] {
		t.Fatalf("parallel requests at expiry did not rotate the refresh token once")
	} else {
		seen[rt], lastRT = true, rt
	}
	t.Logf("%5.1fs: 8 parallel requests at expiry succeeded (grace replays: %v)", time.Since(start).Seconds(),
		s.sa.metric(t, `silentauth_check_decisions_total{decision="allow",reason="refreshed_grace"}`)-before)
	shot("04-parallel.png")

	// 5. A same-site page on another port posts a form to the app once the
	// access token has expired, so the refresh cookie alone would decide
	// it. It carries the Lax cookies and Sec-Fetch-Site: same-site; it is
	// refused as csrf, and nothing rotates.
	evilAddr := serveLoopback(t, evil(s.origin+"/api/transfer"))
	_, evilPort, _ := net.SplitHostPort(evilAddr)
	// The browser drops the access cookie when its Max-Age runs out.
	for expiry := time.Now().Add(accessTTL + 5*time.Second); ; {
		if _, ok := jar()["__Host-sa-at"]; !ok {
			break
		}
		if time.Now().After(expiry) {
			t.Fatalf("the browser still holds the access cookie %v after its lifetime", accessTTL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	jarBefore := jar()
	csrfBefore := s.sa.metric(t, `silentauth_check_decisions_total{decision="deny",reason="csrf"}`)
	must(p.navigate(ctx, "http://localhost:"+evilPort+"/"))
	must(p.waitFor(ctx, "the refused transfer", `location.href === '`+s.origin+`/api/transfer' && document.body && document.body.innerText.includes('csrf')`, 15*time.Second))
	shot("05-csrf-refused.png")
	var body string
	must(p.eval(ctx, "document.body.innerText", &body))
	if !strings.Contains(body, `"reason":"csrf"`) {
		t.Errorf("the refusal says %q", body)
	}
	if s.app.transfers.Load() != 0 {
		t.Fatalf("the forged transfer reached the app")
	}
	if got := s.sa.metric(t, `silentauth_check_decisions_total{decision="deny",reason="csrf"}`) - csrfBefore; got != 1 {
		t.Errorf("csrf denies counted: %v, want 1", got)
	}
	if !strings.Contains(s.sa.logs.String(), `"reason":"csrf"`) {
		t.Errorf("no csrf decision in silentauth's log")
	}
	if jarAfter := jar(); jarAfter["__Host-sa-rt"].Value != jarBefore["__Host-sa-rt"].Value || len(jarAfter) != len(jarBefore) {
		t.Fatalf("the refused request changed the jar: %v → %v", names(jarBefore), names(jarAfter))
	}

	// The session survived the attack: the page loads, refreshing on the way.
	must(p.navigate(ctx, s.origin+"/"))
	must(p.waitFor(ctx, "the page again", `location.pathname === '/' && document.getElementById('who').textContent.startsWith('Signed in as alice')`, 15*time.Second))
	if rt := jar()["__Host-sa-rt"].Value; rt == lastRT {
		t.Errorf("the page load after expiry did not refresh")
	}

	// 6. Log out: silentauth revokes the session and clears the cookies; the
	// page goes to the login page and stays there.
	must(p.eval(ctx, "document.getElementById('logoutbtn').click()", nil))
	must(p.waitFor(ctx, "the login page after logout", `location.pathname === '/login' && document.getElementById('signin')`, 15*time.Second))
	if c := jar(); len(c) != 1 || c["app_pref"].Value == "" {
		t.Fatalf("after logout the jar holds %v, want only the app's own cookie", names(c))
	}
	shot("06-logged-out.png")
	must(p.navigate(ctx, s.origin+"/"))
	must(p.waitFor(ctx, "the login page for a logged-out user", `location.pathname === '/login'`, 15*time.Second))

	t.Logf("%d requests, %d rotations, in %.1fs; screenshots in %s", calls, len(seen)-1, time.Since(start).Seconds(), shots)
	if os.Getenv("SILENTAUTH_BROWSER_DOCS") == "1" {
		png, err := os.ReadFile(filepath.Join(shots, "03-refreshed.png"))
		must(err)
		must(os.WriteFile(filepath.Join("..", "..", "docs", "browser-refresh.png"), png, 0o644))
	}
}

// TestNginxContract checks, without a browser, what nginx makes of each
// answer: the numbered cookie headers become separate Set-Cookie lines, and
// every deny reaches the client with its real status.
func TestNginxContract(t *testing.T) {
	s := newStack(t)
	proxyContract(t, s, s.origin)
}

// TestCaddyContract runs the same contract through Caddy with
// manifests/proxies/caddy/Caddyfile.
func TestCaddyContract(t *testing.T) {
	s := newStack(t)
	requireTool(t, "caddy", tools.caddy)
	proxyContract(t, s, startCaddy(t, s))
}

// sessionSpellings are other spellings of POST /auth/refresh that proxies
// route as it (README "Paths"): silentauth answers each as the endpoint.
var sessionSpellings = []string{"/AUTH/REFRESH", "/Auth/Refresh?x=1", "/auth/%72efresh", "/auth//refresh", "//auth/refresh", "/auth/./refresh"}

// proxyContract checks what a proxy at origin makes of silentauth's answers.
func proxyContract(t *testing.T, s *stack, origin string) {
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string, kv ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, origin+path, nil)
		for i := 0; i+1 < len(kv); i += 2 {
			req.Header.Add(kv[i], kv[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	session := func() (at, rt string) {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+s.sa.addrs["sessionAPI"]+"/v1/sessions", strings.NewReader(`{"subject":"alice"}`))
		req.Header.Set("Authorization", "Bearer "+apiToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ AccessToken, RefreshToken string }
		var raw map[string]any
		b, _ := io.ReadAll(resp.Body)
		json.Unmarshal(b, &raw)
		out.AccessToken, _ = raw["access_token"].(string)
		out.RefreshToken, _ = raw["refresh_token"].(string)
		if out.RefreshToken == "" {
			t.Fatalf("session API: %s", b)
		}
		return out.AccessToken, out.RefreshToken
	}
	cookieNames := func(resp *http.Response) []string {
		var out []string
		for _, c := range resp.Cookies() {
			out = append(out, c.Name)
		}
		return out
	}
	ours := []string{"__Host-sa-at", "__Host-sa-rt", "__Host-sa-exp"}
	equal := func(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

	resp, _ := do("GET", "/", "Sec-Fetch-Mode", "navigate", "Accept", "text/html")
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "/login?return_to=%2F" {
		t.Errorf("page without session: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := do("GET", "/api/me", "Accept", "application/json")
	if resp.StatusCode != 401 || !strings.Contains(body, `"reason":"no_credentials"`) ||
		len(resp.Header.Values("WWW-Authenticate")) != 1 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("api without session: %d %q %q %q", resp.StatusCode, body, resp.Header.Get("WWW-Authenticate"), resp.Header.Get("Content-Type"))
	}
	// A client's own X-Original-URI is replaced by nginx's.
	resp, _ = do("GET", "/api/me", "X-Original-URI", "/login", "X-Forwarded-Host", "evil.example")
	if resp.StatusCode != 401 {
		t.Errorf("spoofed X-Original-URI: %d", resp.StatusCode)
	}

	at, rt := session()
	resp, body = do("GET", "/api/me", "Cookie", "__Host-sa-at="+at+"; __Host-sa-rt="+rt+"; app_pref=x")
	if resp.StatusCode != 200 || !strings.Contains(body, `"user":"alice"`) || len(resp.Cookies()) != 0 {
		t.Errorf("valid session: %d %s cookies %v", resp.StatusCode, body, cookieNames(resp))
	}
	// The policy is the proxy's to choose: a client's own ?policy= (which
	// Caddy's rewrite would keep without its "?") or X-Silentauth-Policy
	// selects nothing. Selected, "other" would refuse this session.
	resp, body = do("GET", "/api/me?policy=other", "Cookie", "__Host-sa-at="+at+"; __Host-sa-rt="+rt, "X-Silentauth-Policy", "other")
	if resp.StatusCode != 200 || !strings.Contains(body, `"user":"alice"`) {
		t.Errorf("client-chosen policy: %d %s", resp.StatusCode, body)
	}
	// A client's identity header, in any spelling a CGI, WSGI or PHP app
	// reads as X-User-Id, never reaches the app: the proxy drops or deletes
	// the "_" spellings, silentauth's answer replaces the exact one.
	resp, body = do("GET", "/api/me", "Cookie", "__Host-sa-at="+at, "X-User-Id", "mallory", "X_User_Id", "mallory", "X-User_Id", "mallory", "x_user-id", "mallory")
	if resp.StatusCode != 200 || !strings.Contains(body, `"aliases":["X-User-Id: alice"]`) {
		t.Errorf("identity header spellings: %d %s", resp.StatusCode, body)
	}
	// Only the refresh cookie: silent refresh, three separate Set-Cookie lines.
	resp, body = do("GET", "/api/me", "Cookie", "__Host-sa-rt="+rt+"; app_pref=x")
	if resp.StatusCode != 200 || !strings.Contains(body, `"user":"alice"`) || !equal(cookieNames(resp), ours) ||
		resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("refresh: %d %s cookies %v cache-control %q", resp.StatusCode, body, cookieNames(resp), resp.Header.Get("Cache-Control"))
	}
	var rt2 string
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-sa-rt" {
			rt2 = c.Value
		}
	}
	// POST /auth/refresh answered by silentauth through error_page: 204 with
	// the cookies, or 200 with JSON. A client's X-Silentauth-Policy does not
	// choose the policy here either (Caddy proxies this path to
	// /authz/envoy, whose policy header its snippet deletes).
	resp, body = do("POST", "/auth/refresh?policy=other", "Cookie", "__Host-sa-rt="+rt2, "Sec-Fetch-Site", "same-origin", "X-Silentauth-Policy", "other")
	if resp.StatusCode != 204 || !equal(cookieNames(resp), ours) {
		t.Errorf("POST /auth/refresh (client-chosen policy other): %d %s cookies %v", resp.StatusCode, body, cookieNames(resp))
	}
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-sa-rt" {
			rt2 = c.Value
		}
	}
	resp, body = do("POST", "/auth/refresh", "Cookie", "__Host-sa-rt="+rt2, "Sec-Fetch-Site", "same-origin", "Accept", "application/json")
	if resp.StatusCode != 200 || !strings.Contains(body, `"access_token":"`) || !equal(cookieNames(resp), ours) {
		t.Errorf("POST /auth/refresh (JSON): %d %s cookies %v", resp.StatusCode, body, cookieNames(resp))
	}
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-sa-rt" {
			rt2 = c.Value
		}
	}
	// Every spelling of an endpoint is answered by silentauth, whichever
	// way the proxy sends it there: 204 with the rotated cookies, never the
	// app, never an allow whose Authorization would reach the client.
	for _, p := range sessionSpellings {
		resp, _ = do("POST", p, "Cookie", "__Host-sa-rt="+rt2, "Sec-Fetch-Site", "same-origin")
		if resp.StatusCode != 204 || !equal(cookieNames(resp), ours) || resp.Header.Get("Authorization") != "" {
			t.Errorf("POST %s: %d cookies %v authorization %v", p, resp.StatusCode, cookieNames(resp), resp.Header.Get("Authorization") != "")
		}
		for _, c := range resp.Cookies() {
			if c.Name == "__Host-sa-rt" {
				rt2 = c.Value
			}
		}
	}
	// Near misses are ordinary requests, and whatever answers them, the
	// client never receives an allow's Authorization (Caddy 2.6's `path`
	// matcher routed /auth/refresh. straight to silentauth).
	for _, p := range []string{"/auth/refresh.", "/auth/refresh/", "/auth/refresh%20"} {
		resp, _ = do("POST", p, "Cookie", "__Host-sa-rt="+rt2, "Sec-Fetch-Site", "same-origin")
		if resp.StatusCode == 204 || resp.Header.Get("Authorization") != "" {
			t.Errorf("POST %s: %d, authorization %v", p, resp.StatusCode, resp.Header.Get("Authorization") != "")
		}
		for _, c := range resp.Cookies() {
			if c.Name == "__Host-sa-rt" {
				rt2 = c.Value
			}
		}
	}
	resp, _ = do("GET", "/auth/refresh", "Cookie", "__Host-sa-rt="+rt2)
	if resp.StatusCode != 405 {
		t.Errorf("GET /auth/refresh: %d", resp.StatusCode)
	}
	// CSRF: refused, nothing set.
	resp, body = do("POST", "/api/transfer", "Cookie", "__Host-sa-rt="+rt2, "Origin", "http://evil.example")
	if resp.StatusCode != 403 || !strings.Contains(body, `"reason":"csrf"`) || len(resp.Cookies()) != 0 {
		t.Errorf("csrf: %d %s cookies %v", resp.StatusCode, body, cookieNames(resp))
	}
	// A guessed refresh token: 401 and our cookies cleared, on three lines.
	resp, body = do("GET", "/api/me", "Cookie", "__Host-sa-rt=AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	if resp.StatusCode != 401 || !strings.Contains(body, "refresh_unknown") || !equal(cookieNames(resp), ours) {
		t.Errorf("unknown refresh token: %d %s cookies %v", resp.StatusCode, body, cookieNames(resp))
	}
	// Logout from script: 204, cookies cleared; the session is gone.
	resp, _ = do("POST", "/auth/logout", "Cookie", "__Host-sa-rt="+rt2, "Sec-Fetch-Site", "same-origin")
	if resp.StatusCode != 204 || !equal(cookieNames(resp), ours) {
		t.Errorf("logout: %d cookies %v", resp.StatusCode, cookieNames(resp))
	}
	for _, c := range resp.Cookies() {
		if c.MaxAge >= 0 || c.Value != "" {
			t.Errorf("logout did not clear %s", c.Name)
		}
	}
	resp, body = do("GET", "/api/me", "Cookie", "__Host-sa-rt="+rt2)
	if resp.StatusCode != 401 || !strings.Contains(body, "refresh_revoked") {
		t.Errorf("after logout: %d %s", resp.StatusCode, body)
	}
	if s.app.transfers.Load() != 0 {
		t.Errorf("a refused request reached the app")
	}
}

func names(c map[string]browserCookie) []string {
	var out []string
	for n := range c {
		out = append(out, n)
	}
	return out
}
