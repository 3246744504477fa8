package authz

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/silentauth/silentauth/authz/cookie"
	"github.com/silentauth/silentauth/authz/oidc"
	"github.com/silentauth/silentauth/authz/seal"
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store"
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
//
// A session started by provider login is ended at the provider too
// (providerLogout): its grant is revoked there, and a page navigation goes
// on to the provider's end_session_endpoint (OpenID Connect RP-Initiated
// Logout 1.0), which ends the provider's own session, so that the next
// page load does not silently log the user in again.
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
	var ended *store.Family
	if found.Refresh != "" && !found.RefreshDup {
		f, err := e.sessions.LogoutFamily(ctx, found.Refresh)
		if err != nil && answerFor(err).outage() {
			return e.deny(r, err)
		}
		if re := (*session.ReuseError)(nil); errors.As(err, &re) {
			// A superseded token at logout is still theft: the family is
			// revoked; say so in the log.
			d.Reason, d.Err, d.Event = reasonEndpointLogoutReuse, err, answerFor(err).event
			d.Subject, d.Session, d.Level = re.Subject, re.Family, answerFor(err).level
		}
		ended = f
	}
	navigation := logoutNavigation(r)
	location := e.policy.LoginURL
	if e.login != nil {
		end := ""
		if ended != nil && len(ended.Provider) > 0 {
			d.Subject, d.Session = ended.Subject, ended.ID
			var err error
			end, err = e.providerLogout(ctx, ended)
			switch {
			case err != nil:
				d.Reason, d.Err, d.Level = reasonEndpointLogoutProviderFailed, err, slog.LevelWarn
			case end != "" && navigation:
				d.Reason = reasonEndpointLogoutProvider
			}
			if err != nil && !navigation {
				// Our side is over all the same: say that the provider's
				// may not be (a 204 carries no body).
				d.Status = http.StatusOK
				d.Response = append(d.Response, Header{"content-type", "application/json"})
				d.Body = `{"logged_out":true,"provider_logout":"failed"}`
			}
		}
		// Without the provider's end-session page: where the provider
		// would have sent the browser, else this policy's login page.
		location = cmp.Or(end, e.login.Options.PostLogoutRedirectURL, e.policy.LoginURL, "/")
	}
	if navigation && location != "" {
		d.Status = http.StatusSeeOther
		d.Response = append(d.Response, Header{"location", location})
	}
	return d
}

// logoutNavigation reports a logout the browser loads as a page: the
// POST of a form (Fetch Metadata, else the Accept header), which a 303
// can take on to another page.
func logoutNavigation(r *Request) bool {
	if m := r.Header("sec-fetch-mode"); m != "" {
		return m == "navigate"
	}
	return strings.Contains(r.Header("accept"), "text/html")
}

// providerLogout ends the provider's side of a session that provider
// login started, f as read before our revocation: its grant is revoked at
// the provider (best effort, within the provider timeout and at most half
// of the request's remaining time, so that our answer, which clears the
// cookies, is never lost to it), and the provider's end-session URL for
// its ID token is returned ("" when the provider has none). The error is
// the revocation's; our logout stands whatever it is.
func (e *route) providerLogout(ctx context.Context, f *store.Family) (string, error) {
	var t oidc.Tokens
	plain, err := seal.Open(e.login.Keys, f.Provider, ProviderAD(f.Subject))
	if err == nil {
		err = t.UnmarshalBinary(plain)
	}
	if err != nil {
		// Tokens whose key left the keyring: nothing to revoke or hint
		// with; the provider's page still ends its session.
		return e.login.Provider.EndSessionURL(""), nil
	}
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-time.Until(deadline)/2))
		defer cancel()
	}
	err = e.login.Provider.Revoke(ctx, t)
	if errors.Is(err, oidc.ErrNoRevocation) {
		err = nil // nothing more this provider lets us do
	}
	end := e.login.Provider.EndSessionURL(t.IDToken)
	if len(end) > maxHeaderValue {
		// An ID token too large for a Location header: the hint is
		// optional (RP-Initiated Logout 1.0 §2), client_id still names us.
		end = e.login.Provider.EndSessionURL("")
	}
	return end, err
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
