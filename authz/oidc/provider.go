// Package oidc logs users in through their own OpenID Connect provider:
// the authorization code flow with PKCE (S256) and a nonce, ID token
// verification, the admission rules (email domains, required claims), the
// mapping of provider claims onto ours, and the refresh of the provider's
// tokens. Discovery, JWKS and ID token checks are github.com/coreos/go-oidc;
// the OAuth 2.0 exchanges are golang.org/x/oauth2.
//
// The package decides and returns documented sentinel errors; the caller
// maps them to answers. It never logs tokens or secrets.
package oidc

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Sentinel errors. Each names one answer the caller gives.
var (
	// ErrProviderError: the callback carried error=… (the user declined,
	// the provider refused); see ProviderError.
	ErrProviderError = errors.New("oidc: the provider answered the login with an error")
	// ErrNonce: the ID token's nonce is not the flow's (a replayed or
	// injected token).
	ErrNonce = errors.New("oidc: ID token nonce mismatch")
	// ErrIDToken: the ID token failed verification (signature, iss, aud,
	// azp, exp, at_hash) or is missing.
	ErrIDToken = errors.New("oidc: invalid ID token")
	// ErrEmailDomain: the user's email is missing, unverified or outside
	// Options.AllowedEmailDomains.
	ErrEmailDomain = errors.New("oidc: email domain not allowed")
	// ErrClaims: a claim of Options.RequiredClaims or the subject is
	// missing or has another value.
	ErrClaims = errors.New("oidc: required claims missing")
	// ErrExchange: the token endpoint refused the code (invalid_grant: a
	// replayed or expired code, or a wrong verifier).
	ErrExchange = errors.New("oidc: authorization code refused")
	// ErrGrantDead: the token endpoint refused the refresh token (revoked,
	// expired, already used); the session must end.
	ErrGrantDead = errors.New("oidc: refresh token refused")
	// ErrUnavailable: the provider could not be reached or answered
	// nonsense (timeout, refused connection, 5xx, malformed answer). It
	// wraps the cause.
	ErrUnavailable = errors.New("oidc: provider unavailable")
)

// ProviderError is the error=… of a callback, its fields cut to a safe
// length and to printable ASCII. It matches ErrProviderError.
type ProviderError struct {
	Code        string
	Description string
}

func (e *ProviderError) Error() string {
	if e.Description == "" {
		return "oidc: provider error " + e.Code
	}
	return "oidc: provider error " + e.Code + ": " + e.Description
}

func (e *ProviderError) Is(target error) bool { return target == ErrProviderError }

// CallbackError returns the error of a callback that carried error=code
// and error_description=description.
func CallbackError(code, description string) error {
	return &ProviderError{Code: printable(code, 64), Description: printable(description, 200)}
}

// printable keeps at most n printable ASCII characters of s, so a hostile
// provider cannot forge log lines or grow them.
func printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s)
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// Login is the outcome of a successful callback.
type Login struct {
	// Subject is the provider claim named by Options.SubjectClaim.
	Subject string
	// Claims are our claims (the keys of Options.Claims) with the values
	// as decoded JSON: string, bool, json.Number, []any, map[string]any.
	Claims map[string]any
	// SID is the ID token's sid (OpenID Connect Back-Channel Logout), or "".
	SID string
	// Tokens are the provider's tokens, for Refresh.
	Tokens Tokens
}

// rediscoverEvery is how often Run re-reads the discovery document.
const rediscoverEvery = time.Hour

// Provider is one configured OpenID provider. It is safe for concurrent
// use; discovery is an immutable value swapped by Run.
type Provider struct {
	opts   Options
	secret string
	log    *slog.Logger
	client *http.Client
	now    func() time.Time
	state  atomic.Pointer[discovered]
	// failures counts requests to the provider that got no answer or a
	// 5xx: a verification that fails while one happens may have failed
	// for want of the provider's keys, not because of the token.
	failures atomic.Int64
}

// failureCounter counts the requests that fail at the transport or are
// answered with a server error.
type failureCounter struct {
	next     http.RoundTripper
	failures *atomic.Int64
}

