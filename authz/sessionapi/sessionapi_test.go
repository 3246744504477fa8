package sessionapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/cookie"
	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/authz/store/memstore"
	"github.com/silentauth/silentauth/authz/token"
)

const secret = "session-api-secret-for-tests"

// failingStore answers every call with an infrastructure error.
type failingStore struct{ store.Store }

func (failingStore) Create(context.Context, *store.Family) error {
	return errors.New("connection refused")
}

type fixture struct {
	h        *Handler
	verifier *token.Verifier
	sessions *session.Manager
	logs     *strings.Builder
}

func newFixture(t *testing.T, st store.Store) *fixture {
	t.Helper()
	now := func() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) }
	k, err := keys.Generate(keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	ring := &keys.Holder{}
	kr, _ := keys.NewKeyring(k)
	ring.Store(kr)
	if st == nil {
		st = memstore.New(now)
	}
	sessions := session.New(st, session.Lifetimes{Idle: 30 * 24 * time.Hour, Absolute: 90 * 24 * time.Hour, Grace: 30 * time.Second}, now)
	logs := &strings.Builder{}
	f := &fixture{
		sessions: sessions,
		logs:     logs,
		verifier: token.NewVerifier(token.VerifierOptions{Issuer: "iss", Audiences: []string{"aud"}, Keys: ring, Now: now, MaxTokenBytes: 8192, CacheSize: 10}),
	}
	f.h = New(Options{
		Auth:     NewBearer(secret),
		Sessions: sessions,
		Minter:   token.NewMinter(token.MinterOptions{Issuer: "iss", Audience: "aud", TTL: 15 * time.Minute, Keys: ring, Now: now}),
		Minters: map[string]*token.Minter{
			"shop": token.NewMinter(token.MinterOptions{Issuer: "iss", Audience: "shop-app", TTL: 15 * time.Minute, Keys: ring, Now: now}),
		},
		Cookies: cookie.Default(),
		Log:     slog.New(slog.NewJSONHandler(logs, nil)),
		Now:     now,
	})
	return f
}

// errorOf is the error and message of an answer, and nothing else: a body
// that wrongly holds tokens must not reach the test output.
func errorOf(w *httptest.ResponseRecorder) string {
	var e struct{ Error, Message string }
	_ = json.Unmarshal(w.Body.Bytes(), &e)
	return fmt.Sprintf("error %q, message %q", e.Error, e.Message)
}

func (f *fixture) do(method, path, auth, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, r)
	return w
}

func TestCreate(t *testing.T) {
	f := newFixture(t, nil)
	w := f.do("POST", "/v1/sessions", "Bearer "+secret, `{"subject":"alice","claims":{"role":"admin","n":3,"nested":{"a":[1,2]}}}`)
	if w.Code != 201 || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("status %d headers %v body %s", w.Code, w.Header(), w.Body)
	}
	var resp createResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	c, err := f.verifier.Verify(resp.AccessToken)
	if err != nil {
		t.Fatalf("issued access token does not verify: %v", err)
	}
	if c.Subject != "alice" || c.SessionID != resp.SessionID || c.Extra["role"] != "admin" || c.Extra["n"] != json.Number("3") {
		t.Errorf("claims %+v", c)
	}
	if id, _ := session.FamilyID(resp.RefreshToken); id != resp.SessionID {
		t.Errorf("refresh token belongs to %q, session is %q", id, resp.SessionID)
	}
	if len(resp.SetCookie) != 3 || !strings.HasPrefix(resp.SetCookie[1], "__Host-sa-rt="+resp.RefreshToken+";") {
		t.Errorf("set_cookie %v", resp.SetCookie)
	}
	if !resp.AccessTokenExpiresAt.Equal(c.ExpiresAt) || !resp.RefreshTokenExpiresAt.After(resp.SessionExpiresAt.Add(-time.Second)) {
		t.Errorf("expiry times %+v", resp)
	}
	if strings.Contains(f.logs.String(), resp.AccessToken) || strings.Contains(f.logs.String(), resp.RefreshToken) {
		t.Error("a token reached the log")
	}
}

