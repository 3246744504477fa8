package authz

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/silentauth/silentauth/authz/keys"
)

const day = 24 * time.Hour

// refreshed checks the wire answer of a silent refresh: allowed, a new
// access token for the upstream that verifies and differs from old, exactly
// three appended Set-Cookie (access, refresh, hint) and no-store. It
// returns the new access and refresh tokens.
func refreshed(t testing.TB, r *rig, v view, oldAT, oldRT string) (at, rt string) {
	t.Helper()
	if !v.allow {
		t.Fatalf("refresh denied: status %d body %s", v.status, v.body)
	}
	at, ok := strings.CutPrefix(v.upstream["authorization"], "Bearer ")
	if !ok || at == "" || at == oldAT {
		t.Fatalf("upstream authorization %.30q…: want a new bearer token", v.upstream["authorization"])
	}
	c, err := r.opts.Verifier.Verify(at)
	if err != nil || c.Subject != "alice" || c.SessionID != familyOf(t, oldRT) {
		t.Fatalf("new access token: %+v, %v", c, err)
	}
	if len(v.setCookie) != 3 {
		t.Fatalf("%d Set-Cookie, want 3: %q", len(v.setCookie), v.setCookie)
	}
	for i, name := range []string{testCookies.Access, testCookies.Refresh, testCookies.Hint} {
		if !strings.HasPrefix(v.setCookie[i], name+"=") {
			t.Errorf("Set-Cookie %d = %.20q…, want %s", i, v.setCookie[i], name)
		}
	}
	if got, _ := cookieValue(v.setCookie, testCookies.Access); got != at {
		t.Error("the access cookie does not carry the upstream's token")
	}
	if v.response["cache-control"] != "no-store" {
		t.Errorf("cache-control = %q, want no-store", v.response["cache-control"])
	}
	rt, _ = cookieValue(v.setCookie, testCookies.Refresh)
	if rt == "" || rt == oldRT {
		t.Fatal("the refresh cookie did not rotate")
	}
	return at, rt
}