func (f *failureCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := f.next.RoundTrip(r)
	if err != nil || resp.StatusCode >= 500 {
		f.failures.Add(1)
	}
	return resp, err
}

// discovered is what one discovery produced.
type discovered struct {
	provider *gooidc.Provider
	verifier *gooidc.IDTokenVerifier
	oauth    oauth2.Config
	algs     []string
	// logoutVerifier checks logout tokens (Back-Channel Logout).
	logoutVerifier *gooidc.IDTokenVerifier
	// revocation and endSession are the discovered endpoints, "" when
	// the provider lists none (or an unusable one).
	revocation, endSession string
}

// New validates opts, builds the HTTP client (ProviderTimeout, CAFile) and
// runs discovery. It fails with a message naming the issuer when the
// provider is unreachable or its discovery document does not match.
// clientSecret may be "" (public client).
func New(ctx context.Context, opts Options, clientSecret string, log *slog.Logger) (*Provider, error) {
	if !opts.Enabled() {
		return nil, errors.New("oidc: issuerURL is not set")
	}
	if err := opts.Validate("oidc"); err != nil {
		return nil, err
	}
	client, err := httpClient(opts)
	if err != nil {
		return nil, err
	}
	p := &Provider{opts: opts, secret: clientSecret, log: log, client: client, now: time.Now}
	client.Transport = &failureCounter{next: client.Transport, failures: &p.failures}
	d, err := p.discover(ctx)
	if err != nil {
		return nil, err
	}
	p.state.Store(d)
	log.Info("oidc provider discovered", "issuer", opts.IssuerURL, "id_token_algs", d.algs)
	return p, nil
}

func httpClient(opts Options) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("oidc.caFile: %w", err)
		}
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("oidc.caFile: %s holds no PEM certificate", opts.CAFile)
		}
		tr.TLSClientConfig.RootCAs = roots
	}
	return &http.Client{Transport: tr, Timeout: opts.ProviderTimeout}, nil
}

// clientCtx carries our HTTP client to go-oidc and oauth2, which take it
// from the context.
func (p *Provider) clientCtx(ctx context.Context) context.Context {
	return gooidc.ClientContext(ctx, p.client)
}

// discover reads the discovery document once.
func (p *Provider) discover(ctx context.Context) (*discovered, error) {
	issuer := p.opts.IssuerURL
	// The remote key set keeps this context (without its cancellation) for
	// its JWKS fetches: it must carry our client.
	gp, err := gooidc.NewProvider(p.clientCtx(ctx), issuer)
	if err != nil {
		var mismatch *gooidc.IssuerMismatchError
		if errors.As(err, &mismatch) {
			return nil, fmt.Errorf("oidc: discovery at %s/.well-known/openid-configuration names issuer %q, not the configured %q (check oidc.issuerURL, including a trailing slash): %w", strings.TrimSuffix(issuer, "/"), mismatch.Discovered, mismatch.Provided, err)
		}
		return nil, fmt.Errorf("oidc: discovery at %s/.well-known/openid-configuration failed: %w", strings.TrimSuffix(issuer, "/"), err)
	}
	var meta struct {
		Algs        []string `json:"id_token_signing_alg_values_supported"`
		AuthMethods []string `json:"token_endpoint_auth_methods_supported"`
		// RFC 8414 §2 (RFC 7009), OpenID Connect RP-Initiated Logout 1.0 §2.1.
		Revocation string `json:"revocation_endpoint"`
		EndSession string `json:"end_session_endpoint"`
	}
	if err := gp.Claims(&meta); err != nil {
		return nil, fmt.Errorf("oidc: discovery at %s: %w", issuer, err)
	}
	algs := allowedAlgs(meta.Algs)
	if len(algs) == 0 {
		algs = []string{gooidc.RS256}
	}
	ep := gp.Endpoint()
	ep.AuthStyle = authStyle(meta.AuthMethods, p.secret)
	if ep.AuthURL == "" || ep.TokenURL == "" {
		return nil, fmt.Errorf("oidc: discovery at %s lists no authorization or token endpoint", issuer)
	}
	if p.opts.Userinfo && gp.UserInfoEndpoint() == "" {
		return nil, fmt.Errorf("oidc: oidc.userinfo is set but discovery at %s lists no userinfo endpoint", issuer)
	}
	return &discovered{
		provider: gp,
		verifier: gp.Verifier(&gooidc.Config{ClientID: p.opts.ClientID, SupportedSigningAlgs: algs, Now: p.now}),
		// Logout tokens: expiry is judged by VerifyLogout. Back-Channel
		// Logout 1.0 §2.4 does not require exp (§4 only encourages a short
		// one), so iat bounds the age and exp counts when present.
		logoutVerifier: gp.Verifier(&gooidc.Config{ClientID: p.opts.ClientID, SupportedSigningAlgs: algs, Now: p.now, SkipExpiryCheck: true}),
		revocation:     endpointURL(meta.Revocation),
		endSession:     endpointURL(meta.EndSession),
		oauth: oauth2.Config{
			ClientID:     p.opts.ClientID,
			ClientSecret: p.secret,
			Endpoint:     ep,
			Scopes:       p.opts.Scopes,
		},
		algs: algs,
	}, nil
}

