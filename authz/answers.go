package authz

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"

	"github.com/silentauth/silentauth/authz/oidc"
	"github.com/silentauth/silentauth/authz/seal"
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/token"
)

// Failures found by the decision itself.
var (
	errNoCredentials    = errors.New("authz: no access or refresh token")
	errAmbiguousCookie  = errors.New("authz: a cookie of ours appears twice")
	errCSRF             = errors.New("authz: cross-origin unsafe request authenticated by cookie")
	errCrossSiteRefresh = errors.New("authz: refresh on a cross-site subresource request")
	errMethod           = errors.New("authz: method not allowed on this endpoint")
	errNoRefreshToken   = errors.New("authz: no refresh token")
	errUnknownPolicy    = errors.New("authz: the route names a policy that is not configured")
	errClaims           = errors.New("authz: the token lacks a claim the policy requires")
	errStoreFailing     = errors.New("authz: session store failing: refresh ahead of expiry skipped")
	// errAuthorization: an Authorization header that is not "Bearer
	// <token>". The client meant some credential; deciding on the cookie
	// instead would pass the upstream another identity than the one it was
	// sent, so the request is refused as malformed (RFC 6750 §3.1).
	errAuthorization = errors.New(`authz: the Authorization header is not "Bearer <token>"`)
)

// The reasons of answers that are not failures. With the failures' below
// they are every reason a Decision carries: the metrics create a counter
// for each up front (reasons).
const (
	reasonValid                  = "valid"
	reasonPublic                 = "public"
	reasonRefreshed              = "refreshed"
	reasonRefreshedGrace         = "refreshed_grace" // another request's successor (grace, lost answer, coalesced)
	reasonEndpointRefreshed      = "endpoint_refreshed"
	reasonEndpointRefreshedGrace = "endpoint_refreshed_grace"
	reasonEndpointLogout         = "endpoint_logout"
	reasonEndpointLogoutReuse    = "endpoint_logout_reuse"
	// A session of provider login ended here and the browser sent on to
	// the provider's end_session_endpoint; or ended here while the
	// provider's revocation endpoint failed (our side is over all the same).
	reasonEndpointLogoutProvider       = "endpoint_logout_provider"
	reasonEndpointLogoutProviderFailed = "endpoint_logout_provider_failed"
	reasonLoginCompleted               = "login_completed"
)

// answer is how one kind of failure is told to the client.
type answer struct {
	status int
	// code is the error code of the JSON body and, on a 401, of
	// WWW-Authenticate (RFC 6750 §3.1).
	code   string
	reason string // metric label
	// clear deletes our cookies: only when the session is truly over
	// (theft, expiry, revocation, garbage). An outage never clears.
	clear bool
	// login allows a redirect to the login page for page navigations.
	login bool
	level slog.Level
	// still is the reason of the allow given instead when a refresh failed
	// this way while the presented access token is still valid (a refresh
	// ahead of expiry): "" means the request is denied all the same.
	still string
	// event marks a security event: its line is never dropped and names
	// the event.
	event string
}

