package config

import (
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/silentauth/silentauth/authz/access"
	"github.com/silentauth/silentauth/authz/cookie"
	"github.com/silentauth/silentauth/authz/oidc"
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store/redisstore"
	"github.com/silentauth/silentauth/authz/token"
)

// Config is the whole configuration. The comment on each field names its
// default (see Default); Development changes only what it says it changes.
type Config struct {
	// Development generates an in-memory ES256 signing key and a session-API
	// token (printed once) when none are configured. Never use it in
	// production. Default false; true in Development().
	Development bool `yaml:"development"`

	// Issuer is the iss of every access token. Default "silentauth".
	Issuer string `yaml:"issuer"`
	// Audience is the aud of every access token. Default "silentauth".
	Audience string `yaml:"audience"`

	Listen Listen `yaml:"listen"`
	Tokens Tokens `yaml:"tokens"`
	// Sessions are the lifetimes of refresh-token families; see
	// session.Lifetimes for each field and its default.
	Sessions session.Lifetimes `yaml:"sessions"`
	Keys     Keys              `yaml:"keys"`
	Cookies  Cookies           `yaml:"cookies"`
	Policy   Policy            `yaml:"policy"`
	// Policies are named per-route policies, selected by Envoy's per-route
	// check_settings.context_extensions {policy: NAME}, so one silentauth
	// serves several applications. Each starts from policy and audience and
	// overrides what it sets. Default none.
	Policies map[string]NamedPolicy `yaml:"policies"`
	// HTTPAuthz is the HTTP authorization mode for nginx, Traefik, Caddy.
	HTTPAuthz HTTPAuthz `yaml:"httpAuthz"`
	// SessionAPI says who may start sessions.
	SessionAPI SessionAPI `yaml:"sessionAPI"`
	// OIDC logs users in through their own OpenID Connect provider; see
	// oidc.Options for each field and its default. Off while issuerURL is
	// "". The client secret comes from oidc.clientSecretFile or
	// SILENTAUTH_OIDC_CLIENT_SECRET.
	OIDC oidc.Options `yaml:"oidc"`
	// Store selects where refresh-token families live.
	Store Store `yaml:"store"`
	// Log configures logging.
	Log Log `yaml:"log"`
	// Profiling serves Go's pprof endpoints under /debug/pprof/ on the
	// admin listener, to profile a running service. They show code and
	// sizes, never request data, but a profile costs CPU while it runs:
	// keep the admin listener internal. Default false.
	Profiling bool `yaml:"profiling"`
	// Shutdown orders a graceful stop.
	Shutdown Shutdown `yaml:"shutdown"`
}

// Listen holds the four listeners. Production defaults bind every
// interface; Development binds 127.0.0.1 only.
type Listen struct {
	// GRPC serves envoy.service.auth.v3.Authorization/Check and grpc.health.v1.
	// Default ":9001".
	GRPC Listener `yaml:"grpc"`
	// Public serves the JWKS at /.well-known/jwks.json. Default ":9002".
	Public Listener `yaml:"public"`
	// SessionAPI serves /v1/sessions; keep it internal. Default ":9003".
	SessionAPI Listener `yaml:"sessionAPI"`
	// Admin serves /metrics, /healthz and /readyz. Default ":9090".
	Admin Listener `yaml:"admin"`
}

// Listener is one TCP listener.
type Listener struct {
	// Address is host:port. Defaults above.
	Address string `yaml:"address"`
	// TLS, honoured on the grpc and sessionAPI listeners only. Default off.
	TLS TLS `yaml:"tls"`
}

// TLS configures a server certificate (reloaded when its files change) and
// optional client-certificate verification.
type TLS struct {
	// CertFile and KeyFile are PEM files; both or neither. Default "" (plain).
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
	// ClientCAFile, when set, requires and verifies client certificates
	// against these CAs. Default "" (no client certificates).
	ClientCAFile string `yaml:"clientCAFile"`
}

// Enabled reports whether TLS is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" }

// Tokens configures access tokens: their own settings, and when the
// engine refreshes them.
type Tokens struct {
	token.Settings `yaml:",inline"`
	// RefreshBefore refreshes a token that expires within this window, so an
	// upstream never receives a token that dies in flight. Must be under half
	// of AccessTTL. Default 60s.
	RefreshBefore time.Duration `yaml:"refreshBefore"`
}

