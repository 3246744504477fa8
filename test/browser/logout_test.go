package browser

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/silentauth/silentauth/internal/testenv/oidctest"
)

// Logout in a real browser, with a provider that offers what Dex v2.45.1
// does not: Dex's discovery lists neither end_session_endpoint nor
// revocation_endpoint, so these tests use the zitadel/oidc example provider
// (internal/testenv/oidctest), which has both, an HTML login form, and
// signs back-channel logout tokens with its own key.

// oidcLogoutConfig is silentauth's configuration for provider login with
// logout. Our access token lives 6 s and is renewed in its last second,
// so a page in use keeps its token unchanged for 5 s.
const oidcLogoutConfig = `
issuer: http://localhost
audience: app
keys:
  dir: KEYS_DIR
tokens:
  accessTTL: 6s
  refreshBefore: 1s
  leeway: 0s
sessions:
  grace: 3s
policy:
  publicPaths: [/signed-out]
  claimHeaders:
    x-user-id: email
oidc:
  issuerURL: ISSUER
  clientID: CLIENT_ID
  clientSecretFile: SECRET_FILE
  postLogoutRedirectURL: ORIGIN/signed-out
  postLogoutRedirectURLs: [ORIGIN/signed-out]
  refreshLease: 1500ms
  providerTimeout: 1s
` + behindProxy

const (
	logoutAccessTTL     = 6 * time.Second // tokens.accessTTL above
	logoutRefreshBefore = 1 * time.Second // tokens.refreshBefore above
)

// oidcStack is the example provider, silentauth with provider login, the
// app and nginx.
type oidcStack struct {
	op     *oidctest.Provider
	sa     *silentauth
	app    *app
	origin string // http://localhost:PORT, the site the browser sees
}

