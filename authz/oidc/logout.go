package oidc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Logout sentinels.
var (
	// ErrNoRevocation: the provider lists no revocation_endpoint
	// (RFC 7009), so its tokens cannot be revoked from here.
	ErrNoRevocation = errors.New("oidc: the provider has no revocation endpoint")
	// ErrLogoutToken: a back-channel logout token failed verification
	// (signature, iss, aud, iat/exp, typ, events, nonce, sid/sub, jti).
	ErrLogoutToken = errors.New("oidc: invalid logout token")
)

// BackChannelLogoutEvent is the member of a logout token's events claim
// (OpenID Connect Back-Channel Logout 1.0 §2.4).
const BackChannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

const (
	// LogoutTokenMaxAge bounds how long ago a logout token may have been
	// issued (iat), whatever its exp says: a logout token is delivered at
	// once, and an old one is a replay beyond our jti memory.
	LogoutTokenMaxAge = 5 * time.Minute
	// logoutLeeway is the clock skew tolerated on iat and exp.
	logoutLeeway = time.Minute
)

// endpointURL keeps a discovered endpoint only when it is an absolute
// http(s) URL ("" otherwise: never a relative or script URL in a Location).
func endpointURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return ""
	}
	return s
}

// Revoke revokes the session's grant at the provider's revocation
// endpoint (RFC 7009): the refresh token (token_type_hint refresh_token),
// or the access token when there is no refresh token. The client
// authenticates as at the token endpoint: HTTP Basic with the client
// secret (RFC 6749 §2.3.1), client_id in the form for a public client.
// Each call is bounded by Options.ProviderTimeout. ErrNoRevocation when the
// provider lists no endpoint; an answer other than 200 is ErrUnavailable.
// A token the provider no longer knows is answered 200 (RFC 7009 §2.2).
func (p *Provider) Revoke(ctx context.Context, tokens Tokens) error {
	d := p.state.Load()
	if d.revocation == "" {
		return ErrNoRevocation
	}
	form := url.Values{}
	switch {
	case tokens.RefreshToken != "":
		form.Set("token", tokens.RefreshToken)
		form.Set("token_type_hint", "refresh_token")
	case tokens.AccessToken != "":
		form.Set("token", tokens.AccessToken)
		form.Set("token_type_hint", "access_token")
	default:
		return nil
	}
	if p.secret == "" {
		form.Set("client_id", p.opts.ClientID)
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.ProviderTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.revocation, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("%w: revocation: %w", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if p.secret != "" {
		req.SetBasicAuth(url.QueryEscape(p.opts.ClientID), url.QueryEscape(p.secret))
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: revocation: %w", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: revocation endpoint answered HTTP %d", ErrUnavailable, resp.StatusCode)
	}
	return nil
}

// EndSessionURL returns the provider's end_session_endpoint with the
// parameters of OpenID Connect RP-Initiated Logout 1.0 §2: id_token_hint
// (when given), client_id, and post_logout_redirect_uri
// (Options.PostLogoutRedirectURL, when set). It returns "" when the
// provider lists no end_session_endpoint.
func (p *Provider) EndSessionURL(idTokenHint string) string {
	d := p.state.Load()
	if d.endSession == "" {
		return ""
	}
	u, err := url.Parse(d.endSession)
	if err != nil {
		return ""
	}
	q := u.Query()
	if idTokenHint != "" {
		q.Set("id_token_hint", idTokenHint)
	}
	q.Set("client_id", p.opts.ClientID)
	if p.opts.PostLogoutRedirectURL != "" {
		q.Set("post_logout_redirect_uri", p.opts.PostLogoutRedirectURL)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// LogoutToken is a verified back-channel logout token.
type LogoutToken struct {
	Issuer string
	// Subject is the provider's sub ("" when the token names only a
	// session); SID the provider's session id ("" when it names only a
	// subject). At least one is set.
	Subject, SID string
	// JTI identifies the token, for replay detection.
	JTI string
	// IssuedAt is iat; Expiry is exp, zero when the token has none.
	IssuedAt, Expiry time.Time
}

// Until returns how long the token's jti must be remembered: past the
// last instant the token would still be accepted.
func (t *LogoutToken) Until() time.Time {
	until := t.IssuedAt.Add(LogoutTokenMaxAge + logoutLeeway)
	if t.Expiry.After(until) {
		until = t.Expiry.Add(logoutLeeway)
	}
	return until
}

// VerifyLogout verifies a logout token (OpenID Connect Back-Channel
// Logout 1.0 §2.6): signature by the provider's keys (its JWKS, with the
// algorithms accepted for ID tokens), iss, aud holding our client id,
// azp (when present) us, typ "logout+jwt" or "JWT" or absent, iat within
// LogoutTokenMaxAge (and not in the future), exp (when present) not past,
// an events claim whose backchannel-logout member is a JSON object, no
// nonce, a sid or a sub, and a jti. Every refusal is ErrLogoutToken.
func (p *Provider) VerifyLogout(ctx context.Context, raw string) (*LogoutToken, error) {
	d := p.state.Load()
	bad := func(format string, args ...any) (*LogoutToken, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrLogoutToken}, args...)...)
	}
	if len(raw) > maxTokenLen {
		return bad("too large")
	}
	if typ, err := headerType(raw); err != nil {
		return bad("%v", err)
	} else if t := strings.ToLower(strings.TrimPrefix(strings.ToLower(typ), "application/")); t != "" && t != "jwt" && t != "logout+jwt" {
		// §2.4: explicit typing keeps other JWTs of the provider (ID
		// tokens, access tokens) from passing as logout tokens.
		return bad("typ %q", printable(typ, 40))
	}
	failed := p.failures.Load()
	idt, err := d.logoutVerifier.Verify(p.clientCtx(ctx), raw)
	if err != nil {
		if p.failures.Load() != failed {
			// The provider's keys could not be fetched: not the token's
			// fault, and the provider should deliver it again.
			return nil, fmt.Errorf("%w: signing keys unreachable: %v", ErrUnavailable, err)
		}
		return bad("%v", err)
	}
	var c struct {
		Sub    string                     `json:"sub"`
		SID    string                     `json:"sid"`
		JTI    string                     `json:"jti"`
		Azp    *string                    `json:"azp"`
		Iat    *json.Number               `json:"iat"`
		Exp    *json.Number               `json:"exp"`
		Nonce  json.RawMessage            `json:"nonce"`
		Events map[string]json.RawMessage `json:"events"`
	}
	if err := idt.Claims(&c); err != nil {
		return bad("claims: %v", err)
	}
	now := p.now()
	if c.Azp != nil && *c.Azp != p.opts.ClientID {
		return bad("azp is not our client")
	}
	if c.Nonce != nil {
		return bad("carries a nonce") // §2.4: so that an ID token never passes
	}
	ev, ok := c.Events[BackChannelLogoutEvent]
	if !ok || !isJSONObject(ev) {
		return bad("no backchannel-logout event")
	}
	if c.SID == "" && c.Sub == "" {
		return bad("neither sid nor sub")
	}
	if c.JTI == "" {
		return bad("no jti")
	}
	iat, err := numericDate(c.Iat)
	if err != nil || iat.IsZero() {
		return bad("no iat")
	}
	if iat.After(now.Add(logoutLeeway)) {
		return bad("issued in the future")
	}
	if now.Sub(iat) > LogoutTokenMaxAge+logoutLeeway {
		return bad("issued %v ago, more than %v", now.Sub(iat).Round(time.Second), LogoutTokenMaxAge)
	}
	exp, err := numericDate(c.Exp)
	if err != nil {
		return bad("exp: %v", err)
	}
	if !exp.IsZero() && now.After(exp.Add(logoutLeeway)) {
		return bad("expired")
	}
	return &LogoutToken{Issuer: idt.Issuer, Subject: c.Sub, SID: c.SID, JTI: c.JTI, IssuedAt: iat, Expiry: exp}, nil
}

// headerType returns the typ of a compact JWS's protected header.
func headerType(raw string) (string, error) {
	head, _, ok := strings.Cut(raw, ".")
	if !ok {
		return "", errors.New("malformed")
	}
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return "", errors.New("malformed header")
	}
	var h struct {
		Typ string `json:"typ"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return "", errors.New("malformed header")
	}
	return h.Typ, nil
}

func isJSONObject(b json.RawMessage) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil && m != nil
}

// numericDate reads a JSON NumericDate (zero when absent).
func numericDate(n *json.Number) (time.Time, error) {
	if n == nil {
		return time.Time{}, nil
	}
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(int64(f), 0), nil
}