// authStyle fixes how the client authenticates at the token endpoint,
// from what discovery lists (client_secret_basic when listed or when
// nothing is listed, its default in OpenID Connect Discovery; else
// client_secret_post; a public client sends its id in the form). Never
// x/oauth2's auto-detection: it sends a request that failed (a timeout
// included) a second time in the other style, which presents a one-time
// code or refresh token twice, and a provider may take that for theft.
func authStyle(methods []string, secret string) oauth2.AuthStyle {
	switch {
	case secret == "":
		return oauth2.AuthStyleInParams
	case len(methods) == 0 || slices.Contains(methods, "client_secret_basic"):
		return oauth2.AuthStyleInHeader
	case slices.Contains(methods, "client_secret_post"):
		return oauth2.AuthStyleInParams
	default:
		return oauth2.AuthStyleInHeader
	}
}

// allowedAlgs keeps the listed algorithms we accept for ID tokens: never
// "none", never HS* (a symmetric key is the client secret, which is not a
// signature of the provider's; RFC 8725 §3.1, §3.2).
func allowedAlgs(listed []string) []string {
	var out []string
	for _, a := range listed {
		if a == "none" || strings.HasPrefix(strings.ToUpper(a), "HS") || slices.Contains(out, a) {
			continue
		}
		out = append(out, a)
	}
	return out
}

// Run re-reads the discovery document every hour until ctx ends. A failed
// discovery keeps the last good one and logs a warning. Signing keys are
// refreshed apart from this: go-oidc's remote key set refetches the JWKS
// when a token names an unknown key.
func (p *Provider) Run(ctx context.Context) {
	t := time.NewTicker(rediscoverEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = p.Rediscover(ctx)
		}
	}
}

// Rediscover runs discovery once and, when it succeeds, swaps it in.
func (p *Provider) Rediscover(ctx context.Context) error {
	d, err := p.discover(ctx)
	if err != nil {
		p.log.Warn("oidc rediscovery failed; keeping the last good discovery", "issuer", p.opts.IssuerURL, "error", err)
		return err
	}
	p.state.Store(d)
	return nil
}

