package main

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/silentauth/silentauth/internal/testenv/dextest"
	"github.com/silentauth/silentauth/internal/testenv/redistest"
)

// The provider login tests run the real binary against a real Dex
// (internal/testenv/dextest): the login flow through the Check, and the
// provider refresh inside our own rotation, counted at Dex's token endpoint.

const (
	dexCallback     = "https://app.example.com/auth/callback"
	dexClientSecret = "dex-e2e-client-secret"
	// dexRefreshInterval is oidc.refreshInterval: the provider's tokens
	// are due this long after they were obtained.
	dexRefreshInterval = 2 * time.Second
)

var (
	dexAlice  = dextest.User{Email: "alice@example.com", Password: "wonderland", Username: "alice", UserID: "u-alice"}
	dexClient = dextest.Client{ID: "silentauth", Secret: dexClientSecret, RedirectURIs: []string{dexCallback}}
)

// startDex runs Dex with alice and silentauth's client; its refresh-token
// grants take refreshDelay longer (a slow provider).
func startDex(t *testing.T, refreshDelay time.Duration) *dextest.Dex {
	t.Helper()
	dex := dextest.Start(t, dextest.Options{
		Users:   []dextest.User{dexAlice},
		Clients: []dextest.Client{dexClient},
		// Long enough that only refreshInterval makes the tokens due.
		IDTokenTTL:    time.Minute,
		ReuseInterval: 3 * time.Second,
		RefreshDelay:  refreshDelay,
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Dex token requests: %v\nDex log:\n%s", dex.TokenRequests(), dex.Log())
		}
	})
	return dex
}

// dexConfig is silentauth's configuration with the oidc section pointing
// at dex; extra is more YAML at the top level.
func dexConfig(t *testing.T, keys string, dex *dextest.Dex, extra string) string {
	return writeConfig(t, "keys:\n  dir: "+keys+`
policy:
  claimHeaders: {x-user-id: sub, x-user-email: email}
oidc:
  issuerURL: `+dex.Issuer()+`
  clientID: `+dexClient.ID+`
  redirectURL: `+dexCallback+`
  refreshInterval: `+dexRefreshInterval.String()+`
  refreshLease: 2s
  providerTimeout: 1.5s
`+extra+"shutdown: {drain: 0s, timeout: 5s}\n")
}

// navigation is a page load as Envoy describes it.
func navigation(path string, kv ...string) *authv3.CheckRequest {
	return envoyRequest("GET", path, append([]string{"sec-fetch-mode", "navigate", "sec-fetch-dest", "document",
		"sec-fetch-site", "none", "accept", "text/html"}, kv...)...)
}

