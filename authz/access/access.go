// Package access holds the access rules of one protected application: what
// it asks of its requests. The configuration file spells them (the yaml
// tags below) and the authz engine enforces them; this package is their one
// definition, with the defaults and the rules a policy must meet on its own.
//
// Rules that need more than the policy's own fields (the headers of the
// HTTP authorization mode, the policies a session may come from, named
// policies laid over the top-level one) belong to package config.
package access

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Policy is what a protected application asks of its requests. The comment
// on each field names its default (see Default).
type Policy struct {
	// LoginURL receives page navigations without a valid session, with the
	// original same-origin path in ReturnToParam. Default "" (401 instead).
	// It may carry secrets in its query: log:"url" has config's LogValue
	// log it without query, fragment and user information.
	LoginURL string `yaml:"loginURL" log:"url"`
	// ReturnToParam names the query parameter carrying the return path.
	// Default "return_to".
	ReturnToParam string `yaml:"returnToParam"`
	// PublicPaths pass without a token. An entry ending in "/" matches that
	// prefix; others match exactly, on the normalised path without query.
	// Default none.
	PublicPaths []string `yaml:"publicPaths"`
	// ClaimHeaders maps an upstream header to the claim it carries, e.g.
	// x-user-id: sub. Client-sent copies are always removed. Headers with a
	// meaning of their own (credentials, framing, hop-by-hop, those of
	// silentauth's answers, x-silentauth-*) are refused. The engine reads
	// the names in lower case, as config normalises them. Default none.
	ClaimHeaders map[string]string `yaml:"claimHeaders"`
	// TrustedOrigins may send unsafe cookie-authenticated requests from
	// another origin (scheme://host[:port]). Default none.
	TrustedOrigins []string `yaml:"trustedOrigins"`
	// RefreshPath is answered inside Check, in any case: POST refreshes
	// now. Default "/auth/refresh".
	RefreshPath string `yaml:"refreshPath"`
	// LogoutPath is answered inside Check, in any case: POST revokes and
	// clears. Default "/auth/logout".
	LogoutPath string `yaml:"logoutPath"`
	// AccessTokenHeader returns a refreshed access token to bearer-style
	// clients; never one of the HTTP authorization mode's instructions to
	// the proxy (X-Silentauth-Action and the others); empty returns none,
	// though validation refuses it. Default "x-silentauth-access-token".
	AccessTokenHeader string `yaml:"accessTokenHeader"`
	// RequiredClaims admits only tokens holding each named claim with one
	// of the listed values (any value for an empty list; a list claim
	// matches when any element does); others get 403. Default none.
	RequiredClaims map[string][]string `yaml:"requiredClaims"`
}

// Default returns the defaults documented on each field.
func Default() Policy {
	return Policy{
		ReturnToParam:     "return_to",
		RefreshPath:       "/auth/refresh",
		LogoutPath:        "/auth/logout",
		AccessTokenHeader: "x-silentauth-access-token",
	}
}

// Validate checks the fields of p and the rules between them, and returns
// all problems at once (errors.Join), each prefixed by the field's YAML
// path under path (e.g. "policy.loginURL"). It returns nil when p is
// usable on its own. Header names are compared without regard to case.
func (p Policy) Validate(path string) error {
	var errs problems
	if msg := loginURLProblem(p.LoginURL); msg != "" {
		errs.add(path+".loginURL", "%s", msg)
	}
	switch {
	case p.ReturnToParam == "":
		errs.add(path+".returnToParam", "must not be empty")
	case !isUnreserved(p.ReturnToParam):
		// A token may hold "&", "=", "+" or "%", which would break the
		// query string; RFC 3986 unreserved characters never need encoding.
		errs.add(path+".returnToParam", "%q must be made of letters, digits, \"-\", \".\", \"_\" and \"~\"", p.ReturnToParam)
	}
	errs = append(errs, p.validateRoute(path, path+".accessTokenHeader")...)
	for i, o := range p.TrustedOrigins {
		if msg := OriginProblem(o); msg != "" {
			errs.add(fmt.Sprintf("%s.trustedOrigins[%d]", path, i), "%s", msg)
		}
	}
	if msg := PathProblem(p.RefreshPath); msg != "" {
		errs.add(path+".refreshPath", "%s", msg)
	}
	if msg := PathProblem(p.LogoutPath); msg != "" {
		errs.add(path+".logoutPath", "%s", msg)
	}
	if strings.EqualFold(p.RefreshPath, p.LogoutPath) {
		// The endpoints are matched case-insensitively (authz.SessionEndpoint).
		errs.add(path+".logoutPath", "must differ from %s.refreshPath (%q), compared without regard to case", path, p.RefreshPath)
	}
	if msg := HeaderProblem(p.AccessTokenHeader); msg != "" {
		errs.add(path+".accessTokenHeader", "%s", msg)
	}
	return errors.Join(errs...)
}

