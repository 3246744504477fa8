package authz

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/silentauth/silentauth/authz/cookie"
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/token"
)

// refreshEndpoint answers POST RefreshPath inside Check: it rotates now and
// answers through the denied response (Envoy counts it as a deny) with 204
// and the cookies, or 200 with the access token as JSON when the client
// asks for JSON (bearer-style single-page apps).
func (e *route) refreshEndpoint(ctx context.Context, r *Request, found cookie.Found) Decision {
	if r.Method != http.MethodPost {
		return e.deny(r, errMethod)
	}
	if found.AccessDup || found.RefreshDup {
		return e.deny(r, errAmbiguousCookie)
	}
	if found.Refresh == "" {
		return e.deny(r, errNoRefreshToken)
	}
	if e.crossOrigin(r) {
		return e.deny(r, errCSRF)
	}
	rn, err := e.renew(ctx, r, found.Refresh, false)
	if err != nil {
		return e.deny(r, err)
	}
	raw, claims, iss := rn.raw, rn.claims, rn.issued
	d := Decision{
		Status:    http.StatusNoContent,
		Reason:    reasonEndpointRefreshed,
		SetCookie: rn.setCookie,
		Response:  []Header{{"cache-control", "no-store"}},
		Subject:   claims.Subject,
		Session:   claims.SessionID,
	}
	if !iss.Rotated {
		d.Reason = reasonEndpointRefreshedGrace
	}
	if strings.Contains(r.Header("accept"), "application/json") {
		d.Status = http.StatusOK
		d.Response = append(d.Response, Header{"content-type", "application/json"})
		d.Body = refreshBody(raw, claims, iss, e)
	}
	return d
}

func refreshBody(raw string, c *token.Claims, iss session.Issued, e *route) string {
	b, _ := json.Marshal(struct {
		AccessToken      string `json:"access_token"`
		TokenType        string `json:"token_type"`
		ExpiresIn        int64  `json:"expires_in"`
		ExpiresAt        int64  `json:"expires_at"`
		SessionExpiresAt int64  `json:"session_expires_at"`
	}{raw, "Bearer", int64(c.ExpiresAt.Sub(e.now()).Seconds()), c.ExpiresAt.Unix(), iss.SessionEnd().Unix()})
	return string(b)
}

// logoutEndpoint answers POST LogoutPath inside Check: it revokes the
// family of the presented refresh token and clears the cookies, whatever
// policy the session was started for: logging out only takes rights away,
// and clearing the cookies while another route's session lived on would
// leave a session nobody can end from the browser. A store
// outage answers 503 and keeps the cookies so the client can retry; a page
// navigation is sent on to the login page with 303.
func (e *route) logoutEndpoint(ctx context.Context, r *Request, found cookie.Found) Decision {
	if r.Method != http.MethodPost {
		return e.deny(r, errMethod)
	}
	if e.crossOrigin(r) {
		return e.deny(r, errCSRF)
	}
	d := Decision{
		Status:    http.StatusNoContent,
		Reason:    reasonEndpointLogout,
		SetCookie: e.cookies.Clear(),
		Response:  []Header{{"cache-control", "no-store"}},
	}
	if found.Refresh != "" && !found.RefreshDup {
		err := e.sessions.Logout(ctx, found.Refresh)
		if err != nil && answerFor(err).outage() {
			return e.deny(r, err)
		}
		if re := (*session.ReuseError)(nil); errors.As(err, &re) {
			// A superseded token at logout is still theft: the family is
			// revoked; say so in the log.
			d.Reason, d.Err, d.Event = reasonEndpointLogoutReuse, err, answerFor(err).event
			d.Subject, d.Session, d.Level = re.Subject, re.Family, answerFor(err).level
		}
	}
	if r.Header("sec-fetch-mode") == "navigate" && e.policy.LoginURL != "" {
		d.Status = http.StatusSeeOther
		d.Response = append(d.Response, Header{"location", e.policy.LoginURL})
	}
	return d
}

// rawClaim returns claim name of c: a session claim as decoded from the
// token (a list stays a list), a registered one as Claims.Text renders it.
func rawClaim(c *token.Claims, name string) (any, bool) {
	if v, ok := c.Extra[name]; ok {
		return v, true
	}
	return c.Text(name)
}

// claimValue renders claim name of c as a header value. Values with bytes
// a header cannot carry are refused.
func claimValue(c *token.Claims, name string) (string, bool) {
	s, ok := c.Text(name)
	if !ok || s == "" || !validHeaderValue(s) {
		return "", false
	}
	return s, true
}

// validHeaderValue reports whether s can be sent as a header value
// (RFC 9110 §5.5: no CR, LF or NUL, no other control bytes but tab).
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return len(s) <= 8<<10
}
