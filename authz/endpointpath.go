package authz

import (
	"regexp"
	"strings"
)

// The session endpoints (Policy.RefreshPath, LogoutPath) are matched by one
// rule, here: the request's normalised path (normalizePath: decoded, "//"
// merged, "." and ".." resolved, a trailing "/" kept) equals the
// configured path compared case-insensitively (Unicode simple folding, as
// strings.EqualFold and RE2's (?i) do). Case-insensitive because proxies
// are: Caddy's path matcher ignores case, and a proxy that routes
// POST /AUTH/REFRESH straight to silentauth while silentauth took it for an
// ordinary request would hand the browser an allow's upstream-only headers
// (the bearer token, the app's HttpOnly cookies). silentauth answers every
// spelling itself, whatever the proxy does, and the shipped snippets route
// exactly the same set: SessionEndpointPattern is written into them, and
// test/configs checks both.

// isEndpoint reports whether the normalised path clean is the session
// endpoint at endpoint.
func isEndpoint(clean, endpoint string) bool {
	return endpoint != "" && strings.EqualFold(clean, endpoint)
}

// SessionEndpoint reports whether a request for rawPath (the path as sent,
// with any query) is answered as the session endpoint at endpoint. A path
// silentauth refuses (NewRequest's errBadPath, answered 400) is none.
func SessionEndpoint(rawPath, endpoint string) bool {
	clean, _, err := normalizePath(rawPath)
	return err == nil && isEndpoint(clean, endpoint)
}

// SessionEndpointPattern returns the regular expression, in the RE2 syntax
// of Caddy's path_regexp and Traefik's PathRegexp, that matches on a
// cleaned, decoded path exactly the paths isEndpoint accepts for
// endpoints.
func SessionEndpointPattern(endpoints ...string) string {
	quoted := make([]string, len(endpoints))
	for i, e := range endpoints {
		quoted[i] = regexp.QuoteMeta(e)
	}
	return "(?i)^(?:" + strings.Join(quoted, "|") + ")$"
}
