package authz

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// Requirement 14: the refresh endpoint, answered inside Check.
func TestRefreshEndpoint(t *testing.T) {
	tests := []struct {
		name, method string
		cookie       bool // send the refresh cookie
		accept       string
		status       int
		reason       string
	}{
		{"POST rotates, 204", "POST", true, "", 204, "endpoint_refreshed"},
		{"POST for JSON, 200", "POST", true, "application/json", 200, "endpoint_refreshed"},
		{"GET is not allowed", "GET", true, "", 405, "method"},
		{"no refresh cookie", "POST", false, "", 401, "no_refresh_token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			at, rt := r.login("alice", nil)
			r.clock.Advance(time.Minute)
			kv := []string{"sec-fetch-site", "same-origin", "sec-fetch-mode", "cors"}
			if tc.cookie {
				kv = append(kv, "cookie", ours(at, rt))
			}
			if tc.accept != "" {
				kv = append(kv, "accept", tc.accept)
			}
			d, v := r.run(t, req(tc.method, "/auth/refresh", kv...))
			if v.allow || v.status != tc.status || d.Reason != tc.reason {
				t.Fatalf("allow=%v status %d reason %s, want denied_response %d %s", v.allow, v.status, d.Reason, tc.status, tc.reason)
			}
			version := r.family(familyOf(t, rt)).Version
			switch tc.status {
			case 204, 200:
				if len(v.setCookie) != 3 || version != 2 || v.response["cache-control"] != "no-store" {
					t.Fatalf("%d Set-Cookie, version %d, cache-control %q", len(v.setCookie), version, v.response["cache-control"])
				}
				next, _ := cookieValue(v.setCookie, testCookies.Refresh)
				if next == rt || next == "" {
					t.Fatal("the refresh cookie did not rotate")
				}
			case 405:
				if v.response["allow"] != "POST" || len(v.setCookie) != 0 || version != 1 {
					t.Fatalf("allow header %q, cookies %q, version %d", v.response["allow"], v.setCookie, version)
				}
			case 401:
				if len(v.setCookie) != 0 || version != 1 {
					t.Fatalf("cookies %q, version %d", v.setCookie, version)
				}
			}
			if tc.status == 204 && v.body != "" {
				t.Fatalf("204 with a body %q", v.body)
			}
			if tc.status != 200 {
				return
			}
			if v.response["content-type"] != "application/json" {
				t.Errorf("content-type %q", v.response["content-type"])
			}
			var body struct {
				AccessToken      string `json:"access_token"`
				TokenType        string `json:"token_type"`
				ExpiresIn        int64  `json:"expires_in"`
				ExpiresAt        int64  `json:"expires_at"`
				SessionExpiresAt int64  `json:"session_expires_at"`
			}
			if err := json.Unmarshal([]byte(v.body), &body); err != nil {
				t.Fatalf("body %q: %v", v.body, err)
			}
			now := r.clock.Now()
			c, err := r.opts.Verifier.Verify(body.AccessToken)
			if err != nil || c.Subject != "alice" || body.AccessToken == at {
				t.Fatalf("access_token: %v, %v", c, err)
			}
			if got, _ := cookieValue(v.setCookie, testCookies.Access); got != body.AccessToken {
				t.Error("the body and the access cookie carry different tokens")
			}
			if body.TokenType != "Bearer" || body.ExpiresIn != 900 || body.ExpiresAt != now.Add(testAccessTTL).Unix() ||
				body.SessionExpiresAt != now.Add(testLifetimes.Idle).Unix() {
				t.Fatalf("body %+v", body)
			}
		})
	}
}

// Requirement 14: logout revokes the family and clears the cookies; a
// page navigation is sent on to the login page.
func TestLogoutEndpoint(t *testing.T) {
	tests := []struct {
		name     string
		mode     string
		status   int
		location string
	}{
		{"fetch", "cors", 204, ""},
		{"form navigation", "navigate", 303, "/login"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			at, rt := r.login("alice", nil)
			d, v := r.run(t, req("POST", "/auth/logout", "cookie", ours(at, rt), "sec-fetch-site", "same-origin", "sec-fetch-mode", tc.mode))
			if v.allow || v.status != tc.status || d.Reason != "endpoint_logout" || v.response["location"] != tc.location {
				t.Fatalf("allow=%v status %d reason %s location %q", v.allow, v.status, d.Reason, v.response["location"])
			}
			if !slices.Equal(v.setCookie, r.cookies.Clear()) {
				t.Fatalf("Set-Cookie %q, want the three deletions", v.setCookie)
			}
			if f := r.family(familyOf(t, rt)); f.RevokedAt.IsZero() || f.RevokeReason != "logout" {
				t.Fatalf("family: revoked %v reason %q", f.RevokedAt, f.RevokeReason)
			}
			r.clock.Advance(testAccessTTL + time.Minute)
			d, v = r.run(t, req("GET", "/api", "cookie", ours(at, rt)))
			if v.allow || v.status != 401 || d.Reason != "refresh_revoked" {
				t.Fatalf("refresh after logout: allow=%v status %d reason %s", v.allow, v.status, d.Reason)
			}
		})
	}
}

func TestFixtureRefreshEndpointOverGRPC(t *testing.T) {
	r := newRig(t)
	_, rt := r.login("alice", nil)
	resp, err := r.client().Check(t.Context(), fixture(t, "envoy_post_refresh_endpoint.json", "", rt))
	if err != nil {
		t.Fatal(err)
	}
	v := flatten(t, resp)
	if v.allow || v.status != 200 || len(v.setCookie) != 3 || !strings.Contains(v.body, `"token_type":"Bearer"`) {
		t.Fatalf("allow=%v status %d cookies %d body %s", v.allow, v.status, len(v.setCookie), v.body)
	}
	if f := r.family(familyOf(t, rt)); f.Version != 2 {
		t.Fatalf("version %d, want 2", f.Version)
	}
}
