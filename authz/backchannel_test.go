package authz

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/oidc"
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/internal/testenv/logbuf"
	"github.com/silentauth/silentauth/internal/testenv/oidctest"
)

// failingRevoker answers err, as a failing store would.
type failingRevoker struct{ err error }

func (r failingRevoker) RevokeSID(context.Context, string, string, time.Time) (int, error) {
	return 0, r.err
}
func (r failingRevoker) RevokeSubject(context.Context, string, string, time.Time) (int, error) {
	return 0, r.err
}

// backChannel is the back-channel logout handler of lr and its log.
func (lr *loginRig) backChannel(rev Revoker) (http.Handler, *logbuf.Buffer) {
	var logs logbuf.Buffer
	return lr.engine.login.BackChannel(rev, slog.New(slog.NewJSONHandler(&logs, nil))), &logs
}

// postLogout delivers a logout token as the provider does.
func postLogout(h http.Handler, token string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/auth/backchannel-logout", strings.NewReader(url.Values{"logout_token": {token}}.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// sessionWithSID logs in through the provider whose ID token carries sid.
func (lr *loginRig) sessionWithSID(t *testing.T, sid string) (at, rt, id string) {
	t.Helper()
	lr.op.SetSID(sid)
	defer lr.op.SetSID("")
	at, rt, id = lr.session(t)
	if got := lr.family(id).ProviderSID; got != sid {
		t.Fatalf("family keeps provider sid %q, want %q", got, sid)
	}
	return at, rt, id
}

// A logout token naming a sid revokes exactly the families of that sid,
// not another session of the same user; one naming only the subject
// revokes all of that subject's. The revoked sessions then fail their next
// Check: no refresh, an API call gets 401, a page load goes to log in.
func TestBackChannelLogoutRevokesBySIDThenSubject(t *testing.T) {
	lr := newLoginRig(t)
	h, logs := lr.backChannel(lr.sessions)
	atA, rtA, idA := lr.sessionWithSID(t, "sid-A")
	_, _, idA2 := lr.sessionWithSID(t, "sid-A") // a second tab of the same provider session
	atB, rtB, idB := lr.sessionWithSID(t, "sid-B")

	c := lr.op.LogoutClaims(time.Now())
	c["sid"] = "sid-A"
	w := postLogout(h, lr.op.SignLogout(c))
	if w.Code != 200 || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("logout token with sid: %d %s (%s)", w.Code, w.Body, w.Header())
	}
	for _, id := range []string{idA, idA2} {
		if f := lr.family(id); f.RevokedAt.IsZero() || f.RevokeReason != session.CauseBackChannel {
			t.Errorf("family of sid-A: revoked %v reason %q", f.RevokedAt, f.RevokeReason)
		}
	}
	if !lr.family(idB).RevokedAt.IsZero() {
		t.Fatal("the session of sid-B was revoked too")
	}
	if !strings.Contains(logs.String(), `"outcome":"revoked"`) || !strings.Contains(logs.String(), `"revoked":2`) {
		t.Errorf("log line: %s", logs.String())
	}

	if _, v := lr.run(t, req("GET", "/", page("/", ours(atB, rtB))...)); !v.allow {
		t.Errorf("the sid-B session after the sid-A logout: status %d", v.status)
	}

	// Only the subject: every session of the user ends.
	c = lr.op.LogoutClaims(time.Now())
	c["sub"] = oidctest.DefaultUser.ID
	if w := postLogout(h, lr.op.SignLogout(c)); w.Code != 200 {
		t.Fatalf("logout token with sub only: %d %s", w.Code, w.Body)
	}
	if lr.family(idB).RevokedAt.IsZero() {
		t.Error("the subject's other session survived a subject-wide logout")
	}

	// The revoked session's next Check: its access token is still valid
	// until it expires; after that nothing refreshes it.
	if _, v := lr.run(t, req("GET", "/", page("/", ours(atA, rtA))...)); !v.allow {
		t.Errorf("access token within its TTL: status %d", v.status)
	}
	lr.clock.Advance(testAccessTTL + time.Second)
	if d, v := lr.run(t, req("GET", "/api", "cookie", ours(atA, rtA), "accept", "application/json", "sec-fetch-mode", "cors")); v.status != 401 || d.Reason != "refresh_revoked" {
		t.Errorf("API call after back-channel logout: status %d reason %s", v.status, d.Reason)
	}
	d, v := lr.run(t, req("GET", "/", page("/", ours(atA, rtA))...))
	if v.status != 302 || !strings.HasPrefix(v.response["location"], lr.op.Issuer) || d.Reason != "refresh_revoked" {
		t.Errorf("page load after back-channel logout: status %d reason %s location %q", v.status, d.Reason, v.response["location"])
	}
}

