package browser

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/silentauth/silentauth/internal/testenv/dextest"
)

// Provider login in a real browser: Dex (internal/testenv/dextest) is the
// user's OpenID Connect provider, nginx asks silentauth as in
// TestSilentRefreshInBrowser, and Chromium completes Dex's login form.

// dexConfig is silentauth's configuration for provider login. Our access
// token lives 4 s and the provider's tokens are refreshed every 3 s, so a
// page in use makes the provider refresh happen several times within the
// test; the lease (1.5 s) is shorter than Dex's reuse interval (2 s).
const dexConfig = `
issuer: http://localhost
audience: app
keys:
  dir: KEYS_DIR
tokens:
  accessTTL: 4s
  refreshBefore: 1s
  leeway: 0s
sessions:
  grace: 3s
policy:
  claimHeaders:
    x-user-id: email
oidc:
  issuerURL: ISSUER
  clientID: silentauth
  clientSecretFile: SECRET_FILE
  refreshInterval: 3s
  refreshLease: 1500ms
  providerTimeout: 1s
` + behindProxy

const (
	dexAccessTTL       = 4 * time.Second // tokens.accessTTL above
	dexRefreshInterval = 3 * time.Second // oidc.refreshInterval above
	dexReuse           = 2 * time.Second // Dex's refresh-token reuse interval
)

var dexAlice = dextest.User{Email: "alice@example.com", Password: "wonderland", Username: "alice", UserID: "u-alice"}

// dexStack is Dex, silentauth with provider login, the app and nginx.
type dexStack struct {
	dex    *dextest.Dex
	sa     *silentauth
	app    *app
	origin string // http://localhost:PORT, the site the browser sees
}

// newDexStack starts the stack. nginx's port is chosen first: Dex must
// know the redirect URI (the origin's /auth/callback) before it starts,
// and silentauth discovers Dex when it starts.
func newDexStack(t *testing.T) *dexStack {
	t.Helper()
	requireTools(t)
	port := freePort(t)
	origin := "http://localhost:" + strconv.Itoa(port)
	const secret = "browser-dex-client-secret"
	dex := dextest.Start(t, dextest.Options{
		Users:         []dextest.User{dexAlice},
		Clients:       []dextest.Client{{ID: "silentauth", Secret: secret, RedirectURIs: []string{origin + "/auth/callback"}}},
		IDTokenTTL:    time.Minute,
		ReuseInterval: dexReuse,
	})
	secretFile := filepath.Join(t.TempDir(), "client-secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sa := startSilentauth(t, strings.NewReplacer("ISSUER", dex.Issuer(), "SECRET_FILE", secretFile).Replace(dexConfig))
	a := &app{sessionAPI: sa.addrs["sessionAPI"]}
	mux := http.NewServeMux()
	mux.Handle("/", a.handler())
	mux.HandleFunc("GET /reports/{id}", a.home) // a second page, for the second tab
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
			t.Logf("Dex token requests %v; Dex log:\n%s", dex.TokenRequests(), dex.Log())
		}
		if a.leaked.Load() != 0 || a.unauthed.Load() != 0 {
			t.Errorf("the app saw silentauth's cookies %d times and protected requests without a bearer token %d times", a.leaked.Load(), a.unauthed.Load())
		}
	})
	return &dexStack{dex: dex, sa: sa, app: a, origin: origin}
}

// dexResult is what callAPI returns in the page.
type dexResult struct {
	Status int    `json:"status"`
	User   string `json:"user"`
	Tail   string `json:"tail"`
	Bearer bool   `json:"bearer"`
}

// atDexForm is true on Dex's password form.
func atDexForm(dex *dextest.Dex) string {
	return `location.href.startsWith(` + jsString(dex.Issuer()+"/auth/") + `) && document.querySelector('input[name=login]') && document.querySelector('input[name=password]')`
}

// submitDexForm fills in Dex's password form and submits it.
func submitDexForm(ctx context.Context, p *page, u dextest.User) error {
	return p.eval(ctx, `(() => {
  document.querySelector('input[name=login]').value = `+jsString(u.Email)+`;
  document.querySelector('input[name=password]').value = `+jsString(u.Password)+`;
  document.querySelector('input[name=password]').form.submit();
})()`, nil)
}