// AuthURL returns the authorization request of a code flow to redirectURL:
// S256 PKCE over verifier (see oauth2.GenerateVerifier), the nonce, the
// scopes and Options.AuthParams.
func (p *Provider) AuthURL(redirectURL, state, nonce, verifier string) string {
	d := p.state.Load()
	cfg := d.oauth
	cfg.RedirectURL = redirectURL
	opts := make([]oauth2.AuthCodeOption, 0, len(p.opts.AuthParams)+2)
	for k, v := range p.opts.AuthParams {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	// Protocol parameters last: they win over any extra one.
	opts = append(opts, gooidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
	return cfg.AuthCodeURL(state, opts...)
}

// Exchange completes a code flow: it redeems code with the PKCE verifier,
// verifies the ID token (signature, iss, aud, exp, azp, at_hash, nonce),
// merges userinfo when configured, applies the admission rules and maps
// the claims. redirectURL must be the one of AuthURL.
func (p *Provider) Exchange(ctx context.Context, redirectURL, code, verifier, nonce string) (*Login, error) {
	d := p.state.Load()
	cfg := d.oauth
	cfg.RedirectURL = redirectURL
	hctx := p.clientCtx(ctx)
	tok, err := cfg.Exchange(hctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, classify(err, ErrExchange)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, fmt.Errorf("%w: the token endpoint returned no id_token", ErrIDToken)
	}
	idt, claims, err := p.verify(hctx, d, raw)
	if err != nil {
		return nil, err
	}
	// OpenID Connect Core §3.1.3.7 (11): the nonce ties the token to this
	// browser's flow. Compared in constant time: it is a secret of the flow.
	if nonce == "" || subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, ErrNonce
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return nil, fmt.Errorf("%w: at_hash: %v", ErrIDToken, err)
		}
	}
	if p.opts.Userinfo {
		if err := p.mergeUserinfo(hctx, d, tok, idt.Subject, claims); err != nil {
			return nil, err
		}
	}
	login, err := p.admit(claims)
	if err != nil {
		return nil, err
	}
	login.SID, _ = claims["sid"].(string)
	login.Tokens = Tokens{
		RefreshToken: tok.RefreshToken,
		IDToken:      raw,
		AccessToken:  tok.AccessToken,
		Expiry:       tok.Expiry,
		Obtained:     p.now(),
	}
	return login, nil
}

// verify checks an ID token with go-oidc, then the azp rule, and returns
// its claims decoded with json.Number.
func (p *Provider) verify(ctx context.Context, d *discovered, raw string) (*gooidc.IDToken, map[string]any, error) {
	idt, err := d.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrIDToken, err)
	}
	var payload json.RawMessage
	if err := idt.Claims(&payload); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrIDToken, err)
	}
	claims, err := decodeClaims(payload)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrIDToken, err)
	}
	// OpenID Connect Core §3.1.3.7 (4, 5): with several audiences azp must
	// be present, and when present it must be us.
	azp, hasAzp := claims["azp"]
	if len(idt.Audience) > 1 && !hasAzp {
		return nil, nil, fmt.Errorf("%w: several audiences and no azp", ErrIDToken)
	}
	if hasAzp && azp != p.opts.ClientID {
		return nil, nil, fmt.Errorf("%w: azp is not our client", ErrIDToken)
	}
	return idt, claims, nil
}

func decodeClaims(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// mergeUserinfo adds the userinfo endpoint's claims that the ID token
// lacks. OpenID Connect Core §5.3.4: its sub must be the ID token's.
func (p *Provider) mergeUserinfo(ctx context.Context, d *discovered, tok *oauth2.Token, sub string, claims map[string]any) error {
	ui, err := d.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return fmt.Errorf("%w: userinfo: %w", ErrUnavailable, err)
	}
	if ui.Subject != sub {
		return fmt.Errorf("%w: userinfo is about another subject", ErrIDToken)
	}
	var payload json.RawMessage
	if err := ui.Claims(&payload); err != nil {
		return fmt.Errorf("%w: userinfo: %w", ErrUnavailable, err)
	}
	extra, err := decodeClaims(payload)
	if err != nil {
		return fmt.Errorf("%w: userinfo: %w", ErrUnavailable, err)
	}
	for k, v := range extra {
		if _, ok := claims[k]; !ok {
			claims[k] = v
		}
	}
	return nil
}

// admit applies the admission rules to the provider's claims and maps
// them onto ours.
func (p *Provider) admit(claims map[string]any) (*Login, error) {
	sub, _ := claims[p.opts.SubjectClaim].(string)
	if sub == "" {
		return nil, fmt.Errorf("%w: no %q string claim for the subject", ErrClaims, p.opts.SubjectClaim)
	}
	if len(p.opts.AllowedEmailDomains) > 0 {
		if err := p.emailAllowed(claims); err != nil {
			return nil, err
		}
	}
	for name, allowed := range p.opts.RequiredClaims {
		v, ok := claims[name]
		if !ok || (len(allowed) > 0 && !matches(v, allowed)) {
			return nil, fmt.Errorf("%w: %q", ErrClaims, name)
		}
	}
	mapped := make(map[string]any, len(p.opts.Claims))
	for ours, theirs := range p.opts.Claims {
		if v, ok := claims[theirs]; ok {
			mapped[ours] = v
		}
	}
	return &Login{Subject: sub, Claims: mapped}, nil
}