// ValidateRoute checks only the fields one route may set for itself over
// the policy it inherits: loginURL, publicPaths, claimHeaders and
// requiredClaims, each prefixed by its YAML path under path. Claim headers
// must differ from p.AccessTokenHeader, which the route inherits from the
// policy at accessTokenHeaderPath.
func (p Policy) ValidateRoute(path, accessTokenHeaderPath string) error {
	var errs problems
	if msg := loginURLProblem(p.LoginURL); msg != "" {
		errs.add(path+".loginURL", "%s", msg)
	}
	return errors.Join(append(errs, p.validateRoute(path, accessTokenHeaderPath)...)...)
}

// validateRoute checks publicPaths, claimHeaders and requiredClaims.
func (p Policy) validateRoute(path, accessTokenHeaderPath string) problems {
	var errs problems
	for i, pp := range p.PublicPaths {
		if msg := PathProblem(pp); msg != "" {
			errs.add(fmt.Sprintf("%s.publicPaths[%d]", path, i), "%s", msg)
		}
	}
	at := path + ".claimHeaders"
	names := slices.Sorted(maps.Keys(p.ClaimHeaders))
	for i, name := range names {
		switch msg := HeaderProblem(name); {
		case msg != "":
			errs.add(at+"."+name, "%s", msg)
		case strings.HasPrefix(strings.ToLower(name), SilentauthPrefix):
			errs.add(at+"."+name, "%q is reserved: x-silentauth- headers belong to silentauth (the HTTP authorization mode and policy.accessTokenHeader)", name)
		case strings.EqualFold(name, p.AccessTokenHeader):
			errs.add(at+"."+name, "same header as %s (%q)", accessTokenHeaderPath, p.AccessTokenHeader)
		}
		for _, prev := range names[:i] {
			if strings.EqualFold(prev, name) {
				errs.add(at+"."+name, "same header as %s.%s (header names ignore case)", at, prev)
			}
		}
		if strings.TrimSpace(p.ClaimHeaders[name]) == "" {
			errs.add(at+"."+name, "must name a claim")
		}
	}
	at = path + ".requiredClaims"
	for _, name := range slices.Sorted(maps.Keys(p.RequiredClaims)) {
		if strings.TrimSpace(name) == "" {
			errs.add(at, "claim names must not be empty")
		}
		for i, v := range p.RequiredClaims[name] {
			if v == "" {
				errs.add(fmt.Sprintf("%s.%s[%d]", at, name, i), "must not be empty")
			}
		}
	}
	return errs
}

// problems collects validation failures, each "path: message".
type problems []error

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, errors.New(path+": "+fmt.Sprintf(format, args...)))
}

// SilentauthPrefix starts the headers of silentauth's own contract: those
// of the HTTP authorization mode and Policy.AccessTokenHeader. No claim
// header may use it.
const SilentauthPrefix = "x-silentauth-"

// reservedHeaders are the headers silentauth never sets upstream, with why.
var reservedHeaders = map[string]string{
	// Credentials and routing: an upstream must never take these from us.
	"authorization": "carries credentials",
	"cookie":        "carries credentials",
	"set-cookie":    "sets cookies",
	"host":          "routes the request",
	// What silentauth's own answers carry: in the HTTP authorization
	// mode the headers for the upstream travel in the same answer as
	// these, so a claim of that name would overwrite them or be
	// overwritten.
	"location":         "carries silentauth's redirects",
	"www-authenticate": "carries silentauth's 401 challenges",
	"cache-control":    "keeps silentauth's answers out of caches",
	"content-type":     "describes silentauth's answer bodies",
	"allow":            "lists the methods of silentauth's session endpoints",
	// Framing and hop-by-hop headers (RFC 9110 §7.6.1): rewriting them
	// desynchronises proxies (request smuggling).
	"content-length":      "frames the message",
	"transfer-encoding":   "frames the message",
	"connection":          "is hop-by-hop",
	"keep-alive":          "is hop-by-hop",
	"proxy-connection":    "is hop-by-hop",
	"proxy-authenticate":  "is hop-by-hop",
	"proxy-authorization": "is hop-by-hop",
	"te":                  "is hop-by-hop",
	"trailer":             "is hop-by-hop",
	"upgrade":             "is hop-by-hop",
}