// dexLogin runs a whole login through client's Check: a page load of path
// without a session is sent to Dex with a flow cookie, Dex's form is
// completed, and the callback with the flow cookie sets the session. It
// returns the session's refresh cookie, and when the callback answered.
func dexLogin(t *testing.T, client authv3.AuthorizationClient, dex *dextest.Dex, path string) (rt string, at time.Time) {
	t.Helper()
	ctx := context.Background()
	resp, err := client.Check(ctx, navigation(path, "cookie", "theme=dark"))
	if err != nil {
		t.Fatal(err)
	}
	d := resp.GetDeniedResponse()
	loc := header(d.GetHeaders(), "location")
	if d == nil || d.GetStatus().GetCode() != 302 || !strings.HasPrefix(loc, dex.Issuer()+"/auth?") {
		t.Fatalf("page load without a session: %v; want 302 to %s/auth", resp, dex.Issuer())
	}
	auth, _ := url.Parse(loc)
	q := auth.Query()
	state := q.Get("state")
	if state == "" || q.Get("nonce") == "" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" ||
		q.Get("client_id") != dexClient.ID || q.Get("redirect_uri") != dexCallback || !strings.Contains(q.Get("scope"), "offline_access") {
		t.Fatalf("authorization request %s: want state, nonce, S256 PKCE, our client, redirect URI and offline_access", loc)
	}
	set := setCookies(resp)
	flowName := "__Host-sa-login-" + state
	flow, attrs := cookieOf(set, flowName)
	if len(set) != 1 || flow == "" || !strings.Contains(attrs, "HttpOnly") || !strings.Contains(attrs, "Secure") || !strings.Contains(attrs, "SameSite=Lax") {
		t.Fatalf("flow cookie: %q; want one HttpOnly, Secure, Lax %s", set, flowName)
	}

	callback := dex.Login(t, loc, dexAlice.Email, dexAlice.Password)
	if callback.Query().Get("state") != state || callback.Query().Get("code") == "" {
		t.Fatalf("Dex sent the browser back to %s; want our state and a code", callback)
	}
	codes := dex.Grants("authorization_code")
	resp, err = client.Check(ctx, navigation(callback.RequestURI(), "cookie", "theme=dark; "+flowName+"="+flow, "sec-fetch-site", "cross-site"))
	if err != nil {
		t.Fatal(err)
	}
	at = time.Now()
	d = resp.GetDeniedResponse()
	if d == nil || d.GetStatus().GetCode() != 302 || header(d.GetHeaders(), "location") != path {
		t.Fatalf("callback: %v; want 302 back to %s", resp, path)
	}
	if n := dex.Grants("authorization_code"); n != codes+1 {
		t.Fatalf("the callback made %d code exchanges at Dex; want 1", n-codes)
	}
	set = setCookies(resp)
	var access string
	access, _ = cookieOf(set, "__Host-sa-at")
	rt, _ = cookieOf(set, "__Host-sa-rt")
	hint, _ := cookieOf(set, "__Host-sa-exp")
	cleared, clearAttrs := cookieOf(set, flowName)
	if len(set) != 4 || access == "" || rt == "" || hint == "" || cleared != "" || !strings.Contains(clearAttrs, "Max-Age=0") {
		t.Fatalf("callback Set-Cookie %q; want the three session cookies and the flow cookie cleared", set)
	}
	// The callback is single-use: replayed with the same flow cookie (a
	// reload, or a stolen URL), it is refused as login_state and Dex is
	// not asked to exchange the code again.
	resp, err = client.Check(ctx, navigation(callback.RequestURI(), "cookie", flowName+"="+flow))
	if err != nil {
		t.Fatal(err)
	}
	if d := resp.GetDeniedResponse(); d.GetStatus().GetCode() != 400 || !strings.Contains(d.GetBody(), `"reason":"login_state"`) {
		t.Fatalf("replayed callback: %v; want 400 login_state", resp)
	}
	if rt, _ := cookieOf(setCookies(resp), "__Host-sa-rt"); rt != "" {
		t.Fatalf("the replayed callback set a session: %q", setCookies(resp))
	}
	if n := dex.Grants("authorization_code"); n != codes+1 {
		t.Fatalf("the replayed callback made a code exchange at Dex")
	}
	// The session works: the page loads with its access cookie, and the
	// app learns who the user is.
	cr := navigation(path, "cookie", "theme=dark; __Host-sa-at="+access+"; __Host-sa-rt="+rt)
	resp, err = client.Check(ctx, cr)
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("page load with the new session: %v %v", resp, err)
	}
	if up := received(cr, resp); up["x-user-email"] != dexAlice.Email || up["x-user-id"] == "" || up["authorization"] != "Bearer "+access || up["cookie"] != "theme=dark" {
		t.Fatalf("upstream headers after login: %v", up)
	}
	return rt, at
}

// header returns the first value of name among hs (a denied answer's
// headers).
func header(hs []*corev3.HeaderValueOption, name string) string {
	for _, h := range hs {
		if h.GetHeader().GetKey() == name {
			return h.GetHeader().GetValue()
		}
	}
	return ""
}

