package authz

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/silentauth/silentauth/authz/access"
	"github.com/silentauth/silentauth/authz/cookie"
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/token"
)

// Options are an Engine's parts. Every field is required except Now and
// Named.
type Options struct {
	// Verifier, Minter and Policy make the default route, used when Envoy
	// names no policy.
	Verifier *token.Verifier
	Minter   *token.Minter
	Policy   access.Policy
	// Named routes are selected per Envoy route with
	// check_settings.context_extensions {policy: NAME}, so one silentauth
	// serves several applications.
	Named map[string]Route

	Sessions *session.Manager
	Cookies  cookie.Policy
	// RefreshBefore refreshes tokens that expire within this window.
	RefreshBefore time.Duration
	// Login logs users in through an identity provider; nil sends page
	// loads without a session to Policy.LoginURL (or answers 401).
	Login *Login
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Route is one named policy with the verifier and minter of its audience.
type Route struct {
	Verifier *token.Verifier
	Minter   *token.Minter
	Policy   access.Policy
}

// PolicyKey is the context_extensions key that names a policy.
const PolicyKey = "policy"

// Engine decides requests. It is safe for concurrent use.
type Engine struct {
	sessions      *session.Manager
	cookies       cookie.Policy
	refreshBefore time.Duration
	now           func() time.Time
	def           *route
	named         map[string]*route
	login         *Login // nil: no provider login
}

// route is the Engine seen through one policy: every step of the story is
// a method of route, so it reads its own policy, verifier and minter and
// the Engine's shared parts.
type route struct {
	*Engine
	name     string
	policy   access.Policy
	verifier *token.Verifier
	minter   *token.Minter
	cop      *http.CrossOriginProtection
	// claimHeaders is policy.ClaimHeaders sorted by header name: iterated
	// on every allowed request, and in a stable order.
	claimHeaders []claimHeader
	// guarded are the upstream headers only silentauth may set (claim
	// headers, the access-token header, authorization), as headerKey
	// spells them; computed once, compared on every allowed request.
	guarded []string
}

// claimHeader is one upstream header and the claim it carries.
type claimHeader struct{ name, claim string }

// NewEngine returns an Engine. Trusted origins must be valid origins
// (config validation guarantees it).
func NewEngine(o Options) (*Engine, error) {
	e := &Engine{
		sessions:      o.Sessions,
		cookies:       o.Cookies,
		refreshBefore: o.RefreshBefore,
		now:           o.Now,
		named:         make(map[string]*route, len(o.Named)),
		login:         o.Login,
	}
	if e.now == nil {
		e.now = time.Now
	}
	var err error
	if e.def, err = e.newRoute("", Route{Verifier: o.Verifier, Minter: o.Minter, Policy: o.Policy}); err != nil {
		return nil, err
	}
	for name, rt := range o.Named {
		if e.named[name], err = e.newRoute(name, rt); err != nil {
			return nil, fmt.Errorf("policy %s: %w", name, err)
		}
	}
	return e, nil
}

func (e *Engine) newRoute(name string, rt Route) (*route, error) {
	r := &route{Engine: e, name: name, policy: rt.Policy, verifier: rt.Verifier, minter: rt.Minter, cop: http.NewCrossOriginProtection()}
	for _, h := range slices.Sorted(maps.Keys(rt.Policy.ClaimHeaders)) {
		r.claimHeaders = append(r.claimHeaders, claimHeader{h, rt.Policy.ClaimHeaders[h]})
		r.guarded = append(r.guarded, headerKey(h))
	}
	r.guarded = append(r.guarded, headerKey("authorization"))
	if rt.Policy.AccessTokenHeader != "" {
		r.guarded = append(r.guarded, headerKey(rt.Policy.AccessTokenHeader))
	}
	for _, origin := range rt.Policy.TrustedOrigins {
		if err := r.cop.AddTrustedOrigin(origin); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// routeFor returns the route of policy, the default one for "" or a name
// that is not configured (a login flow names the policy it started on).
func (e *Engine) routeFor(policy string) *route {
	if rt, ok := e.named[policy]; ok {
		return rt
	}
	return e.def
}

// Decide answers one request under the policy its Envoy route names (the
// default policy when it names none). A name that is not configured is a
// deployment mistake: the request is refused, never let through.
func (e *Engine) Decide(ctx context.Context, r *Request, reqErr error) Decision {
	if r == nil || r.Policy == "" {
		return e.def.decide(ctx, r, reqErr)
	}
	rt, ok := e.named[r.Policy]
	if !ok {
		return e.def.deny(r, errUnknownPolicy)
	}
	return rt.decide(ctx, r, reqErr)
}

// decide answers one request. It reads as the story of a request; every
// step is a helper below. It never panics on hostile input and never
// returns an error: every outcome is a Decision.
func (e *route) decide(ctx context.Context, r *Request, reqErr error) Decision {
	// A request Envoy could not describe properly is refused precisely.
	if reqErr != nil {
		return e.deny(r, reqErr)
	}
	// The Cookie header is scanned once: our values, and what Upstream
	// needs to rewrite it for the upstream.
	jar := e.cookies.Scan(r.Header("cookie"))
	d := e.story(ctx, r, jar)
	if d.login {
		// No usable session on a page load: the provider logs the user in.
		return e.startLogin(r, jar, d)
	}
	return d
}

// story is the decision once the request is known to be well formed and
// its Cookie header scanned into jar.
func (e *route) story(ctx context.Context, r *Request, jar cookie.Jar) Decision {
	found := jar.Found

	// The session endpoints are answered here, never routed to an upstream,
	// in every spelling a proxy may route to them (isEndpoint).
	switch {
	case e.login != nil && isEndpoint(r.Path, e.login.Options.CallbackPath):
		return e.callback(ctx, r, jar)
	case isEndpoint(r.Path, e.policy.RefreshPath):
		return e.refreshEndpoint(ctx, r, found)
	case isEndpoint(r.Path, e.policy.LogoutPath):
		return e.logoutEndpoint(ctx, r, found)
	}

	// The upstream's Cookie header is rewritten without ours. One that a
	// CheckResponse cannot carry is refused here, before anything rotates.
	if !e.rewritable(r.Header("cookie"), jar) {
		return e.deny(r, ErrBadRequest)
	}

	// Public paths need no token; the upstream still never sees ours.
	if e.public(r.Path) {
		d := Decision{Allow: true, Reason: reasonPublic, Level: slog.LevelDebug}
		e.scrubUpstream(r, jar, &d)
		return d
	}

	// Two copies of one of our cookies: one was planted. Refuse to guess.
	if found.AccessDup || found.RefreshDup {
		return e.deny(r, errAmbiguousCookie)
	}

	// The access token: from the Authorization header, else the cookie.
	// An Authorization header that is not a bearer token is refused here,
	// before anything is verified or rotated.
	raw, bearer, err := credential(r, found)
	if err != nil {
		return e.deny(r, err)
	}

	// The access token is verified, unless the refresh cookie will decide
	// anyway.
	var (
		claims *token.Claims
		verr   error
	)
	switch {
	case raw != "" && found.Refresh != "" && e.verifier.ExpiredUnverified(raw):
		// Expired by its own word, and the refresh cookie will decide:
		// whatever else is wrong with it, the next step is the same, so
		// its signature is not worth checking (a quarter of a refresh's
		// CPU). Nothing is accepted on this reading.
		verr = token.ErrExpired
	case raw != "":
		claims, verr = e.verifier.Verify(raw)
	}

	// The credential that decides, chosen once: the access token while it
	// is valid, unless it is about to expire and a refresh cookie can renew
	// it; else the refresh cookie; else nothing.
	byToken := raw != "" && verr == nil && (found.Refresh == "" || !claims.ExpiresWithin(e.now(), e.refreshBefore))
	if !byToken && found.Refresh == "" {
		if verr != nil {
			return e.deny(r, verr)
		}
		return e.deny(r, errNoCredentials)
	}
	// A cookie deciding an unsafe request must pass the CSRF rules,
	// whichever cookie it is; a bearer header needs none.
	if (!byToken || !bearer) && e.crossOrigin(r) {
		return e.deny(r, errCSRF)
	}
	if byToken {
		// Valid, and not about to expire or with no way to renew it: it
		// passes without touching the store.
		if found.Refresh != "" {
			// The refresh cookie came back: whatever rotated to it got
			// its answer (session package doc: lost answers).
			e.sessions.Presented(found.Refresh)
		}
		return e.allow(r, jar, raw, claims, nil)
	}

	// Expired, about to expire, unverifiable or absent: the refresh cookie
	// mints a new access token and rotates itself.
	return e.refresh(ctx, r, jar, claims, raw, bearer)
}

// refresh rotates the refresh token and allows the request with a new
// access token. still holds the presented access token's claims when it is
// valid but about to expire: if the store is unreachable, the request still
// passes on it, because an outage must never take down traffic with valid
// tokens.
func (e *route) refresh(ctx context.Context, r *Request, jar cookie.Jar, still *token.Claims, stillRaw string, bearer bool) Decision {
	rn, err := e.renew(ctx, r, jar.Refresh, still != nil)
	if err != nil {
		if still != nil && answerFor(err).still != "" {
			return e.passStill(r, jar, stillRaw, still, err)
		}
		return e.deny(r, err)
	}
	d := e.allow(r, jar, rn.raw, rn.claims, rn.setCookie)
	if !d.Allow {
		return d
	}
	d.Reason = refreshReason(rn.issued)
	d.Level = slog.LevelInfo // rotations are worth a line; plain allows are not
	if bearer && e.policy.AccessTokenHeader != "" {
		d.Response = append(d.Response, Header{e.policy.AccessTokenHeader, rn.raw})
	}
	return d
}

// renewal is what a refresh hands out: the session after rotation, its new
// access token and claims, and the three Set-Cookie values.
type renewal struct {
	issued    session.Issued
	raw       string
	claims    *token.Claims
	setCookie []string
}

// renew rotates the refresh token rt and mints the access token that
// follows it. Every refresh takes these steps, the one Check decides on
// and the one a client asks for at RefreshPath alike; both have applied
// the CSRF rules to the refresh cookie first. ahead marks a refresh of a
// token that is still valid, which is opportunistic.
func (e *route) renew(ctx context.Context, r *Request, rt string, ahead bool) (renewal, error) {
	// Never rotate on a response the browser will not store: the store
	// would move on while the browser keeps the old token, and the next
	// request would look like theft.
	if crossSiteSubresource(r) {
		return renewal{}, errCrossSiteRefresh
	}
	// Rotation cannot be undone: make sure a token can be minted first.
	if !e.minter.Ready() {
		return renewal{}, token.ErrNoKeyring
	}
	if ahead {
		// Ahead of expiry the refresh is skipped while the store is
		// failing, and bounded well inside the request's deadline, so a
		// hanging store never costs a request whose token still passes.
		if e.sessions.Failing() {
			return renewal{}, errStoreFailing
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, proactiveBudget(ctx))
		defer cancel()
	}
	// The session must belong to this route's policy (or one it accepts):
	// another application's session mints nothing for this audience.
	iss, err := e.sessions.Refresh(ctx, rt, e.name)
	if err != nil {
		return renewal{}, err
	}
	raw, claims, set, err := e.mint(iss)
	if err != nil {
		return renewal{}, err
	}
	return renewal{iss, raw, claims, set}, nil
}

// maxProactive bounds a refresh ahead of expiry; it gets at most a quarter
// of what is left of the request's deadline.
const maxProactive = 100 * time.Millisecond

// proactiveBudget is the time a refresh of a still-valid token may take.
func proactiveBudget(ctx context.Context) time.Duration {
	if deadline, ok := ctx.Deadline(); ok {
		return min(maxProactive, time.Until(deadline)/4)
	}
	return maxProactive
}

// passStill allows the request on its still-valid access token after a
// refresh ahead of expiry did not happen because of err, as the answers
// table says for err (an outage, a session the store no longer knows).
// Nothing rotated, so no cookie changes.
func (e *route) passStill(r *Request, jar cookie.Jar, raw string, claims *token.Claims, err error) Decision {
	a := answerFor(err)
	d := e.allow(r, jar, raw, claims, nil)
	if d.Allow {
		d.Reason, d.Err, d.Level = a.still, err, a.level
	}
	return d
}

// mint signs an access token for the family of iss and returns it with
// its claims and the three Set-Cookie values that carry the new state.
func (e *route) mint(iss session.Issued) (string, *token.Claims, []string, error) {
	f := iss.Family
	extra, err := f.Claims.Map() // decoded once per mint: the token and Extra share it
	if err != nil {
		return "", nil, nil, err
	}
	raw, exp, err := e.minter.Mint(f.Subject, f.ID, extra)
	if err != nil {
		return "", nil, nil, err
	}
	now := e.now()
	claims := &token.Claims{Subject: f.Subject, SessionID: f.ID, ExpiresAt: exp, IssuedAt: now, Extra: extra}
	return raw, claims, e.cookies.SetSession(raw, exp, iss.RefreshToken, f.AbsoluteExpiresAt, iss.SessionEnd(), now), nil
}

func refreshReason(iss session.Issued) string {
	if iss.Rotated {
		return reasonRefreshed
	}
	return reasonRefreshedGrace
}

// allow lets the request through with raw as its Authorization, identity
// headers from claims, our cookies (scanned into jar) stripped, and any
// Set-Cookie values.
func (e *route) allow(r *Request, jar cookie.Jar, raw string, claims *token.Claims, setCookie []string) Decision {
	// The policy's required claims come last: a refused request still
	// receives the cookies of a rotation that already happened, so the
	// browser never falls behind the store.
	if !e.admits(claims) {
		d := e.deny(r, errClaims)
		d.SetCookie, d.Subject, d.Session = setCookie, claims.Subject, claims.SessionID
		return d
	}
	// Allows are the bulk of the traffic: they are counted in metrics and
	// logged only at debug level (a log line costs about 10 µs per Check).
	d := Decision{Allow: true, Reason: reasonValid, Subject: claims.Subject, Session: claims.SessionID, Level: slog.LevelDebug}
	d.Upstream = make([]Header, 0, 2+len(e.claimHeaders))
	// Envoy forwards the request's own Authorization header untouched: it
	// is set only when it does not already say exactly this (a cookie
	// token, a refreshed one, another scheme, a non-canonical "bearer").
	if !isBearer(r.Header("authorization"), raw) {
		d.Upstream = append(d.Upstream, Header{"authorization", bearerPrefix + raw})
	}
	e.scrubUpstream(r, jar, &d)
	for _, h := range e.claimHeaders {
		if v, ok := claimValue(claims, h.claim); ok {
			d.Upstream = append(d.Upstream, Header{h.name, v})
			// Envoy applies headers_to_remove after the headers it sets
			// (ext_authz Filter::onComplete): a client's copy is
			// overwritten, and must not also be removed.
			d.Remove = slices.DeleteFunc(d.Remove, func(n string) bool { return strings.EqualFold(n, h.name) })
		}
	}
	if len(setCookie) > 0 {
		d.SetCookie = setCookie
		d.Response = append(d.Response, Header{"cache-control", "no-store"})
	}
	return d
}

// scrubUpstream removes what the upstream must never see from the client:
// our cookies (Envoy's headers_to_remove drops whole headers only, so the
// cookie header is rewritten) and every client-sent spelling of a header
// only silentauth sets. CGI, WSGI, PHP and many frameworks read X_User_Id,
// x-user_id and X-User-Id alike as HTTP_X_USER_ID, so a client's
// "x_user_id: admin" beside our x-user-id would win as often as not;
// headers_to_remove matches exact names only, so each spelling the request
// holds is listed. The request's own Authorization is the credential
// itself: passed on, or overwritten by allow.
func (e *route) scrubUpstream(r *Request, jar cookie.Jar, d *Decision) {
	if rest, removed := e.cookies.Upstream(jar); removed {
		if rest == "" {
			d.Remove = append(d.Remove, "cookie")
		} else {
			d.Upstream = append(d.Upstream, Header{"cookie", rest})
		}
	}
	from := len(d.Remove)
	for name := range r.headers {
		if !strings.EqualFold(name, "authorization") && e.isGuarded(name) {
			d.Remove = append(d.Remove, name)
		}
	}
	// Map order is random; the answer is not.
	slices.Sort(d.Remove[from:])
}

// isGuarded reports whether header name is a spelling of one that only
// silentauth may send upstream.
func (e *route) isGuarded(name string) bool {
	for _, g := range e.guarded {
		if headerKeyEqual(name, g) {
			return true
		}
	}
	return false
}

// headerKey spells a header name the way CGI-style applications compare
// them: lower case, "_" as "-".
func headerKey(name string) string {
	return strings.ReplaceAll(strings.ToLower(name), "_", "-")
}

// headerKeyEqual reports whether headerKey(name) == key, without
// allocating: it runs for every header of every allowed request.
func headerKeyEqual(name, key string) bool {
	if len(name) != len(key) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if c != key[i] {
			return false
		}
	}
	return true
}

// maxHeaderValue is the longest header value a CheckResponse may carry
// (envoy.config.core.v3.HeaderValue: value max_bytes 16384).
const maxHeaderValue = 16 << 10

// rewritable reports whether the Cookie header, scanned into jar and
// rewritten by scrubUpstream, fits in a HeaderValue: at most maxHeaderValue
// bytes, no NUL, CR or LF. Upstream only removes pairs and adds at most one
// space per ";", so a short, clean header needs no second look.
func (e *route) rewritable(header string, jar cookie.Jar) bool {
	if len(header) <= maxHeaderValue/2 && !strings.ContainsAny(header, "\x00\r\n") {
		return true
	}
	rest, removed := e.cookies.Upstream(jar)
	return !removed || (len(rest) <= maxHeaderValue && !strings.ContainsAny(rest, "\x00\r\n"))
}

// deny shapes the answer to err: a redirect to the login page for page
// navigations, else a small JSON body with the status from the answers
// table, clearing our cookies only when the session is truly over.
func (e *route) deny(r *Request, err error) Decision {
	a := answerFor(err)
	d := Decision{Status: a.status, Reason: a.reason, Err: err, Level: a.level, Event: a.event}
	if re := (*session.ReuseError)(nil); errors.As(err, &re) {
		d.Subject, d.Session = re.Subject, re.Family
	}
	d.Response = make([]Header, 1, 3) // the most any deny sends
	d.Response[0] = Header{"cache-control", "no-store"}
	if a.clear {
		d.SetCookie = e.cookies.Clear()
	}
	if a.login && e.login != nil && r != nil && isNavigation(r) {
		d.login = true // decide starts a provider login instead
	}
	if a.login && e.policy.LoginURL != "" && r != nil && isNavigation(r) {
		d.Status = http.StatusFound
		d.Response = append(d.Response, Header{"location", e.loginLocation(r)})
		return d
	}
	if a.status == http.StatusUnauthorized {
		d.Response = append(d.Response, Header{"www-authenticate", wwwAuthenticate(a, err)})
	}
	if a.status == http.StatusMethodNotAllowed {
		d.Response = append(d.Response, Header{"allow", "POST"})
	}
	d.Response = append(d.Response, Header{"content-type", "application/json"})
	d.Body = a.body()
	return d
}

// wwwAuthenticate follows RFC 6750 §3: no error code when no credentials
// were presented, else the answer's (invalid_token, or invalid_request for
// a malformed Authorization header, §3.1).
func wwwAuthenticate(a answer, err error) string {
	if errors.Is(err, errNoCredentials) || errors.Is(err, errNoRefreshToken) {
		return `Bearer realm="silentauth"`
	}
	return `Bearer realm="silentauth", error="` + a.code + `"`
}

// loginLocation builds the login redirect. The return path is only ever
// the request's own normalised path and query, never an absolute URL or a
// "//host" path, so it cannot become an open redirect.
func (e *route) loginLocation(r *Request) string {
	back := r.Path
	if r.Query != "" {
		back += "?" + r.Query
	}
	if !strings.HasPrefix(back, "/") || strings.HasPrefix(back, "//") {
		back = "/"
	}
	sep := "?"
	if strings.Contains(e.policy.LoginURL, "?") {
		sep = "&"
	}
	loc := e.policy.LoginURL + sep + url.QueryEscape(e.policy.ReturnToParam) + "=" + url.QueryEscape(back)
	if len(loc) > maxHeaderValue {
		// Escaping can triple a long path: rather than a Location a
		// CheckResponse cannot carry, return to the root.
		loc = e.policy.LoginURL + sep + url.QueryEscape(e.policy.ReturnToParam) + "=" + url.QueryEscape("/")
	}
	return loc
}

// admits reports whether c holds every claim the policy requires, with
// one of its accepted values.
func (e *route) admits(c *token.Claims) bool {
	for name, accepted := range e.policy.RequiredClaims {
		v, ok := rawClaim(c, name)
		if !ok {
			return false
		}
		if len(accepted) > 0 && !claimMatches(v, accepted) {
			return false
		}
	}
	return true
}

// claimMatches reports whether v, or any element of v when it is a list,
// renders to one of accepted. A number renders as the digits it was signed
// with (token.RenderClaim of a json.Number), so "1541815603606036481" is
// never met by its float64 neighbour 1541815603606036480, and "1.5" is not
// met by 1.50.
func claimMatches(v any, accepted []string) bool {
	if list, ok := v.([]any); ok {
		for _, x := range list {
			if claimMatches(x, accepted) {
				return true
			}
		}
		return false
	}
	s, ok := token.RenderClaim(v)
	return ok && slices.Contains(accepted, s)
}

// public reports whether the normalised path p is public under the
// route's policy.
func (e *route) public(p string) bool { return e.policy.IsPublic(p) }

// crossOrigin applies exactly the rules of Go's http.CrossOriginProtection
// (Sec-Fetch-Site, then Origin against Host, trusted origins) to the
// original request, and reports whether it must be refused. It is the rule
// for a cookie deciding an unsafe request, applied where each path chooses
// its credential: once in decide, and at the session endpoints, which
// always act on the cookie.
func (e *route) crossOrigin(r *Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	hr := &http.Request{
		Method: r.Method,
		Host:   r.Host,
		URL:    &url.URL{Path: r.Path},
		Header: http.Header{},
	}
	if v := r.Header("sec-fetch-site"); v != "" {
		hr.Header.Set("Sec-Fetch-Site", v)
	}
	if v := r.Header("origin"); v != "" {
		hr.Header.Set("Origin", v)
	}
	return e.cop.Check(hr) != nil
}

// crossSiteSubresource reports a cross-site request that is not a
// top-level navigation: its Set-Cookie would be dropped by browsers that
// block third-party cookies.
func crossSiteSubresource(r *Request) bool {
	return r.Header("sec-fetch-site") == "cross-site" && r.Header("sec-fetch-mode") != "navigate"
}

// isNavigation reports a page load (Fetch Metadata, else the Accept
// header): such requests get the login redirect instead of a 401.
func isNavigation(r *Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if m := r.Header("sec-fetch-mode"); m != "" {
		return m == "navigate"
	}
	return strings.Contains(r.Header("accept"), "text/html")
}

// bearerPrefix starts the Authorization header silentauth sends upstream.
const bearerPrefix = "Bearer "

// isBearer reports whether header is exactly bearerPrefix followed by raw.
func isBearer(header, raw string) bool {
	return len(header) == len(bearerPrefix)+len(raw) && header[:len(bearerPrefix)] == bearerPrefix && header[len(bearerPrefix):] == raw
}

// credential chooses the access token a request presents, the one rule
// for it: the Authorization header takes precedence over the access-token
// cookie. A header that is present but not "Bearer <token>" (Basic or
// another scheme, "Bearer" without a token, "Bearer=x", a bare token,
// several values) is errAuthorization, never ignored: the client meant
// some credential, and deciding on the cookie instead would hand the
// upstream an identity it was not sent with (RFC 6750 §3.1 invalid_request).
// The session endpoints and public paths never call it: neither reads an
// access token.
func credential(r *Request, found cookie.Found) (raw string, bearer bool, err error) {
	h := r.Header("authorization")
	if h == "" {
		return found.Access, false, nil
	}
	raw, ok := bearerToken(h)
	if !ok {
		return "", false, errAuthorization
	}
	return raw, true, nil
}

// bearerToken parses an Authorization value as "Bearer" 1*SP b64token
// (RFC 6750 §2.1). The scheme is case-insensitive (RFC 9110 §11.1); spaces
// around the value are optional whitespace (RFC 9110 §5.5).
func bearerToken(h string) (string, bool) {
	h = strings.Trim(h, " \t")
	if len(h) < len("bearer ") || !strings.EqualFold(h[:6], "bearer") || h[6] != ' ' {
		return "", false
	}
	tok := strings.TrimLeft(h[6:], " ")
	return tok, isB64Token(tok)
}

// isB64Token reports whether s is an RFC 6750 §2.1 b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	n := len(strings.TrimRight(s, "="))
	if n == 0 {
		return false
	}
	for i := 0; i < n; i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return false
		}
	}
	return true
}
