package authz

import (
	"strings"
	"testing"
	"time"
)

// An Authorization header that is present but not "Bearer <token>" is
// refused as ambiguous, whatever cookies come with it: 401 with
// error="invalid_request" (RFC 6750 §3.1), nothing verified, nothing
// rotated, no cookie touched. Before, the access cookie decided and the
// upstream's Authorization was overwritten with the cookie's user.
func TestAuthorizationNotBearerIsRefused(t *testing.T) {
	r := newRig(t)
	at, rt := r.login("alice", nil)
	r.clock.Advance(testAccessTTL + time.Minute) // the access cookie has expired: a refresh would rotate
	_, fresh := r.login("bob", nil)
	cases := []struct{ name, header string }{
		{"basic", "Basic YWxpY2U6cHc="},
		{"another scheme", "Token " + at},
		{"bearer without a token", "Bearer"},
		{"bearer and spaces only", "Bearer    "},
		{"bearer=token", "Bearer=" + at},
		{"bearer tab token", "Bearer\t" + at},
		{"bare token", at},
		{"two tokens", "Bearer " + at + " " + at},
		{"two headers joined", "Bearer " + at + ",Bearer " + at},
		{"not a b64token", "Bearer !!!.???.***"},
		{"only padding", "Bearer ==="},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, cookie := range []string{ours(at, rt), ours("", fresh)} {
				before := r.family(familyOf(t, rt)).Version
				d, v := r.run(t, req("GET", "/api", "authorization", c.header, "cookie", cookie))
				if v.allow || v.status != 401 || d.Reason != "bad_authorization" {
					t.Fatalf("allow=%v status=%d reason=%s, want 401 bad_authorization", v.allow, v.status, d.Reason)
				}
				if got := v.response["www-authenticate"]; got != `Bearer realm="silentauth", error="invalid_request"` {
					t.Errorf("www-authenticate %q", got)
				}
				if !strings.Contains(v.body, `"error":"invalid_request"`) || len(v.setCookie) != 0 {
					t.Errorf("body %s, %d Set-Cookie", v.body, len(v.setCookie))
				}
				if after := r.family(familyOf(t, rt)).Version; after != before {
					t.Errorf("family rotated: version %d → %d", before, after)
				}
			}
		})
	}
}

// "Bearer", any case, then one or more spaces and a token stays the
// credential, with or without cookies beside it.
func TestBearerSpellingsAccepted(t *testing.T) {
	r := newRig(t)
	at, _ := r.login("alice", nil)
	_, other := r.login("bob", nil)
	for _, h := range []string{"Bearer " + at, "bearer " + at, "BEARER   " + at, " Bearer " + at + " "} {
		d := r.decide(req("GET", "/api", "authorization", h, "cookie", ours("", other)))
		if !d.Allow || d.Subject != "alice" {
			t.Errorf("%.10q…: allow=%v subject %q reason %s", h, d.Allow, d.Subject, d.Reason)
		}
	}
}

// Where no access token is read, an odd Authorization header is not a
// competing credential and changes nothing: a public path passes, and the
// session endpoints act on the refresh cookie alone.
func TestAuthorizationIgnoredWhereNoAccessTokenIsRead(t *testing.T) {
	r := newRig(t)
	same := []string{"sec-fetch-site", "same-origin", "authorization", "Basic YWxpY2U6cHc="}
	cases := []struct {
		name, method, path string
		status             int
		reason             string
	}{
		{"public path", "GET", "/healthz", 200, "public"},
		{"refresh endpoint", "POST", "/auth/refresh", 204, "endpoint_refreshed"},
		{"logout endpoint", "POST", "/auth/logout", 204, "endpoint_logout"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, rt := r.login("alice", nil)
			d, v := r.run(t, req(c.method, c.path, append(same, "cookie", ours("", rt))...))
			if v.status != c.status || d.Reason != c.reason {
				t.Fatalf("status %d reason %s, want %d %s", v.status, d.Reason, c.status, c.reason)
			}
		})
	}
}

// bearerToken accepts only "Bearer" 1*SP b64token: whatever it returns is
// one token a canonical header carries back unchanged, and nothing with
// whitespace, a comma or a control byte in it.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  a.b.c", "Bearer", "Bearer ", "Bearer=abc", "Basic YTpi", "Bearer a b",
		"Bearer a,Bearer b", "Bearer\tabc", " Bearer abc== ", "Bearer ===", "Bearer a=b", "Bearer ~+/-._", "Bearer \x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, ok := bearerToken(h)
		if !ok {
			return
		}
		if tok == "" || strings.ContainsAny(tok, " \t\r\n,\x00") || !isB64Token(tok) {
			t.Fatalf("%q: accepted token %q", h, tok)
		}
		if again, ok := bearerToken(bearerPrefix + tok); !ok || again != tok {
			t.Fatalf("%q: token %q does not survive the canonical header", h, tok)
		}
	})
}
