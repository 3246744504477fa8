package authz

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/silentauth/silentauth/authz/sessionapi"
	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/authz/store/redisstore"
	"github.com/silentauth/silentauth/internal/strictjson"
	"github.com/silentauth/silentauth/internal/testenv/redistest"
)

// uid is beyond float64's 53 bits: as a float64 it reads
// 1541815603606036500, and so does its neighbour 1541815603606036480.
const uid = "1541815603606036481"

// A session started through the session API with a 64-bit uid reaches the
// upstream with exactly those digits, in the identity header, in the access
// token and in requiredClaims, before and after refreshes that re-mint the
// token from the store's record, on the memory store and on a real Redis.
func TestClaimsExactThroughCheck(t *testing.T) {
	backends := []struct {
		name string
		wrap func(t *testing.T, now func() time.Time) func(store.Store) store.Store
	}{
		{"memory", func(*testing.T, func() time.Time) func(store.Store) store.Store { return nil }},
		{"redis", func(t *testing.T, now func() time.Time) func(store.Store) store.Store {
			srv := redistest.Start(t) // skips without redis-server, unless integration is required
			st, err := redisstore.New(redisstore.Options{Mode: redisstore.Standalone, Addrs: []string{srv.Addr()}, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return func(store.Store) store.Store { return st }
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			var r *rig // the rig's clock, for a store made before the rig
			wrap := b.wrap(t, func() time.Time { return r.clock.Now() })
			r = newRigWithStore(t, wrap, func(o *Options) {
				o.Policy.ClaimHeaders = map[string]string{"x-user-id": "sub", "x-uid": "uid", "x-ratio": "ratio", "x-ids": "ids"}
				o.Policy.RequiredClaims = map[string][]string{"uid": {uid}}
			})
			at, rt := r.startSession(t, `{"subject":"alice","claims":{"uid":`+uid+`,"ratio":1.5,"ids":[`+uid+`,1541815603606036480]}}`)
			want := map[string]string{"x-user-id": "alice", "x-uid": uid, "x-ratio": "1.5", "x-ids": "[" + uid + ",1541815603606036480]"}

			_, v := r.run(t, req("GET", "/api", "authorization", "Bearer "+at))
			exactUpstream(t, "first token", v, want)
			for i := range 2 { // the second refresh re-mints from a record a refresh wrote
				r.clock.Advance(testAccessTTL + time.Minute)
				_, v = r.run(t, req("GET", "/api", "cookie", ours(at, rt)))
				at, rt = refreshed(t, r, v, at, rt)
				exactUpstream(t, "refresh "+string(rune('1'+i)), v, want)
				if c := claimsOf(t, at); c["uid"] != json.Number(uid) || c["ratio"] != json.Number("1.5") {
					t.Fatalf("refresh %d minted uid %v, ratio %v; want %s, 1.5", i+1, c["uid"], c["ratio"], uid)
				}
			}

			// The neighbour that a float64 confuses with uid is refused.
			other, _ := r.startSession(t, `{"subject":"mallory","claims":{"uid":1541815603606036480}}`)
			if d, v := r.run(t, req("GET", "/api", "authorization", "Bearer "+other)); v.allow || d.Reason != "insufficient_claims" {
				t.Fatalf("uid 1541815603606036480: allow %v, reason %q; want insufficient_claims", v.allow, d.Reason)
			}
		})
	}
}

// A token signed with our own key whose claims name sub twice is refused
// as malformed, never read as either user (RFC 7519 §4).
func TestDuplicateClaimIsMalformed(t *testing.T) {
	r := newRig(t)
	now := r.clock.Now().Unix()
	header := fmt.Sprintf(`{"alg":"ES256","typ":"at+jwt","kid":%q}`, r.key.ID)
	for _, claims := range []string{
		`{"iss":"silentauth","aud":"app","exp":%d,"iat":%d,"jti":"j","sid":"s","sub":"alice","sub":"mallory"}`,
		`{"iss":"silentauth","aud":"app","exp":%d,"iat":%d,"jti":"j","sid":"s","sub":"alice","role":"user","\u0072ole":"admin"}`,
	} {
		in := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." +
			base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, claims, now+600, now))
		sig, err := jwt.SigningMethodES256.Sign(in, r.key.Signer)
		if err != nil {
			t.Fatal(err)
		}
		_, v := r.run(t, req("GET", "/api", "authorization", "Bearer "+in+"."+base64.RawURLEncoding.EncodeToString(sig)))
		if v.allow || v.status != http.StatusUnauthorized || reason(t, v.body) != "token_malformed" {
			t.Errorf("allow %v, status %d, reason %q; want 401 token_malformed", v.allow, v.status, reason(t, v.body))
		}
	}
}

// Required claims compare numbers by the digits that were signed.
func TestClaimMatchesNumbers(t *testing.T) {
	tests := []struct {
		v        any
		accepted []string
		want     bool
	}{
		{json.Number(uid), []string{uid}, true},
		{json.Number("1541815603606036480"), []string{uid}, false},
		{[]any{json.Number("7"), json.Number(uid)}, []string{uid}, true},
		{json.Number("1.5"), []string{"1.5"}, true},
		{json.Number("1.50"), []string{"1.5"}, false},
		{json.Number("1e400"), []string{"1e400"}, true},
		{float64(1541815603606036481), []string{uid}, false}, // a float64 has lost the digits
		{int64(1541815603606036481), []string{uid}, true},
	}
	for _, tt := range tests {
		if got := claimMatches(tt.v, tt.accepted); got != tt.want {
			t.Errorf("claimMatches(%#v, %q) = %v, want %v", tt.v, tt.accepted, got, tt.want)
		}
	}
}

// startSession starts a session through the session API with body, as a
// login handler would, and returns its tokens.
func (r *rig) startSession(t *testing.T, body string) (access, refresh string) {
	t.Helper()
	const secret = "session-api-secret-for-tests"
	api := sessionapi.New(sessionapi.Options{
		Auth: sessionapi.NewBearer(secret), Sessions: r.sessions, Minter: r.minter, Cookies: r.cookies,
		Log: slog.New(slog.DiscardHandler), Now: r.clock.Now,
	})
	req := httptest.NewRequest(http.MethodPost, "/v1/sessions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+secret)
	w := httptest.NewRecorder()
	api.ServeHTTP(w, req)
	var resp struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		Message      string `json:"message"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || w.Code != http.StatusCreated {
		t.Fatalf("POST /v1/sessions: %d %q, %v", w.Code, resp.Message, err)
	}
	return resp.AccessToken, resp.RefreshToken
}

// exactUpstream checks that an allowed answer sets each header to exactly
// its value.
func exactUpstream(t *testing.T, when string, v view, want map[string]string) {
	t.Helper()
	if !v.allow {
		t.Fatalf("%s: denied with status %d, reason %q", when, v.status, reason(t, v.body))
	}
	for name, value := range want {
		if v.upstream[name] != value {
			t.Errorf("%s: upstream %s = %q, want %q", when, name, v.upstream[name], value)
		}
	}
}

// claimsOf decodes the claims of access token at as they were signed,
// numbers as json.Number.
func claimsOf(t *testing.T, at string) map[string]any {
	t.Helper()
	parts := strings.Split(at, ".")
	if len(parts) != 3 {
		t.Fatal("access token is not three segments")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := strictjson.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}