// HeaderProblem describes why name cannot be a header silentauth sets, or
// returns "".
func HeaderProblem(name string) string {
	lower := strings.ToLower(name)
	switch {
	case name == "":
		return "must not be empty"
	case strings.HasPrefix(name, ":"):
		return fmt.Sprintf("%q is an HTTP/2 pseudo-header", name)
	case !isToken(name):
		return fmt.Sprintf("%q is not a valid header name (RFC 9110: token characters only)", name)
	case reservedHeaders[lower] != "":
		return fmt.Sprintf("%q is reserved: it %s", name, reservedHeaders[lower])
	case strings.HasPrefix(lower, "x-envoy-"):
		return fmt.Sprintf("%q is reserved: x-envoy- headers belong to Envoy", name)
	}
	return ""
}

// PathProblem describes why p cannot be matched against a normalised
// request path, or returns "". Encoded separators, backslashes, ";" and dot
// segments are refused outright: they are how path-confusion bypasses are
// built (a public "/static/" must never cover "/static/..%2fadmin").
func PathProblem(p string) string {
	if !strings.HasPrefix(p, "/") {
		return fmt.Sprintf("%q must start with \"/\"", p)
	}
	if strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return fmt.Sprintf("%q must not contain spaces, control or non-ASCII characters", p)
	}
	for _, bad := range []string{"?", "#", `\`, ";"} {
		if strings.Contains(p, bad) {
			return fmt.Sprintf("%q must not contain %q", p, bad)
		}
	}
	lower := strings.ToLower(p)
	for _, enc := range []string{"%2f", "%5c", "%3b", "%2e", "%25", "%00"} {
		if strings.Contains(lower, enc) {
			return fmt.Sprintf("%q must not contain the encoding %q", p, enc)
		}
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if seg == "." || seg == ".." {
			return fmt.Sprintf("%q must not contain the dot segment %q", p, seg)
		}
	}
	if strings.Contains(p, "//") {
		return fmt.Sprintf("%q must not contain an empty segment (\"//\")", p)
	}
	return ""
}

// loginURLProblem describes why s cannot be the login redirect, or returns "".
func loginURLProblem(s string) string {
	if s == "" {
		return ""
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Sprintf("%q must not contain spaces or control characters", s)
	}
	if strings.Contains(s, `\`) {
		// Browsers read "\" as "/": "/\evil.example" leaves the site.
		return fmt.Sprintf("%q must not contain %q", s, `\`)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Sprintf("%q is not a URL (%v)", s, err)
	}
	if strings.Contains(s, "#") {
		return fmt.Sprintf("%q must not contain a fragment: the return path is added as a query parameter", s)
	}
	if u.Scheme == "" {
		// "//evil.example/login" is scheme-relative: it leaves the site.
		if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") {
			return fmt.Sprintf("%q must be an absolute path such as /login or an http(s) URL", s)
		}
		return ""
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Sprintf("%q must be an absolute path or an http or https URL", s)
	}
	if u.Host == "" {
		return fmt.Sprintf("%q must name a host", s)
	}
	if u.User != nil {
		return fmt.Sprintf("%q must not contain user information", u.Redacted())
	}
	return ""
}

// OriginProblem describes why o cannot be a trusted origin, or returns "".
// The rules are those of net/http.CrossOriginProtection.AddTrustedOrigin,
// plus what makes an origin never match what a browser sends (user info, a
// default port).
func OriginProblem(o string) string {
	u, err := url.Parse(o)
	switch {
	case err != nil:
		return fmt.Sprintf("%q is not an origin (%v)", o, err)
	case u.Scheme == "":
		return fmt.Sprintf("%q must be scheme://host[:port]: scheme is required", o)
	case u.Host == "":
		return fmt.Sprintf("%q must be scheme://host[:port]: host is required", o)
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(o, "?#"):
		return fmt.Sprintf("%q must be scheme://host[:port]: path, query and fragment are not allowed", o)
	case u.User != nil:
		return fmt.Sprintf("%q must be scheme://host[:port]: user information is not allowed", u.Redacted())
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return fmt.Sprintf("%q: port must be a number from 1 to 65535", o)
		}
		if u.Scheme == "https" && port == "443" || u.Scheme == "http" && port == "80" {
			return fmt.Sprintf("%q: omit the default port; browsers never send it in Origin", o)
		}
	}
	return ""
}

// isToken reports whether s is a non-empty RFC 9110 token, the syntax of
// header names, cookie names (RFC 6265 §4.1.1) and our query parameter.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0:
		default:
			return false
		}
	}
	return true
}

// isUnreserved reports whether s is non-empty and made of RFC 3986
// unreserved characters only: a query parameter name that needs no encoding.
func isUnreserved(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("-._~", b) >= 0) {
			return false
		}
	}
	return true
}

// IsPublic reports whether the normalised path p matches one of
// PublicPaths: exactly, or under an entry that ends in "/".
func (p Policy) IsPublic(path string) bool {
	for _, pp := range p.PublicPaths {
		if path == pp || (strings.HasSuffix(pp, "/") && strings.HasPrefix(path, pp)) {
			return true
		}
	}
	return false
}
