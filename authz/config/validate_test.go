package config

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/cookie"
)

// sharing configures the top-level policy to accept top's sessions and a
// named policy, name, to accept from's (with a "shop" policy beside it).
func sharing(top []string, name string, from ...string) func(*Config) {
	return func(c *Config) {
		c.Policy.AcceptSessionsFrom = top
		c.Policies = map[string]NamedPolicy{name: {AcceptSessionsFrom: from}, "shop": {}}
	}
}

func TestValidate(t *testing.T) {
	const min, sec, hour = time.Minute, time.Second, time.Hour
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error; "" means valid
	}{
		{"defaults", func(c *Config) {}, ""},
		{"development needs no keys", func(c *Config) { *c = Development() }, ""},
		{"issuer empty", func(c *Config) { c.Issuer = "" }, "issuer: must not be empty"},
		{"audience empty", func(c *Config) { c.Audience = "" }, "audience: must not be empty"},

		// Listeners.
		{"address empty", func(c *Config) { c.Listen.GRPC.Address = "" }, "listen.grpc.address: must not be empty"},
		{"address no port", func(c *Config) { c.Listen.Public.Address = "localhost" }, "listen.public.address: must be host:port"},
		{"address named port", func(c *Config) { c.Listen.Admin.Address = ":http" }, `listen.admin.address: port "http" must be a number from 0 to 65535`},
		{"address port too big", func(c *Config) { c.Listen.SessionAPI.Address = ":65536" }, `listen.sessionAPI.address: port "65536" must be`},
		{"address port signed", func(c *Config) { c.Listen.SessionAPI.Address = ":+80" }, `listen.sessionAPI.address: port "+80" must be`},
		{"address ipv6", func(c *Config) { c.Listen.GRPC.Address = "[::1]:9001" }, ""},
		{"address host", func(c *Config) { c.Listen.GRPC.Address = "localhost:9001" }, ""},
		{"address port 65535", func(c *Config) { c.Listen.GRPC.Address = ":65535" }, ""},
		{"same address", func(c *Config) { c.Listen.Admin.Address = ":9001" }, `listen.admin.address: ":9001" conflicts with listen.grpc.address (":9001")`},
		{"wildcard overlap", func(c *Config) { c.Listen.Public.Address = "127.0.0.1:9001" }, "listen.public.address: \"127.0.0.1:9001\" conflicts with listen.grpc.address"},
		{"0.0.0.0 overlap", func(c *Config) { c.Listen.Public.Address = "0.0.0.0:9001" }, "listen.public.address: \"0.0.0.0:9001\" conflicts"},
		{"same port other hosts", func(c *Config) { c.Listen.GRPC.Address = "10.0.0.1:9000"; c.Listen.Public.Address = "10.0.0.2:9000" }, ""},
		{"same host and port", func(c *Config) { c.Listen.GRPC.Address = "10.0.0.1:9000"; c.Listen.Public.Address = "10.0.0.1:9000" }, "listen.public.address: \"10.0.0.1:9000\" conflicts"},
		{"tls both", func(c *Config) { c.Listen.GRPC.TLS = TLS{CertFile: "c", KeyFile: "k", ClientCAFile: "ca"} }, ""},
		{"tls cert only", func(c *Config) { c.Listen.GRPC.TLS.CertFile = "c" }, "listen.grpc.tls.keyFile: required with certFile"},
		{"tls key only", func(c *Config) { c.Listen.SessionAPI.TLS.KeyFile = "k" }, "listen.sessionAPI.tls.certFile: required with keyFile"},
		{"tls ca without cert", func(c *Config) { c.Listen.GRPC.TLS.ClientCAFile = "ca" }, "listen.grpc.tls.clientCAFile: requires certFile"},
		{"tls on public", func(c *Config) { c.Listen.Public.TLS = TLS{CertFile: "c", KeyFile: "k"} }, "listen.public.tls: not supported on this listener"},
		{"tls on admin", func(c *Config) { c.Listen.Admin.TLS.ClientCAFile = "ca" }, "listen.admin.tls: not supported on this listener"},

		// Tokens.
		{"accessTTL zero", func(c *Config) { c.Tokens.AccessTTL = 0 }, "tokens.accessTTL: must be positive"},
		{"accessTTL negative", func(c *Config) { c.Tokens.AccessTTL = -min }, "tokens.accessTTL: must be positive"},
		{"accessTTL 24h", func(c *Config) { c.Tokens.AccessTTL = 24 * hour; c.Sessions.Idle = 48 * hour }, ""},
		{"accessTTL over 24h", func(c *Config) { c.Tokens.AccessTTL = 25 * hour }, "tokens.accessTTL: must be at most 24h0m0s"},
		{"leeway zero", func(c *Config) { c.Tokens.Leeway = 0 }, ""},
		{"leeway negative", func(c *Config) { c.Tokens.Leeway = -sec }, "tokens.leeway: must not be negative"},
		{"leeway over 5m", func(c *Config) { c.Tokens.Leeway = 5*min + sec }, "tokens.leeway: must be at most 5m0s"},
		{"refreshBefore zero", func(c *Config) { c.Tokens.RefreshBefore = 0 }, ""},
		{"refreshBefore negative", func(c *Config) { c.Tokens.RefreshBefore = -sec }, "tokens.refreshBefore: must not be negative"},
		{"refreshBefore half", func(c *Config) { c.Tokens.RefreshBefore = 7*min + 30*sec }, "tokens.refreshBefore: must be under half of tokens.accessTTL (15m0s)"},
		{"refreshBefore under half", func(c *Config) { c.Tokens.RefreshBefore = 7 * min }, ""},
		{"maxBytes low", func(c *Config) { c.Tokens.MaxBytes = 1023 }, "tokens.maxBytes: must be from 1024 to 65536"},
		{"maxBytes high", func(c *Config) { c.Tokens.MaxBytes = 65537 }, "tokens.maxBytes: must be from 1024 to 65536"},
		{"maxBytes bounds", func(c *Config) { c.Tokens.MaxBytes = 1024 }, ""},
		{"cacheSize zero", func(c *Config) { c.Tokens.CacheSize = 0 }, "tokens.cacheSize: must be from 1 to 10000000"},
		{"cacheSize high", func(c *Config) { c.Tokens.CacheSize = 10_000_001 }, "tokens.cacheSize: must be from 1 to 10000000"},

		// Sessions.
		{"idleTTL zero", func(c *Config) { c.Sessions.Idle = 0 }, "sessions.idleTTL: must be positive"},
		{"idleTTL equals accessTTL", func(c *Config) { c.Sessions.Idle = 15 * min }, "sessions.idleTTL: must be longer than tokens.accessTTL (15m0s)"},
		{"absoluteTTL zero", func(c *Config) { c.Sessions.Absolute = 0 }, "sessions.absoluteTTL: must be positive"},
		{"absoluteTTL under idle", func(c *Config) { c.Sessions.Absolute = 719 * hour }, "sessions.absoluteTTL: must be at least sessions.idleTTL (720h0m0s)"},
		{"absoluteTTL equals idle", func(c *Config) { c.Sessions.Absolute = 720 * hour }, ""},
		{"grace zero", func(c *Config) { c.Sessions.Grace = 0 }, "sessions.grace: must be positive"},
		{"grace equals accessTTL", func(c *Config) { c.Sessions.Grace = 15 * min }, "sessions.grace: must be under tokens.accessTTL (15m0s)"},
		{"absoluteTTL 400 days", func(c *Config) { c.Sessions.Absolute = 9600 * hour }, ""},
		{"absoluteTTL over 400 days", func(c *Config) { c.Sessions.Absolute = 9624 * hour }, "sessions.absoluteTTL: must be at most 9600h0m0s (400 days): RFC 6265bis caps a cookie's Max-Age and Expires at 400 days, so the cookie would end before the session (got 9624h0m0s)"},
		{"absoluteTTL a second over", func(c *Config) { c.Sessions.Absolute = 9600*hour + sec }, "sessions.absoluteTTL: must be at most 9600h0m0s (400 days): RFC 6265bis"},
		{"idleTTL 400 days", func(c *Config) { c.Sessions.Idle, c.Sessions.Absolute = 9600*hour, 9600*hour }, ""},
		{"idleTTL over 400 days", func(c *Config) { c.Sessions.Idle = 9601 * hour }, "sessions.idleTTL: must be at most 9600h0m0s (400 days): RFC 6265bis"},
		{"accessTTL over 400 days", func(c *Config) { c.Tokens.AccessTTL = 9624 * hour }, "tokens.accessTTL: must be at most 24h0m0s"},

		// Keys.
		{"keys.dir missing", func(c *Config) { c.Keys.Dir = "" }, "keys.dir: required outside development unless keys.secret.name is set"},
		{"keys.secret instead of dir", fromSecret("silentauth-keys", ""), ""},
		{"keys.secret with namespace", fromSecret("keys.v1", "auth-1"), ""},
		{"keys.secret and dir", func(c *Config) { c.Keys.Secret.Name = "k" }, `keys.secret.name: set together with keys.dir ("/etc/silentauth/keys")`},
		{"keys.secret and dir in development", func(c *Config) { c.Development = true; c.Keys.Secret.Name = "k" }, "keys.secret.name: set together with keys.dir"},
		{"development with a Secret", fromSecret("k", "", func(c *Config) { c.Development = true }), ""},
		{"development with neither", func(c *Config) { c.Development = true; c.Keys.Dir = "" }, ""},
		{"keys.secret.name upper case", fromSecret("Keys", ""), `keys.secret.name: "Keys" is not a Kubernetes object name`},
		{"keys.secret.name underscore", fromSecret("my_keys", ""), "is not a Kubernetes object name"},
		{"keys.secret.name empty label", fromSecret("a..b", ""), "is not a Kubernetes object name"},
		{"keys.secret.name 253", fromSecret(strings.Repeat("a", 253), ""), ""},
		{"keys.secret.name 254", fromSecret(strings.Repeat("a", 254), ""), "is not a Kubernetes object name"},
		{"keys.secret.namespace dotted", fromSecret("k", "a.b"), `keys.secret.namespace: "a.b" is not a Kubernetes namespace`},
		{"keys.secret.namespace 64", fromSecret("k", strings.Repeat("a", 64)), "is not a Kubernetes namespace"},
		{"keys.secret.namespace 63", fromSecret("k", strings.Repeat("a", 63)), ""},
		{"keys.secret.namespace without name", func(c *Config) { c.Keys.Secret.Namespace = "auth" }, "keys.secret.namespace: requires keys.secret.name"},
		{"keys.active with secret", fromSecret("k", "", func(c *Config) { c.Keys.Active = "k1" }), "keys.active: requires keys.dir; the keys of keys.secret sign from their activate-at annotations"},
		{"keys.kubeconfig", fromSecret("k", "", func(c *Config) { c.Keys.Kubeconfig = "/home/me/.kube/config" }), ""},
		{"keys.active with dir", func(c *Config) { c.Keys.Active = "k1.pem" }, ""},
		{"keys.active path", func(c *Config) { c.Keys.Active = "../k1.pem" }, `keys.active: "../k1.pem" must be a file name`},
		{"jwksMaxAge zero", func(c *Config) { c.Keys.JWKSMaxAge = 0 }, ""},
		{"jwksMaxAge negative", func(c *Config) { c.Keys.JWKSMaxAge = -sec }, "keys.jwksMaxAge: must be from 0s to 1h0m0s"},
		{"jwksMaxAge over 1h", func(c *Config) { c.Keys.JWKSMaxAge = hour + sec }, "keys.jwksMaxAge: must be from 0s to 1h0m0s"},

		// Cookies.
		{"cookie empty", func(c *Config) { c.Cookies.Hint = "" }, "cookies.hint: must not be empty"},
		{"cookie bad chars", func(c *Config) { c.Cookies.Access = "sa at" }, `cookies.access: "sa at" is not a valid cookie name`},
		{"cookie separator", func(c *Config) { c.Cookies.Refresh = "sa=rt" }, `cookies.refresh: "sa=rt" is not a valid cookie name`},
		{"cookie duplicate", func(c *Config) { c.Cookies.Refresh = c.Cookies.Access }, `cookies.refresh: same name as cookies.access ("__Host-sa-at")`},
		{"cookie case clash", func(c *Config) { c.Cookies.Hint = "__Host-SA-AT" }, `cookies.hint: "__Host-SA-AT" differs from cookies.access ("__Host-sa-at") only in case`},
		{"host without secure", func(c *Config) { c.Cookies.Secure = false }, "cookies.secure: must be true with the __Host- prefix (cookies.access, cookies.refresh, cookies.hint)"},
		{"host with path", func(c *Config) { c.Cookies.Path = "/app" }, `cookies.path: must be "/" with the __Host- prefix`},
		{"host with domain", func(c *Config) { c.Cookies.Domain = "example.com" }, "cookies.domain: must be empty with the __Host- prefix"},
		{"host prefix any case", func(c *Config) { c.Cookies.Access = "__host-sa-at" }, `cookies.access: write the prefix of "__host-sa-at" as "__Host-"`},
		{"host prefix any case enforced", plain(func(k *Cookies) { k.Access = "__HOST-a"; k.Domain = "example.com" }), "cookies.domain: must be empty with the __Host- prefix (cookies.access)"},
		{"plain names with domain", plain(func(k *Cookies) { k.Domain = ".example.com"; k.Path = "/app"; k.Secure = false }), ""},
		{"secure prefix without secure", plain(func(k *Cookies) { k.Access = "__Secure-at"; k.Secure = false }), "cookies.secure: must be true with the __Secure- prefix (cookies.access)"},
		{"secure prefix with domain", func(c *Config) { c.Cookies.Access = "__Secure-at"; c.Cookies.Domain = "example.com" }, "cookies.domain: must be empty with the __Host- prefix (cookies.refresh, cookies.hint)"},
		{"sameSite lower case", func(c *Config) { c.Cookies.SameSite = "strict" }, ""},
		{"sameSite bad", func(c *Config) { c.Cookies.SameSite = "Lox" }, `cookies.sameSite: must be one of Lax, Strict, None (got "Lox")`},
		{"sameSite empty", func(c *Config) { c.Cookies.SameSite = "" }, `cookies.sameSite: must be one of Lax, Strict, None (got "")`},
		{"sameSite None secure", func(c *Config) { c.Cookies.SameSite = "none" }, ""},
		{"sameSite None insecure", plain(func(k *Cookies) { k.SameSite = "None"; k.Secure = false }), "cookies.secure: must be true with cookies.sameSite None"},
		{"path relative", func(c *Config) { c.Cookies.Path = "app" }, `cookies.path: must start with "/"`},
		{"path injection", func(c *Config) { c.Cookies.Path = "/; Domain=evil.example" }, `cookies.path: must not contain ";"`},
		{"domain injection", plain(func(k *Cookies) { k.Domain = "a.example; SameSite=None" }), `cookies.domain: "a.example; SameSite=None" is not a host name`},
		{"domain with port", plain(func(k *Cookies) { k.Domain = "example.com:443" }), "is not a host name"},
		{"domain empty label", plain(func(k *Cookies) { k.Domain = "a..example" }), "is not a host name"},

		// Policy: login URL.
		{"loginURL path", func(c *Config) { c.Policy.LoginURL = "/login" }, ""},
		{"loginURL path with query", func(c *Config) { c.Policy.LoginURL = "/login?provider=x" }, ""},
		{"loginURL https", func(c *Config) { c.Policy.LoginURL = "https://id.example.com/login" }, ""},
		{"loginURL http", func(c *Config) { c.Policy.LoginURL = "http://localhost:3000/login" }, ""},
		{"loginURL relative", func(c *Config) { c.Policy.LoginURL = "login" }, `policy.loginURL: "login" must be an absolute path`},
		{"loginURL scheme-relative", func(c *Config) { c.Policy.LoginURL = "//evil.example/login" }, `policy.loginURL: "//evil.example/login" must be an absolute path`},
		{"loginURL backslash", func(c *Config) { c.Policy.LoginURL = `/\evil.example` }, `policy.loginURL: "/\\evil.example" must not contain "\\"`},
		{"loginURL javascript", func(c *Config) { c.Policy.LoginURL = "javascript:alert(1)" }, "policy.loginURL: \"javascript:alert(1)\" must be an absolute path or an http or https URL"},
		{"loginURL no host", func(c *Config) { c.Policy.LoginURL = "https:///login" }, "policy.loginURL: \"https:///login\" must name a host"},
		{"loginURL userinfo", func(c *Config) { c.Policy.LoginURL = "https://u:p@id.example/login" }, `policy.loginURL: "https://u:xxxxx@id.example/login" must not contain user information`},
		{"loginURL fragment", func(c *Config) { c.Policy.LoginURL = "/login#x" }, "policy.loginURL: \"/login#x\" must not contain a fragment"},
		{"loginURL space", func(c *Config) { c.Policy.LoginURL = "/log in" }, "policy.loginURL: \"/log in\" must not contain spaces"},
		{"returnToParam ok", func(c *Config) { c.Policy.ReturnToParam = "rd.to-x_~1" }, ""},
		{"returnToParam equals", func(c *Config) { c.Policy.ReturnToParam = "a=b" }, "policy.returnToParam: \"a=b\" must be made of"},
		{"returnToParam empty", func(c *Config) { c.Policy.ReturnToParam = "" }, "policy.returnToParam: must not be empty"},
		{"returnToParam bad", func(c *Config) { c.Policy.ReturnToParam = "a&b" }, `policy.returnToParam: "a&b" must be made of letters, digits`},

		// Policy: public paths.
		{"publicPaths ok", func(c *Config) { c.Policy.PublicPaths = []string{"/healthz", "/static/", "/"} }, ""},
		{"publicPath relative", func(c *Config) { c.Policy.PublicPaths = []string{"/ok", "static/"} }, `policy.publicPaths[1]: "static/" must start with "/"`},
		{"publicPath query", func(c *Config) { c.Policy.PublicPaths = []string{"/a?b"} }, `policy.publicPaths[0]: "/a?b" must not contain "?"`},
		{"publicPath fragment", func(c *Config) { c.Policy.PublicPaths = []string{"/a#b"} }, `must not contain "#"`},
		{"publicPath backslash", func(c *Config) { c.Policy.PublicPaths = []string{`/a\b`} }, `must not contain "\\"`},
		{"publicPath semicolon", func(c *Config) { c.Policy.PublicPaths = []string{"/a;b"} }, `must not contain ";"`},
		{"publicPath %2f", func(c *Config) { c.Policy.PublicPaths = []string{"/a%2fb"} }, `must not contain the encoding "%2f"`},
		{"publicPath %2F", func(c *Config) { c.Policy.PublicPaths = []string{"/a%2Fb"} }, `must not contain the encoding "%2f"`},
		{"publicPath %5C", func(c *Config) { c.Policy.PublicPaths = []string{"/a%5Cb"} }, `must not contain the encoding "%5c"`},
		{"publicPath %3b", func(c *Config) { c.Policy.PublicPaths = []string{"/a%3bb"} }, `must not contain the encoding "%3b"`},
		{"publicPath %2e", func(c *Config) { c.Policy.PublicPaths = []string{"/a/%2e%2e/b"} }, `must not contain the encoding "%2e"`},
		{"publicPath dotdot", func(c *Config) { c.Policy.PublicPaths = []string{"/static/../admin"} }, `must not contain the dot segment ".."`},
		{"publicPath dot", func(c *Config) { c.Policy.PublicPaths = []string{"/static/./x"} }, `must not contain the dot segment "."`},
		{"publicPath trailing dotdot", func(c *Config) { c.Policy.PublicPaths = []string{"/static/.."} }, `must not contain the dot segment ".."`},
		{"publicPath dots in name", func(c *Config) { c.Policy.PublicPaths = []string{"/a..b/.well-known/"} }, ""},
		{"publicPath double slash", func(c *Config) { c.Policy.PublicPaths = []string{"//a"} }, `must not contain an empty segment`},
		{"publicPath space", func(c *Config) { c.Policy.PublicPaths = []string{"/a b"} }, "must not contain spaces, control or non-ASCII"},
		{"publicPath non-ASCII", func(c *Config) { c.Policy.PublicPaths = []string{"/café"} }, "must not contain spaces, control or non-ASCII"},

		// Policy: claim headers.
		{"claimHeaders ok", func(c *Config) { c.Policy.ClaimHeaders = map[string]string{"X-User-Id": "sub", "x-email": "email"} }, ""},
		{"claimHeader bad name", func(c *Config) { c.Policy.ClaimHeaders = map[string]string{"x user": "sub"} }, `policy.claimHeaders.x user: "x user" is not a valid header name`},
		{"claimHeader pseudo", func(c *Config) { c.Policy.ClaimHeaders = map[string]string{":path": "sub"} }, `policy.claimHeaders.:path: ":path" is an HTTP/2 pseudo-header`},
		{"claimHeader authorization", func(c *Config) { c.Policy.ClaimHeaders = map[string]string{"Authorization": "sub"} }, `policy.claimHeaders.authorization: "authorization" is reserved`},
		{"claimHeader cookie", func(c *Config) { c.Policy.ClaimHeaders = map[string]string{"cookie": "sub"} }, `"cookie" is reserved`},
		{"claimHeader set-cookie", func(c *Config) { c.Policy.ClaimHeaders = map[string]string{"set-cookie": "sub"} }, `"set-cookie" is reserved`},
		{"claimHeader host", func(c *Config) { c.Policy.ClaimHeaders = map[string]string{"host": "sub"} }, `"host" is reserved`},
		{"claimHeader content-length", func(c *Config) { c.Policy.ClaimHeaders = map[string]string{"content-length": "sub"} }, `"content-length" is reserved`},
		{"claimHeader transfer-encoding", func(c *Config) { c.Policy.ClaimHeaders = map[string]string{"transfer-encoding": "sub"} }, `"transfer-encoding" is reserved`},
		{"claimHeader connection", func(c *Config) { c.Policy.ClaimHeaders = map[string]string{"connection": "sub"} }, `"connection" is reserved: it is hop-by-hop`},
		{"claimHeader envoy", func(c *Config) { c.Policy.ClaimHeaders = map[string]string{"x-envoy-original-path": "sub"} }, "x-envoy- headers belong to Envoy"},
		{"claimHeader location", func(c *Config) { c.Policy.ClaimHeaders = map[string]string{"Location": "sub"} }, `policy.claimHeaders.location: "location" is reserved: it carries silentauth's redirects`},
		{"claimHeader www-authenticate", func(c *Config) { c.Policy.ClaimHeaders = map[string]string{"www-authenticate": "sub"} }, `"www-authenticate" is reserved`},
		{"claimHeader cache-control", func(c *Config) { c.Policy.ClaimHeaders = map[string]string{"cache-control": "sub"} }, `"cache-control" is reserved`},
		{"claimHeader :authority", func(c *Config) { c.Policy.ClaimHeaders = map[string]string{":authority": "sub"} }, `":authority" is an HTTP/2 pseudo-header`},
		{"claimHeader x-silentauth", func(c *Config) { c.Policy.ClaimHeaders = map[string]string{"X-Silentauth-Action": "sub"} }, `policy.claimHeaders.x-silentauth-action: "x-silentauth-action" is reserved: x-silentauth- headers belong to silentauth`},
		{"claimHeader x-silentauth any", func(c *Config) { c.Policy.ClaimHeaders = map[string]string{"x-silentauth-user": "sub"} }, "x-silentauth- headers belong to silentauth"},
		{"claimHeader the access token header", func(c *Config) { c.Policy.ClaimHeaders = map[string]string{"x-silentauth-access-token": "sub"} }, "x-silentauth- headers belong to silentauth"},
		{"claimHeader a custom access token header", func(c *Config) {
			c.Policy.AccessTokenHeader = "X-Token"
			c.Policy.ClaimHeaders = map[string]string{"x-token": "sub"}
		}, `policy.claimHeaders.x-token: same header as policy.accessTokenHeader ("x-token")`},
		{"named claimHeader location", func(c *Config) {
			c.Policies = map[string]NamedPolicy{"a": {ClaimHeaders: map[string]string{"location": "sub"}}}
		}, `policies.a.claimHeaders.location: "location" is reserved`},
		{"named claimHeader x-silentauth", func(c *Config) {
			c.Policies = map[string]NamedPolicy{"a": {ClaimHeaders: map[string]string{"x-silentauth-status": "sub"}}}
		}, "policies.a.claimHeaders.x-silentauth-status: \"x-silentauth-status\" is reserved: x-silentauth- headers"},
		{"named claimHeader the access token header", func(c *Config) {
			c.Policy.AccessTokenHeader = "x-token"
			c.Policies = map[string]NamedPolicy{"a": {ClaimHeaders: map[string]string{"X-Token": "sub"}}}
		}, "policies.a.claimHeaders.x-token: same header as policy.accessTokenHeader"},
		{"claimHeader empty claim", func(c *Config) { c.Policy.ClaimHeaders = map[string]string{"x-user": " "} }, "policy.claimHeaders.x-user: must name a claim"},
		{"claimHeader case clash", func(c *Config) { c.Policy.ClaimHeaders = map[string]string{"X-User": "sub", "x-user": "email"} }, "policy.claimHeaders.x-user: same header as policy.claimHeaders.X-User"},

		// Policy: trusted origins.
		{"origins ok", func(c *Config) { c.Policy.TrustedOrigins = []string{"https://a.example", "http://localhost:3000"} }, ""},
		{"origin no scheme", func(c *Config) { c.Policy.TrustedOrigins = []string{"app.example.com"} }, `policy.trustedOrigins[0]: "app.example.com" must be scheme://host[:port]: scheme is required`},
		{"origin no host", func(c *Config) { c.Policy.TrustedOrigins = []string{"https://"} }, "host is required"},
		{"origin trailing slash", func(c *Config) { c.Policy.TrustedOrigins = []string{"https://a.example/"} }, "path, query and fragment are not allowed"},
		{"origin path", func(c *Config) { c.Policy.TrustedOrigins = []string{"https://a.example", "https://b.example/app"} }, `policy.trustedOrigins[1]: "https://b.example/app" must be scheme://host[:port]: path`},
		{"origin empty query", func(c *Config) { c.Policy.TrustedOrigins = []string{"https://a.example?"} }, "path, query and fragment are not allowed"},
		{"origin fragment", func(c *Config) { c.Policy.TrustedOrigins = []string{"https://a.example#x"} }, "path, query and fragment are not allowed"},
		{"origin userinfo", func(c *Config) { c.Policy.TrustedOrigins = []string{"https://u@a.example"} }, "user information is not allowed"},
		{"origin default port", func(c *Config) { c.Policy.TrustedOrigins = []string{"https://a.example:443"} }, "omit the default port"},
		{"origin bad port", func(c *Config) { c.Policy.TrustedOrigins = []string{"https://a.example:99999"} }, "port must be a number from 1 to 65535"},
		{"origin null", func(c *Config) { c.Policy.TrustedOrigins = []string{"null"} }, "scheme is required"},
		{"origin upper case", func(c *Config) { c.Policy.TrustedOrigins = []string{"HTTPS://App.Example.com"} }, ""},

		// Policy: paths and header.
		{"refreshPath relative", func(c *Config) { c.Policy.RefreshPath = "auth/refresh" }, `policy.refreshPath: "auth/refresh" must start with "/"`},
		{"logoutPath encoded", func(c *Config) { c.Policy.LogoutPath = "/auth%2flogout" }, `policy.logoutPath: "/auth%2flogout" must not contain the encoding`},
		{"refresh equals logout", func(c *Config) { c.Policy.LogoutPath = "/auth/refresh" }, `policy.logoutPath: must differ from policy.refreshPath ("/auth/refresh")`},
		{"refresh equals logout but for case", func(c *Config) { c.Policy.LogoutPath = "/AUTH/Refresh" }, `policy.logoutPath: must differ from policy.refreshPath ("/auth/refresh")`},
		{"accessTokenHeader empty", func(c *Config) { c.Policy.AccessTokenHeader = "" }, "policy.accessTokenHeader: must not be empty"},
		{"accessTokenHeader bad", func(c *Config) { c.Policy.AccessTokenHeader = "x token" }, `policy.accessTokenHeader: "x token" is not a valid header name`},
		{"accessTokenHeader reserved", func(c *Config) { c.Policy.AccessTokenHeader = "Set-Cookie" }, `policy.accessTokenHeader: "set-cookie" is reserved`},
		{"accessTokenHeader upper", func(c *Config) { c.Policy.AccessTokenHeader = "X-Access-Token" }, ""},
		{"accessTokenHeader x-silentauth", func(c *Config) { c.Policy.AccessTokenHeader = "x-silentauth-token" }, ""},
		{"accessTokenHeader location", func(c *Config) { c.Policy.AccessTokenHeader = "Location" }, `policy.accessTokenHeader: "location" is reserved: it carries silentauth's redirects`},
		{"accessTokenHeader authorization", func(c *Config) { c.Policy.AccessTokenHeader = "authorization" }, `policy.accessTokenHeader: "authorization" is reserved`},
		{"accessTokenHeader cookie", func(c *Config) { c.Policy.AccessTokenHeader = "cookie" }, `policy.accessTokenHeader: "cookie" is reserved`},
		{"accessTokenHeader cache-control", func(c *Config) { c.Policy.AccessTokenHeader = "cache-control" }, `policy.accessTokenHeader: "cache-control" is reserved`},
		{"accessTokenHeader pseudo", func(c *Config) { c.Policy.AccessTokenHeader = ":authority" }, "is an HTTP/2 pseudo-header"},
		{"accessTokenHeader http mode action", func(c *Config) { c.Policy.AccessTokenHeader = "X-Silentauth-Action" }, `policy.accessTokenHeader: "x-silentauth-action" is reserved: the HTTP authorization mode tells the proxy`},
		{"accessTokenHeader http mode location", func(c *Config) { c.Policy.AccessTokenHeader = "x-silentauth-location" }, "the HTTP authorization mode tells the proxy"},
		{"accessTokenHeader http mode cookie", func(c *Config) { c.Policy.AccessTokenHeader = "x-silentauth-cookie-1" }, "the HTTP authorization mode tells the proxy"},

		// Session API.
		{"serviceAccounts ok", func(c *Config) { c.SessionAPI.ServiceAccounts = []string{"shop/frontend", "shop/admin.v2"} }, ""},
		{"serviceAccount without namespace", func(c *Config) { c.SessionAPI.ServiceAccounts = []string{"frontend"} }, `sessionAPI.serviceAccounts[0]: "frontend" must be namespace/name`},
		{"serviceAccount with two slashes", func(c *Config) { c.SessionAPI.ServiceAccounts = []string{"a/b/c"} }, `"a/b/c" must be namespace/name`},
		{"serviceAccount bad namespace", func(c *Config) { c.SessionAPI.ServiceAccounts = []string{"ok/a", "Shop/frontend"} }, `sessionAPI.serviceAccounts[1]: "Shop/frontend": namespace "Shop" is not a DNS-1123 label`},
		{"serviceAccount empty name", func(c *Config) { c.SessionAPI.ServiceAccounts = []string{"shop/"} }, `name "" is not a DNS-1123 subdomain`},
		{"serviceAccount bad name", func(c *Config) { c.SessionAPI.ServiceAccounts = []string{"shop/front_end"} }, `name "front_end" is not a DNS-1123 subdomain`},
		{"serviceAccount empty namespace", func(c *Config) { c.SessionAPI.ServiceAccounts = []string{"/login"} }, `namespace "" is not a DNS-1123 label`},
		{"serviceAccount namespace with a dot", func(c *Config) { c.SessionAPI.ServiceAccounts = []string{"shop.x/login"} }, `namespace "shop.x" is not a DNS-1123 label`},
		{"serviceAccount name starting with a dash", func(c *Config) { c.SessionAPI.ServiceAccounts = []string{"shop/-login"} }, `name "-login" is not a DNS-1123 subdomain`},
		{"serviceAccount name with an empty label", func(c *Config) { c.SessionAPI.ServiceAccounts = []string{"shop/a..b"} }, `name "a..b" is not a DNS-1123 subdomain`},
		{"serviceAccount duplicate", func(c *Config) { c.SessionAPI.ServiceAccounts = []string{"a/b", "c/d", "a/b"} }, `sessionAPI.serviceAccounts[2]: same as sessionAPI.serviceAccounts[0] ("a/b")`},
		{"session audience empty", func(c *Config) { c.SessionAPI.Audience = " " }, "sessionAPI.audience: must not be empty"},

		// Store, log, shutdown.
		{"store unknown", func(c *Config) { c.Store.Backend = "mongo" }, `store.backend: must be one of memory, redis (got "mongo")`},
		{"store any case", func(c *Config) { c.Store.Backend = "Memory" }, ""},
		{"policy required claims", func(c *Config) { c.Policy.RequiredClaims = map[string][]string{"role": {"admin"}} }, ""},
		{"policy required claim empty value", func(c *Config) { c.Policy.RequiredClaims = map[string][]string{"role": {""}} }, "policy.requiredClaims.role[0]: must not be empty"},
		{"named policy ok", func(c *Config) {
			c.Policies = map[string]NamedPolicy{"admin": {Audience: "admin-app", LoginURL: "/admin/login", RequiredClaims: map[string][]string{"role": {"admin"}}}}
		}, ""},
		{"named policy bad name", func(c *Config) { c.Policies = map[string]NamedPolicy{"Admin App": {}} }, "policies.Admin App: name must be"},

		// Provider logout.
		{"backchannel path is a logout path", func(c *Config) {
			c.OIDC.IssuerURL, c.OIDC.ClientID, c.OIDC.BackChannelLogoutPath = "https://idp.example.com", "c", "/auth/logout"
		}, `oidc.backChannelLogoutPath: "/auth/logout" is also policy's refresh or logout path`},
		{"post-logout redirect not listed", func(c *Config) {
			c.OIDC.IssuerURL, c.OIDC.ClientID = "https://idp.example.com", "c"
			c.OIDC.PostLogoutRedirectURL, c.OIDC.PostLogoutRedirectURLs = "https://evil.example/", []string{"https://app.example.com/"}
		}, `oidc.postLogoutRedirectURL: "https://evil.example/" is not in oidc.postLogoutRedirectURLs`},
		{"post-logout redirect listed", func(c *Config) {
			c.OIDC.IssuerURL, c.OIDC.ClientID = "https://idp.example.com", "c"
			c.OIDC.PostLogoutRedirectURL, c.OIDC.PostLogoutRedirectURLs = "https://app.example.com/", []string{"https://app.example.com/"}
		}, ""},

		// Sharing sessions between policies.
		{"accept a named policy", sharing([]string{"shop"}, "admin", "shop", "default"), ""},
		{"accept the default policy", sharing(nil, "admin", "default"), ""},
		{"accept an unknown policy", sharing(nil, "admin", "shpo"), `policies.admin.acceptSessionsFrom[0]: "shpo" is not a policy`},
		{"default accepts an unknown policy", sharing([]string{"admin", "nope"}, "admin"), `policy.acceptSessionsFrom[1]: "nope" is not a policy`},
		{"accept itself", sharing(nil, "admin", "admin"), `policies.admin.acceptSessionsFrom[0]: "admin" is this policy`},
		{"default accepts itself", sharing([]string{"default"}, "admin"), `policy.acceptSessionsFrom[0]: "default" is this policy`},
		{"policy named default", func(c *Config) { c.Policies = map[string]NamedPolicy{"default": {}} }, `policies.default: the name "default" is reserved`},
		{"named policy bad login", func(c *Config) { c.Policies = map[string]NamedPolicy{"a": {LoginURL: "//evil.example"}} }, "policies.a.loginURL"},
		{"named policy bad public path", func(c *Config) { c.Policies = map[string]NamedPolicy{"a": {PublicPaths: []string{"/a/../b"}}} }, "policies.a.publicPaths[0]"},
		{"named policy bad claim header", func(c *Config) {
			c.Policies = map[string]NamedPolicy{"a": {ClaimHeaders: map[string]string{"cookie": "sub"}}}
		}, "policies.a.claimHeaders.cookie"},
		{"redis ok", func(c *Config) { c.Store.Backend = "redis"; c.Store.Redis.Addrs = []string{"127.0.0.1:6379"} }, ""},
		{"redis no addrs", func(c *Config) { c.Store.Backend = "redis" }, "store.redis.addrs: required"},
		{"redis standalone two addrs", func(c *Config) { c.Store.Backend = "redis"; c.Store.Redis.Addrs = []string{"a:1", "b:2"} }, "standalone mode takes exactly one address"},
		{"redis bad addr", func(c *Config) { c.Store.Backend = "redis"; c.Store.Redis.Addrs = []string{"nohost"} }, "store.redis.addrs[0]: must be host:port"},
		{"redis cluster", func(c *Config) {
			c.Store.Backend, c.Store.Redis.Mode, c.Store.Redis.Addrs = "redis", "Cluster", []string{"a:1", "b:2", "c:3"}
		}, ""},
		{"redis cluster db", func(c *Config) {
			c.Store.Backend, c.Store.Redis.Mode, c.Store.Redis.Addrs, c.Store.Redis.DB = "redis", "cluster", []string{"a:1"}, 2
		}, "store.redis.db: must be 0 in cluster mode"},
		{"redis sentinel needs master", func(c *Config) {
			c.Store.Backend, c.Store.Redis.Mode, c.Store.Redis.Addrs = "redis", "sentinel", []string{"a:26379"}
		}, "store.redis.masterName: required in sentinel mode"},
		{"redis bad mode", func(c *Config) {
			c.Store.Backend = "redis"
			c.Store.Redis.Addrs = []string{"a:1"}
			c.Store.Redis.Mode = "ring"
		}, `store.redis.mode: must be one of standalone, sentinel, cluster (got "ring")`},
		{"redis prefix braces", func(c *Config) {
			c.Store.Backend = "redis"
			c.Store.Redis.Addrs = []string{"a:1"}
			c.Store.Redis.KeyPrefix = "{x}"
		}, "store.redis.keyPrefix: must be non-empty"},
		{"redis zero timeout", func(c *Config) {
			c.Store.Backend = "redis"
			c.Store.Redis.Addrs = []string{"a:1"}
			c.Store.Redis.ReadTimeout = 0
		}, "store.redis.readTimeout: must be positive"},
		{"redis tls half pair", func(c *Config) {
			c.Store.Backend, c.Store.Redis.Addrs, c.Store.Redis.TLS = "redis", []string{"a:1"}, RedisTLS{Enabled: true, CertFile: "c"}
		}, "store.redis.tls: certFile and keyFile go together"},
		{"redis tls fields without enabled", func(c *Config) {
			c.Store.Backend, c.Store.Redis.Addrs, c.Store.Redis.TLS = "redis", []string{"a:1"}, RedisTLS{CAFile: "ca"}
		}, "store.redis.tls.enabled: must be true"},
		{"redis ignored with memory", func(c *Config) { c.Store.Redis.Mode = "ring" }, ""},
		{"log level bad", func(c *Config) { c.Log.Level = "verbose" }, `log.level: must be one of debug, info, warn, error (got "verbose")`},
		{"log level upper", func(c *Config) { c.Log.Level = "DEBUG" }, ""},
		{"log format bad", func(c *Config) { c.Log.Format = "xml" }, `log.format: must be one of json, text (got "xml")`},
		{"log lines negative", func(c *Config) { c.Log.CheckLinesPerSecond = -1 }, "log.checkLinesPerSecond: must not be negative (got -1)"},
		{"drain zero", func(c *Config) { c.Shutdown.Drain = 0 }, ""},
		{"drain negative", func(c *Config) { c.Shutdown.Drain = -sec }, "shutdown.drain: must not be negative"},
		{"timeout zero", func(c *Config) { c.Shutdown.Timeout = 0 }, "shutdown.timeout: must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.want != "" && err == nil:
				t.Errorf("Validate() = nil, want %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("Validate() = %v\nwant it to contain %q", err, tt.want)
			}
		})
	}
}