// answers is the one place that maps errors to answers. The first entry
// whose error matches (errors.Is) wins; anything unmatched is an
// infrastructure fault: 503, cookies kept, so an outage never logs anyone
// out.
var answers = []struct {
	err error
	answer
}{
	{ErrBadRequest, answer{http.StatusBadRequest, "invalid_request", "bad_request", false, false, slog.LevelInfo, "", ""}},
	{errBadPath, answer{http.StatusBadRequest, "invalid_request", "bad_path", false, false, slog.LevelInfo, "", ""}},
	{errAmbiguousCookie, answer{http.StatusBadRequest, "invalid_request", "ambiguous_cookie", true, false, slog.LevelWarn, "", ""}},
	{errCSRF, answer{http.StatusForbidden, "forbidden", "csrf", false, false, slog.LevelWarn, "", ""}},
	{errMethod, answer{http.StatusMethodNotAllowed, "method_not_allowed", "method", false, false, slog.LevelInfo, "", ""}},
	{errCrossSiteRefresh, answer{http.StatusUnauthorized, "invalid_token", "cross_site_refresh", false, false, slog.LevelInfo, "valid", ""}},
	{errUnknownPolicy, answer{http.StatusInternalServerError, "temporarily_unavailable", "unknown_policy", false, false, slog.LevelError, "", ""}},
	{errAuthorization, answer{http.StatusUnauthorized, "invalid_request", "bad_authorization", false, false, slog.LevelInfo, "", ""}},
	{errStoreFailing, answer{http.StatusServiceUnavailable, "temporarily_unavailable", "unavailable", false, false, slog.LevelDebug, "valid_store_unavailable", ""}},
	{errClaims, answer{http.StatusForbidden, "forbidden", "insufficient_claims", false, false, slog.LevelInfo, "", ""}},
	{errNoCredentials, answer{http.StatusUnauthorized, "invalid_token", "no_credentials", false, true, slog.LevelDebug, "", ""}},
	{errNoRefreshToken, answer{http.StatusUnauthorized, "invalid_token", "no_refresh_token", false, true, slog.LevelDebug, "", ""}},

	// The request's time ran out before a rotation could start (or the
	// store took it all): nothing changed, so nothing is cleared.
	{session.ErrDeadline, answer{http.StatusServiceUnavailable, "temporarily_unavailable", "deadline", false, false, slog.LevelWarn, "valid_deadline", ""}},
	{context.DeadlineExceeded, answer{http.StatusServiceUnavailable, "temporarily_unavailable", "deadline", false, false, slog.LevelWarn, "valid_deadline", ""}},
	{context.Canceled, answer{http.StatusServiceUnavailable, "temporarily_unavailable", "deadline", false, false, slog.LevelInfo, "valid_deadline", ""}},

	// Refresh tokens (RFC 9700 §4.14.2). Reuse is theft: the family is
	// already revoked by the time this answer is chosen. A family the store
	// does not know (any more: a store restarted empty) ends the session
	// only when the access token it holds expires.
	{session.ErrReuse, answer{http.StatusUnauthorized, "invalid_token", "refresh_reuse", true, true, slog.LevelWarn, "", eventReuse}},
	{session.ErrRevoked, answer{http.StatusUnauthorized, "invalid_token", "refresh_revoked", true, true, slog.LevelInfo, "", ""}},
	{session.ErrExpired, answer{http.StatusUnauthorized, "invalid_token", "refresh_expired", true, true, slog.LevelInfo, "", ""}},
	{session.ErrUnknown, answer{http.StatusUnauthorized, "invalid_token", "refresh_unknown", true, true, slog.LevelInfo, "valid_session_unknown", ""}},
	{session.ErrUnknownSecret, answer{http.StatusUnauthorized, "invalid_token", "refresh_unknown_secret", true, true, slog.LevelWarn, "valid_session_unknown", ""}},
	{session.ErrMalformed, answer{http.StatusUnauthorized, "invalid_token", "refresh_malformed", true, true, slog.LevelInfo, "", ""}},
	// A session started for another policy (application): nothing was
	// rotated, and its cookies stay, because the session is still valid
	// for its own application; this policy's login page may start one.
	{session.ErrOtherPolicy, answer{http.StatusUnauthorized, "invalid_token", "session_other_policy", false, true, slog.LevelInfo, "valid_session_other_policy", ""}},

	// Provider login: the callback (a page load) is told precisely what
	// went wrong; nothing of a session exists yet, so nothing is cleared.
	{errLoginState, answer{http.StatusBadRequest, "invalid_request", "login_state", false, false, slog.LevelInfo, "", ""}},
	{oidc.ErrProviderError, answer{http.StatusForbidden, "access_denied", "login_provider_error", false, false, slog.LevelInfo, "", ""}},
	{oidc.ErrExchange, answer{http.StatusBadRequest, "invalid_grant", "login_code", false, false, slog.LevelInfo, "", ""}},
	{oidc.ErrNonce, answer{http.StatusUnauthorized, "invalid_token", "login_nonce", false, false, slog.LevelWarn, "", ""}},
	{oidc.ErrIDToken, answer{http.StatusUnauthorized, "invalid_token", "login_id_token", false, false, slog.LevelWarn, "", ""}},
	{oidc.ErrEmailDomain, answer{http.StatusForbidden, "forbidden", "login_email_domain", false, false, slog.LevelInfo, "", ""}},
	{oidc.ErrClaims, answer{http.StatusForbidden, "forbidden", "login_claims", false, false, slog.LevelInfo, "", ""}},
	// Back-channel logout (its own HTTP handler, not Check): the provider
	// is told why its logout token was refused (§2.8); a store outage
	// falls through to unavailable (503), so the provider retries.
	{errMediaType, answer{http.StatusUnsupportedMediaType, "invalid_request", "backchannel_media_type", false, false, slog.LevelInfo, "", ""}},
	{errLogoutRequest, answer{http.StatusBadRequest, "invalid_request", "backchannel_request", false, false, slog.LevelInfo, "", ""}},
	{oidc.ErrLogoutToken, answer{http.StatusBadRequest, "invalid_request", "backchannel_token", false, false, slog.LevelWarn, "", ""}},
	{errLogoutReplay, answer{http.StatusBadRequest, "invalid_request", "backchannel_replay", false, false, slog.LevelWarn, "", ""}},
	{errLogoutSID, answer{http.StatusBadRequest, "invalid_request", "backchannel_sid_required", false, false, slog.LevelWarn, "", ""}},
	{oidc.ErrUnavailable, answer{http.StatusServiceUnavailable, "temporarily_unavailable", "provider_unavailable", false, false, slog.LevelWarn, "", ""}},
	// The provider's refresh of a session: a grant it ended logs the user
	// out (the family is already revoked); an outage never does.
	{session.ErrProviderGrant, answer{http.StatusUnauthorized, "invalid_token", "provider_grant_ended", true, true, slog.LevelInfo, "", ""}},
	{session.ErrProviderUnavailable, answer{http.StatusServiceUnavailable, "temporarily_unavailable", "provider_unavailable", false, false, slog.LevelWarn, "valid_provider_unavailable", ""}},
	{seal.ErrNoKey, answer{http.StatusServiceUnavailable, "temporarily_unavailable", "no_keyring", false, false, slog.LevelError, "", ""}},
	// The refresh MAC key comes from the signing keys: none yet, or the
	// key a family's token was made under left the ring (an outage, not a
	// verdict on the token, so nothing is cleared).
	{session.ErrNoRefreshKey, answer{http.StatusServiceUnavailable, "temporarily_unavailable", "no_keyring", false, false, slog.LevelError, "", ""}},

	// Access tokens (RFC 8725, RFC 9068).
	{token.ErrNoKeyring, answer{http.StatusServiceUnavailable, "temporarily_unavailable", "no_keyring", false, false, slog.LevelError, "", ""}},
	{token.ErrTooLarge, answer{http.StatusUnauthorized, "invalid_token", "token_too_large", false, true, slog.LevelInfo, "", ""}},
	{token.ErrMalformed, answer{http.StatusUnauthorized, "invalid_token", "token_malformed", false, true, slog.LevelDebug, "", ""}},
	{token.ErrHeader, answer{http.StatusUnauthorized, "invalid_token", "token_header", false, true, slog.LevelWarn, "", ""}},
	{token.ErrType, answer{http.StatusUnauthorized, "invalid_token", "token_type", false, true, slog.LevelInfo, "", ""}},
	{token.ErrAlgorithm, answer{http.StatusUnauthorized, "invalid_token", "token_algorithm", false, true, slog.LevelWarn, "", ""}},
	{token.ErrUnknownKey, answer{http.StatusUnauthorized, "invalid_token", "token_unknown_key", false, true, slog.LevelInfo, "", ""}},
	{token.ErrSignature, answer{http.StatusUnauthorized, "invalid_token", "token_signature", false, true, slog.LevelWarn, "", ""}},
	{token.ErrExpired, answer{http.StatusUnauthorized, "invalid_token", "token_expired", false, true, slog.LevelDebug, "", ""}},
	{token.ErrNotYetValid, answer{http.StatusUnauthorized, "invalid_token", "token_not_yet_valid", false, true, slog.LevelInfo, "", ""}},
	{token.ErrIssuer, answer{http.StatusUnauthorized, "invalid_token", "token_issuer", false, true, slog.LevelInfo, "", ""}},
	{token.ErrAudience, answer{http.StatusUnauthorized, "invalid_token", "token_audience", false, true, slog.LevelInfo, "", ""}},
	{token.ErrMissingClaim, answer{http.StatusUnauthorized, "invalid_token", "token_claims", false, true, slog.LevelInfo, "", ""}},
}

