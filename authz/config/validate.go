package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/silentauth/silentauth/authz/access"
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store/redisstore"
)

// Bounds enforced by Validate.
const (
	maxJWKSMaxAge = time.Hour
	storeMemory   = "memory"
	storeRedis    = "redis"
)

var (
	sameSiteValues = []string{"Lax", "Strict", "None"}
	storeBackends  = []string{storeMemory, storeRedis}
	logLevels      = []string{"debug", "info", "warn", "error"}
	logFormats     = []string{"json", "text"}
	// httpModeHeaders are the contract of the HTTP authorization mode with
	// nginx, Traefik and Caddy (authz.HeaderAction and the others in
	// authz/httpauthz): a header silentauth sets must never be mistaken
	// for one of them.
	httpModeHeaders = []string{
		"x-silentauth-action", "x-silentauth-status", "x-silentauth-location",
		"x-silentauth-body", "x-silentauth-policy",
	}
)

// Validate checks every field of c and every rule between fields, and
// returns all problems at once (errors.Join), each prefixed by the field's
// YAML path. It returns nil when c is usable.
//
// Validate does not change c: it judges c as Normalized spells it, so
// "sameSite: strict" is as valid as "Strict". A program must then run with
// c.Normalized(), which is what Resolve returns.
//
// The session-API token may come from the environment (SILENTAUTH_API_TOKEN),
// so Validate does not require a session-API credential; Resolve does.
// Warnings lists what is valid yet probably a mistake.
func (c Config) Validate() error {
	c = c.Normalized()
	var p problems
	if c.Issuer == "" {
		p.add("issuer", "must not be empty")
	}
	if c.Audience == "" {
		p.add("audience", "must not be empty")
	}
	c.validateListen(&p)
	c.validateTokens(&p)
	c.validateSessions(&p)
	c.validateKeys(&p)
	c.validateCookies(&p)
	c.validatePolicy(&p)
	c.validateSessionSharing(&p)
	c.validateHTTPAuthz(&p)
	c.validateSessionAPI(&p)
	c.validateOIDC(&p)
	if !slices.Contains(storeBackends, c.Store.Backend) {
		p.add("store.backend", "must be one of %s (got %q)", strings.Join(storeBackends, ", "), c.Store.Backend)
	}
	if c.Store.Backend == storeRedis {
		c.validateRedis(&p)
	}
	if !slices.Contains(logLevels, c.Log.Level) {
		p.add("log.level", "must be one of %s (got %q)", strings.Join(logLevels, ", "), c.Log.Level)
	}
	if !slices.Contains(logFormats, c.Log.Format) {
		p.add("log.format", "must be one of %s (got %q)", strings.Join(logFormats, ", "), c.Log.Format)
	}
	if c.Log.CheckLinesPerSecond < 0 {
		p.add("log.checkLinesPerSecond", "must not be negative (got %d)", c.Log.CheckLinesPerSecond)
	}
	if c.Shutdown.Drain < 0 {
		p.add("shutdown.drain", "must not be negative (got %v)", c.Shutdown.Drain)
	}
	if c.Shutdown.Timeout <= 0 {
		p.add("shutdown.timeout", "must be positive (got %v)", c.Shutdown.Timeout)
	}
	return errors.Join(p...)
}

// Normalized returns a copy of c, sharing no slice or map with it, with
// the spellings Validate accepts in several forms rewritten into the one
// form the rest of the program compares against: cookies.sameSite is
// spelled Lax, Strict or None whatever the input case; log.level,
// log.format, store.backend, store.redis.mode, policy.accessTokenHeader, the
// claimHeaders names of every policy and policy.trustedOrigins are
// lower-cased (Envoy presents header names in lower case, and browsers send
// origins in lower case). Normalising twice changes nothing more.
func (c Config) Normalized() Config {
	c = c.clone()
	for _, v := range sameSiteValues {
		if strings.EqualFold(c.Cookies.SameSite, v) {
			c.Cookies.SameSite = v
		}
	}
	c.Log.Level = strings.ToLower(c.Log.Level)
	c.Log.Format = strings.ToLower(c.Log.Format)
	c.Store.Backend = strings.ToLower(c.Store.Backend)
	c.Store.Redis.Mode = redisstore.Mode(strings.ToLower(string(c.Store.Redis.Mode)))
	c.Policy.AccessTokenHeader = strings.ToLower(c.Policy.AccessTokenHeader)
	c.Policy.ClaimHeaders = lowerKeys(c.Policy.ClaimHeaders)
	for name, n := range c.Policies {
		n.ClaimHeaders = lowerKeys(n.ClaimHeaders)
		c.Policies[name] = n
	}
	for i, o := range c.Policy.TrustedOrigins {
		c.Policy.TrustedOrigins[i] = strings.ToLower(o)
	}
	return c
}