// Requirement 1: each trigger refreshes, rotates, and leaves the old
// refresh token as the family's "previous" secret.
func TestRefreshTriggers(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, r *rig)
	}{
		{"access token expired", func(t *testing.T, r *rig) { r.clock.Advance(testAccessTTL + time.Minute) }},
		{"valid but expiring within RefreshBefore", func(t *testing.T, r *rig) { r.clock.Advance(testAccessTTL - 30*time.Second) }},
		{"kid removed from the keyring", func(t *testing.T, r *rig) { r.ring.Store(newKeyring(t)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			at, rt := r.login("alice", nil)
			tc.prepare(t, r)
			d, v := r.run(t, req("GET", "/api", "cookie", "theme=dark; "+ours(at, rt)))
			if d.Reason != "refreshed" {
				t.Errorf("reason %q, want refreshed", d.Reason)
			}
			_, rt2 := refreshed(t, r, v, at, rt)
			f := r.family(familyOf(t, rt))
			if f.Version != 2 || f.Generation != 2 || generationOf(rt2) != 2 || generationOf(rt) != 1 {
				t.Fatalf("family after rotation: version %d, generation %d; want 2, the new token current", f.Version, f.Generation)
			}
			if want := r.clock.Now().Add(testGrace); !f.PreviousUntil.Equal(want) {
				t.Errorf("previous accepted until %v, want %v", f.PreviousUntil, want)
			}
		})
	}
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// newKeyring returns a keyring with one fresh key, unrelated to the rig's.
func newKeyring(t testing.TB) *keys.Keyring {
	t.Helper()
	k, err := keys.Generate(keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keys.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// Requirement 2: the exact Set-Cookie values, and a refresh Max-Age that
// runs to the absolute end and so never grows across rotations.
func TestRefreshCookieAttributes(t *testing.T) {
	r := newRig(t)
	at, rt := r.login("alice", nil)
	start := r.clock.Now()
	absolute := start.Add(testLifetimes.Absolute)
	prevAge := int64(1 << 62)
	for i, step := range []time.Duration{20 * time.Minute, time.Hour, 3 * day, 10 * day, 25 * day, 29 * day} {
		r.clock.Advance(step)
		now := r.clock.Now()
		_, v := r.run(t, req("GET", "/api", "cookie", ours(at, rt)))
		at, rt = refreshed(t, r, v, at, rt)

		exp := now.Add(testAccessTTL)
		refreshAge := int64(absolute.Sub(now) / time.Second)
		sessionEnd := earliest(now.Add(testLifetimes.Idle), absolute)
		hint := "at=" + strconv.FormatInt(exp.Unix(), 10) + "&rt=" + strconv.FormatInt(sessionEnd.Unix(), 10)
		want := []string{
			"__Host-sa-at=" + at + "; Path=/; Max-Age=900; HttpOnly; Secure; SameSite=Lax",
			"__Host-sa-rt=" + rt + "; Path=/; Max-Age=" + strconv.FormatInt(refreshAge, 10) + "; HttpOnly; Secure; SameSite=Lax",
			"__Host-sa-exp=" + hint + "; Path=/; Max-Age=" + strconv.FormatInt(int64(sessionEnd.Sub(now)/time.Second), 10) + "; Secure; SameSite=Lax",
		}
		if !slices.Equal(v.setCookie, want) {
			t.Fatalf("rotation %d:\n got %q\nwant %q", i, v.setCookie, want)
		}
		hv, _ := cookieValue(v.setCookie, testCookies.Hint)
		q, err := url.ParseQuery(hv)
		if err != nil || q.Get("at") != strconv.FormatInt(exp.Unix(), 10) || q.Get("rt") != strconv.FormatInt(sessionEnd.Unix(), 10) {
			t.Fatalf("hint %q parses to %v, %v", hv, q, err)
		}
		if refreshAge > prevAge {
			t.Fatalf("rotation %d: refresh Max-Age grew from %d to %d", i, prevAge, refreshAge)
		}
		prevAge = refreshAge
	}
}

// Requirement 3: the upstream keeps the app's cookies and never sees ours;
// identity headers come from the token, whatever the client sent. The
// upstream view applies the response as Envoy does (set, then remove).
func TestUpstreamRewrite(t *testing.T) {
	r := newRig(t)
	at, rt := r.login("alice", nil)
	tests := []struct {
		name, cookie string
		want         string // upstream cookie; "" = header removed
	}{
		{"ours only", ours(at, rt) + "; __Host-sa-exp=at%3D1", ""},
		{"app cookies around ours", "a=1; " + ours(at, rt) + "; b=2; __Host-sa-exp=x", "a=1; b=2"},
		{"case-variant names are the app's", "__host-sa-rt=x; " + ours(at, rt) + "; __HOST-SA-AT=y", "__host-sa-rt=x; __HOST-SA-AT=y"},
		{"no spaces, odd spacing", "a=1;" + ours(at, rt) + ";  b=2 ", "a=1; b=2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := map[string]string{"cookie": tc.cookie, "x-user-id": "mallory", "x-user-role": "admin"}
			resp := respond(r.decide(req("GET", "/api", "cookie", tc.cookie, "x-user-id", "mallory", "x-user-role", "admin")))
			v := flatten(t, resp)
			if !v.allow {
				t.Fatalf("denied: %d %s", v.status, v.body)
			}
			up := upstreamAfter(in, resp)
			got, present := up["cookie"]
			if tc.want == "" && (present || !slices.Contains(v.remove, "cookie")) {
				t.Fatalf("cookie header %q kept, want it in headers_to_remove (%v)", got, v.remove)
			}
			if tc.want != "" && got != tc.want {
				t.Fatalf("upstream cookie %q, want %q", got, tc.want)
			}
			for _, name := range []string{testCookies.Access, testCookies.Refresh, testCookies.Hint} {
				for _, pair := range strings.Split(got, ";") {
					if n, _, _ := strings.Cut(pair, "="); strings.TrimSpace(n) == name {
						t.Fatalf("upstream cookie holds %s", name)
					}
				}
			}
			if up["x-user-id"] != "alice" {
				t.Errorf("upstream x-user-id = %q, want alice (from the token)", up["x-user-id"])
			}
			if v, ok := up["x-user-role"]; ok {
				t.Errorf("upstream x-user-role = %q: the token has no role, the client's must go", v)
			}
		})
	}
}

// Requirement 4: 50 requests with the same expired access token and the
// same refresh cookie at once. Exactly one rotation, 50 allows, every
// response carries the one successor, nothing is taken for theft.
func TestRefreshRace50(t *testing.T) {
	const n = 50
	tests := []struct {
		name     string
		replicas bool // one Server (session manager, singleflight) per request
	}{
		{"one replica through gRPC", false},
		{"50 replicas, compare-and-swap alone", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, fs := newFaultRig(t)
			at, rt := r.login("alice", nil)
			r.clock.Advance(testAccessTTL + time.Minute)
			clients := make([]authv3.AuthorizationClient, n)
			clients[0] = r.client()
			for i := range clients {
				switch {
				case tc.replicas:
					clients[i] = r.serve(r.replica())
				case i > 0:
					clients[i] = clients[0]
				}
			}
			if tc.replicas {
				// Every replica reads version 1 before any swaps, so 49
				// swaps lose the compare-and-swap and retry into grace.
				var read sync.WaitGroup
				var gets atomic.Int64
				read.Add(n)
				fs.afterGet = func() {
					if gets.Add(1) <= n {
						read.Done()
						read.Wait()
					}
				}
			}
			var (
				start = make(chan struct{})
				wg    sync.WaitGroup
				resps [n]*authv3.CheckResponse
				errs  [n]error
			)
			cr := req("GET", "/api", "cookie", ours(at, rt))
			for i := range n {
				wg.Go(func() {
					<-start
					resps[i], errs[i] = clients[i].Check(context.Background(), cr)
				})
			}
			close(start)
			wg.Wait()
			successors := map[string]int{}
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("request %d: gRPC error %v", i, errs[i])
				}
				v := flatten(t, resps[i])
				refreshed(t, r, v, at, rt)
				for _, c := range v.setCookie {
					if strings.Contains(c, "Max-Age=0") {
						t.Fatalf("request %d cleared a cookie: %q", i, c)
					}
				}
				next, _ := cookieValue(v.setCookie, testCookies.Refresh)
				successors[next]++
			}
			if len(successors) != 1 {
				t.Fatalf("%d distinct refresh cookies across %d responses, want 1", len(successors), n)
			}
			f := r.family(familyOf(t, rt))
			if f.Version != 2 || !f.RevokedAt.IsZero() {
				t.Fatalf("family: version %d (want 2), revoked %v", f.Version, f.RevokedAt)
			}
			for next := range successors {
				if generationOf(next) != f.Generation {
					t.Fatal("the successor every response carries is not the family's current secret")
				}
			}
			logs := r.logs.String()
			if got := strings.Count(logs, `"reason":"refreshed"`); got != 1 {
				t.Errorf("%d refreshed decisions logged, want exactly 1", got)
			}
			if got := strings.Count(logs, `"reason":"refreshed_grace"`); got != n-1 {
				t.Errorf("%d refreshed_grace decisions logged, want %d", got, n-1)
			}
			if strings.Contains(logs, "refresh_token_reuse") {
				t.Error("a reuse was detected")
			}
			if tc.replicas && fs.swaps.Load() != n {
				t.Errorf("%d swaps, want %d (one each, 49 losing)", fs.swaps.Load(), n)
			}
		})
	}
}

