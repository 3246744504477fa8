package main

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/authz/token"
)

// setCookies returns the Set-Cookie values of a CheckResponse, allowed or
// denied.
func setCookies(resp *authv3.CheckResponse) []string {
	hs := resp.GetOkResponse().GetResponseHeadersToAdd()
	if d := resp.GetDeniedResponse(); d != nil {
		hs = d.GetHeaders()
	}
	var out []string
	for _, h := range hs {
		if h.GetHeader().GetKey() == "set-cookie" {
			out = append(out, h.GetHeader().GetValue())
		}
	}
	return out
}

func cookieOf(set []string, name string) (value, attrs string) {
	for _, c := range set {
		if v, ok := strings.CutPrefix(c, name+"="); ok {
			value, attrs, _ = strings.Cut(v, ";")
			return value, attrs
		}
	}
	return "", ""
}

// expiredToken signs an access token for session sid that expired an hour
// ago, with the server's own key.
func expiredToken(t *testing.T, key *keys.Key, sid string) string {
	t.Helper()
	ring := &keys.Holder{}
	kr, _ := keys.NewKeyring(key)
	ring.Store(kr)
	tok, _, err := token.NewMinter(token.MinterOptions{Issuer: "silentauth", Audience: "silentauth", TTL: 15 * time.Minute, Keys: ring,
		Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }}).Mint("alice", sid, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestEndToEndSilentRefresh(t *testing.T) {
	dir, key := keyDir(t)
	cfg := writeConfig(t, "keys:\n  dir: "+dir+"\npolicy:\n  claimHeaders: {x-user-id: sub}\nshutdown: {drain: 0s, timeout: 5s}\n")
	p := start(t, []string{"--config", cfg})
	client := p.authz(t)
	ctx := context.Background()

	_, s := p.createSession(t, apiToken, `{"subject":"alice"}`)
	expired := expiredToken(t, key, s.SessionID)
	cookieHdr := "theme=dark; __Host-sa-at=" + expired + "; __Host-sa-rt=" + s.RefreshToken

	// 50 parallel requests carrying the same expired token and refresh
	// token: all allowed, one successor refresh cookie, no reuse detection.
	const n = 50
	var wg sync.WaitGroup
	resps := make([]*authv3.CheckResponse, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resps[i], errs[i] = client.Check(ctx, envoyRequest("GET", "/api/items", "cookie", cookieHdr, "sec-fetch-site", "same-origin", "sec-fetch-mode", "cors"))
		}()
	}
	wg.Wait()
	successors := map[string]int{}
	for i, resp := range resps {
		if errs[i] != nil || resp.GetOkResponse() == nil {
			t.Fatalf("request %d: %v %v", i, resp, errs[i])
		}
		set := setCookies(resp)
		rt, attrs := cookieOf(set, "__Host-sa-rt")
		at, _ := cookieOf(set, "__Host-sa-at")
		hint, hintAttrs := cookieOf(set, "__Host-sa-exp")
		if len(set) != 3 || rt == "" || at == "" || hint == "" {
			t.Fatalf("request %d: Set-Cookie %d values", i, len(set))
		}
		for _, want := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Lax", "Max-Age="} {
			if !strings.Contains(attrs, want) {
				t.Errorf("refresh cookie lacks %s: %s", want, attrs)
			}
		}
		if strings.Contains(hintAttrs, "HttpOnly") {
			t.Error("the expiry hint is HttpOnly")
		}
		if q, err := url.ParseQuery(hint); err != nil || q.Get("at") == "" || q.Get("rt") == "" {
			t.Errorf("hint %q does not parse as at=…&rt=…", hint)
		}
		up := upstream(resp)
		if up["authorization"] != "Bearer "+at || up["cookie"] != "theme=dark" || up["x-user-id"] != "alice" {
			t.Fatalf("request %d upstream: %v", i, up)
		}
		successors[rt]++
	}
	if len(successors) != 1 {
		t.Fatalf("%d different successor refresh tokens, want 1", len(successors))
	}
	var successor string
	for rt := range successors {
		successor = rt
	}
	if successor == s.RefreshToken {
		t.Fatal("the refresh token was not rotated")
	}

	// A late tab replaying the original within the grace window gets the
	// same successor, not a reuse verdict.
	resp, _ := client.Check(ctx, envoyRequest("GET", "/late", "cookie", "__Host-sa-rt="+s.RefreshToken))
	if rt, _ := cookieOf(setCookies(resp), "__Host-sa-rt"); resp.GetOkResponse() == nil || rt != successor {
		t.Fatalf("grace replay: %v", resp)
	}
	// A guessed secret for the real family is refused and revokes nothing.
	guess := s.SessionID + "." + strings.Repeat("A", 43)
	resp, _ = client.Check(ctx, envoyRequest("GET", "/api", "cookie", "__Host-sa-rt="+guess))
	if !strings.Contains(resp.GetDeniedResponse().GetBody(), "refresh_unknown_secret") {
		t.Fatalf("guessed secret: %v", resp)
	}

	// Rotating once more makes the original token two generations old:
	// replaying it is reuse, so the family is revoked and the cookies
	// cleared, even inside the grace window of the latest rotation.
	resp, _ = client.Check(ctx, envoyRequest("GET", "/", "cookie", "__Host-sa-rt="+successor))
	third, _ := cookieOf(setCookies(resp), "__Host-sa-rt")
	if resp.GetOkResponse() == nil || third == "" || third == successor {
		t.Fatalf("second rotation: %v", resp)
	}
	resp, _ = client.Check(ctx, envoyRequest("GET", "/api", "cookie", "__Host-sa-rt="+s.RefreshToken))
	d := resp.GetDeniedResponse()
	if d == nil || d.GetStatus().GetCode() != 401 || !strings.Contains(d.GetBody(), "refresh_reuse") {
		t.Fatalf("replay of a superseded token: %v", resp)
	}
	if v, attrs := cookieOf(setCookies(resp), "__Host-sa-rt"); v != "" || !strings.Contains(attrs, "Max-Age=0") {
		t.Errorf("reuse did not clear the refresh cookie: %q %q", v, attrs)
	}
	resp, _ = client.Check(ctx, envoyRequest("GET", "/api", "cookie", "__Host-sa-rt="+third))
	if !strings.Contains(resp.GetDeniedResponse().GetBody(), "refresh_revoked") {
		t.Fatalf("the newest token of a revoked family: %v", resp)
	}
	if !strings.Contains(p.Logs(), `"event":"refresh_token_reuse"`) {
		t.Error("no security event logged for the reuse")
	}

	// A cross-site form POST riding on the cookies is refused and
	// rotates nothing.
	_, s2 := p.createSession(t, apiToken, `{"subject":"bob"}`)
	resp, _ = client.Check(ctx, envoyRequest("POST", "/api/transfer", "cookie", "__Host-sa-rt="+s2.RefreshToken,
		"origin", "https://evil.example", "sec-fetch-site", "cross-site", "sec-fetch-mode", "navigate"))
	if d := resp.GetDeniedResponse(); d == nil || d.GetStatus().GetCode() != 403 || !strings.Contains(d.GetBody(), "csrf") || len(setCookies(resp)) != 0 {
		t.Fatalf("cross-site POST: %v", resp)
	}
	resp, _ = client.Check(ctx, envoyRequest("GET", "/", "cookie", "__Host-sa-rt="+s2.RefreshToken))
	if resp.GetOkResponse() == nil {
		t.Fatalf("the refused POST consumed the refresh token: %v", resp)
	}
	p.stop(t)
}