// unavailable answers infrastructure faults (store unreachable or slow).
var unavailable = answer{http.StatusServiceUnavailable, "temporarily_unavailable", "unavailable", false, false, slog.LevelError, "valid_store_unavailable", ""}

// eventReuse names the security event of a refresh token used twice.
const eventReuse = "refresh_token_reuse"

// denyBodies holds the JSON body of every answer, by reason.
var denyBodies = func() map[string]string {
	m := map[string]string{unavailable.reason: unavailable.jsonBody()}
	for _, a := range answers {
		m[a.reason] = a.jsonBody()
	}
	return m
}()

// body returns a's JSON body, built once per answer.
func (a answer) body() string {
	if b, ok := denyBodies[a.reason]; ok {
		return b
	}
	return a.jsonBody()
}

func (a answer) jsonBody() string {
	return `{"error":"` + a.code + `","reason":"` + a.reason + `"}`
}

// reasons lists every reason a Decision can carry, by decision: allowed
// requests (index 1) and the others (index 0; the session endpoints answer
// through a denied response too).
func reasons() [2][]string {
	allow := []string{reasonValid, reasonPublic, reasonRefreshed, reasonRefreshedGrace}
	deny := []string{unavailable.reason, reasonEndpointRefreshed, reasonEndpointRefreshedGrace, reasonEndpointLogout, reasonEndpointLogoutReuse,
		reasonEndpointLogoutProvider, reasonEndpointLogoutProviderFailed, reasonLoginCompleted}
	for _, a := range answers {
		deny = append(deny, a.reason)
		if a.still != "" {
			allow = append(allow, a.still)
		}
	}
	allow = append(allow, unavailable.still)
	slices.Sort(allow)
	slices.Sort(deny)
	return [2][]string{slices.Compact(deny), slices.Compact(allow)}
}

// outage reports an answer to an infrastructure fault (the store
// unreachable or slow, the request's time run out): it never ends a
// session, and the client may simply try again.
func (a answer) outage() bool { return a.status == http.StatusServiceUnavailable }

// answerFor returns the answer for err.
func answerFor(err error) answer {
	for _, a := range answers {
		if errors.Is(err, a.err) {
			return a.answer
		}
	}
	return unavailable
}