// Requirement 5: a replay of the previous token within grace yields the
// same successor; after grace, once the holder of the successor has used
// it, it is theft: 401, cookies cleared, family revoked, a security event
// logged with the generations, the client and its user agent, and the
// newest token dead too.
func TestGraceReplayAndReuse(t *testing.T) {
	r := newRig(t)
	at, rt0 := r.login("alice", nil)
	r.clock.Advance(testAccessTTL + time.Minute)
	v := flatten(t, r.check(req("GET", "/api", "cookie", ours(at, rt0))))
	at1, rt1 := refreshed(t, r, v, at, rt0)
	id := familyOf(t, rt0)

	r.clock.Advance(10 * time.Second)
	v = flatten(t, r.check(req("GET", "/api", "cookie", ours(at, rt0))))
	if got, _ := cookieValue(v.setCookie, testCookies.Refresh); !v.allow || got != rt1 {
		t.Fatalf("grace replay: allow=%v, same successor %v", v.allow, got == rt1)
	}
	if f := r.family(id); f.Version != 2 {
		t.Fatalf("grace replay wrote the family: version %d", f.Version)
	}

	r.clock.Advance(testGrace) // 40 s after the rotation
	// Nobody has used the successor yet: the old token still yields it.
	v = flatten(t, r.check(req("GET", "/api", "cookie", ours(at, rt0))))
	if got, _ := cookieValue(v.setCookie, testCookies.Refresh); !v.allow || got != rt1 {
		t.Fatalf("replay after grace, successor unused: allow=%v, same successor %v", v.allow, got == rt1)
	}
	// Its holder uses it; from then on the old token is theft.
	if v := flatten(t, r.check(req("GET", "/api", "cookie", ours(at1, rt1)))); !v.allow {
		t.Fatalf("the successor's holder: status %d", v.status)
	}
	r.sessions.Wait()
	cr := req("GET", "/api", "cookie", ours(at, rt0), "user-agent", "curl/8.0")
	cr.Attributes.Source = peer("203.0.113.7")
	v = flatten(t, r.check(cr))
	if v.allow || v.status != 401 || reason(t, v.body) != "refresh_reuse" {
		t.Fatalf("replay after grace: allow=%v status %d body %s", v.allow, v.status, v.body)
	}
	if !slices.Equal(v.setCookie, r.cookies.Clear()) {
		t.Fatalf("Set-Cookie %q, want the three deletions", v.setCookie)
	}
	for _, c := range v.setCookie {
		if !strings.Contains(c, "=; Path=/; Max-Age=0;") {
			t.Fatalf("deletion %q", c)
		}
	}
	if f := r.family(id); f.RevokedAt.IsZero() || f.RevokeReason != "reuse" {
		t.Fatalf("family not revoked for reuse: %q at %v", f.RevokeReason, f.RevokedAt)
	}
	for _, want := range []string{`"event":"refresh_token_reuse"`, `"subject":"alice"`, `"session":"` + id + `"`,
		`"generation_presented":1`, `"generation_current":2`, `"client_address":"203.0.113.7"`, `"user_agent":"curl/8.0"`} {
		if !strings.Contains(r.logs.String(), want) {
			t.Fatalf("the security event lacks %s:\n%s", want, r.logs.String())
		}
	}
	v = flatten(t, r.check(req("GET", "/api", "cookie", ours(at, rt1))))
	if v.allow || v.status != 401 || reason(t, v.body) != "refresh_revoked" {
		t.Fatalf("newest token after reuse: allow=%v status %d body %s", v.allow, v.status, v.body)
	}
}