func TestRefusals(t *testing.T) {
	f := newFixture(t, nil)
	cases := []struct {
		name, method, path, auth, body string
		status                         int
		want                           string
	}{
		{"no credential", "POST", "/v1/sessions", "", `{"subject":"a"}`, 401, "unauthenticated"},
		{"wrong credential", "POST", "/v1/sessions", "Bearer nope", `{"subject":"a"}`, 401, "unauthenticated"},
		{"basic scheme", "POST", "/v1/sessions", "Basic " + secret, `{"subject":"a"}`, 401, "unauthenticated"},
		{"no credential on list", "GET", "/v1/subjects/a/sessions", "", "", 401, "unauthenticated"},
		{"not json", "POST", "/v1/sessions", "Bearer " + secret, `subject=a`, 400, "invalid_request"},
		{"unknown field", "POST", "/v1/sessions", "Bearer " + secret, `{"subject":"a","admin":true}`, 400, "admin"},
		{"two objects", "POST", "/v1/sessions", "Bearer " + secret, `{"subject":"a"}{"subject":"b"}`, 400, "one JSON object"},
		{"no subject", "POST", "/v1/sessions", "Bearer " + secret, `{}`, 400, "subject: required"},
		{"long subject", "POST", "/v1/sessions", "Bearer " + secret, `{"subject":"` + strings.Repeat("a", 257) + `"}`, 400, "longer than 256"},
		{"control in subject", "POST", "/v1/sessions", "Bearer " + secret, `{"subject":"a\nb"}`, 400, "printable"},
		{"reserved claims", "POST", "/v1/sessions", "Bearer " + secret, `{"subject":"a","claims":{"sub":"x","typ":"y","exp":1}}`, 400, "exp, sub, typ"},
		{"claims too large", "POST", "/v1/sessions", "Bearer " + secret, `{"subject":"a","claims":{"b":"` + strings.Repeat("x", 3500) + `"}}`, 400, "claims_too_large"},
		{"body too large", "POST", "/v1/sessions", "Bearer " + secret, `{"subject":"a","claims":{"b":"` + strings.Repeat("x", 70<<10) + `"}}`, 400, "invalid_request"},
		// RFC 8259 §4: a member named twice reads differently in different
		// parsers, and claims go into every access token.
		{"subject twice", "POST", "/v1/sessions", "Bearer " + secret, `{"subject":"alice","subject":"mallory"}`, 400, `body: duplicate member name \"subject\"`},
		{"subject in two cases", "POST", "/v1/sessions", "Bearer " + secret, `{"subject":"alice","Subject":"mallory"}`, 400, `member names \"Subject\" and \"subject\" differ only in case`},
		{"subject folded with a long s", "POST", "/v1/sessions", "Bearer " + secret, `{"subject":"alice","\u017fubject":"mallory"}`, 400, `differ only in case`},
		{"claim twice", "POST", "/v1/sessions", "Bearer " + secret, `{"subject":"a","claims":{"uid":1,"uid":2}}`, 400, `body: duplicate member name \"uid\" in claims"`},
		{"claim twice, once escaped", "POST", "/v1/sessions", "Bearer " + secret, `{"subject":"a","claims":{"role":"user","\u0072ole":"admin"}}`, 400, `duplicate member name \"role\" in claims"`},
		{"nested claim twice", "POST", "/v1/sessions", "Bearer " + secret, `{"subject":"a","claims":{"org":{"teams":[{"id":1,"id":2}]}}}`, 400, `duplicate member name \"id\" in claims.org.teams[0]"`},
		{"numbers beyond float64", "POST", "/v1/sessions", "Bearer " + secret, `{"subject":"a","claims":{"huge":1e400,"l":[1,-1e999]}}`, 400,
			"claims.huge: number beyond the range of a 64-bit float; send it as a string; claims.l[1]: number beyond"},
		{"unknown session", "DELETE", "/v1/sessions/AAAAAAAAAAAAAAAAAAAAAA", "Bearer " + secret, "", 404, "not_found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := f.do(c.method, c.path, c.auth, c.body)
			if w.Code != c.status || !strings.Contains(w.Body.String(), c.want) {
				t.Fatalf("status %d, %s", w.Code, errorOf(w))
			}
		})
	}
	// Nothing was issued by any refused call.
	w := f.do("GET", "/v1/subjects/a/sessions", "Bearer "+secret, "")
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"sessions":[]}` {
		t.Fatalf("sessions after refusals: %d %s", w.Code, w.Body)
	}
}

// Numbers keep the digits they were given, in the token and in the store:
// a float64 would turn uid 1541815603606036481 into 1541815603606036500.
func TestCreateNumbersExact(t *testing.T) {
	f := newFixture(t, nil)
	w := f.do("POST", "/v1/sessions", "Bearer "+secret,
		`{"subject":"alice","claims":{"uid":1541815603606036481,"ratio":1.5,"f0":1.50,"tiny":1e-400,"wide":123456789012345678901234567890,"ids":[1541815603606036481]}}`)
	if w.Code != 201 {
		t.Fatalf("status %d, %s", w.Code, errorOf(w))
	}
	var resp createResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	c, err := f.verifier.Verify(resp.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"uid": "1541815603606036481", "ratio": "1.5", "f0": "1.50", "tiny": "1e-400",
		"wide": "123456789012345678901234567890", "ids": "[1541815603606036481]"}
	for name, text := range want {
		if s, ok := c.Text(name); !ok || s != text {
			t.Errorf("token claim %s = %q, want %q", name, s, text)
		}
	}
	fams, err := f.sessions.List(t.Context(), "alice")
	if err != nil || len(fams) != 1 || !strings.Contains(fams[0].Claims.JSON(), `"uid":1541815603606036481`) {
		t.Fatalf("stored claims %#v, %v", fams, err)
	}
}

func TestListAndRevoke(t *testing.T) {
	f := newFixture(t, nil)
	var ids []string
	for range 3 {
		w := f.do("POST", "/v1/sessions", "Bearer "+secret, `{"subject":"carol"}`)
		var r createResponse
		json.Unmarshal(w.Body.Bytes(), &r)
		ids = append(ids, r.SessionID)
	}
	if w := f.do("DELETE", "/v1/sessions/"+ids[0], "Bearer "+secret, ""); w.Code != 204 {
		t.Fatalf("revoke: %d %s", w.Code, w.Body)
	}
	w := f.do("GET", "/v1/subjects/carol/sessions", "Bearer "+secret, "")
	var list struct{ Sessions []sessionInfo }
	json.Unmarshal(w.Body.Bytes(), &list)
	revoked := 0
	for _, s := range list.Sessions {
		if s.RevokedAt != nil {
			revoked++
		}
	}
	if len(list.Sessions) != 3 || revoked != 1 || strings.Contains(w.Body.String(), "secret") {
		t.Fatalf("list: %s", w.Body)
	}
	w = f.do("DELETE", "/v1/subjects/carol/sessions", "Bearer "+secret, "")
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"revoked":2}` {
		t.Fatalf("revoke subject: %d %s", w.Code, w.Body)
	}
}

