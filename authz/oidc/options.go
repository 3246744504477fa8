package oidc

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/silentauth/silentauth/authz/access"
)

// Bounds that Validate enforces.
const (
	// MaxLoginTTL caps a login flow: its state, nonce and PKCE verifier
	// live in a cookie no longer than this.
	MaxLoginTTL = 10 * time.Minute
	// MaxPendingLogins caps the flows one browser may have open at once
	// (several tabs), which bounds the size of the login cookies.
	MaxPendingLogins = 10
	// MinRefreshLease and MaxRefreshLease bound Options.RefreshLease.
	MinRefreshLease = 100 * time.Millisecond
	MaxRefreshLease = 30 * time.Second
)

// Options configure login through the user's OpenID Connect provider: the
// configuration file's oidc section. The section is off when IssuerURL is
// "". The comment on each field names its default (see Default).
type Options struct {
	// IssuerURL is the provider's issuer; discovery reads
	// IssuerURL/.well-known/openid-configuration. It must be https, except
	// http on a loopback host (127.0.0.1, localhost, [::1]). Default "" (off).
	IssuerURL string `yaml:"issuerURL"`
	// ClientID is our client at the provider. Required when IssuerURL is
	// set. Default "".
	ClientID string `yaml:"clientID"`
	// ClientSecretFile names a file holding the client secret (a mounted
	// Kubernetes Secret). The secret may also come from the environment
	// (SILENTAUTH_OIDC_CLIENT_SECRET); the caller resolves it and hands the
	// value to New. Default "" (public client: PKCE only).
	ClientSecretFile string `yaml:"clientSecretFile"`
	// Scopes asked for; must include "openid". Default [openid, email,
	// profile, offline_access].
	Scopes []string `yaml:"scopes"`
	// AuthParams are extra authorization request parameters, e.g. Google's
	// access_type=offline and prompt=consent. The protocol's own (state,
	// nonce, code_challenge*, redirect_uri, response_type, client_id,
	// scope) are refused. Default none.
	AuthParams map[string]string `yaml:"authParams"`
	// CallbackPath is where the provider sends the browser back. Default
	// "/auth/callback".
	CallbackPath string `yaml:"callbackPath"`
	// RedirectURL is the absolute https URL registered at the provider.
	// Default "": derived per request from scheme://host + CallbackPath.
	RedirectURL string `yaml:"redirectURL"`
	// SubjectClaim names the provider claim that becomes our subject.
	// Default "sub".
	SubjectClaim string `yaml:"subjectClaim"`
	// Claims maps our claim names to the provider's claims copied into our
	// tokens. Names our tokens reserve (iss, sub, aud, exp, iat, nbf, jti,
	// sid, typ) are refused. Default {email: email, groups: groups}.
	Claims map[string]string `yaml:"claims"`
	// Userinfo also reads the provider's userinfo endpoint after the code
	// exchange and merges its claims under the ID token's (the ID token
	// wins a conflict). Default false.
	Userinfo bool `yaml:"userinfo"`
	// AllowedEmailDomains, when set, admits only users whose email claim is
	// present, not marked email_verified=false, and in one of these domains
	// (compared without regard to case). Default none (any user).
	AllowedEmailDomains []string `yaml:"allowedEmailDomains"`
	// RequiredClaims admits only users whose provider claims hold each
	// named claim with one of the listed values (any value for an empty
	// list; a list claim matches when any element does), like
	// access.Policy.RequiredClaims. Default none.
	RequiredClaims map[string][]string `yaml:"requiredClaims"`
	// RefreshInterval refreshes the provider's tokens this often, to learn
	// early that the user was disabled. Default 0: only when the provider's
	// access token is due.
	RefreshInterval time.Duration `yaml:"refreshInterval"`
	// CAFile is a PEM bundle trusted for the provider, added to the system
	// roots (a private provider). Default "" (system roots).
	CAFile string `yaml:"caFile"`
	// LoginTTL is how long a login flow may take, at most MaxLoginTTL.
	// Default 10m.
	LoginTTL time.Duration `yaml:"loginTTL"`
	// MaxPendingLogins is how many flows one browser may have open, 1 to
	// MaxPendingLogins. Default 5.
	MaxPendingLogins int `yaml:"maxPendingLogins"`
	// RefreshLease is how long one replica holds the right to refresh a
	// session's provider tokens. It must be shorter than the provider's
	// refresh-token reuse window, MinRefreshLease to MaxRefreshLease.
	// Default 2s.
	RefreshLease time.Duration `yaml:"refreshLease"`
	// ProviderTimeout bounds each HTTP call to the provider; it must be
	// shorter than RefreshLease. Default 1.5s.
	ProviderTimeout time.Duration `yaml:"providerTimeout"`
	// PostLogoutRedirectURL is where the provider sends the browser after
	// RP-initiated logout (post_logout_redirect_uri): an absolute URL
	// listed in PostLogoutRedirectURLs and registered at the provider.
	// Default "": none sent, the provider shows its own page.
	PostLogoutRedirectURL string `yaml:"postLogoutRedirectURL"`
	// PostLogoutRedirectURLs is the allow-list PostLogoutRedirectURL must
	// be in (exact match), so that a configuration typo never sends users
	// to a host nobody meant. Default none.
	PostLogoutRedirectURLs []string `yaml:"postLogoutRedirectURLs"`
	// BackChannelLogoutPath is where the provider POSTs its logout tokens
	// (OpenID Connect Back-Channel Logout 1.0), on the public listener:
	// register https://<host><BackChannelLogoutPath> at the provider.
	// Default "/auth/backchannel-logout".
	BackChannelLogoutPath string `yaml:"backChannelLogoutPath"`
}