// Requirement 6: a token that was never issued revokes nothing.
func TestRefreshTokenGuesses(t *testing.T) {
	r := newRig(t)
	at, rt := r.login("alice", nil)
	r.clock.Advance(testAccessTTL + time.Minute)
	id := familyOf(t, rt)
	randomB64 := func(n int) string {
		b := make([]byte, n)
		rand.Read(b)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	tests := []struct {
		name, token, reason string
	}{
		{"real family, random secret", id + "." + randomB64(32), "refresh_unknown_secret"},
		{"unknown family", randomB64(16) + "." + randomB64(32), "refresh_unknown"},
		{"no dot", strings.Replace(rt, ".", "_", 1), "refresh_malformed"},
		{"short", rt[:len(rt)-1], "refresh_malformed"},
		{"padded", rt + "=", "refresh_malformed"},
		{"garbage", "hello", "refresh_malformed"},
		{"non-canonical secret", nonCanonical(rt), "refresh_malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, v := r.run(t, req("GET", "/api", "cookie", ours(at, tc.token)))
			if v.allow || v.status != 401 || d.Reason != tc.reason {
				t.Fatalf("allow=%v status %d reason %s, want 401 %s", v.allow, v.status, d.Reason, tc.reason)
			}
			if !slices.Equal(v.setCookie, r.cookies.Clear()) {
				t.Fatalf("Set-Cookie %q, want the three deletions", v.setCookie)
			}
			if f := r.family(id); f.Version != 1 || !f.RevokedAt.IsZero() {
				t.Fatalf("a guess changed the family: version %d, revoked %v", f.Version, f.RevokedAt)
			}
		})
	}
	_, v := r.run(t, req("GET", "/api", "cookie", ours(at, rt)))
	refreshed(t, r, v, at, rt)
}

// nonCanonical respells rt with non-zero padding bits in its last
// character: the same bytes to a lenient decoder, a second spelling.
func nonCanonical(rt string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, rt[len(rt)-1])
	return rt[:len(rt)-1] + string(alphabet[i|1])
}