// Keys says where signing keys come from: a directory (Dir) or a
// Kubernetes Secret (Secret), exactly one of them outside Development.
type Keys struct {
	// Dir is a directory of PEM private keys (PKCS#8 or SEC1), read once at
	// start. Default "" (outside Development, Dir or Secret.Name is
	// required; Development generates an ES256 key in memory when neither
	// is set).
	Dir string `yaml:"dir"`
	// Active names the file (or kid) of the key that signs; may be empty when
	// Dir holds one key. Only with Dir: a Secret's keys sign from their
	// activate-at annotation. Default "".
	Active string `yaml:"active"`
	// Secret is a Kubernetes Secret of signing keys, watched and reloaded
	// without a restart; its format is documented in package keys.
	Secret SecretRef `yaml:"secret"`
	// Kubeconfig is a kubeconfig file for reaching the Kubernetes API
	// server from outside a cluster. Default "" (the in-cluster
	// ServiceAccount config, else the file named by $KUBECONFIG).
	Kubeconfig string `yaml:"kubeconfig" log:"set"`
	// JWKSMaxAge is the Cache-Control max-age of the JWKS. Default 5m.
	JWKSMaxAge time.Duration `yaml:"jwksMaxAge"`
}

// SecretRef names the Kubernetes Secret of signing keys. silentauth needs
// get, list and watch on that one Secret only (a Role with resourceNames),
// and never writes it.
type SecretRef struct {
	// Name of the Secret. Default "" (no Secret; keys come from Dir).
	Name string `yaml:"name"`
	// Namespace of the Secret. Default "": the pod's own namespace, read at
	// start from the POD_NAMESPACE variable (set it from the downward API's
	// metadata.namespace), else from
	// /var/run/secrets/kubernetes.io/serviceaccount/namespace; see
	// Keys.SecretNamespace.
	Namespace string `yaml:"namespace"`
}

// Cookies is the cookie contract: the fields of cookie.Policy (names,
// Domain, Path, Secure, with their defaults documented there) and SameSite
// as the file spells it. __Host- names require Secure, Path=/ and no Domain
// (RFC 6265bis §4.1.3.2).
type Cookies struct {
	cookie.Policy `yaml:",inline"`
	// SameSite is "Lax", "Strict" or "None", in any case. Default "Lax".
	SameSite string `yaml:"sameSite"`
}

// Policy is the top-level policy: the access rules of access.Policy (with
// their defaults documented there) and the policies whose sessions it
// accepts.
type Policy struct {
	access.Policy `yaml:",inline"`
	// AcceptSessionsFrom names the policies whose sessions this policy's
	// routes may refresh into its own audience. A session belongs to the
	// policy it was started for, and on any other route it is refused (401,
	// login redirect, cookies kept, nothing rotated) unless that route's
	// policy lists it here. Not inherited by named policies. Default none.
	AcceptSessionsFrom []string `yaml:"acceptSessionsFrom"`
}

// DefaultPolicyName names the top-level policy in acceptSessionsFrom (and
// so may not name a policy of its own).
const DefaultPolicyName = "default"

// HTTPAuthz is the HTTP authorization mode on listen.public, for proxies
// that ask over HTTP: nginx auth_request, Traefik ForwardAuth, Caddy
// forward_auth, Envoy's ext_authz http_service (manifests/proxies/).
type HTTPAuthz struct {
	// Enabled serves /authz/{envoy,nginx,traefik,caddy} on listen.public.
	// Default false.
	Enabled bool `yaml:"enabled"`
	// Profile also answers /authz itself: nginx, traefik or caddy.
	// Default "" (none).
	Profile string `yaml:"profile"`
	// TrustedProxies are the proxy addresses, CIDR or single IP, whose
	// forwarded headers (X-Forwarded-*, X-Original-*) and policy selection
	// are believed; from any other address they are ignored. Default none.
	TrustedProxies []string `yaml:"trustedProxies"`
}

func parsePrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	return p.Masked(), err
}

// SessionAPI configures who may start sessions.
type SessionAPI struct {
	// TokenFile holds the bearer secret callers present. The environment
	// variable SILENTAUTH_API_TOKEN is used when it is empty. Default "".
	// Outside Development one of the two is required; Development generates
	// a token and prints it once.
	TokenFile string `yaml:"tokenFile" log:"set"`
	// ServiceAccounts, as "namespace/name", may call the session API with
	// a projected ServiceAccount token, checked with the Kubernetes
	// TokenReview API. With any listed, the bearer secret (TokenFile or
	// SILENTAUTH_API_TOKEN) becomes optional. Default none.
	ServiceAccounts []string `yaml:"serviceAccounts"`
	// Audience is the audience those ServiceAccount tokens must be bound
	// to (serviceAccountToken.audience of the projected volume), so a token
	// meant for another service is refused. Default "silentauth".
	Audience string `yaml:"audience"`
}