// Every logout token that is not exactly right is refused with 400 and
// the OAuth error body, and revokes nothing; so are a replay, other
// methods and other media types.
func TestBackChannelLogoutRefusals(t *testing.T) {
	lr := newLoginRig(t)
	h, logs := lr.backChannel(lr.sessions)
	_, _, id := lr.sessionWithSID(t, "sid-A")
	now := time.Now()
	valid := func(edit func(map[string]any)) map[string]any {
		c := lr.op.LogoutClaims(now)
		c["sid"], c["sub"] = "sid-A", oidctest.DefaultUser.ID
		if edit != nil {
			edit(c)
		}
		return c
	}
	replayed := lr.op.SignLogout(valid(nil))
	postLogout(h, lr.op.SignLogout(valid(func(c map[string]any) { c["sid"] = "sid-unknown" }))) // a good token, for no session
	for _, tc := range []struct {
		name, token, reason string
	}{
		{"wrong audience", lr.op.SignLogout(valid(func(c map[string]any) { c["aud"] = "another-client" })), "backchannel_token"},
		{"other issuer", lr.op.SignLogout(valid(func(c map[string]any) { c["iss"] = "https://evil.example" })), "backchannel_token"},
		{"nonce present", lr.op.SignLogout(valid(func(c map[string]any) { c["nonce"] = "n" })), "backchannel_token"},
		{"no events", lr.op.SignLogout(valid(func(c map[string]any) { delete(c, "events") })), "backchannel_token"},
		{"event not an object", lr.op.SignLogout(valid(func(c map[string]any) { c["events"] = map[string]any{oidc.BackChannelLogoutEvent: "x"} })), "backchannel_token"},
		{"no sid nor sub", lr.op.SignLogout(valid(func(c map[string]any) { delete(c, "sid"); delete(c, "sub") })), "backchannel_token"},
		{"no jti", lr.op.SignLogout(valid(func(c map[string]any) { delete(c, "jti") })), "backchannel_token"},
		{"no iat", lr.op.SignLogout(valid(func(c map[string]any) { delete(c, "iat") })), "backchannel_token"},
		{"expired", lr.op.SignLogout(valid(func(c map[string]any) {
			c["iat"], c["exp"] = now.Add(-4*time.Minute).Unix(), now.Add(-2*time.Minute).Unix()
		})), "backchannel_token"},
		{"iat too old", lr.op.SignLogout(valid(func(c map[string]any) {
			c["iat"], c["exp"] = now.Add(-10*time.Minute).Unix(), now.Add(time.Hour).Unix()
		})), "backchannel_token"},
		{"iat in the future", lr.op.SignLogout(valid(func(c map[string]any) { c["iat"] = now.Add(10 * time.Minute).Unix() })), "backchannel_token"},
		{"forged signature", lr.op.Forge(valid(nil)), "backchannel_token"},
		{"an ID token", lr.op.Sign(map[string]any{"iss": lr.op.Issuer, "aud": lr.op.ClientID, "sub": "alice-id", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix(), "nonce": "n"}), "backchannel_token"},
		{"garbage", "not.a.jwt", "backchannel_token"},
		{"empty", "", "backchannel_request"},
	} {
		w := postLogout(h, tc.token)
		var body struct{ Error, ErrorDescription string }
		body.ErrorDescription = "unset"
		if err := json.Unmarshal(w.Body.Bytes(), &struct {
			Error            *string `json:"error"`
			ErrorDescription *string `json:"error_description"`
		}{&body.Error, &body.ErrorDescription}); err != nil || w.Code != 400 || body.Error != "invalid_request" || body.ErrorDescription == "" {
			t.Errorf("%s: %d %s", tc.name, w.Code, w.Body)
		}
		if !strings.Contains(logs.String(), `"outcome":"`+tc.reason+`"`) {
			t.Errorf("%s: no %s log line", tc.name, tc.reason)
		}
	}
	if !lr.family(id).RevokedAt.IsZero() {
		t.Fatal("a refused logout token revoked the session")
	}

	if w := postLogout(h, replayed); w.Code != 200 {
		t.Fatalf("first delivery: %d %s", w.Code, w.Body)
	}
	if lr.family(id).RevokedAt.IsZero() {
		t.Fatal("not revoked")
	}
	if w := postLogout(h, replayed); w.Code != 400 || !strings.Contains(logs.String(), `"outcome":"backchannel_replay"`) {
		t.Errorf("replay: %d %s", w.Code, w.Body)
	}
	if strings.Contains(logs.String(), replayed) {
		t.Error("a logout token was logged")
	}

	for _, tc := range []struct {
		name, method, contentType string
		status                    int
	}{
		{"GET", "GET", "", 405},
		{"JSON", "POST", "application/json", 415},
		{"no content type", "POST", "", 415},
	} {
		r := httptest.NewRequest(tc.method, "/auth/backchannel-logout", strings.NewReader("logout_token="+replayed))
		if tc.contentType != "" {
			r.Header.Set("Content-Type", tc.contentType)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, w.Code, tc.status)
		}
	}
	big := httptest.NewRequest("POST", "/auth/backchannel-logout", strings.NewReader("logout_token="+strings.Repeat("a", maxLogoutBody)))
	big.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, big)
	if w.Code != 400 {
		t.Errorf("oversized body: %d", w.Code)
	}
}