func TestStoreOutageIs503(t *testing.T) {
	f := newFixture(t, failingStore{memstore.New(time.Now)})
	w := f.do("POST", "/v1/sessions", "Bearer "+secret, `{"subject":"a"}`)
	if w.Code != 503 || !strings.Contains(w.Body.String(), "unavailable") {
		t.Fatalf("status %d body %s", w.Code, w.Body)
	}
	body, _ := io.ReadAll(w.Body)
	if strings.Contains(string(body), "token") && strings.Contains(string(body), "access_token") {
		t.Error("a failed create returned a token")
	}
}

// A session started for a policy belongs to it: the family records the
// policy (which the list shows), and only that policy refreshes it.
func TestCreateForPolicy(t *testing.T) {
	f := newFixture(t, nil)
	started := map[string]string{} // policy → session id
	for _, body := range []string{`{"subject":"dave","policy":"shop"}`, `{"subject":"dave"}`} {
		w := f.do("POST", "/v1/sessions", "Bearer "+secret, body)
		var r createResponse
		if w.Code != 201 || json.Unmarshal(w.Body.Bytes(), &r) != nil {
			t.Fatalf("create %s: %d %s", body, w.Code, w.Body)
		}
		var policy string
		if strings.Contains(body, "shop") {
			policy = "shop"
			if _, err := f.sessions.Refresh(t.Context(), r.RefreshToken, ""); !errors.Is(err, session.ErrOtherPolicy) {
				t.Errorf("shop session refreshed for the default policy: %v", err)
			}
		}
		if _, err := f.sessions.Refresh(t.Context(), r.RefreshToken, policy); err != nil {
			t.Errorf("session refreshed for its own policy %q: %v", policy, err)
		}
		started[policy] = r.SessionID
	}
	w := f.do("GET", "/v1/subjects/dave/sessions", "Bearer "+secret, "")
	var list struct{ Sessions []sessionInfo }
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || len(list.Sessions) != 2 {
		t.Fatalf("list: %s", w.Body)
	}
	for _, s := range list.Sessions {
		if started[s.Policy] != s.ID {
			t.Errorf("listed %s with policy %q; started %v", s.ID, s.Policy, started)
		}
	}
	if strings.Count(w.Body.String(), `"policy"`) != 1 {
		t.Errorf("the default policy is shown: %s", w.Body)
	}
	if w := f.do("POST", "/v1/sessions", "Bearer "+secret, `{"subject":"dave","policy":"nope"}`); w.Code != 400 {
		t.Errorf("unknown policy: %d %s", w.Code, w.Body)
	}
}

