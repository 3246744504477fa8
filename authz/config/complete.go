package config

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"

	"github.com/silentauth/silentauth/authz/cookie"
)

// Completed is a valid configuration with every setting that the file
// spells as text parsed into the type the program uses. Only Complete
// makes one, so holding a Completed means Validate passed; code that runs
// the service reads the parsed fields and never parses the embedded
// Config's strings again.
type Completed struct {
	// Config is the validated configuration, as Normalized spells it.
	Config
	// LogLevel is log.level.
	LogLevel slog.Level
	// LogText is true for log.format text, false for json.
	LogText bool
	// CookiePolicy is cookies, with cookies.sameSite parsed.
	CookiePolicy cookie.Policy
	// Redis is true for store.backend redis, false for memory.
	Redis bool
	// TrustedProxies is httpAuthz.trustedProxies, a single IP as its /32
	// or /128.
	TrustedProxies []netip.Prefix
	// Routes holds every policy as it applies, by name: "" is the
	// top-level policy, the others are policies.NAME laid over it.
	Routes map[string]Route
}

// Route is one policy as a route applies it: the top-level policy with a
// named policy's fields laid over it, and its audience.
type Route struct {
	Audience string
	Policy   Policy
}

// Complete validates c and parses what Validate accepted: log level and
// format, cookies.sameSite, store.backend, httpAuthz.trustedProxies, and
// every policy resolved with its audience. It returns every problem at once
// when c is not valid. c is read as Normalized spells it and not changed.
func (c Config) Complete() (Completed, error) {
	c = c.Normalized()
	if err := c.Validate(); err != nil {
		return Completed{}, err
	}
	var errs []error
	out := Completed{Config: c, LogText: c.Log.Format == "text", Redis: c.Store.Backend == storeRedis}
	if err := out.LogLevel.UnmarshalText([]byte(c.Log.Level)); err != nil {
		errs = append(errs, fmt.Errorf("log.level: %w", err))
	}
	ss, ok := sameSite(c.Cookies.SameSite)
	if !ok {
		errs = append(errs, fmt.Errorf("cookies.sameSite: %q is not Lax, Strict or None", c.Cookies.SameSite))
	}
	out.CookiePolicy = c.Cookies.Policy
	out.CookiePolicy.SameSite = ss
	var err error
	if out.TrustedProxies, err = trustedProxies(c.HTTPAuthz.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	out.Routes = make(map[string]Route, len(c.Policies)+1)
	for _, name := range append([]string{""}, slices.Sorted(maps.Keys(c.Policies))...) {
		p, aud := c.Resolved(name)
		out.Routes[name] = Route{Audience: aud, Policy: p}
	}
	if err := errors.Join(errs...); err != nil {
		return Completed{}, err
	}
	return out, nil
}