// Store selects where families live.
type Store struct {
	// Backend is "memory" (one replica; sessions are lost on restart) or
	// "redis" (shared by every replica). Default "memory".
	Backend string `yaml:"backend"`
	// Redis configures the redis backend. Ignored with memory.
	Redis Redis `yaml:"redis"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error. Default "info".
	Level string `yaml:"level"`
	// Format is json or text. Default "json".
	Format string `yaml:"format"`
	// CheckLinesPerSecond caps the Check decision lines written per second
	// for each reason, so a flood of forged tokens or an outage does not
	// become a flood of log lines. Lines over the cap are counted in
	// silentauth_check_log_suppressed_total and the next line of their
	// reason carries suppressed=N; refresh-token reuse is never dropped.
	// 0 writes every line. Default 20.
	CheckLinesPerSecond int `yaml:"checkLinesPerSecond"`
}

// Shutdown orders a graceful stop.
type Shutdown struct {
	// Drain keeps serving while health reports NOT_SERVING, so load
	// balancers move away. Default 5s.
	Drain time.Duration `yaml:"drain"`
	// Timeout bounds GracefulStop and HTTP Shutdown. Default 20s.
	Timeout time.Duration `yaml:"timeout"`
}

// Default returns the production defaults documented on each field. They
// are secure (Secure __Host- cookies, SameSite=Lax, short access tokens) but
// not complete: a key source (keys.dir or keys.secret.name) and a session-API
// credential (token or serviceAccounts) must still be configured.
// Every call returns a fresh value; nothing is shared between calls.
func Default() Config {
	return Config{
		Issuer:   "silentauth",
		Audience: "silentauth",
		Listen: Listen{
			GRPC:       Listener{Address: ":9001"},
			Public:     Listener{Address: ":9002"},
			SessionAPI: Listener{Address: ":9003"},
			Admin:      Listener{Address: ":9090"},
		},
		Tokens:   Tokens{Settings: token.DefaultSettings(), RefreshBefore: 60 * time.Second},
		Sessions: session.DefaultLifetimes(),
		Keys: Keys{
			JWKSMaxAge: 5 * time.Minute,
		},
		Cookies:    Cookies{Policy: cookie.Default(), SameSite: "Lax"},
		Policy:     Policy{Policy: access.Default()},
		OIDC:       oidc.Default(),
		SessionAPI: SessionAPI{Audience: "silentauth"},
		Store:      Store{Backend: storeMemory, Redis: Redis{Options: redisstore.DefaultOptions()}},
		Log:        Log{Level: "info", Format: "json", CheckLinesPerSecond: 20},
		Shutdown:   Shutdown{Drain: 5 * time.Second, Timeout: 20 * time.Second},
	}
}

// Development returns Default with every listener on 127.0.0.1 and
// Development set, so keys and the session-API token are generated.
func Development() Config {
	c := Default()
	c.Development = true
	c.Listen.GRPC.Address = "127.0.0.1:9001"
	c.Listen.Public.Address = "127.0.0.1:9002"
	c.Listen.SessionAPI.Address = "127.0.0.1:9003"
	c.Listen.Admin.Address = "127.0.0.1:9090"
	return c
}

// clone returns a copy of c that shares no slice or map with it, so that
// decoding or normalising the copy never changes c.
func (c Config) clone() Config {
	c.Policy.PublicPaths = slices.Clone(c.Policy.PublicPaths)
	c.Policy.TrustedOrigins = slices.Clone(c.Policy.TrustedOrigins)
	c.Policy.ClaimHeaders = maps.Clone(c.Policy.ClaimHeaders)
	c.Policy.RequiredClaims = cloneClaims(c.Policy.RequiredClaims)
	c.Policy.AcceptSessionsFrom = slices.Clone(c.Policy.AcceptSessionsFrom)
	if c.Policies != nil {
		named := make(map[string]NamedPolicy, len(c.Policies))
		for k, n := range c.Policies {
			n.PublicPaths = slices.Clone(n.PublicPaths)
			n.ClaimHeaders = maps.Clone(n.ClaimHeaders)
			n.RequiredClaims = cloneClaims(n.RequiredClaims)
			n.AcceptSessionsFrom = slices.Clone(n.AcceptSessionsFrom)
			named[k] = n
		}
		c.Policies = named
	}
	c.HTTPAuthz.TrustedProxies = slices.Clone(c.HTTPAuthz.TrustedProxies)
	c.Store.Redis.Addrs = slices.Clone(c.Store.Redis.Addrs)
	c.SessionAPI.ServiceAccounts = slices.Clone(c.SessionAPI.ServiceAccounts)
	return c
}

// Redis configures the redis store: the fields of redisstore.Options
// (addresses, mode, database, key prefix, timeouts, pool and retries, with
// their defaults in redisstore.DefaultOptions), and where the password and
// TLS files are. The password never lives in the configuration: it is read
// from PasswordFile or SILENTAUTH_REDIS_PASSWORD when the store opens.
type Redis struct {
	redisstore.Options `yaml:",inline"`
	// PasswordFile holds the password; SILENTAUTH_REDIS_PASSWORD is used
	// when it is empty. Default "".
	PasswordFile string `yaml:"passwordFile"`
	// TLS to Redis. Default off.
	TLS RedisTLS `yaml:"tls"`
}

// RedisTLS configures TLS to Redis.
type RedisTLS struct {
	// Enabled turns TLS on. Default false.
	Enabled bool `yaml:"enabled"`
	// CAFile verifies the server; empty uses the system roots. Default "".
	CAFile string `yaml:"caFile"`
	// ServerName overrides the name verified. Default "".
	ServerName string `yaml:"serverName"`
	// CertFile and KeyFile are a client certificate (both or neither).
	// Default "".
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
}

// NamedPolicy is one per-route policy: what it sets replaces the value of
// the top-level policy (or audience); what it leaves out is inherited.
type NamedPolicy struct {
	// Audience of the tokens this route accepts and mints. Default "" (the
	// top-level audience).
	Audience string `yaml:"audience"`
	// LoginURL for page navigations. Default "" (policy.loginURL).
	LoginURL string `yaml:"loginURL"`
	// PublicPaths of this route. Default none (policy.publicPaths).
	PublicPaths []string `yaml:"publicPaths"`
	// ClaimHeaders of this route. Default none (policy.claimHeaders).
	ClaimHeaders map[string]string `yaml:"claimHeaders"`
	// RequiredClaims of this route. Default none (policy.requiredClaims).
	RequiredClaims map[string][]string `yaml:"requiredClaims"`
	// AcceptSessionsFrom names the policies whose sessions this route may
	// refresh, "default" for the top-level one (see Policy). Default none:
	// only sessions started for this policy; not inherited from policy.
	AcceptSessionsFrom []string `yaml:"acceptSessionsFrom"`
}

// Resolved returns the policy named name as it applies: the top-level
// policy with the named policy's fields laid over it, and its audience.
// The empty name is the top-level policy itself.
func (c Config) Resolved(name string) (Policy, string) {
	p, aud := c.Policy, c.Audience
	n, ok := c.Policies[name]
	if name == "" || !ok {
		return p, aud
	}
	if n.Audience != "" {
		aud = n.Audience
	}
	if n.LoginURL != "" {
		p.LoginURL = n.LoginURL
	}
	if n.PublicPaths != nil {
		p.PublicPaths = n.PublicPaths
	}
	if n.ClaimHeaders != nil {
		p.ClaimHeaders = n.ClaimHeaders
	}
	if n.RequiredClaims != nil {
		p.RequiredClaims = n.RequiredClaims
	}
	p.AcceptSessionsFrom = n.AcceptSessionsFrom // never inherited
	return p, aud
}

// SessionSharing returns what session.AcceptSessions needs: whether the
// routes of policy may refresh a session started for from, both named as
// the session package names them ("" for the top-level policy). It reads
// a copy of the lists made now and is safe for concurrent use.
func (c Config) SessionSharing() func(policy, from string) bool {
	type pair struct{ policy, from string }
	accepted := map[pair]bool{}
	add := func(policy string, froms []string) {
		for _, from := range froms {
			if from == DefaultPolicyName {
				from = ""
			}
			accepted[pair{policy, from}] = true
		}
	}
	add("", c.Policy.AcceptSessionsFrom)
	for name, n := range c.Policies {
		add(name, n.AcceptSessionsFrom)
	}
	return func(policy, from string) bool { return accepted[pair{policy, from}] }
}

func cloneClaims(m map[string][]string) map[string][]string {
	if m == nil {
		return nil
	}
	out := make(map[string][]string, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}