// A good token for no session of ours is answered 200 (§2.8) and revokes
// nothing.
func TestBackChannelLogoutUnknownSID(t *testing.T) {
	lr := newLoginRig(t)
	h, _ := lr.backChannel(lr.sessions)
	_, _, id := lr.sessionWithSID(t, "sid-A")
	c := lr.op.LogoutClaims(time.Now())
	c["sid"] = "sid-nobody"
	if w := postLogout(h, lr.op.SignLogout(c)); w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if !lr.family(id).RevokedAt.IsZero() {
		t.Error("another sid's session revoked")
	}
}

// A failing store answers 503, so that the provider delivers again; a
// token naming only the subject is refused when our subject is another
// provider claim.
func TestBackChannelLogoutStoreFailsAndSubjectClaim(t *testing.T) {
	lr := newLoginRig(t)
	h, _ := lr.backChannel(failingRevoker{errors.New("redis: connection refused")})
	c := lr.op.LogoutClaims(time.Now())
	c["sid"] = "sid-A"
	if w := postLogout(h, lr.op.SignLogout(c)); w.Code != 503 {
		t.Errorf("store failing: %d %s", w.Code, w.Body)
	}

	lr = newLoginRig(t, func(o *oidc.Options) { o.SubjectClaim = "email" })
	h, _ = lr.backChannel(lr.sessions)
	c = lr.op.LogoutClaims(time.Now())
	c["sub"] = oidctest.DefaultUser.ID
	if w := postLogout(h, lr.op.SignLogout(c)); w.Code != 400 || !strings.Contains(w.Body.String(), "sid required") {
		t.Errorf("sub only with subjectClaim email: %d %s", w.Code, w.Body)
	}
}