// fromSecret returns a mutation that takes keys from the Secret
// namespace/name instead of keys.dir, then applies more.
func fromSecret(name, namespace string, more ...func(*Config)) func(*Config) {
	return func(c *Config) {
		c.Keys.Dir = ""
		c.Keys.Secret = SecretRef{Name: name, Namespace: namespace}
		for _, f := range more {
			f(c)
		}
	}
}

// plain returns a mutation that installs cookies without prefixes, then
// applies f to them.
func plain(f func(*Cookies)) func(*Config) {
	return func(c *Config) {
		c.Cookies = Cookies{Policy: cookie.Policy{Access: "at", Refresh: "rt", Hint: "exp", Path: "/", Secure: true}, SameSite: "Lax"}
		f(&c.Cookies)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default() // keys.dir missing
	c.Issuer = ""
	c.Listen.Admin.Address = ":9001"
	c.Tokens.RefreshBefore = 10 * time.Minute
	c.Sessions.Grace = time.Hour
	c.Cookies.Domain = "example.com"
	c.Policy.PublicPaths = []string{"/a/../b"}
	c.Store.Backend = "mongo"
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	want := []string{
		"issuer: must not be empty",
		"listen.admin.address: \":9001\" conflicts with listen.grpc.address",
		"tokens.refreshBefore: must be under half of tokens.accessTTL (15m0s)",
		"sessions.grace: must be under tokens.accessTTL (15m0s)",
		"keys.dir: required outside development",
		"cookies.domain: must be empty with the __Host- prefix",
		"policy.publicPaths[0]",
		"store.backend: must be one of memory, redis",
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(lines), len(want), err)
	}
	for i, w := range want {
		if i < len(lines) && !strings.HasPrefix(lines[i], w) {
			t.Errorf("problem %d = %q, want prefix %q", i, lines[i], w)
		}
	}
	// errors.Join: each problem is its own error.
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != len(want) {
		t.Errorf("Validate() is not an errors.Join of %d errors: %#v", len(want), err)
	}
}

