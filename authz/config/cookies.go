package config

import (
	"net/http"

	"github.com/silentauth/silentauth/authz/cookie"
)

// Policy turns the validated cookie configuration into the cookie
// package's Policy, the one mapping every caller uses.
func (c Cookies) Policy() cookie.Policy {
	ss := http.SameSiteLaxMode
	switch c.SameSite {
	case "Strict":
		ss = http.SameSiteStrictMode
	case "None":
		ss = http.SameSiteNoneMode
	}
	return cookie.Policy{
		Access: c.Access, Refresh: c.Refresh, Hint: c.Hint,
		Domain: c.Domain, Path: c.Path, Secure: c.Secure, SameSite: ss,
	}
}