// Default returns the defaults documented on each field (the section off).
func Default() Options {
	return Options{
		Scopes:           []string{"openid", "email", "profile", "offline_access"},
		CallbackPath:     "/auth/callback",
		SubjectClaim:     "sub",
		Claims:           map[string]string{"email": "email", "groups": "groups"},
		LoginTTL:         10 * time.Minute,
		MaxPendingLogins: 5,
		RefreshLease:     2 * time.Second,
		ProviderTimeout:  1500 * time.Millisecond,

		BackChannelLogoutPath: "/auth/backchannel-logout",
	}
}

// Enabled reports whether the section is on.
func (o Options) Enabled() bool { return o.IssuerURL != "" }

// RedirectURLFor returns the redirect URL of a request to scheme://host:
// RedirectURL when set, else derived from CallbackPath.
func (o Options) RedirectURLFor(scheme, host string) string {
	if o.RedirectURL != "" {
		return o.RedirectURL
	}
	return scheme + "://" + host + o.CallbackPath
}

// protocolParams are the authorization parameters the code flow sets
// itself; AuthParams may not override them (a code_challenge override
// would disable PKCE, a redirect_uri one would send codes elsewhere).
var protocolParams = []string{"state", "nonce", "redirect_uri", "response_type", "client_id", "scope", "response_mode", "request", "request_uri"}

// ReservedClaims are the names our own tokens use; Claims may not map
// provider claims onto them.
var ReservedClaims = []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid", "typ"}

// problems collects validation failures, each "path: message".
type problems []error

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, errors.New(path+": "+fmt.Sprintf(format, args...)))
}

