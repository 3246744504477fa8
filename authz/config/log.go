package config

import (
	"log/slog"
	"net/url"
)

// LogValue summarises c for a startup log line: listeners, lifetimes, key
// source, cookie names, policy sizes, store and logging. Config holds no
// secret, but the summary still leaves out what is long or possibly
// sensitive: the login URL's query, the lists of paths, origins and claim
// headers and session-API ServiceAccounts (only their counts), and the
// session-API token file and kubeconfig (only whether they are set).
// Durations are strings ("15m0s"), not nanoseconds.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("development", c.Development),
		slog.String("issuer", c.Issuer),
		slog.String("audience", c.Audience),
		slog.Group("listen",
			listenerAttr("grpc", c.Listen.GRPC),
			listenerAttr("public", c.Listen.Public),
			listenerAttr("sessionAPI", c.Listen.SessionAPI),
			listenerAttr("admin", c.Listen.Admin),
		),
		slog.Group("tokens",
			slog.String("accessTTL", c.Tokens.AccessTTL.String()),
			slog.String("leeway", c.Tokens.Leeway.String()),
			slog.String("refreshBefore", c.Tokens.RefreshBefore.String()),
			slog.Int("maxBytes", c.Tokens.MaxBytes),
			slog.Int("cacheSize", c.Tokens.CacheSize),
		),
		slog.Group("sessions",
			slog.String("idleTTL", c.Sessions.Idle.String()),
			slog.String("absoluteTTL", c.Sessions.Absolute.String()),
			slog.String("grace", c.Sessions.Grace.String()),
		),
		slog.Group("keys",
			slog.String("dir", c.Keys.Dir),
			slog.String("active", c.Keys.Active),
			slog.String("secret", secretRef(c.Keys.Secret)),
			slog.Bool("kubeconfigSet", c.Keys.Kubeconfig != ""),
			slog.String("jwksMaxAge", c.Keys.JWKSMaxAge.String()),
		),
		slog.Group("cookies",
			slog.String("access", c.Cookies.Access),
			slog.String("refresh", c.Cookies.Refresh),
			slog.String("hint", c.Cookies.Hint),
			slog.String("domain", c.Cookies.Domain),
			slog.String("path", c.Cookies.Path),
			slog.Bool("secure", c.Cookies.Secure),
			slog.String("sameSite", c.Cookies.SameSite),
		),
		slog.Group("policy",
			slog.String("loginURL", withoutQuery(c.Policy.LoginURL)),
			slog.Int("publicPaths", len(c.Policy.PublicPaths)),
			slog.Int("claimHeaders", len(c.Policy.ClaimHeaders)),
			slog.Int("trustedOrigins", len(c.Policy.TrustedOrigins)),
			slog.String("refreshPath", c.Policy.RefreshPath),
			slog.String("logoutPath", c.Policy.LogoutPath),
		),
		slog.Group("sessionAPI",
			slog.Bool("tokenFileSet", c.SessionAPI.TokenFile != ""),
			slog.Int("serviceAccounts", len(c.SessionAPI.ServiceAccounts)),
			slog.String("audience", c.SessionAPI.Audience),
		),
		slog.String("store", c.Store.Backend),
		slog.Group("log",
			slog.String("level", c.Log.Level),
			slog.String("format", c.Log.Format),
			slog.Int("checkLinesPerSecond", c.Log.CheckLinesPerSecond),
		),
		slog.Bool("profiling", c.Profiling),
		slog.Group("shutdown",
			slog.String("drain", c.Shutdown.Drain.String()),
			slog.String("timeout", c.Shutdown.Timeout.String()),
		),
	)
}

// secretRef renders the key Secret as namespace/name ("" without one; the
// namespace reads "<pod>" when it defaults to the pod's).
func secretRef(s SecretRef) string {
	if s.Name == "" {
		return ""
	}
	ns := s.Namespace
	if ns == "" {
		ns = "<pod>"
	}
	return ns + "/" + s.Name
}

func listenerAttr(name string, l Listener) slog.Attr {
	return slog.Group(name,
		slog.String("address", l.Address),
		slog.Bool("tls", l.TLS.Enabled()),
		slog.Bool("clientCerts", l.TLS.ClientCAFile != ""),
	)
}

// withoutQuery drops the query, fragment and user information of a URL; it
// returns "" for what does not parse, since the summary must never fail.
func withoutQuery(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment, u.User = "", false, "", "", nil
	return u.String()
}