// TestDexLoginWithTheBinary logs in through the binary's Check with Dex as
// the provider, then refreshes: before the provider's tokens are due our
// rotation does not call Dex; once they are, exactly one refresh-token
// grant happens inside the rotation and the session goes on; logout ends
// it.
func TestDexLoginWithTheBinary(t *testing.T) {
	begin := time.Now()
	dex := startDex(t, 0)
	dir, _ := keyDir(t)
	p := start(t, []string{"--config", dexConfig(t, dir, dex, "")}, "SILENTAUTH_OIDC_CLIENT_SECRET="+dexClientSecret)
	client := p.authz(t)
	ctx := context.Background()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("silentauth log:\n%s", p.Logs())
		}
	})

	rt, loggedIn := dexLogin(t, client, dex, "/orders?page=2")
	t.Logf("%5.2fs: logged in through Dex", time.Since(begin).Seconds())
	refresh := func(rt string) string {
		t.Helper()
		cr := envoyRequest("GET", "/api/orders", "cookie", "__Host-sa-rt="+rt, "sec-fetch-site", "same-origin", "sec-fetch-mode", "cors")
		resp, err := client.Check(ctx, cr)
		if err != nil || resp.GetOkResponse() == nil {
			t.Fatalf("refresh: %v %v", resp, err)
		}
		next, _ := cookieOf(setCookies(resp), "__Host-sa-rt")
		if next == "" || next == rt {
			t.Fatalf("refresh did not rotate the refresh cookie: %q", setCookies(resp))
		}
		if up := received(cr, resp); up["x-user-email"] != dexAlice.Email {
			t.Fatalf("upstream after refresh: %v", up)
		}
		return next
	}

	// Before the provider's tokens are due, our rotation leaves Dex alone.
	rt = refresh(rt)
	if time.Since(loggedIn) < dexRefreshInterval {
		if n := dex.RefreshGrants(); n != 0 {
			t.Fatalf("%d refresh grants at Dex before the provider's tokens were due", n)
		}
	}
	// Once they are due (time that must really pass), one rotation
	// refreshes them: exactly one refresh-token grant.
	time.Sleep(time.Until(loggedIn.Add(dexRefreshInterval + 100*time.Millisecond)))
	rt = refresh(rt)
	if n := dex.RefreshGrants(); n != 1 {
		t.Fatalf("%d refresh grants at Dex after a rotation past the provider's due time; want 1", n)
	}
	// The next rotation finds fresh provider tokens: no further grant.
	rt = refresh(rt)
	if n := dex.RefreshGrants(); n != 1 {
		t.Fatalf("%d refresh grants at Dex after a second rotation; want still 1", n)
	}
	for _, r := range dex.TokenRequests() {
		if r.Status != 200 {
			t.Fatalf("Dex refused a token request: %v", dex.TokenRequests())
		}
	}
	t.Logf("%5.2fs: provider refreshed once inside the rotation", time.Since(begin).Seconds())

	// Logout ends the session.
	resp, err := client.Check(ctx, envoyRequest("POST", "/auth/logout", "cookie", "__Host-sa-rt="+rt, "sec-fetch-site", "same-origin", "sec-fetch-mode", "cors"))
	if err != nil {
		t.Fatal(err)
	}
	if d := resp.GetDeniedResponse(); d == nil || d.GetStatus().GetCode() != 204 {
		t.Fatalf("logout: %v", resp)
	}
	if v, attrs := cookieOf(setCookies(resp), "__Host-sa-rt"); v != "" || !strings.Contains(attrs, "Max-Age=0") {
		t.Fatalf("logout did not clear the refresh cookie: %q", setCookies(resp))
	}
	resp, _ = client.Check(ctx, envoyRequest("GET", "/api/orders", "cookie", "__Host-sa-rt="+rt))
	if !strings.Contains(resp.GetDeniedResponse().GetBody(), "refresh_revoked") {
		t.Fatalf("after logout: %v", resp)
	}
	// A page load after logout starts a new login.
	resp, _ = client.Check(ctx, navigation("/orders", "cookie", "__Host-sa-rt="+rt))
	if d := resp.GetDeniedResponse(); d.GetStatus().GetCode() != 302 || !strings.HasPrefix(header(d.GetHeaders(), "location"), dex.Issuer()+"/auth?") {
		t.Fatalf("page load after logout: %v", resp)
	}
	p.stop(t)
	t.Logf("%5.2fs in all", time.Since(begin).Seconds())
}