func TestNormalized(t *testing.T) {
	c := valid()
	c.Cookies.SameSite = "sTRICT"
	c.Log.Level = "WARN"
	c.Log.Format = "Text"
	c.Store.Backend = "MEMORY"
	c.Policy.AccessTokenHeader = "X-Access-Token"
	c.Policy.ClaimHeaders = map[string]string{"X-User-Id": "sub"}
	c.Policy.TrustedOrigins = []string{"HTTPS://App.Example"}
	c.Policies = map[string]NamedPolicy{"a": {ClaimHeaders: map[string]string{"X-Email": "email"}}}
	before := c.clone()
	got := c.Normalized()
	if err := got.Validate(); err != nil {
		t.Fatal(err)
	}
	want := before.clone()
	want.Cookies.SameSite = "Strict"
	want.Log.Level = "warn"
	want.Log.Format = "text"
	want.Store.Backend = "memory"
	want.Policy.AccessTokenHeader = "x-access-token"
	want.Policy.ClaimHeaders = map[string]string{"x-user-id": "sub"}
	want.Policy.TrustedOrigins = []string{"https://app.example"}
	want.Policies = map[string]NamedPolicy{"a": {ClaimHeaders: map[string]string{"x-email": "email"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Normalized() =\n%+v\nwant\n%+v", got, want)
	}
	// The receiver, its maps and its slices are left as they were.
	if !reflect.DeepEqual(c, before) {
		t.Errorf("Normalized changed its receiver:\n%+v", c)
	}
	// Normalising twice changes nothing more.
	if again := got.Normalized(); !reflect.DeepEqual(again, got) {
		t.Errorf("second Normalized: %+v", again)
	}
}

// Validate judges; it never rewrites what it judges, even through the
// maps and slices its argument shares with the caller.
func TestValidateChangesNothing(t *testing.T) {
	for _, mutate := range []func(*Config){
		func(c *Config) {}, // valid
		func(c *Config) {
			c.Cookies.SameSite, c.Log.Level, c.Store.Backend = "strict", "DEBUG", "Redis"
			c.Policy.AccessTokenHeader = "X-Token"
			c.Policy.ClaimHeaders = map[string]string{"X-User": "sub", "X-Mail": "email"}
			c.Policy.TrustedOrigins = []string{"HTTPS://A.Example"}
			c.Policies = map[string]NamedPolicy{"a": {ClaimHeaders: map[string]string{"X-Role": "role"}}}
		},
		func(c *Config) { c.Policy.ClaimHeaders = map[string]string{"X-User": "sub", "x-user": "email"} }, // invalid
	} {
		c := valid()
		mutate(&c)
		before := c.clone()
		_ = c.Validate()
		_ = c.Warnings()
		if !reflect.DeepEqual(c, before) {
			t.Errorf("Validate changed its argument:\n%+v\nwas\n%+v", c, before)
		}
	}
}

func TestResolvedPolicy(t *testing.T) {
	c := valid()
	c.Policy.LoginURL = "/login"
	c.Policy.PublicPaths = []string{"/healthz"}
	c.Policies = map[string]NamedPolicy{"admin": {Audience: "admin-app", RequiredClaims: map[string][]string{"role": {"admin"}}}}
	p, aud := c.Resolved("admin")
	if aud != "admin-app" || p.LoginURL != "/login" || len(p.PublicPaths) != 1 || p.RequiredClaims["role"][0] != "admin" {
		t.Errorf("Resolved(admin) = %+v, %q", p, aud)
	}
	if p, aud := c.Resolved(""); aud != "silentauth" || p.RequiredClaims != nil {
		t.Errorf("Resolved(\"\") = %+v, %q", p, aud)
	}
}

// Every wrong acceptSessionsFrom entry is reported at once, each with its
// path; and SessionSharing answers in the session package's names ("" is
// the top-level policy), one direction at a time, nothing inherited.
func TestSessionSharing(t *testing.T) {
	c := valid()
	c.Policy.AcceptSessionsFrom = []string{"nope"}
	c.Policies = map[string]NamedPolicy{"admin": {AcceptSessionsFrom: []string{"shop", "gone", "admin"}}, "shop": {}}
	err := c.Validate()
	for _, want := range []string{"policy.acceptSessionsFrom[0]", "policies.admin.acceptSessionsFrom[1]", "policies.admin.acceptSessionsFrom[2]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want a problem at %s", err, want)
		}
	}

	c = valid()
	c.Policy.AcceptSessionsFrom = []string{"shop"}
	c.Policies = map[string]NamedPolicy{"admin": {AcceptSessionsFrom: []string{"shop", "default"}}, "shop": {}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	accepts := c.SessionSharing()
	tests := []struct {
		policy, from string
		want         bool
	}{
		{"admin", "shop", true},
		{"admin", "", true}, // "default" in the list
		{"", "shop", true},  // policy.acceptSessionsFrom
		{"shop", "admin", false},
		{"shop", "", false}, // policy's list is not inherited
		{"", "admin", false},
		{"admin", "default", false}, // a family's policy is never "default"
	}
	for _, tc := range tests {
		if got := accepts(tc.policy, tc.from); got != tc.want {
			t.Errorf("accepts(%q, %q) = %t, want %t", tc.policy, tc.from, got, tc.want)
		}
	}
	if p, _ := c.Resolved("shop"); p.AcceptSessionsFrom != nil {
		t.Errorf("shop inherits acceptSessionsFrom %v", p.AcceptSessionsFrom)
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string // each a prefix of one warning, in order
	}{
		{"defaults", func(c *Config) {}, nil},
		{"development", func(c *Config) { *c = Development() }, nil},
		{"proxies", func(c *Config) { c.HTTPAuthz.TrustedProxies = []string{"10.0.0.0/8", "192.168.1.7", "fd00::/8"} }, nil},
		{"proxies trust all IPv4", func(c *Config) { c.HTTPAuthz.TrustedProxies = []string{"10.0.0.1", "0.0.0.0/0"} }, []string{"httpAuthz.trustedProxies: trusts every IPv4 address"}},
		{"proxies trust all IPv6", func(c *Config) { c.HTTPAuthz.TrustedProxies = []string{"::/0"} }, []string{"httpAuthz.trustedProxies: trusts every IPv6 address"}},
		{"proxies /0 of any address", func(c *Config) { c.HTTPAuthz.TrustedProxies = []string{"10.1.2.3/0", "2001:db8::/0"} }, []string{"httpAuthz.trustedProxies: trusts every IPv4", "httpAuthz.trustedProxies: trusts every IPv6"}},
		{"proxies halves add up", func(c *Config) { c.HTTPAuthz.TrustedProxies = []string{"128.0.0.0/1", "0.0.0.0/2", "64.0.0.0/2"} }, []string{"httpAuthz.trustedProxies: trusts every IPv4 address"}},
		{"proxies halves with a gap", func(c *Config) { c.HTTPAuthz.TrustedProxies = []string{"128.0.0.0/1", "0.0.0.0/2", "64.0.0.0/3"} }, nil},
		{"proxies mapped IPv4", func(c *Config) { c.HTTPAuthz.TrustedProxies = []string{"::ffff:0.0.0.0/96"} }, nil},
		{"public root", func(c *Config) { c.Policy.PublicPaths = []string{"/healthz", "/"} }, []string{`policy.publicPaths[1]: "/" makes every path public`}},
		{"public covers refresh", func(c *Config) { c.Policy.PublicPaths = []string{"/auth/"} }, []string{
			`policy.publicPaths[0]: "/auth/" covers policy.refreshPath ("/auth/refresh")`,
			`policy.publicPaths[0]: "/auth/" covers policy.logoutPath ("/auth/logout")`,
		}},
		{"public is logout", func(c *Config) { c.Policy.PublicPaths = []string{"/auth/logout"} }, []string{`policy.publicPaths[0]: "/auth/logout" covers policy.logoutPath`}},
		{"public beside refresh", func(c *Config) { c.Policy.PublicPaths = []string{"/auth/refresh/", "/auth/ref"} }, nil},
		{"named public covers refresh", func(c *Config) { c.Policies = map[string]NamedPolicy{"a": {PublicPaths: []string{"/auth/refresh"}}} }, []string{`policies.a.publicPaths[0]: "/auth/refresh" covers policy.refreshPath`}},
		{"named public root", func(c *Config) { c.Policies = map[string]NamedPolicy{"b": {PublicPaths: []string{"/"}}} }, []string{`policies.b.publicPaths[0]: "/" makes every path public`}},
		{"invalid public path skipped", func(c *Config) { c.Policy.PublicPaths = []string{"/auth/../"} }, nil},
		{"origins", func(c *Config) {
			c.Policy.TrustedOrigins = []string{"https://a.example", "http://localhost:3000", "http://127.0.0.1:8080", "http://[::1]:3000", "http://app.localhost"}
		}, nil},
		{"origin http", func(c *Config) { c.Policy.TrustedOrigins = []string{"https://a.example", "HTTP://B.Example"} }, []string{`policy.trustedOrigins[1]: "http://b.example" is plain http`}},
		{"origin wildcard", func(c *Config) { c.Policy.TrustedOrigins = []string{"https://*.example.com"} }, []string{`policy.trustedOrigins[0]: "https://*.example.com": origins match exactly, "*" is no wildcard`}},
		{"login https", func(c *Config) { c.Policy.LoginURL = "https://id.example/login" }, nil},
		{"login path", func(c *Config) { c.Policy.LoginURL = "/login" }, nil},
		{"login localhost", func(c *Config) { c.Policy.LoginURL = "http://localhost:3000/login" }, nil},
		{"login http", func(c *Config) { c.Policy.LoginURL = "http://id.example/login" }, []string{`policy.loginURL: "http://id.example/login" is plain http`}},
		{"named login http", func(c *Config) { c.Policies = map[string]NamedPolicy{"a": {LoginURL: "http://10.0.0.1/login"}} }, []string{`policies.a.loginURL: "http://10.0.0.1/login" is plain http`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			got := c.Warnings()
			if len(got) != len(tt.want) {
				t.Fatalf("Warnings() = %q, want %d", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("warning %d = %q, want prefix %q", i, got[i], w)
				}
			}
		})
	}
}

// Warnings are not problems: a configuration that warns still validates.
func TestWarningsAreNotErrors(t *testing.T) {
	c := valid()
	c.HTTPAuthz.TrustedProxies = []string{"0.0.0.0/0"}
	c.Policy.PublicPaths = []string{"/"}
	c.Policy.LoginURL = "http://id.example/login"
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
	if got := len(c.Warnings()); got != 3 {
		t.Errorf("%d warnings, want 3", got)
	}
}