// Requirement 7: idle and absolute lifetimes.
func TestRefreshLifetimes(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		r := newRig(t)
		at, rt := r.login("alice", nil)
		r.clock.Advance(testLifetimes.Idle - time.Second)
		_, v := r.run(t, req("GET", "/api", "cookie", ours(at, rt)))
		at, rt = refreshed(t, r, v, at, rt) // a second before idle expiry: fine
		r.clock.Advance(testLifetimes.Idle)
		d, v := r.run(t, req("GET", "/api", "cookie", ours(at, rt)))
		if v.allow || d.Reason != "refresh_expired" || !slices.Equal(v.setCookie, r.cookies.Clear()) {
			t.Fatalf("after idle: allow=%v reason %s cookies %q", v.allow, d.Reason, v.setCookie)
		}
		if f := r.family(familyOf(t, rt)); !f.RevokedAt.IsZero() {
			t.Fatal("idle expiry revoked the family")
		}
	})
	t.Run("absolute", func(t *testing.T) {
		r := newRig(t)
		at, rt := r.login("alice", nil)
		id := familyOf(t, rt)
		absolute := r.clock.Now().Add(testLifetimes.Absolute)
		for range 4 { // days 20, 40, 60, 80
			r.clock.Advance(20 * day)
			_, v := r.run(t, req("GET", "/api", "cookie", ours(at, rt)))
			at, rt = refreshed(t, r, v, at, rt)
			f := r.family(id)
			if want := earliest(r.clock.Now().Add(testLifetimes.Idle), absolute); !f.IdleExpiresAt.Equal(want) || f.IdleExpiresAt.After(f.AbsoluteExpiresAt) {
				t.Fatalf("day %v: idle expiry %v, want %v (absolute %v)", r.clock.Now().Sub(absolute.Add(-testLifetimes.Absolute))/day, f.IdleExpiresAt, want, f.AbsoluteExpiresAt)
			}
		}
		r.clock.Advance(10 * day) // the absolute end itself: still stored
		d, v := r.run(t, req("GET", "/api", "cookie", ours(at, rt)))
		if v.allow || d.Reason != "refresh_expired" {
			t.Fatalf("at the absolute end: allow=%v reason %s", v.allow, d.Reason)
		}
		r.clock.Advance(time.Second) // past it: the store dropped the family
		d, v = r.run(t, req("GET", "/api", "cookie", ours(at, rt)))
		if v.allow || d.Reason != "refresh_unknown" {
			t.Fatalf("past the absolute end: allow=%v reason %s", v.allow, d.Reason)
		}
	})
}

// Requirement 12: names that only case-match ours are not ours; two copies
// of one of ours are refused without touching the session.
func TestCookieNames(t *testing.T) {
	r := newRig(t)
	at, rt := r.login("alice", nil)
	r.clock.Advance(testAccessTTL + time.Minute)
	tests := []struct {
		name, cookie string
		status       int
		reason       string
	}{
		{"case-variant refresh alone", "__host-sa-rt=" + rt, 401, "no_credentials"},
		{"case-variant refresh and access", "__HOST-SA-AT=" + at + "; __Host-Sa-Rt=" + rt, 401, "no_credentials"},
		{"two refresh cookies, same value", ours("", rt) + "; " + ours("", rt), 400, "ambiguous_cookie"},
		{"two refresh cookies, planted first", ours("", "planted") + "; " + ours(at, rt), 400, "ambiguous_cookie"},
		{"two access cookies", ours(at, rt) + "; " + ours(at, ""), 400, "ambiguous_cookie"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, v := r.run(t, req("GET", "/api", "cookie", tc.cookie))
			if v.allow || v.status != tc.status || d.Reason != tc.reason {
				t.Fatalf("allow=%v status %d reason %s, want %d %s", v.allow, v.status, d.Reason, tc.status, tc.reason)
			}
			if f := r.family(familyOf(t, rt)); f.Version != 1 {
				t.Fatalf("family version %d: something rotated", f.Version)
			}
		})
	}
}