// TestDexProviderRefreshOnceAcrossReplicas races the provider refresh over
// two binaries sharing one Redis: at the moment the provider's tokens are
// due, 50 requests with the same refresh cookie, spread over both, each
// under the deadline Envoy would give. Dex answers a refresh only after
// providerDelay, so the requests arrive while the one refresh is in
// flight. All are allowed with the same new refresh cookie, and Dex sees
// exactly one refresh-token grant: one request took the family's lease,
// the others waited for its commit.
func TestDexProviderRefreshOnceAcrossReplicas(t *testing.T) {
	// Well under oidc.providerTimeout (1.5s) and the requests' deadline
	// (2s); far longer than firing the 50 requests takes.
	const providerDelay = 500 * time.Millisecond
	begin := time.Now()
	dex := startDex(t, providerDelay)
	srv := redistest.Start(t)
	dir, _ := keyDir(t)
	cfg := dexConfig(t, dir, dex, "store:\n  backend: redis\n  redis:\n    addrs: ["+srv.Addr()+"]\n")
	env := "SILENTAUTH_OIDC_CLIENT_SECRET=" + dexClientSecret
	procs := []*proc{start(t, []string{"--config", cfg}, env), start(t, []string{"--config", cfg}, env)}
	clients := []authv3.AuthorizationClient{procs[0].authz(t), procs[1].authz(t)}
	t.Cleanup(func() {
		if t.Failed() {
			for i, p := range procs {
				t.Logf("silentauth %d log:\n%s", i, p.Logs())
			}
		}
	})

	// Logged in through one replica; the session is in Redis for both.
	rt, loggedIn := dexLogin(t, clients[0], dex, "/")
	t.Logf("%5.2fs: logged in through Dex", time.Since(begin).Seconds())
	time.Sleep(time.Until(loggedIn.Add(dexRefreshInterval + 100*time.Millisecond)))

	const n = 50
	cookieHdr := "__Host-sa-rt=" + rt
	var wg sync.WaitGroup
	rts := make([]string, n)
	emails := make([]string, n)
	waited := make([]bool, n)
	fire := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second) // Envoy's timeout
			defer cancel()
			cr := envoyRequest("GET", "/api", "cookie", cookieHdr, "sec-fetch-site", "same-origin", "sec-fetch-mode", "cors")
			sent := time.Now()
			resp, err := clients[i%2].Check(ctx, cr)
			// Answered at least half the provider's delay after it was
			// sent: it came while the refresh was in flight, and waited.
			waited[i] = time.Since(sent) >= providerDelay/2
			if err != nil || resp.GetOkResponse() == nil {
				t.Errorf("request %d (replica %d): %v %v", i, i%2, resp, err)
				return
			}
			rts[i], _ = cookieOf(setCookies(resp), "__Host-sa-rt")
			emails[i] = received(cr, resp)["x-user-email"]
		}()
	}
	wg.Wait()
	took := time.Since(fire)
	if t.Failed() {
		t.FailNow()
	}
	distinct := map[string]int{}
	for i, r := range rts {
		distinct[r]++
		if emails[i] != dexAlice.Email {
			t.Errorf("request %d: upstream x-user-email %q", i, emails[i])
		}
	}
	inFlight := 0
	for _, w := range waited {
		if w {
			inFlight++
		}
	}
	var rotations, graces float64
	for _, p := range procs {
		rotations += p.metric(t, `silentauth_check_decisions_total{decision="allow",reason="refreshed"}`)
		graces += p.metric(t, `silentauth_check_decisions_total{decision="allow",reason="refreshed_grace"}`)
	}
	t.Logf("%d requests over 2 replicas in %v, %d of them during the refresh at Dex: %d successor(s), %v rotation(s), %v grace answers; Dex token requests %v",
		n, took.Round(time.Millisecond), inFlight, len(distinct), rotations, graces, dex.TokenRequests())
	if inFlight < n/2 {
		t.Fatalf("only %d of %d requests arrived while the provider refresh was in flight: the race was not run", inFlight, n)
	}
	if len(distinct) != 1 || distinct[""] != 0 || distinct[rt] != 0 {
		t.Fatalf("want one new refresh cookie for all %d requests, got %d distinct", n, len(distinct))
	}
	if got := dex.RefreshGrants(); got != 1 {
		t.Fatalf("Dex saw %d refresh-token grants; want exactly 1", got)
	}
	for _, r := range dex.TokenRequests() {
		if r.Status != 200 {
			t.Fatalf("Dex refused a token request: %v", dex.TokenRequests())
		}
	}
	// The session goes on from the new cookie on either replica, without
	// another provider call.
	for i, c := range clients {
		var next string
		for r := range distinct {
			next = r
		}
		resp, err := c.Check(context.Background(), envoyRequest("GET", "/api", "cookie", "__Host-sa-rt="+next))
		if err != nil || resp.GetOkResponse() == nil {
			t.Fatalf("replica %d with the new refresh cookie: %v %v", i, resp, err)
		}
	}
	if got := dex.RefreshGrants(); got != 1 {
		t.Fatalf("Dex saw %d refresh-token grants after the race; want still 1", got)
	}
	t.Logf("%5.2fs in all", time.Since(begin).Seconds())
}