// newOIDCStack starts the stack; as in newDexStack, nginx's port is chosen
// first, since the provider must know the redirect URIs.
func newOIDCStack(t *testing.T) *oidcStack {
	t.Helper()
	requireTools(t)
	port := freePort(t)
	origin := "http://localhost:" + strconv.Itoa(port)
	op := oidctest.Start(t, oidctest.Config{
		RedirectURIs:           []string{origin + "/auth/callback"},
		PostLogoutRedirectURIs: []string{origin + "/signed-out"},
	})
	secretFile := filepath.Join(t.TempDir(), "client-secret")
	if err := os.WriteFile(secretFile, []byte(op.ClientSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sa := startSilentauth(t, strings.NewReplacer("ISSUER", op.Issuer, "CLIENT_ID", op.ClientID,
		"SECRET_FILE", secretFile, "ORIGIN", origin).Replace(oidcLogoutConfig))
	a := &app{sessionAPI: sa.addrs["sessionAPI"]}
	mux := http.NewServeMux()
	mux.Handle("/", a.handler())
	mux.HandleFunc("GET /signed-out", func(w http.ResponseWriter, r *http.Request) {
		a.check(r, false)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html><html><head><meta charset="utf-8"><title>Signed out</title>`+style+`</head>
<body><main class="card"><h1 id="signedout">Signed out</h1>
<p class="small">silentauth ended the session and sent the browser to the provider's end-session endpoint,
which ended its own session and sent the browser back here (post_logout_redirect_uri).</p>
<p><a href="/">Sign in again</a></p></main></body></html>`)
	})
	appAddr := serveLoopback(t, mux)
	manifests, err := filepath.Abs(filepath.Join("..", "..", "manifests", "proxies", "nginx"))
	if err != nil {
		t.Fatal(err)
	}
	site := strings.NewReplacer("SILENTAUTH", sa.addrs["public"], "APP", appAddr, "MANIFESTS", manifests).Replace(nginxSite)
	if startNginxOn(t, site, port) == nil {
		t.Fatalf("nginx: port %d was taken before nginx could listen on it", port)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("silentauth log:\n%s", sa.logs.String())
			t.Logf("provider: grants %v, revocations %d, end-session requests %d", op.Grants(), op.Revocations(), len(op.EndSessions()))
		}
		if a.leaked.Load() != 0 || a.unauthed.Load() != 0 {
			t.Errorf("the app saw silentauth's cookies %d times and protected requests without a bearer token %d times", a.leaked.Load(), a.unauthed.Load())
		}
	})
	return &oidcStack{op: op, sa: sa, app: a, origin: origin}
}

// atProviderForm is true on the example provider's login form.
func atProviderForm(op *oidctest.Provider) string {
	return `location.href.startsWith(` + jsString(op.Issuer+"/login/username") + `) && document.querySelector('input[name=username]') && document.querySelector('input[name=password]')`
}

// submitProviderForm fills in the provider's login form and submits it.
func submitProviderForm(ctx context.Context, p *page, u oidctest.User) error {
	return p.eval(ctx, `(() => {
  document.querySelector('input[name=username]').value = `+jsString(u.Username)+`;
  document.querySelector('input[name=password]').value = `+jsString(u.Password)+`;
  document.querySelector('input[name=password]').form.submit();
})()`, nil)
}

// signedInAs is true once the app page at pathAndQuery says email is
// signed in.
func signedInAs(pathAndQuery, email string) string {
	return `location.pathname + location.search === ` + jsString(pathAndQuery) +
		` && document.getElementById('who') && document.getElementById('who').textContent === ` + jsString("Signed in as "+email)
}

// logoutKit is what both tests use.
type logoutKit struct {
	t    *testing.T
	s    *oidcStack
	ctx  context.Context
	shot func(p *page, name string)
	dir  string
}

func newLogoutKit(t *testing.T, s *oidcStack, ctx context.Context) *logoutKit {
	k := &logoutKit{t: t, s: s, ctx: ctx, dir: artifacts(t)}
	k.shot = func(p *page, name string) {
		t.Helper()
		if err := p.screenshot(ctx, filepath.Join(k.dir, name)); err != nil {
			t.Errorf("screenshot %s: %v", name, err)
		}
	}
	return k
}

func (k *logoutKit) must(err error) {
	k.t.Helper()
	if err != nil {
		k.t.Fatal(err)
	}
}

func (k *logoutKit) jar(b *chromium) map[string]browserCookie {
	k.t.Helper()
	c, err := b.cookies(k.ctx, "localhost")
	k.must(err)
	return c
}

// login opens path in p, completes the provider's form and waits until
// the page is back, signed in; shotPrefix names the screenshots ("" for
// none).
func (k *logoutKit) login(b *chromium, p *page, path, shotPrefix string) dexResult {
	k.t.Helper()
	u := oidctest.DefaultUser
	k.must(p.navigate(k.ctx, k.s.origin+path))
	k.must(p.waitFor(k.ctx, "the provider's login form", atProviderForm(k.s.op), 20*time.Second))
	if shotPrefix != "" {
		k.shot(p, shotPrefix+"-01-login-form.png")
	}
	k.must(submitProviderForm(k.ctx, p, u))
	k.must(p.waitFor(k.ctx, "the page first asked for, signed in", signedInAs(path, u.Email), 20*time.Second))
	jar := k.jar(b)
	for _, name := range []string{"__Host-sa-at", "__Host-sa-rt", "__Host-sa-exp"} {
		if _, ok := jar[name]; !ok {
			k.t.Fatalf("after login the jar lacks %s: %v", name, names(jar))
		}
	}
	if len(jar) != 3 {
		k.t.Fatalf("after login the jar holds %v; want the three session cookies", names(jar))
	}
	var r dexResult
	k.must(p.eval(k.ctx, "window.ready", &r))
	if r.Status != 200 || r.User != u.Email || !r.Bearer {
		k.t.Fatalf("first load after login: status %d user %q bearer %v", r.Status, r.User, r.Bearer)
	}
	if shotPrefix != "" {
		k.shot(p, shotPrefix+"-02-signed-in.png")
	}
	return r
}

// accessExpiry reads the access token's expiry from the hint cookie.
func (k *logoutKit) accessExpiry(b *chromium) time.Time {
	k.t.Helper()
	h, ok := k.jar(b)["__Host-sa-exp"]
	if !ok {
		k.t.Fatalf("no hint cookie: %v", names(k.jar(b)))
	}
	v, err := url.ParseQuery(h.Value)
	if err != nil {
		k.t.Fatalf("hint cookie %q: %v", h.Value, err)
	}
	at, err := strconv.ParseInt(v.Get("at"), 10, 64)
	if err != nil {
		k.t.Fatalf("hint cookie %q: %v", h.Value, err)
	}
	return time.Unix(at, 0)
}

// rawFetch is a fetch of /api/me from the page: its status and body.
type rawFetch struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
}

const rawFetchJS = `fetch('/api/me', {headers: {accept: 'application/json'}}).then(async r => ({status: r.status, body: await r.text()}))`

// TestLogoutEndsProviderSessionInBrowser logs in through the provider's
// form in Chromium and clicks the app's logout button (a form POST to
// /auth/logout). silentauth revokes our session, clears the three cookies,
// revokes the provider's refresh token at its revocation endpoint (once),
// and answers the page load 303 to the provider's end_session_endpoint
// with id_token_hint (the ID token the provider issued for this login),
// client_id and the allow-listed post_logout_redirect_uri. The browser
// itself makes the end-session request (the provider records Chromium's
// User-Agent), the provider ends its session and sends the browser on to
// the app's /signed-out page. The logged-out refresh cookie is refused
// (refresh_revoked), and opening the app again lands on the provider's
// login form.
func TestLogoutEndsProviderSessionInBrowser(t *testing.T) {
	s := newOIDCStack(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	k := newLogoutKit(t, s, ctx)

	b := startChromium(t, tools.chromium)
	p, err := b.newPage(ctx)
	k.must(err)
	const first = "/?tab=inbox"
	k.login(b, p, first, "logout")
	if n := s.op.Grants()["authorization_code"]; n != 1 {
		t.Fatalf("%d code exchanges at the provider; want 1", n)
	}
	if n, e := s.op.Revocations(), len(s.op.EndSessions()); n != 0 || e != 0 {
		t.Fatalf("before logout: %d revocations, %d end-session requests at the provider", n, e)
	}
	loggedOut := k.jar(b)["__Host-sa-rt"].Value
	t.Logf("%5.1fs: signed in through the provider's form", time.Since(start).Seconds())

	// Click "Log out": the browser ends on the post-logout page, which
	// only the provider's end-session endpoint sends it to here.
	signedOut := s.origin + "/signed-out"
	k.must(p.eval(ctx, "document.getElementById('logoutbtn').click()", nil))
	k.must(p.waitFor(ctx, "the post-logout page", `location.href === `+jsString(signedOut)+` && document.getElementById('signedout')`, 20*time.Second))
	k.shot(p, "logout-03-signed-out.png")

	ends := s.op.EndSessions()
	if len(ends) != 1 {
		t.Fatalf("%d end-session requests at the provider; want 1", len(ends))
	}
	end := ends[0]
	hint := end.Form.Get("id_token_hint")
	if hint == "" || !slices.Contains(s.op.IssuedTokens(), hint) {
		t.Fatalf("end-session request without the ID token the provider issued as id_token_hint: %v", end.Form)
	}
	if c := oidctest.Claims(hint); c["sub"] != oidctest.DefaultUser.ID {
		t.Fatalf("id_token_hint names sub %v; want %s", c["sub"], oidctest.DefaultUser.ID)
	}
	if got := end.Form.Get("client_id"); got != s.op.ClientID {
		t.Fatalf("end-session client_id %q; want %q", got, s.op.ClientID)
	}
	if got := end.Form.Get("post_logout_redirect_uri"); got != signedOut {
		t.Fatalf("end-session post_logout_redirect_uri %q; want %q", got, signedOut)
	}
	if !strings.Contains(end.UserAgent, "Chrome") {
		t.Fatalf("the end-session request came from %q, not the browser", end.UserAgent)
	}
	if n := s.op.Revocations(); n != 1 {
		t.Fatalf("%d requests at the provider's revocation endpoint; want 1", n)
	}
	if jar := k.jar(b); len(jar) != 0 {
		t.Fatalf("after logout the jar still holds %v", names(jar))
	}

	// Our session is revoked, not only forgotten by the browser.
	req, _ := http.NewRequestWithContext(ctx, "GET", s.origin+"/api/me", nil)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Cookie", "__Host-sa-rt="+loggedOut)
	resp, err := http.DefaultClient.Do(req)
	k.must(err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(body), "refresh_revoked") {
		t.Fatalf("the refresh cookie of the logged-out session: %d %s", resp.StatusCode, body)
	}

	// Opening the app again asks to log in again at the provider.
	k.must(p.navigate(ctx, s.origin+first))
	k.must(p.waitFor(ctx, "the provider's login form after logout", atProviderForm(s.op), 20*time.Second))
	k.shot(p, "logout-04-login-again.png")
	if n := s.op.Revocations(); n != 1 {
		t.Fatalf("%d revocations in all; want 1", n)
	}
	t.Logf("%5.1fs in all; screenshots in %s", time.Since(start).Seconds(), k.dir)
}

// TestBackChannelLogoutInBrowser logs in twice through the provider's
// form, in two browsers, as two provider sessions (sids). The provider
// then POSTs a back-channel logout token for the first sid, signed with
// its own key, to silentauth's public listener: 200, and one session
// revoked. Until its access token expires the idle first page is
// untouched (the documented behaviour: the access token stays valid, same
// token, same cookies); once it has expired (real time: the browser has
// no fake clock) its next fetch is refused 401 (refresh_revoked) and a
// reload lands on the provider's login form. The second browser, another
// provider session of the same user, stays signed in past its own
// token's expiry.
func TestBackChannelLogoutInBrowser(t *testing.T) {
	s := newOIDCStack(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	k := newLogoutKit(t, s, ctx)

	// The bystander: another provider session of the same user.
	s.op.SetSID("sid-bystander")
	other := startChromium(t, tools.chromium)
	op2, err := other.newPage(ctx)
	k.must(err)
	k.login(other, op2, "/?who=bystander", "")

	// The session the provider will log out.
	const sid = "sid-front-tab"
	s.op.SetSID(sid)
	b := startChromium(t, tools.chromium)
	p, err := b.newPage(ctx)
	k.must(err)
	const first = "/?tab=reports"
	loaded := k.login(b, p, first, "backchannel")
	jarBefore := k.jar(b)
	expiry := k.accessExpiry(b)
	t.Logf("%5.1fs: both browsers signed in; the front tab's access token expires in %.1fs",
		time.Since(start).Seconds(), time.Until(expiry).Seconds())

	// The provider's back-channel logout, straight to the public listener.
	claims := s.op.LogoutClaims(time.Now())
	claims["sid"] = sid
	claims["sub"] = oidctest.DefaultUser.ID
	form := url.Values{"logout_token": {s.op.SignLogout(claims)}}
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+s.sa.addrs["public"]+"/auth/backchannel-logout", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	k.must(err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("back-channel logout: %d %s", resp.StatusCode, body)
	}
	if n := backChannelRevoked(t, s.sa); n != 1 {
		t.Fatalf("the back-channel logout revoked %d sessions; want 1 (log:\n%s)", n, s.sa.logs.String())
	}
	t.Logf("%5.1fs: back-channel logout for sid %s answered 200", time.Since(start).Seconds(), sid)

	// Before the access token expires (and before its renewal window),
	// nothing changed: the page's next request is allowed, with the same
	// access token, and the jar is as it was.
	var r dexResult
	k.must(p.eval(ctx, "callAPI('after back-channel logout')", &r))
	if time.Now().After(expiry.Add(-logoutRefreshBefore)) {
		t.Fatalf("too slow: the request after the back-channel logout reached the access token's renewal window")
	}
	if r.Status != 200 || r.User != oidctest.DefaultUser.Email || r.Tail != loaded.Tail {
		t.Fatalf("before the access token expired: status %d user %q token …%s (at login …%s); want the same token allowed", r.Status, r.User, r.Tail, loaded.Tail)
	}
	for name, c := range k.jar(b) {
		if jarBefore[name].Value != c.Value {
			t.Fatalf("before the access token expired the cookie %s changed", name)
		}
	}
	k.shot(p, "backchannel-03-still-valid.png")

	// Leave the page idle until the access token has expired: real time.
	time.Sleep(time.Until(expiry.Add(300 * time.Millisecond)))
	var f rawFetch
	k.must(p.eval(ctx, rawFetchJS, &f))
	if f.Status != 401 || !strings.Contains(f.Body, "refresh_revoked") {
		t.Fatalf("the first request after the access token expired: %d %s; want 401 refresh_revoked", f.Status, f.Body)
	}
	k.must(p.eval(ctx, "callAPI('after expiry')", &r))
	if r.Status != 401 {
		t.Fatalf("a second request after expiry: status %d; want 401", r.Status)
	}
	k.shot(p, "backchannel-04-refused.png")
	t.Logf("%5.1fs: the access token expired; the page's requests are refused (401 refresh_revoked); jar now %v",
		time.Since(start).Seconds(), names(k.jar(b)))

	// The bystander's access token has expired too: its next request
	// renews it, its provider session untouched.
	var r2 dexResult
	k.must(op2.eval(ctx, "callAPI('bystander')", &r2))
	if r2.Status != 200 || r2.User != oidctest.DefaultUser.Email {
		t.Fatalf("the other provider session after the back-channel logout: status %d user %q", r2.Status, r2.User)
	}

	// A reload goes to the provider's login form.
	k.must(p.navigate(ctx, s.origin+first))
	k.must(p.waitFor(ctx, "the provider's login form after the back-channel logout", atProviderForm(s.op), 20*time.Second))
	k.shot(p, "backchannel-05-login-again.png")
	t.Logf("%5.1fs in all; screenshots in %s", time.Since(start).Seconds(), k.dir)
}

// backChannelRevoked returns the revoked count of silentauth's
// back-channel logout log line (-1 without one).
func backChannelRevoked(t *testing.T, sa *silentauth) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for line := range strings.SplitSeq(sa.logs.String(), "\n") {
			var rec struct {
				Msg     string  `json:"msg"`
				Outcome string  `json:"outcome"`
				Revoked float64 `json:"revoked"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "back-channel logout" && rec.Outcome == "revoked" {
				return int(rec.Revoked)
			}
		}
		if time.Now().After(deadline) {
			return -1
		}
		time.Sleep(20 * time.Millisecond)
	}
}