// TestListShapeAndAdminCause: a listing carries the description of each
// session (when it was last used, where it was started, the provider's
// session id) under stable JSON names, and every operator revocation is
// recorded with cause admin. Old reasons read on the closed set.
func TestListShapeAndAdminCause(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	st := memstore.New(func() time.Time { return now })
	f := newFixture(t, st)
	ctx := t.Context()
	login, err := f.sessions.StartLogin(ctx, session.Login{
		Subject: "dana", Provider: []byte("sealed"), ProviderSID: "op-sid-1",
		UserAgent: "Mozilla/5.0 Firefox/140.0", ClientAddress: "198.51.100.7",
	})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := f.sessions.Start(ctx, "dana", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	// A record revoked before the causes were closed.
	old, _ := st.Get(ctx, plain.Family.ID)
	old.RevokedAt, old.RevokeReason, old.LastUsedAt, old.Version = now, "api", time.Time{}, old.Version+1
	if err := st.Swap(ctx, old.Version-1, old); err != nil {
		t.Fatal(err)
	}

	w := f.do("GET", "/v1/subjects/dana/sessions", "Bearer "+secret, "")
	var list struct {
		Sessions []map[string]any `json:"sessions"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &list); err != nil || w.Code != 200 || len(list.Sessions) != 2 {
		t.Fatalf("list: %d %s", w.Code, w.Body)
	}
	byID := map[string]map[string]any{}
	for _, s := range list.Sessions {
		byID[s["id"].(string)] = s
	}
	want := map[string]any{
		"id": login.Family.ID, "subject": "dana", "created_at": "2026-11-25T12:00:00Z", "last_used_at": "2026-11-25T12:00:00Z",
		"idle_expires_at": "2026-12-25T12:00:00Z", "absolute_expires_at": "2027-02-23T12:00:00Z",
		"user_agent": "Mozilla/5.0 Firefox/140.0", "client_address": "198.51.100.7", "provider_sid": "op-sid-1",
	}
	if got := byID[login.Family.ID]; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("provider login listed as\n%v\nwant\n%v", got, want)
	}
	got := byID[plain.Family.ID]
	for name, v := range map[string]any{"revoke_reason": "api", "revoke_cause": "admin", "revoked_at": "2026-11-25T12:00:00Z"} {
		if got[name] != v {
			t.Errorf("old revoked record: %s = %v, want %v", name, got[name], v)
		}
	}
	for _, name := range []string{"last_used_at", "user_agent", "client_address", "provider_sid", "policy"} {
		if _, ok := got[name]; ok {
			t.Errorf("old record lists %s: %v", name, got[name])
		}
	}

	// One session by subject and id: another subject's id is not found.
	other, _ := f.sessions.Start(ctx, "erik", "", nil)
	tests := []struct {
		path string
		want int
	}{
		{"/v1/subjects/dana/sessions/" + other.Family.ID, 404},
		{"/v1/subjects/dana/sessions/not-an-id", 404},
		{"/v1/subjects/dana/sessions/" + login.Family.ID, 204},
		{"/v1/subjects/dana/sessions/" + login.Family.ID, 204}, // again: still revoked, first cause kept
		{"/v1/sessions/" + other.Family.ID, 204},
	}
	for _, tc := range tests {
		if w := f.do("DELETE", tc.path, "Bearer "+secret, ""); w.Code != tc.want {
			t.Errorf("DELETE %s = %d %s, want %d", tc.path, w.Code, errorOf(w), tc.want)
		}
	}
	third, _ := f.sessions.Start(ctx, "dana", "", nil)
	if w := f.do("DELETE", "/v1/subjects/dana/sessions", "Bearer "+secret, ""); w.Code != 200 || strings.TrimSpace(w.Body.String()) != `{"revoked":1}` {
		t.Fatalf("revoke subject: %d %s", w.Code, w.Body)
	}
	for _, id := range []string{login.Family.ID, other.Family.ID, third.Family.ID} {
		if f, _ := st.Get(ctx, id); f.RevokeReason != session.CauseAdmin {
			t.Errorf("%s: reason %q, want admin", id, f.RevokeReason)
		}
	}
}