// Validate reports every problem of o at once (errors.Join), each prefixed
// by its field's YAML path under path (as "oidc.clientID"). An off section
// (IssuerURL "") is valid whatever its other fields. It judges the fields
// as given, without defaults, and does not read CAFile or
// ClientSecretFile.
func (o Options) Validate(path string) error {
	if !o.Enabled() {
		return nil
	}
	var errs problems
	at := func(field string) string { return path + "." + field }
	if msg := issuerProblem(o.IssuerURL); msg != "" {
		errs.add(at("issuerURL"), "%s", msg)
	}
	if strings.TrimSpace(o.ClientID) == "" {
		errs.add(at("clientID"), "required when %s is set", at("issuerURL"))
	}
	if !slices.Contains(o.Scopes, "openid") {
		errs.add(at("scopes"), "must include \"openid\" (got %q)", o.Scopes)
	}
	for i, s := range o.Scopes {
		if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == '"' || r == '\\' || r >= 0x7f }) {
			errs.add(fmt.Sprintf("%s[%d]", at("scopes"), i), "%q is not a scope (RFC 6749 §3.3)", s)
		}
		if slices.Index(o.Scopes, s) < i {
			errs.add(fmt.Sprintf("%s[%d]", at("scopes"), i), "%q is listed twice", s)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(o.AuthParams)) {
		lower := strings.ToLower(k)
		switch {
		case k == "":
			errs.add(at("authParams"), "a parameter name must not be empty")
		case slices.Contains(protocolParams, lower) || strings.HasPrefix(lower, "code_challenge"):
			errs.add(at("authParams")+"."+k, "%q is set by the code flow itself and must not be overridden", k)
		}
	}
	if msg := access.PathProblem(o.CallbackPath); msg != "" {
		errs.add(at("callbackPath"), "%s", msg)
	}
	if o.RedirectURL != "" {
		if msg := redirectProblem(o.RedirectURL); msg != "" {
			errs.add(at("redirectURL"), "%s", msg)
		}
	}
	if strings.TrimSpace(o.SubjectClaim) == "" {
		errs.add(at("subjectClaim"), "must name a claim")
	}
	for _, ours := range slices.Sorted(maps.Keys(o.Claims)) {
		switch {
		case strings.TrimSpace(ours) == "":
			errs.add(at("claims"), "a claim name must not be empty")
		case slices.Contains(ReservedClaims, ours):
			errs.add(at("claims")+"."+ours, "%q is reserved by our tokens (%s)", ours, strings.Join(ReservedClaims, ", "))
		}
		if strings.TrimSpace(o.Claims[ours]) == "" {
			errs.add(at("claims")+"."+ours, "must name a provider claim")
		}
	}
	for i, d := range o.AllowedEmailDomains {
		if d == "" || strings.ContainsAny(d, "@ /") || strings.HasPrefix(d, ".") {
			errs.add(fmt.Sprintf("%s[%d]", at("allowedEmailDomains"), i), "%q is not a domain (write example.com, no \"@\")", d)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(o.RequiredClaims)) {
		if strings.TrimSpace(k) == "" {
			errs.add(at("requiredClaims"), "a claim name must not be empty")
		}
	}
	if o.RefreshInterval < 0 {
		errs.add(at("refreshInterval"), "must not be negative (got %v)", o.RefreshInterval)
	}
	if o.LoginTTL <= 0 || o.LoginTTL > MaxLoginTTL {
		errs.add(at("loginTTL"), "must be positive and at most %v (got %v)", MaxLoginTTL, o.LoginTTL)
	}
	if o.MaxPendingLogins < 1 || o.MaxPendingLogins > MaxPendingLogins {
		errs.add(at("maxPendingLogins"), "must be 1 to %d (got %d)", MaxPendingLogins, o.MaxPendingLogins)
	}
	if o.RefreshLease < MinRefreshLease || o.RefreshLease > MaxRefreshLease {
		errs.add(at("refreshLease"), "must be %v to %v, shorter than the provider's refresh-token reuse window (got %v)", MinRefreshLease, MaxRefreshLease, o.RefreshLease)
	}
	switch {
	case o.ProviderTimeout <= 0:
		errs.add(at("providerTimeout"), "must be positive (got %v)", o.ProviderTimeout)
	case o.ProviderTimeout >= o.RefreshLease:
		// A refresh that outlives its lease could run twice and spend the
		// provider's one-time refresh token twice.
		errs.add(at("providerTimeout"), "must be shorter than %s (%v) (got %v)", at("refreshLease"), o.RefreshLease, o.ProviderTimeout)
	}
	if o.PostLogoutRedirectURL != "" {
		if msg := logoutRedirectProblem(o.PostLogoutRedirectURL); msg != "" {
			errs.add(at("postLogoutRedirectURL"), "%s", msg)
		} else if !slices.Contains(o.PostLogoutRedirectURLs, o.PostLogoutRedirectURL) {
			errs.add(at("postLogoutRedirectURL"), "%q is not in %s %q", o.PostLogoutRedirectURL, at("postLogoutRedirectURLs"), o.PostLogoutRedirectURLs)
		}
	}
	for i, u := range o.PostLogoutRedirectURLs {
		if msg := logoutRedirectProblem(u); msg != "" {
			errs.add(fmt.Sprintf("%s[%d]", at("postLogoutRedirectURLs"), i), "%s", msg)
		}
	}
	if msg := access.PathProblem(o.BackChannelLogoutPath); msg != "" {
		errs.add(at("backChannelLogoutPath"), "%s", msg)
	} else if strings.EqualFold(o.BackChannelLogoutPath, o.CallbackPath) {
		errs.add(at("backChannelLogoutPath"), "%q is also %s", o.BackChannelLogoutPath, at("callbackPath"))
	}
	return errors.Join(errs...)
}

// logoutRedirectProblem describes why s cannot be a post-logout redirect
// URL, or returns "": an absolute https URL (http only on a loopback host,
// as for the issuer), no user information or fragment (OpenID Connect
// RP-Initiated Logout 1.0 §3 compares it exactly with the registered one).
func logoutRedirectProblem(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Sprintf("%q is not a URL: %v", s, err)
	case u.Host == "" || !u.IsAbs():
		return fmt.Sprintf("%q must be an absolute URL", s)
	case u.User != nil || u.Fragment != "" || strings.HasSuffix(s, "#"):
		return fmt.Sprintf("%q must not carry user information or a fragment", s)
	case u.Scheme == "https", u.Scheme == "http" && isLoopback(u.Hostname()):
		return ""
	}
	return fmt.Sprintf("%q must use https (http only on 127.0.0.1, localhost or [::1])", s)
}

// issuerProblem describes why s cannot be an issuer URL, or returns "".
func issuerProblem(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Sprintf("%q is not a URL: %v", s, err)
	case u.Host == "" || !u.IsAbs():
		return fmt.Sprintf("%q must be an absolute URL", s)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(s, "?") || strings.HasSuffix(s, "#"):
		// OpenID Connect Discovery §3: no query or fragment.
		return fmt.Sprintf("%q must not carry user information, a query or a fragment", s)
	case u.Scheme == "https":
		return ""
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return ""
	}
	return fmt.Sprintf("%q must use https (http only on 127.0.0.1, localhost or [::1])", s)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redirectProblem describes why s cannot be the registered redirect URL.
func redirectProblem(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Sprintf("%q is not a URL: %v", s, err)
	case u.Scheme != "https" || u.Host == "":
		return fmt.Sprintf("%q must be an absolute https URL", s)
	case u.User != nil || u.Fragment != "" || strings.HasSuffix(s, "#"):
		return fmt.Sprintf("%q must not carry user information or a fragment", s)
	}
	if msg := access.PathProblem(u.EscapedPath()); msg != "" {
		return "its path " + msg
	}
	return ""
}