// Requirement 13: bearer-style clients get the new access token in a
// response header; cookie-style clients do not; a reload with only the
// refresh cookie refreshes.
func TestBearerStyleRefresh(t *testing.T) {
	tests := []struct {
		name       string
		header     func(at, rt string) []string
		wantHeader bool
	}{
		{"bearer header expired, refresh cookie", func(at, rt string) []string {
			return []string{"authorization", "Bearer " + at, "cookie", ours("", rt)}
		}, true},
		{"cookie style", func(at, rt string) []string { return []string{"cookie", ours(at, rt)} }, false},
		{"page reload: refresh cookie only", func(at, rt string) []string { return []string{"cookie", ours("", rt)} }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			at, rt := r.login("alice", nil)
			r.clock.Advance(testAccessTTL + time.Minute)
			_, v := r.run(t, req("GET", "/api", tc.header(at, rt)...))
			newAT, _ := refreshed(t, r, v, at, rt)
			got, ok := v.response["x-silentauth-access-token"]
			if ok != tc.wantHeader || (ok && got != newAT) {
				t.Fatalf("x-silentauth-access-token present=%v (same token %v), want present=%v", ok, got == newAT, tc.wantHeader)
			}
		})
	}
}

// A rewritten Cookie header must fit a CheckResponse (HeaderValue: at most
// 16384 bytes, no NUL, CR or LF); one that cannot is refused before
// anything rotates, never passed on with our tokens in it.
func TestCookieHeaderTooBigToRewrite(t *testing.T) {
	app := strings.Repeat("app=0123456789abcdef; ", 800) // 17.6 KB of the app's cookies
	tests := []struct {
		name   string
		cookie func(at, rt string) string
		status int
	}{
		{"ours then 17 KB of the app's", func(at, rt string) string { return ours(at, rt) + "; " + app }, 400},
		{"17 KB of the app's, none of ours", func(at, rt string) string { return app }, 401},
		{"12 KB that grows past 16 KB when rewritten", func(at, rt string) string { return ours("", rt) + ";" + strings.Repeat("a=;", 4200) }, 400},
		{"10 KB that stays under 16 KB when rewritten", func(at, rt string) string { return ours("", rt) + ";" + strings.Repeat("a=b;", 2500) }, 200},
		{"ours and a CR LF", func(at, rt string) string { return ours(at, rt) + "; a=b\r\nx: y" }, 400},
		{"ours and a NUL", func(at, rt string) string { return ours(at, rt) + "; a=\x00" }, 400},
		{"ours and 15 KB of the app's", func(at, rt string) string { return ours(at, rt) + "; " + app[:15000] }, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			at, rt := r.login("alice", nil)
			r.clock.Advance(testAccessTTL + time.Minute)
			d, v := r.run(t, req("GET", "/api", "cookie", tc.cookie(at, rt)))
			if v.status != tc.status {
				t.Fatalf("status %d reason %s, want %d", v.status, d.Reason, tc.status)
			}
			if tc.status == 400 && (d.Reason != "bad_request" || len(v.setCookie) != 0 || r.family(familyOf(t, rt)).Version != 1) {
				t.Fatalf("reason %s, cookies %q, version %d", d.Reason, v.setCookie, r.family(familyOf(t, rt)).Version)
			}
		})
	}
}

// The login redirect must fit a CheckResponse too: a path whose escaping
// would not returns to the root.
func TestLoginLocationFits(t *testing.T) {
	r := newRig(t)
	long := "/page?" + strings.Repeat("&", 8000)
	d, v := r.run(t, req("GET", long, "sec-fetch-mode", "navigate"))
	if v.status != 302 || v.response["location"] != "/login?return_to=%2F" {
		t.Fatalf("status %d reason %s location %.40q", v.status, d.Reason, v.response["location"])
	}
}

// A silent refresh as Envoy sends it, over gRPC: the upstream gets the new
// token, the app's cookie alone, and the identity from the token.
func TestFixtureSilentRefreshOverGRPC(t *testing.T) {
	r := newRig(t)
	at, rt := r.login("alice", nil)
	r.clock.Advance(testAccessTTL + time.Minute)
	cr := fixture(t, "envoy_fetch_refresh_cookie.json", at, rt)
	resp, err := r.client().Check(context.Background(), cr)
	if err != nil {
		t.Fatal(err)
	}
	v := flatten(t, resp)
	newAT, _ := refreshed(t, r, v, at, rt)
	up := upstreamAfter(cr.GetAttributes().GetRequest().GetHttp().GetHeaders(), resp)
	if up["cookie"] != "theme=dark" || up["x-user-id"] != "alice" || up["authorization"] != "Bearer "+newAT {
		t.Fatalf("upstream cookie %q, x-user-id %q, authorization ok %v", up["cookie"], up["x-user-id"], up["authorization"] == "Bearer "+newAT)
	}
	if _, ok := v.response["x-silentauth-access-token"]; ok {
		t.Error("a cookie-style client got the token in a header")
	}
}