// flakyRevoker fails its first call, as a store that is briefly down, then
// revokes through the session manager.
type flakyRevoker struct {
	Revoker
	failed bool
}

func (r *flakyRevoker) RevokeSID(ctx context.Context, sid, cause string, before time.Time) (int, error) {
	if !r.failed {
		r.failed = true
		return 0, errors.New("redis: connection refused")
	}
	return r.Revoker.RevokeSID(ctx, sid, cause, before)
}

// The provider delivers again after our 503, and that delivery is not
// refused as a replay: the sessions end. A third delivery of the same
// token is a replay (400) and changes nothing.
func TestBackChannelLogoutDeliveredAgainAfterAFailure(t *testing.T) {
	lr := newLoginRig(t)
	h, _ := lr.backChannel(&flakyRevoker{Revoker: lr.sessions})
	_, _, id := lr.sessionWithSID(t, "sid-A")
	c := lr.op.LogoutClaims(time.Now())
	c["sid"] = "sid-A"
	token := lr.op.SignLogout(c)
	if w := postLogout(h, token); w.Code != 503 {
		t.Fatalf("first delivery, store down: %d %s", w.Code, w.Body)
	}
	if !lr.family(id).RevokedAt.IsZero() {
		t.Fatal("revoked although the store failed")
	}
	if w := postLogout(h, token); w.Code != 200 {
		t.Fatalf("delivery after the failure: %d %s", w.Code, w.Body)
	}
	if lr.family(id).RevokedAt.IsZero() {
		t.Fatal("the session survived the delivered logout")
	}
	if w := postLogout(h, token); w.Code != 400 || !strings.Contains(w.Body.String(), "invalid_request") {
		t.Errorf("third delivery: %d %s, want a replay refused", w.Code, w.Body)
	}
}

// A logout ends the sessions that existed when the provider reported it,
// not one the user started afterwards: a late or repeated delivery of a
// subject-wide token never logs out the new login.
func TestBackChannelLogoutSparesLaterSessions(t *testing.T) {
	lr := newLoginRig(t)
	h, _ := lr.backChannel(lr.sessions)
	_, _, before := lr.sessionWithSID(t, "sid-A")
	issued := time.Now()
	lr.clock.Set(issued.Add(logoutSkew + time.Second))
	_, _, after := lr.sessionWithSID(t, "sid-B")
	c := lr.op.LogoutClaims(issued)
	c["sub"] = oidctest.DefaultUser.ID
	if w := postLogout(h, lr.op.SignLogout(c)); w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if lr.family(before).RevokedAt.IsZero() {
		t.Error("the session that existed at the logout survived")
	}
	if !lr.family(after).RevokedAt.IsZero() {
		t.Error("a session started after the reported logout was revoked")
	}
}

// When the provider's keys cannot be fetched, a logout token is answered
// 503, not refused: the provider delivers it again, and then it works.
func TestBackChannelLogoutKeysUnreachable(t *testing.T) {
	lr := newLoginRig(t)
	h, _ := lr.backChannel(lr.sessions)
	c := lr.op.LogoutClaims(time.Now())
	c["sid"] = "sid-A"
	token := lr.op.SignLogout(c)
	// Nothing has verified a token yet: the keys are fetched now, and fail.
	lr.op.SetKeysFault(oidctest.Unavailable)
	if w := postLogout(h, token); w.Code != 503 {
		t.Fatalf("keys unreachable: %d %s", w.Code, w.Body)
	}
	lr.op.SetKeysFault(oidctest.NoFault)
	_, _, id := lr.sessionWithSID(t, "sid-A")
	if w := postLogout(h, token); w.Code != 200 {
		t.Fatalf("delivered again once the keys are back: %d %s", w.Code, w.Body)
	}
	if lr.family(id).RevokedAt.IsZero() {
		t.Fatal("the session survived the delivered logout")
	}
}