// problems collects validation failures, each "path: message".
type problems []error

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, errors.New(path+": "+fmt.Sprintf(format, args...)))
}

// join adds the problems of err, as a package's Validate joined them.
func (p *problems) join(err error) {
	if err == nil {
		return
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		*p = append(*p, j.Unwrap()...)
		return
	}
	*p = append(*p, err)
}

func (c *Config) validateListen(p *problems) {
	listeners := []struct {
		path string
		l    Listener
		tls  bool // whether this listener honours TLS
	}{
		{"listen.grpc", c.Listen.GRPC, true},
		{"listen.public", c.Listen.Public, false},
		{"listen.sessionAPI", c.Listen.SessionAPI, true},
		{"listen.admin", c.Listen.Admin, false},
	}
	type bound struct{ path, addr, host, port string }
	var bounds []bound
	for _, x := range listeners {
		if host, port, ok := checkAddress(p, x.path+".address", x.l.Address); ok {
			for _, b := range bounds {
				// Binding a wildcard and a specific address on one port
				// fails just like binding the same address twice.
				if port != "0" && b.port == port && (strings.EqualFold(b.host, host) || isWildcard(b.host) || isWildcard(host)) {
					p.add(x.path+".address", "%q conflicts with %s.address (%q)", x.l.Address, b.path, b.addr)
				}
			}
			bounds = append(bounds, bound{x.path, x.l.Address, host, port})
		}
		t := x.l.TLS
		if !x.tls {
			if t != (TLS{}) {
				p.add(x.path+".tls", "not supported on this listener; only listen.grpc and listen.sessionAPI serve TLS")
			}
			continue
		}
		if t.CertFile != "" && t.KeyFile == "" {
			p.add(x.path+".tls.keyFile", "required with certFile")
		}
		if t.KeyFile != "" && t.CertFile == "" {
			p.add(x.path+".tls.certFile", "required with keyFile")
		}
		if t.ClientCAFile != "" && t.CertFile == "" {
			p.add(x.path+".tls.clientCAFile", "requires certFile (client certificates need TLS)")
		}
	}
}

// checkAddress reports whether addr is host:port with a numeric port in
// 0–65535, and returns its parts. Port 0 lets the kernel choose; the bound
// address is logged at start.
func checkAddress(p *problems, path, addr string) (host, port string, ok bool) {
	if addr == "" {
		p.add(path, `must not be empty (host:port, e.g. ":9001")`)
		return "", "", false
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.add(path, "must be host:port (%v)", err)
		return "", "", false
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		p.add(path, "port %q must be a number from 0 to 65535", port)
		return "", "", false
	}
	return host, port, true
}

func isWildcard(host string) bool {
	return host == "" || host == "0.0.0.0" || host == "::"
}

func (c *Config) validateTokens(p *problems) {
	t := c.Tokens
	p.join(t.Settings.Validate("tokens"))
	switch {
	case t.RefreshBefore < 0:
		p.add("tokens.refreshBefore", "must not be negative (got %v)", t.RefreshBefore)
	case t.AccessTTL > 0 && t.RefreshBefore >= t.AccessTTL/2:
		// Otherwise every token would be refreshed for most of its life.
		p.add("tokens.refreshBefore", "must be under half of tokens.accessTTL (%v)", t.AccessTTL)
	}
}