func (p *Provider) emailAllowed(claims map[string]any) error {
	email, _ := claims["email"].(string)
	at := strings.LastIndexByte(email, '@')
	if at <= 0 {
		return fmt.Errorf("%w: no email", ErrEmailDomain)
	}
	switch v := claims["email_verified"].(type) {
	case bool:
		if !v {
			return fmt.Errorf("%w: email not verified", ErrEmailDomain)
		}
	case string:
		// Some providers (AWS Cognito) send "false".
		if strings.EqualFold(v, "false") {
			return fmt.Errorf("%w: email not verified", ErrEmailDomain)
		}
	}
	domain := email[at+1:]
	for _, d := range p.opts.AllowedEmailDomains {
		if strings.EqualFold(d, domain) {
			return nil
		}
	}
	return fmt.Errorf("%w: %q", ErrEmailDomain, printable(domain, 64))
}

// matches reports whether claim value v is one of allowed; a list matches
// when any element does.
func matches(v any, allowed []string) bool {
	switch v := v.(type) {
	case []any:
		return slices.ContainsFunc(v, func(e any) bool { return matches(e, allowed) })
	case string:
		return slices.Contains(allowed, v)
	case json.Number:
		return slices.Contains(allowed, v.String())
	case bool:
		return slices.Contains(allowed, fmt.Sprint(v))
	}
	return false
}

// Refresh spends tokens.RefreshToken for new tokens. A provider that
// returns no new refresh token keeps the old one usable; a new ID token is
// verified (no nonce: OpenID Connect Core §12.2) and must name the same
// subject. It returns ErrGrantDead when the provider refuses the grant and
// ErrUnavailable when it cannot be asked.
func (p *Provider) Refresh(ctx context.Context, tokens Tokens) (Tokens, error) {
	if tokens.RefreshToken == "" {
		return Tokens{}, fmt.Errorf("%w: no refresh token", ErrGrantDead)
	}
	d := p.state.Load()
	hctx := p.clientCtx(ctx)
	// An expired token with no access token makes the source refresh.
	tok, err := d.oauth.TokenSource(hctx, &oauth2.Token{RefreshToken: tokens.RefreshToken, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		return Tokens{}, classify(err, ErrGrantDead)
	}
	next := Tokens{
		RefreshToken: tok.RefreshToken,
		IDToken:      tokens.IDToken,
		AccessToken:  tok.AccessToken,
		Expiry:       tok.Expiry,
		Obtained:     p.now(),
	}
	if next.RefreshToken == "" {
		next.RefreshToken = tokens.RefreshToken
	}
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		idt, _, err := p.verify(hctx, d, raw)
		if err != nil {
			return Tokens{}, err
		}
		if tokens.IDToken != "" {
			sub, err := subjectOf(tokens.IDToken)
			if err != nil || sub != idt.Subject {
				// OpenID Connect Core §12.2: its sub MUST be the same.
				return Tokens{}, fmt.Errorf("%w: refreshed ID token names another subject", ErrIDToken)
			}
		}
		next.IDToken = raw
	}
	return next, nil
}

// classify sorts an error of the token endpoint: a 4xx answer is the
// grant's refusal (refused: ErrExchange for a code, ErrGrantDead for a
// refresh token, including Dex's invalid_request "already claimed"); any
// other failure (timeout, refused connection, 5xx, malformed answer) is
// ErrUnavailable.
func classify(err error, refused error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		code := re.Response.StatusCode
		if code == http.StatusBadRequest || code == http.StatusUnauthorized {
			if re.ErrorCode != "" {
				return fmt.Errorf("%w: %s", refused, printable(re.ErrorCode, 64))
			}
			return fmt.Errorf("%w: HTTP %d", refused, code)
		}
		return fmt.Errorf("%w: token endpoint answered HTTP %d", ErrUnavailable, code)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
