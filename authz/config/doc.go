// Package config is silentauth's one configuration struct: its documented
// defaults, loading from YAML (unknown fields are errors), environment and
// flag overrides, Validate, which reports every problem at once with the
// field's path, and Warnings, which lists what is valid but probably a
// mistake. Code outside this package sees only validated values.
//
// # Sources and precedence
//
// Settings are layered, later sources winning:
//
//	defaults (Default or Development)  <  YAML file  <  environment (ApplyEnv)  <  flags (Overrides.Apply)
//
// Resolve applies the layers in that order and then validates; Complete
// then parses the result into the Completed the service runs with. ApplyEnv
// and Overrides.Apply do not validate, because a later layer may still fix what an earlier one left
// incomplete (keys.dir from SILENTAUTH_KEYS_DIR, for example).
//
// # File
//
// The file is one YAML document of at most MaxFileSize bytes. Unknown fields,
// repeated keys and further documents are errors. Durations are Go duration
// strings ("30s", "15m", "720h"); a bare number is refused. A field that is
// absent, or present with no value, keeps its default. Example returns a
// complete file listing every field with its default.
//
// A file that parses is decoded as far as it goes: unknown fields (with
// their path and line) and values of the wrong type (with their line) are
// reported by Resolve together with every problem Validate finds in the
// rest, not instead of them. Only a syntax error or a second document stops
// at the file.
//
// # Environment
//
// ApplyEnv reads the variables below through an injected getenv. An empty or
// unset variable changes nothing; surrounding white space is trimmed.
//
//	Variable                          Field                       Value
//	SILENTAUTH_LOG_LEVEL              log.level                   debug, info, warn or error
//	SILENTAUTH_LOG_FORMAT             log.format                  json or text
//	SILENTAUTH_GRPC_ADDRESS           listen.grpc.address         host:port of the ext_authz gRPC listener
//	SILENTAUTH_PUBLIC_ADDRESS         listen.public.address       host:port of the JWKS listener
//	SILENTAUTH_SESSION_API_ADDRESS    listen.sessionAPI.address   host:port of the session API listener
//	SILENTAUTH_ADMIN_ADDRESS          listen.admin.address        host:port of the metrics and health listener
//	SILENTAUTH_KEYS_DIR               keys.dir                    directory of PEM signing keys
//	SILENTAUTH_KEYS_SECRET            keys.secret.name            Kubernetes Secret of signing keys
//	SILENTAUTH_KEYS_SECRET_NAMESPACE  keys.secret.namespace       namespace of that Secret (default: the pod's)
//	SILENTAUTH_ISSUER                 issuer                      iss of every access token
//	SILENTAUTH_AUDIENCE               audience                    aud of every access token
//	SILENTAUTH_ACCESS_TTL             tokens.accessTTL            access-token lifetime, a Go duration ("15m")
//
// The same list is available to programs as EnvVars, for help texts.
//
// SILENTAUTH_API_TOKEN is not a setting: it is the session-API bearer secret
// itself, used when sessionAPI.tokenFile is empty. Config never holds it;
// Resolve only checks, outside Development, that one of the two is present
// or that sessionAPI.serviceAccounts lists callers.
//
// POD_NAMESPACE and KUBECONFIG are not settings either: Keys.SecretNamespace
// reads POD_NAMESPACE when keys.secret.namespace is empty, and the Kubernetes
// client reads KUBECONFIG when keys.kubeconfig is empty outside a cluster.
//
// # Flags
//
// RegisterFlags adds --grpc-address, --public-address, --session-api-address,
// --admin-address, --log-level and --keys-dir. Only flags given on the
// command line override; their defaults are empty so that help never shows a
// value the file or environment may have replaced.
//
// # Validation
//
// Validate checks every field and the rules between fields, and returns all
// problems joined with errors.Join. It accepts a few spellings in any case
// (SameSite, log level and format, store backend, header names, trusted
// origins) and changes nothing: Normalized returns the copy, spelled the one
// way the program compares against, that Resolve hands out. Each message
// starts with the field's YAML path:
//
//	cookies.domain: must be empty with the __Host- prefix (cookies.access, cookies.refresh, cookies.hint)
//	tokens.refreshBefore: must be under half of tokens.accessTTL (15m0s)
//
// Among its rules: no lifetime that becomes a cookie's Max-Age exceeds the
// 400 days browsers keep a cookie (RFC 6265bis), and no header silentauth
// sets (claim headers, policy.accessTokenHeader) collides with credentials,
// framing, hop-by-hop and pseudo-headers, the headers of its own answers or
// the x-silentauth- contract of the HTTP authorization mode.
//
// # Warnings
//
// Warnings lists, in the same "path: message" form, what works but opens
// more than it seems to: trustedProxies that trust every address, a public
// path "/" or one covering the refresh or logout path, wildcard or http://
// trusted origins and an http:// login URL (loopback hosts aside). serve
// logs each at start; "silentauth config validate" prints them. They never
// stop the service.
//
// # Concurrency
//
// The functions of this package are safe for concurrent use. Validate,
// Warnings and Normalized only read their Config; ApplyEnv and
// Overrides.Apply modify the Config they are given and must not run
// concurrently with other use of it. Once validated, a Config is meant to be
// shared read-only (or swapped whole behind an atomic.Pointer).
package config