// validateSessions adds to session.Lifetimes' own rules those between
// sessions and access tokens.
func (c *Config) validateSessions(p *problems) {
	s, access := c.Sessions, c.Tokens.AccessTTL
	p.join(s.Validate("sessions"))
	if s.Idle > 0 && s.Idle <= session.MaxLifetime && access > 0 && s.Idle <= access {
		p.add("sessions.idleTTL", "must be longer than tokens.accessTTL (%v)", access)
	}
	if s.Grace > 0 && access > 0 && s.Grace >= access {
		// A grace as long as the access token would let a stolen,
		// already-rotated refresh token mint fresh access tokens.
		p.add("sessions.grace", "must be under tokens.accessTTL (%v)", access)
	}
}

func (c *Config) validateKeys(p *problems) {
	k := c.Keys
	switch {
	case k.Dir == "" && k.Secret.Name == "" && !c.Development:
		p.add("keys.dir", "required outside development unless keys.secret.name is set (development generates a signing key in memory)")
	case k.Dir != "" && k.Secret.Name != "":
		p.add("keys.secret.name", "set together with keys.dir (%q); use one source of signing keys", k.Dir)
	}
	// Syntax only: whether the Secret exists is for the watcher to report.
	if n := k.Secret.Name; n != "" && !isDNSSubdomain(n) {
		p.add("keys.secret.name", "%q is not a Kubernetes object name (DNS-1123 subdomain: at most 253 of a-z, 0-9, \"-\" and \".\", starting and ending with a letter or digit)", n)
	}
	if ns := k.Secret.Namespace; ns != "" {
		if k.Secret.Name == "" {
			p.add("keys.secret.namespace", "requires keys.secret.name")
		}
		if !isDNSLabel(ns) {
			p.add("keys.secret.namespace", "%q is not a Kubernetes namespace (DNS-1123 label: at most 63 of a-z, 0-9 and \"-\", starting and ending with a letter or digit)", ns)
		}
	}
	if k.Active != "" {
		switch {
		case k.Dir == "" && k.Secret.Name != "":
			p.add("keys.active", "requires keys.dir; the keys of keys.secret sign from their activate-at annotations")
		case k.Dir == "":
			p.add("keys.active", "requires keys.dir")
		}
		if strings.ContainsAny(k.Active, `/\`) || k.Active == "." || k.Active == ".." {
			p.add("keys.active", "%q must be a file name or kid inside keys.dir, not a path", k.Active)
		}
	}
	if k.JWKSMaxAge < 0 || k.JWKSMaxAge > maxJWKSMaxAge {
		p.add("keys.jwksMaxAge", "must be from 0s to %v (got %v)", maxJWKSMaxAge, k.JWKSMaxAge)
	}
}

func (c *Config) validateSessionAPI(p *problems) {
	a := c.SessionAPI
	seen := make(map[string]int, len(a.ServiceAccounts))
	for i, sa := range a.ServiceAccounts {
		path := fmt.Sprintf("sessionAPI.serviceAccounts[%d]", i)
		ns, name, ok := strings.Cut(sa, "/")
		switch {
		case !ok || strings.Contains(name, "/"):
			p.add(path, "%q must be namespace/name", sa)
			continue
		case !isDNSLabel(ns):
			p.add(path, "%q: namespace %q is not a DNS-1123 label", sa, ns)
		case !isDNSSubdomain(name):
			p.add(path, "%q: name %q is not a DNS-1123 subdomain", sa, name)
		}
		if j, dup := seen[sa]; dup {
			p.add(path, "same as sessionAPI.serviceAccounts[%d] (%q)", j, sa)
		}
		seen[sa] = i
	}
	if strings.TrimSpace(a.Audience) == "" {
		p.add("sessionAPI.audience", "must not be empty")
	}
}

// isDNSLabel reports whether s is a DNS-1123 label, the syntax of
// Kubernetes namespace names.
func isDNSLabel(s string) bool { return len(validation.IsDNS1123Label(s)) == 0 }

// isDNSSubdomain reports whether s is a DNS-1123 subdomain, the syntax
// Kubernetes checks for most object names (Secrets, ServiceAccounts).
func isDNSSubdomain(s string) bool { return len(validation.IsDNS1123Subdomain(s)) == 0 }

// validateCookies checks cookies.sameSite, which only the file spells as
// text, then the cookie policy by cookie.Policy's own rules.
func (c *Config) validateCookies(p *problems) {
	k := c.Cookies
	ss, ok := sameSite(k.SameSite)
	if !ok {
		p.add("cookies.sameSite", "must be one of %s (got %q)", strings.Join(sameSiteValues, ", "), k.SameSite)
	}
	k.Policy.SameSite = ss
	p.join(k.Policy.Validate("cookies"))
}

// sameSite parses cookies.sameSite as Normalized spells it; Lax and false
// for any other value.
func sameSite(s string) (http.SameSite, bool) {
	switch s {
	case "Lax":
		return http.SameSiteLaxMode, true
	case "Strict":
		return http.SameSiteStrictMode, true
	case "None":
		return http.SameSiteNoneMode, true
	}
	return http.SameSiteLaxMode, false
}

// validatePolicy checks the top-level policy by access.Policy's own rules,
// then each named policy: its name, and the fields it sets by the same
// rules, its claim headers against the top-level policy.accessTokenHeader
// it inherits. In the HTTP authorization mode the access-token header
// travels beside the mode's instructions to the proxy, so it may not be
// one of them.
func (c *Config) validatePolicy(p *problems) {
	p.join(c.Policy.Validate("policy"))
	h := c.Policy.AccessTokenHeader
	if lower := strings.ToLower(h); access.HeaderProblem(h) == "" &&
		(slices.Contains(httpModeHeaders, lower) || strings.HasPrefix(lower, access.SilentauthPrefix+"cookie-")) {
		p.add("policy.accessTokenHeader", "%q is reserved: the HTTP authorization mode tells the proxy what to do with it", h)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Policies)) {
		n, at := c.Policies[name], "policies."+name
		if !isPolicyName(name) {
			p.add(at, "name must be 1-63 characters of a-z, 0-9 and \"-\"")
		}
		route := access.Policy{
			LoginURL: n.LoginURL, PublicPaths: n.PublicPaths, ClaimHeaders: n.ClaimHeaders,
			RequiredClaims: n.RequiredClaims, AccessTokenHeader: h,
		}
		p.join(route.ValidateRoute(at, "policy.accessTokenHeader"))
	}
}

// lowerKeys lower-cases header names. Two names differing only by case
// would collapse into one: then the map is kept as it is, so validation
// reports the clash.
func lowerKeys(headers map[string]string) map[string]string {
	if len(headers) == 0 {
		return headers
	}
	lower := make(map[string]string, len(headers))
	for k, v := range headers {
		lower[strings.ToLower(k)] = v
	}
	if len(lower) != len(headers) {
		return headers
	}
	return lower
}

func isPolicyName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

func (c *Config) validateHTTPAuthz(p *problems) {
	h := c.HTTPAuthz
	if !slices.Contains([]string{"", "nginx", "traefik", "caddy"}, h.Profile) {
		p.add("httpAuthz.profile", "must be nginx, traefik or caddy, or empty (got %q)", h.Profile)
	}
	_, err := trustedProxies(h.TrustedProxies)
	p.join(err)
}

// trustedProxies parses httpAuthz.trustedProxies, a single IP as its /32 or
// /128. It returns the entries that parse and a problem for each other one.
func trustedProxies(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	var p problems
	for i, s := range list {
		pre, err := parsePrefix(s)
		if err != nil {
			p.add(fmt.Sprintf("httpAuthz.trustedProxies[%d]", i), "must be an IP address or a CIDR prefix (got %q)", s)
			continue
		}
		out = append(out, pre)
	}
	return out, errors.Join(p...)
}

// validateSessionSharing checks every acceptSessionsFrom list: each entry
// names a configured policy, or "default" for the top-level one, other than
// the policy itself; and no policy takes the name "default", which these
// lists reserve for the top-level policy.
func (c *Config) validateSessionSharing(p *problems) {
	known := func(name string) bool {
		_, ok := c.Policies[name]
		return name == DefaultPolicyName || ok
	}
	check := func(at, self string, froms []string) {
		for i, from := range froms {
			switch {
			case from == self:
				p.add(fmt.Sprintf("%s.acceptSessionsFrom[%d]", at, i), "%q is this policy: its own sessions are always accepted", from)
			case !known(from):
				p.add(fmt.Sprintf("%s.acceptSessionsFrom[%d]", at, i), "%q is not a policy (the names of policies, or %q for the top-level policy)", from, DefaultPolicyName)
			}
		}
	}
	check("policy", DefaultPolicyName, c.Policy.AcceptSessionsFrom)
	for _, name := range slices.Sorted(maps.Keys(c.Policies)) {
		if name == DefaultPolicyName {
			p.add("policies."+name, "the name %q is reserved for the top-level policy", DefaultPolicyName)
			continue
		}
		check("policies."+name, name, c.Policies[name].AcceptSessionsFrom)
	}
}

// Warnings lists what c allows although it is probably a mistake, each
// "path: message" like a problem of Validate: settings that work but open
// more than they seem to. They never stop the service; it logs each one at
// start, and "silentauth config validate" prints them. Warnings reads c as
// Normalized spells it and does not change it; entries Validate refuses are
// skipped.
func (c Config) Warnings() []string {
	c = c.Normalized()
	var w []string
	add := func(path, format string, args ...any) {
		w = append(w, path+": "+fmt.Sprintf(format, args...))
	}
	trusted, _ := trustedProxies(c.HTTPAuthz.TrustedProxies) // Validate reports the others
	for _, family := range trustsEveryAddress(trusted) {
		add("httpAuthz.trustedProxies", "trusts every %s address: any client may then describe its request in X-Forwarded-* and X-Original-* headers and choose the policy; list the proxies' own addresses", family)
	}
	type policy struct {
		at, loginURL                string
		publicPaths, trustedOrigins []string
	}
	policies := []policy{{"policy", c.Policy.LoginURL, c.Policy.PublicPaths, c.Policy.TrustedOrigins}}
	for _, name := range slices.Sorted(maps.Keys(c.Policies)) {
		n := c.Policies[name]
		policies = append(policies, policy{"policies." + name, n.LoginURL, n.PublicPaths, nil})
	}
	for _, pol := range policies {
		if insecureHTTP(pol.loginURL) {
			add(pol.at+".loginURL", "%q is plain http: the login page and the credentials typed into it travel unencrypted; use https", pol.loginURL)
		}
		for i, pp := range pol.publicPaths {
			at := fmt.Sprintf("%s.publicPaths[%d]", pol.at, i)
			if access.PathProblem(pp) != "" {
				continue
			}
			if pp == "/" {
				add(at, `"/" makes every path public: no request needs a session`)
				continue
			}
			for _, e := range []struct{ name, path string }{{"refreshPath", c.Policy.RefreshPath}, {"logoutPath", c.Policy.LogoutPath}} {
				if e.path == pp || strings.HasSuffix(pp, "/") && strings.HasPrefix(e.path, pp) {
					add(at, "%q covers policy.%s (%q): silentauth still answers it, but check that everything else under %q may be reached without a session", pp, e.name, e.path, pp)
				}
			}
		}
		for i, o := range pol.trustedOrigins {
			at := fmt.Sprintf("%s.trustedOrigins[%d]", pol.at, i)
			switch {
			case access.OriginProblem(o) != "":
			case strings.Contains(o, "*"):
				add(at, "%q: origins match exactly, \"*\" is no wildcard; list each origin", o)
			case insecureHTTP(o):
				add(at, "%q is plain http: whoever controls the network between a browser and it can send cookie-authenticated requests as that origin; use https", o)
			}
		}
	}
	return w
}

// insecureHTTP reports whether s is an http:// URL to a host other than a
// loopback one (localhost, 127.0.0.0/8, ::1), which browsers treat as
// potentially trustworthy (W3C Secure Contexts §3.2) and which never
// crosses a network.
func insecureHTTP(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "http" {
		return false
	}
	host := strings.TrimSuffix(u.Hostname(), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return false
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Unmap().IsLoopback() {
		return false
	}
	return true
}

// trustsEveryAddress returns the address families ("IPv4", "IPv6") whose
// every address lies in one of prefixes: 0.0.0.0/0 or ::/0, or prefixes
// that add up to them (0.0.0.0/1 and 128.0.0.0/1).
func trustsEveryAddress(prefixes []netip.Prefix) []string {
	var out []string
	if covered(netip.PrefixFrom(netip.IPv4Unspecified(), 0), prefixes) {
		out = append(out, "IPv4")
	}
	if covered(netip.PrefixFrom(netip.IPv6Unspecified(), 0), prefixes) {
		out = append(out, "IPv6")
	}
	return out
}

// covered reports whether every address of p lies in one of prefixes. It
// halves p only while some prefix lies strictly inside it, passing each half
// only the prefixes that overlap it, so it costs about the number of
// prefixes times the address length.
func covered(p netip.Prefix, prefixes []netip.Prefix) bool {
	var inside []netip.Prefix
	for _, q := range prefixes {
		if q.Addr().BitLen() != p.Addr().BitLen() || !q.Overlaps(p) {
			continue
		}
		if q.Bits() <= p.Bits() {
			return true // q contains p
		}
		inside = append(inside, q)
	}
	if len(inside) == 0 {
		return false
	}
	hi, ok := upperHalf(p)
	return ok && covered(netip.PrefixFrom(p.Addr(), p.Bits()+1), inside) && covered(hi, inside)
}

// upperHalf returns the second half of p: p one bit longer, with that bit set.
func upperHalf(p netip.Prefix) (netip.Prefix, bool) {
	b := p.Addr().AsSlice()
	bit := p.Bits()
	b[bit/8] |= 0x80 >> (bit % 8)
	a, ok := netip.AddrFromSlice(b)
	return netip.PrefixFrom(a, bit+1), ok
}

// validateRedis adds to redisstore.Options' own rules what the file must
// spell out (it has no zero-means-default values) and the TLS files.
func (c *Config) validateRedis(p *problems) {
	const at = "store.redis."
	r := c.Store.Redis
	p.join(r.Options.Validate("store.redis"))
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"dialTimeout", r.DialTimeout}, {"readTimeout", r.ReadTimeout}, {"writeTimeout", r.WriteTimeout}} {
		if d.v == 0 {
			p.add(at+d.name, "must be positive and at most 1m (got %v)", d.v)
		}
	}
	if r.KeyPrefix == "" {
		p.add(at+"keyPrefix", "must be non-empty without braces or white space (got %q)", r.KeyPrefix)
	}
	if r.MaxRetries < 0 {
		p.add(at+"maxRetries", "must be from 0 to 10 (got %d)", r.MaxRetries)
	}
	if (r.TLS.CertFile == "") != (r.TLS.KeyFile == "") {
		p.add(at+"tls", "certFile and keyFile go together")
	}
	if !r.TLS.Enabled && (r.TLS.CAFile != "" || r.TLS.CertFile != "" || r.TLS.ServerName != "") {
		p.add(at+"tls.enabled", "must be true when other tls fields are set")
	}
}

// validateOIDC checks the oidc section by its own rules and, when provider
// login is on, that its callback path is one Check can answer: not a
// policy's session endpoint, and not a public path (which would pass to
// the upstream instead).
func (c *Config) validateOIDC(p *problems) {
	o := c.OIDC
	p.join(o.Validate("oidc"))
	if !o.Enabled() {
		return
	}
	for _, name := range append([]string{""}, slices.Sorted(maps.Keys(c.Policies))...) {
		r, _ := c.Resolved(name)
		path := "policy"
		if name != "" {
			path = "policies." + name
		}
		switch {
		case strings.EqualFold(o.CallbackPath, r.RefreshPath), strings.EqualFold(o.CallbackPath, r.LogoutPath):
			p.add("oidc.callbackPath", "%q is also %s's refresh or logout path", o.CallbackPath, path)
		case r.IsPublic(o.CallbackPath):
			p.add("oidc.callbackPath", "%q is a public path of %s: the callback must be answered by silentauth", o.CallbackPath, path)
		}
		if strings.EqualFold(o.BackChannelLogoutPath, r.RefreshPath) || strings.EqualFold(o.BackChannelLogoutPath, r.LogoutPath) {
			p.add("oidc.backChannelLogoutPath", "%q is also %s's refresh or logout path", o.BackChannelLogoutPath, path)
		}
	}
}