// signedIn is true once the app page at pathAndQuery says alice is signed in.
func signedIn(pathAndQuery string) string {
	return `location.pathname + location.search === ` + jsString(pathAndQuery) +
		` && document.getElementById('who') && document.getElementById('who').textContent === 'Signed in as ` + dexAlice.Email + `'`
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestDexLoginInBrowser logs in through Dex in Chromium: a page load
// without a session lands on Dex's login form; after the form, the browser
// is back on the page it first asked for, signed in, and the app is told
// who the user is. The page then stays in use over several access-token
// lifetimes: every request succeeds while the provider's tokens are
// refreshed inside our rotation (Dex sees refresh-token grants, none
// refused), and parallel requests at the moment both are due make one
// provider refresh; logout ends the session. Then two tabs of another browser open two pages, both reach
// Dex's form before either submits, and both end on their own page signed
// in.
func TestDexLoginInBrowser(t *testing.T) {
	s := newDexStack(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	shots := artifacts(t)
	shot := func(p *page, name string) {
		t.Helper()
		if err := p.screenshot(ctx, filepath.Join(shots, name)); err != nil {
			t.Errorf("screenshot %s: %v", name, err)
		}
	}
	jarOf := func(b *chromium) map[string]browserCookie {
		t.Helper()
		c, err := b.cookies(ctx, "localhost")
		must(err)
		return c
	}
	checkResult := func(r dexResult, when string) {
		t.Helper()
		if r.Status != 200 || r.User != dexAlice.Email || !r.Bearer {
			t.Fatalf("%s: status %d user %q bearer %v", when, r.Status, r.User, r.Bearer)
		}
	}
	noFailedGrant := func() {
		t.Helper()
		for _, r := range s.dex.TokenRequests() {
			if r.Status != http.StatusOK {
				t.Fatalf("Dex refused a token request: %v", s.dex.TokenRequests())
			}
		}
	}

	// 1. A page load without a session goes to Dex's login form, with
	// the flow's cookie and no session.
	b := startChromium(t, tools.chromium)
	p, err := b.newPage(ctx)
	must(err)
	const first = "/?view=compact&from=mail"
	must(p.navigate(ctx, s.origin+first))
	must(p.waitFor(ctx, "Dex's login form", atDexForm(s.dex), 20*time.Second))
	jar := jarOf(b)
	var flows int
	for name, c := range jar {
		if strings.HasPrefix(name, "__Host-sa-login-") && c.HTTPOnly && c.Secure && c.SameSite == "Lax" {
			flows++
		}
	}
	if flows != 1 || len(jar) != 1 {
		t.Fatalf("at Dex's form the jar holds %v; want one HttpOnly Secure Lax login flow cookie", names(jar))
	}
	shot(p, "dex-01-login-form.png")

	// 2. Sign in at Dex: back on the page first asked for, signed in.
	must(submitDexForm(ctx, p, dexAlice))
	must(p.waitFor(ctx, "the page first asked for, signed in", signedIn(first), 20*time.Second))
	jar = jarOf(b)
	for _, name := range []string{"__Host-sa-at", "__Host-sa-rt", "__Host-sa-exp"} {
		if _, ok := jar[name]; !ok {
			t.Fatalf("after login the jar lacks %s: %v", name, names(jar))
		}
	}
	if len(jar) != 3 {
		t.Fatalf("after login the jar holds %v; want the three session cookies, the flow cookie cleared", names(jar))
	}
	var res dexResult
	must(p.eval(ctx, "window.ready", &res))
	checkResult(res, "first load")
	if n := s.dex.Grants("authorization_code"); n != 1 {
		t.Fatalf("%d code exchanges at Dex; want 1", n)
	}
	shot(p, "dex-02-signed-in.png")
	t.Logf("%5.1fs: signed in through Dex", time.Since(start).Seconds())

	// 3. Keep using the page past several access-token lifetimes (time
	// that must really pass). Every request succeeds; our refresh cookie
	// rotates, and the provider's tokens are refreshed inside that
	// rotation, at least twice: the second time past Dex's reuse
	// interval, where Dex rotates its refresh token and would refuse a
	// stale one.
	lastRT := jar["__Host-sa-rt"].Value
	rotations, calls := 0, 0
	loggedIn := time.Now()
	grants, grantSeen := 0, loggedIn // the provider's tokens were obtained no later than grantSeen
	deadline := loggedIn.Add(60 * time.Second)
	for rotations < 3 || s.dex.RefreshGrants() < 2 || time.Since(loggedIn) < 3*dexAccessTTL {
		if time.Now().After(deadline) {
			t.Fatalf("after %d requests: %d rotations of our refresh cookie, %d refresh grants at Dex", calls, rotations, s.dex.RefreshGrants())
		}
		var r dexResult
		must(p.eval(ctx, "callAPI()", &r))
		calls++
		checkResult(r, "request "+strconv.Itoa(calls))
		noFailedGrant()
		if g := s.dex.RefreshGrants(); g != grants {
			grants, grantSeen = g, time.Now()
		}
		if rt := jarOf(b)["__Host-sa-rt"].Value; rt != lastRT {
			lastRT = rt
			rotations++
			t.Logf("%5.1fs: refresh cookie rotated (%d); refresh grants at Dex: %d", time.Since(start).Seconds(), rotations, s.dex.RefreshGrants())
		}
		// The pace of a user clicking around, not a wait for a condition.
		time.Sleep(700 * time.Millisecond)
	}
	// Parallel requests once both our access token and the provider's
	// tokens are due: all succeed, and Dex sees exactly one more
	// refresh-token grant (one request refreshed the provider's tokens,
	// the others got its result).
	time.Sleep(time.Until(grantSeen.Add(dexRefreshInterval + 200*time.Millisecond)))
	before := s.dex.RefreshGrants()
	var batch []dexResult
	must(p.eval(ctx, "parallel(8)", &batch))
	if len(batch) != 8 {
		t.Fatalf("parallel: %d results", len(batch))
	}
	for i, r := range batch {
		checkResult(r, "parallel request "+strconv.Itoa(i+1))
	}
	if got := s.dex.RefreshGrants() - before; got != 1 {
		t.Fatalf("8 parallel requests with the provider's tokens due made %d refresh grants at Dex; want 1", got)
	}
	noFailedGrant()
	t.Logf("%5.1fs: 8 parallel requests with both our and the provider's tokens due: all allowed, one grant at Dex", time.Since(start).Seconds())

	// The page loads again, still signed in.
	must(p.navigate(ctx, s.origin+first))
	must(p.waitFor(ctx, "the page again, still signed in", signedIn(first), 20*time.Second))
	noFailedGrant()
	shot(p, "dex-03-after-provider-refresh.png")
	t.Logf("%5.1fs: %d requests over %.1fs, %d rotations, %d provider refreshes at Dex, none refused",
		time.Since(start).Seconds(), calls, time.Since(loggedIn).Seconds(), rotations, s.dex.RefreshGrants())

	// Log out with the page's form: the session's cookies are cleared.
	// Dex offers no end_session endpoint (nor RFC 7009 revocation), so the
	// logout page load goes on to "/", where a new login at Dex starts:
	// the jar may hold that flow's cookie, never a session cookie.
	loggedOut := jarOf(b)["__Host-sa-rt"].Value
	must(p.eval(ctx, "document.getElementById('logoutbtn').click()", nil))
	sessionCookies := func() []string {
		var out []string
		for _, n := range names(jarOf(b)) {
			if !strings.HasPrefix(n, "__Host-sa-login-") {
				out = append(out, n)
			}
		}
		return out
	}
	for cleared := time.Now().Add(15 * time.Second); len(sessionCookies()) != 0; {
		if time.Now().After(cleared) {
			t.Fatalf("after logout the jar still holds %v", sessionCookies())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The session is revoked, not only forgotten by the browser.
	req, _ := http.NewRequestWithContext(ctx, "GET", s.origin+"/api/me", nil)
	req.Header.Set("Cookie", "__Host-sa-rt="+loggedOut)
	resp, err := http.DefaultClient.Do(req)
	must(err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(string(body), "refresh_revoked") {
		t.Fatalf("the refresh cookie of the logged-out session: %d %s", resp.StatusCode, body)
	}
	must(p.navigate(ctx, s.origin+first))
	must(p.waitFor(ctx, "Dex's login form after logout", atDexForm(s.dex), 20*time.Second))
	noFailedGrant()

	// 4. Two tabs of another browser (a fresh jar) log in at once: both
	// open a page and reach Dex's form before either submits.
	b2 := startChromium(t, tools.chromium)
	pages := []string{"/reports/42?range=7d", "/?view=wide"}
	tabs := make([]*page, len(pages))
	for i, path := range pages {
		tabs[i], err = b2.newPage(ctx)
		must(err)
		must(tabs[i].navigate(ctx, s.origin+path))
	}
	for i := range tabs {
		must(tabs[i].waitFor(ctx, "Dex's login form in tab "+strconv.Itoa(i+1), atDexForm(s.dex), 20*time.Second))
	}
	flows = 0
	for name := range jarOf(b2) {
		if strings.HasPrefix(name, "__Host-sa-login-") {
			flows++
		}
	}
	if flows != 2 {
		t.Fatalf("with two tabs at Dex's form the jar holds %v; want two login flow cookies", names(jarOf(b2)))
	}
	shot(tabs[0], "dex-04-tab1-login-form.png")
	codes := s.dex.Grants("authorization_code")
	for _, tab := range tabs {
		must(submitDexForm(ctx, tab, dexAlice))
	}
	for i, tab := range tabs {
		must(tab.waitFor(ctx, "tab "+strconv.Itoa(i+1)+" back on its page, signed in", signedIn(pages[i]), 20*time.Second))
	}
	for i, tab := range tabs {
		var r dexResult
		must(tab.eval(ctx, "callAPI()", &r))
		checkResult(r, "tab "+strconv.Itoa(i+1)+" after login")
	}
	jar = jarOf(b2)
	for name := range jar {
		if strings.HasPrefix(name, "__Host-sa-login-") {
			t.Errorf("a login flow cookie is left after both logins: %v", names(jar))
		}
	}
	if _, ok := jar["__Host-sa-rt"]; !ok {
		t.Fatalf("after both logins the jar lacks the refresh cookie: %v", names(jar))
	}
	if n := s.dex.Grants("authorization_code") - codes; n != 2 {
		t.Fatalf("%d code exchanges at Dex for the two tabs; want 2", n)
	}
	noFailedGrant()
	shot(tabs[0], "dex-05-tab1-signed-in.png")
	shot(tabs[1], "dex-06-tab2-signed-in.png")
	t.Logf("%5.1fs in all; screenshots in %s", time.Since(start).Seconds(), shots)
}
