package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"k8s.io/client-go/rest"

	"github.com/silentauth/silentauth/authz"
	"github.com/silentauth/silentauth/authz/config"
	"github.com/silentauth/silentauth/authz/httpauthz"
	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/authz/oidc"
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/sessionapi"
	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/authz/token"
	"github.com/silentauth/silentauth/internal/buildinfo"
	internalhealth "github.com/silentauth/silentauth/internal/health"
	"github.com/silentauth/silentauth/internal/tlsreload"
)

// serve runs the service until ctx is cancelled, then shuts down in order:
// readiness and gRPC health NOT_SERVING, a drain period, gRPC GracefulStop
// with a deadline, HTTP Shutdown with a timeout.
func serve(ctx context.Context, cfg config.Completed, getenv func(string) string, stderr io.Writer) error {
	env := newEnv(cfg, getenv, stderr)
	ring, kube, err := env.keyring(ctx, cfg)
	if err != nil {
		return err
	}
	auth, err := sessionAPIAuth(cfg, getenv, kube, env.log)
	if err != nil {
		return err
	}
	st, closeStore, err := openStore(ctx, cfg, env)
	if err != nil {
		return err
	}
	defer closeStore()
	login, provider, err := providerLogin(ctx, cfg, env, ring, st)
	if err != nil {
		return err
	}
	// Refresh tokens are MACs under keys derived from the signing keys:
	// every replica mints and verifies the same tokens, and a key
	// rotation logs nobody out (see package session).
	opts := []session.Option{session.AcceptSessions(cfg.SessionSharing()), session.RefreshKeys(ring)}
	if login != nil {
		opts = append(opts, session.WithProvider(login.Refresher(provider, time.Now, env.log), cfg.OIDC.RefreshLease))
	}
	opts = append(opts, session.OnRevoke(revocationObserver(env.log, env.reg)))
	sessions := session.New(st, cfg.Sessions, time.Now, opts...)
	// Rotations whose caller left and refresh-token confirmations finish
	// before the store closes.
	defer sessions.Wait()
	srv, err := newServers(cfg, env, ring, sessions, auth, login)
	if err != nil {
		return err
	}
	// Bind every listener before serving anything, so a port clash fails
	// the start instead of leaving a half-running service.
	lns, err := listen(cfg, env.log, srv.apiTLS)
	defer closeAll(lns)
	if err != nil {
		return err
	}
	errc := srv.start(lns)
	env.log.Info("silentauth ready")
	if cfg.Development {
		printDevBanner(stderr, lns, auth)
	}
	select {
	case <-ctx.Done():
		srv.shutdown(cfg.Shutdown, env, cfg.Shutdown.Drain)
		return nil
	case err := <-errc:
		env.log.Error("listener failed; shutting down", "error", err)
		srv.shutdown(cfg.Shutdown, env, 0)
		return err
	}
}

// revocationObserver is the session Manager's OnRevoke hook: one security
// log line per family that ends (warn for a reuse, a likely theft; info
// otherwise) and silentauth_session_revocations_total{cause}, every cause
// counted from 0. A reuse also has the Check's own decision line, which
// names the client that presented the token.
func revocationObserver(log *slog.Logger, reg prometheus.Registerer) func(session.Revocation) {
	total := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "silentauth_session_revocations_total",
		Help: "Sessions (refresh-token families) revoked, by cause: reuse, logout, backchannel, admin, provider.",
	}, []string{"cause"})
	reg.MustRegister(total)
	counters := make(map[string]prometheus.Counter)
	for _, c := range session.Causes() {
		counters[c] = total.WithLabelValues(c)
	}
	return func(r session.Revocation) {
		c, ok := counters[r.Cause]
		if !ok { // not a cause (never happens: Manager refuses others)
			c = total.WithLabelValues(r.Cause)
		}
		c.Inc()
		level := slog.LevelInfo
		if r.Cause == session.CauseReuse {
			level = slog.LevelWarn
		}
		log.LogAttrs(context.Background(), level, "session revoked",
			slog.String("event", "session_revoked"), slog.String("cause", r.Cause),
			slog.String("subject", r.Subject), slog.String("session", r.Family),
			slog.String("provider_sid", r.ProviderSID), slog.Uint64("generation", r.Generation))
	}
}

// env is what every part of the service shares: the log, the metrics
// registry, the health checks and the environment.
type env struct {
	log    *slog.Logger
	reg    *prometheus.Registry
	checks *internalhealth.Registry
	getenv func(string) string
}

// newEnv starts the log (and writes the configuration and its warnings to
// it) and the metrics registry with Go's own collectors.
func newEnv(cfg config.Completed, getenv func(string) string, stderr io.Writer) *env {
	log := newLogger(cfg, stderr)
	build := buildinfo.Get()
	log.Info("starting silentauth", "version", build.Version, "commit", build.Commit, "goversion", build.GoVersion, "config", cfg.Config)
	for _, w := range cfg.Warnings() {
		log.Warn("configuration allows what is probably a mistake", "warning", w)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfoGauge(build))
	return &env{log: log, reg: reg, checks: internalhealth.New(), getenv: getenv}
}

// buildInfoGauge is the constant silentauth_build_info metric, always 1, whose
// labels name the running build: the Prometheus convention for joining a
// version to other series (`* on(instance) group_left(version)`).
func buildInfoGauge(b buildinfo.Info) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "silentauth_build_info",
		Help:        "The running build of silentauth: version, VCS revision and Go version as labels; always 1.",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Commit, "goversion": b.GoVersion},
	})
	g.Set(1)
	return g
}

// keyring fills a keyring from the key Secret (watched) or keys.dir (read
// once; generated in development), and returns the Kubernetes API config
// when the Secret or the session API's ServiceAccounts need one.
func (e *env) keyring(ctx context.Context, cfg config.Completed) (*keys.Holder, *rest.Config, error) {
	ring := &keys.Holder{}
	keys.RegisterMetrics(e.reg, ring, time.Now)
	var kube *rest.Config
	if cfg.Keys.Secret.Name != "" || len(cfg.SessionAPI.ServiceAccounts) > 0 {
		var err error
		if kube, err = kubeConfig(cfg.Keys.Kubeconfig, e.log); err != nil {
			return nil, nil, err
		}
	}
	if cfg.Keys.Secret.Name != "" {
		return ring, kube, watchSecretKeys(ctx, cfg, kube, ring, e)
	}
	if err := loadKeys(cfg.Config, ring, e.log); err != nil {
		return nil, nil, err
	}
	e.checks.Add("keyring", true, func() internalhealth.Status {
		r := ring.Keyring()
		return internalhealth.Status{OK: true, Message: fmt.Sprintf("%d key(s) from %s, signing with %s", len(r.Keys()), keySource(cfg.Config), r.Signer(time.Now()).ID)}
	})
	return ring, kube, nil
}

// servers are the gRPC server and the three HTTP servers, not yet
// listening.
type servers struct {
	grpc   *grpc.Server
	health *health.Server
	http   map[string]*http.Server // by listener: public, sessionAPI, admin
	apiTLS *tls.Config             // of the session API, nil without TLS
}

// newServers builds the Engine over every route and the servers that
// answer with it: gRPC Check and health, the public JWKS (and the HTTP
// authorization mode), the session API and the admin endpoints.
func newServers(cfg config.Completed, e *env, ring *keys.Holder, sessions *session.Manager, auth *apiAuth, login *authz.Login) (*servers, error) {
	def, named := routes(cfg, ring)
	engine, err := authz.NewEngine(authz.Options{
		Verifier: def.Verifier, Minter: def.Minter, Policy: def.Policy, Named: named,
		Sessions: sessions, Cookies: cfg.CookiePolicy, RefreshBefore: cfg.Tokens.RefreshBefore,
		Login: login,
	})
	if err != nil {
		return nil, err
	}
	checkMetrics := authz.NewMetrics(e.reg, cfg.Log.CheckLinesPerSecond)
	s := &servers{health: health.NewServer()}
	grpcTLS, err := listenerTLS(cfg.Listen.GRPC.TLS, "grpc", e.log)
	if err != nil {
		return nil, err
	}
	grpcOpts := authz.GRPCOptions()
	if grpcTLS != nil {
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(grpcTLS)))
	}
	s.grpc = grpc.NewServer(grpcOpts...)
	authv3.RegisterAuthorizationServer(s.grpc, authz.NewServer(engine, e.log, checkMetrics))
	healthpb.RegisterHealthServer(s.grpc, s.health)
	if s.apiTLS, err = listenerTLS(cfg.Listen.SessionAPI.TLS, "sessionAPI", e.log); err != nil {
		return nil, err
	}
	minters := make(map[string]*token.Minter, len(named))
	for name, rt := range named {
		minters[name] = rt.Minter
	}
	api := sessionapi.New(sessionapi.Options{
		Auth: auth, Sessions: sessions, Minter: def.Minter, Minters: minters, Cookies: cfg.CookiePolicy, Log: e.log,
	})
	s.http = map[string]*http.Server{
		"public":     newHTTPServer(publicHandler(cfg, e, ring, engine, checkMetrics, backChannel(login, sessions, e)), e.log),
		"sessionAPI": newHTTPServer(api, e.log),
		"admin":      newHTTPServer(adminHandler(cfg, e), e.log),
	}
	return s, nil
}

// listenerTLS loads the reloading server certificate of listener name, or
// returns nil without TLS.
func listenerTLS(t config.TLS, name string, log *slog.Logger) (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	rl, err := tlsreload.New(t.CertFile, t.KeyFile, t.ClientCAFile, log.With("listener", name))
	if err != nil {
		return nil, fmt.Errorf("listen.%s.tls: %w", name, err)
	}
	return rl.TLSConfig(), nil
}

// backChannel returns the back-channel logout handler of provider login,
// or nil when provider login is off.
func backChannel(login *authz.Login, sessions *session.Manager, e *env) http.Handler {
	if login == nil {
		return nil
	}
	return login.BackChannel(sessions, e.log.With("component", "backchannel"))
}

// publicHandler serves the JWKS, the back-channel logout endpoint of
// provider login (bcl, nil when off) and, when enabled, the HTTP
// authorization mode. The mode sits in front of the mux, not on it:
// ServeMux would redirect the unnormalised paths Envoy's path_prefix
// passes on, which the Engine must judge itself.
func publicHandler(cfg config.Completed, e *env, ring *keys.Holder, engine *authz.Engine, m *authz.Metrics, bcl http.Handler) http.Handler {
	public := http.NewServeMux()
	public.Handle("/.well-known/jwks.json", keys.JWKSHandler(ring, cfg.Keys.JWKSMaxAge))
	if bcl != nil {
		public.Handle(cfg.OIDC.BackChannelLogoutPath, bcl)
	}
	if !cfg.HTTPAuthz.Enabled {
		return public
	}
	return httpauthz.NewHandler(engine, httpauthz.Options{
		Profile: httpauthz.Profile(cfg.HTTPAuthz.Profile), TrustedProxies: cfg.TrustedProxies, Next: public,
	}, e.log, m)
}

// adminHandler serves metrics, health and, when enabled, pprof.
func adminHandler(cfg config.Completed, e *env) http.Handler {
	admin := http.NewServeMux()
	admin.Handle("/metrics", promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{Registry: e.reg}))
	admin.HandleFunc("/healthz", e.checks.Livez)
	admin.HandleFunc("/livez", e.checks.Livez)
	admin.HandleFunc("/readyz", e.checks.Readyz)
	if cfg.Profiling {
		admin.HandleFunc("/debug/pprof/", pprof.Index)
		admin.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		admin.HandleFunc("/debug/pprof/profile", pprof.Profile)
		admin.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		admin.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return admin
}

// listen binds the four listeners, the session API's behind apiTLS when
// set. On error it returns those already bound, for the caller to close.
func listen(cfg config.Completed, log *slog.Logger, apiTLS *tls.Config) (map[string]net.Listener, error) {
	lns := map[string]net.Listener{}
	for name, addr := range map[string]string{
		"grpc": cfg.Listen.GRPC.Address, "public": cfg.Listen.Public.Address,
		"sessionAPI": cfg.Listen.SessionAPI.Address, "admin": cfg.Listen.Admin.Address,
	} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return lns, fmt.Errorf("listen.%s.address: %w", name, err)
		}
		lns[name] = ln
		log.Info("listening", "listener", name, "address", ln.Addr().String())
	}
	if apiTLS != nil {
		lns["sessionAPI"] = tls.NewListener(lns["sessionAPI"], apiTLS)
	}
	return lns, nil
}

func closeAll(lns map[string]net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// start serves every server on its listener and reports health SERVING.
// The channel receives the first listener that fails.
func (s *servers) start(lns map[string]net.Listener) <-chan error {
	errc := make(chan error, 4)
	go func() { errc <- s.grpc.Serve(lns["grpc"]) }()
	for name, srv := range s.http {
		go func() {
			if err := srv.Serve(lns[name]); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s listener: %w", name, err)
			}
		}()
	}
	setServing(s.health, healthpb.HealthCheckResponse_SERVING)
	return errc
}

func (s *servers) shutdown(c config.Shutdown, e *env, drain time.Duration) {
	shutdown(c, e.log, e.checks, s.health, s.grpc, s.http, drain)
}

func shutdown(c config.Shutdown, log *slog.Logger, checks *internalhealth.Registry, gh *health.Server,
	gs *grpc.Server, hs map[string]*http.Server, drain time.Duration) {
	log.Info("shutting down", "drain", drain.String())
	checks.Drain()
	setServing(gh, healthpb.HealthCheckResponse_NOT_SERVING)
	// Drain: keep answering while load balancers and Envoy notice.
	time.Sleep(drain)
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(c.Timeout):
		log.Warn("gRPC graceful stop timed out; closing connections")
		gs.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	for name, srv := range hs {
		if err := srv.Shutdown(ctx); err != nil {
			log.Warn("HTTP shutdown incomplete", "listener", name, "error", err)
		}
	}
	log.Info("stopped")
}

func setServing(gh *health.Server, s healthpb.HealthCheckResponse_ServingStatus) {
	gh.SetServingStatus("", s)
	gh.SetServingStatus(authv3.Authorization_ServiceDesc.ServiceName, s)
}

func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

func newLogger(cfg config.Completed, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogText {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// loadKeys fills ring from keys.dir, or in development generates an ES256
// key that lives only in memory.
func loadKeys(cfg config.Config, ring *keys.Holder, log *slog.Logger) error {
	if cfg.Keys.Dir == "" {
		k, err := keys.Generate(keys.ES256)
		if err != nil {
			return err
		}
		r, err := keys.NewKeyring(k)
		if err != nil {
			return err
		}
		ring.Store(r)
		log.Warn("development signing key generated in memory; tokens die with this process", "kid", k.ID, "alg", string(k.Alg))
		return nil
	}
	r, err := keys.LoadDir(cfg.Keys.Dir, cfg.Keys.Active)
	if err != nil {
		return fmt.Errorf("keys.dir: %w", err)
	}
	ring.Store(r)
	for _, k := range r.Keys() {
		log.Info("signing key loaded", "kid", k.ID, "alg", string(k.Alg), "signs", k == r.Signer(time.Now()))
	}
	return nil
}

// sessionAPIAuth builds the session API's authentication: the bearer
// secret from sessionAPI.tokenFile or SILENTAUTH_API_TOKEN, and/or the
// allowed ServiceAccounts through TokenReview. In development, with
// neither, it generates a secret, which the banner prints once.
func sessionAPIAuth(cfg config.Completed, getenv func(string) string, kube *rest.Config, log *slog.Logger) (*apiAuth, error) {
	secret := getenv("SILENTAUTH_API_TOKEN")
	source := "SILENTAUTH_API_TOKEN"
	if f := cfg.SessionAPI.TokenFile; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("sessionAPI.tokenFile: %w", err)
		}
		secret, source = strings.TrimSpace(string(b)), f
	}
	a := &apiAuth{}
	var auths []sessionapi.Authenticator
	if len(cfg.SessionAPI.ServiceAccounts) > 0 {
		review, err := sessionapi.NewReviewer(kube)
		if err != nil {
			return nil, fmt.Errorf("kubernetes client: %w", err)
		}
		auths = append(auths, sessionapi.NewTokenReview(review, cfg.SessionAPI.Audience, cfg.SessionAPI.ServiceAccounts, time.Now))
		log.Info("session API authentication", "method", "tokenreview", "audience", cfg.SessionAPI.Audience, "serviceAccounts", cfg.SessionAPI.ServiceAccounts)
	}
	if secret == "" && len(auths) == 0 && cfg.OIDC.Enabled() && !cfg.Development {
		// Users log in through the provider; no app starts sessions.
		log.Info("session API authentication", "method", "none", "note", "no caller configured: every call is refused; sessions start through provider login")
		a.Authenticator = sessionapi.AnyOf()
		return a, nil
	}
	if secret == "" && len(auths) == 0 {
		if !cfg.Development {
			return nil, errors.New("sessionAPI: set sessionAPI.tokenFile, SILENTAUTH_API_TOKEN or sessionAPI.serviceAccounts")
		}
		b := make([]byte, 32)
		rand.Read(b)
		secret, source = base64.RawURLEncoding.EncodeToString(b), "generated"
		a.printable = secret
	}
	if secret != "" {
		if len(secret) < 16 {
			return nil, fmt.Errorf("sessionAPI: the token from %s is shorter than 16 characters", source)
		}
		auths = append(auths, sessionapi.NewBearer(secret))
		log.Info("session API authentication", "method", "bearer", "source", source, "fingerprint", authz.Fingerprint(secret))
	}
	a.Authenticator = sessionapi.AnyOf(auths...)
	return a, nil
}

// apiAuth is the session API's authenticator, holding the secret in clear
// only when it was generated for development, to print it once.
type apiAuth struct {
	sessionapi.Authenticator
	printable string
}

func keySource(cfg config.Config) string {
	if cfg.Keys.Dir != "" {
		return cfg.Keys.Dir
	}
	return "memory (development)"
}

// printDevBanner prints how to use the running development service. The
// generated session-API token is the one secret silentauth ever prints.
func printDevBanner(w io.Writer, lns map[string]net.Listener, a *apiAuth) {
	token := a.printable
	if token == "" {
		token = "$SILENTAUTH_API_TOKEN"
	}
	api, grpcAddr, public := lns["sessionAPI"].Addr(), lns["grpc"].Addr(), lns["public"].Addr()
	fmt.Fprintf(w, `
  silentauth is running on development defaults (loopback only, in-memory keys and sessions).

  Session-API token (printed once): %s

  Start a session:
    curl -s -X POST http://%s/v1/sessions -H 'Authorization: Bearer %s' \
         -H 'Content-Type: application/json' -d '{"subject":"alice","claims":{"role":"admin"}}'

  Ask Check about a request carrying its access token (as Envoy would):
    go run ./cmd/silentauth check --addr %s --path /api/hello --token ACCESS_TOKEN

  JWKS: http://%s/.well-known/jwks.json    Press Ctrl-C to stop.

`, token, api, token, grpcAddr, public)
}

// routes builds the default route and the named ones, each with the
// verifier and minter of its audience.
func routes(cfg config.Completed, ring keys.Source) (authz.Route, map[string]authz.Route) {
	named := make(map[string]authz.Route, len(cfg.Routes)-1)
	for name, r := range cfg.Routes {
		if name != "" {
			named[name] = route(cfg, r, ring)
		}
	}
	return route(cfg, cfg.Routes[""], ring), named
}

func route(cfg config.Completed, r config.Route, ring keys.Source) authz.Route {
	return authz.Route{
		Minter: token.NewMinter(token.MinterOptions{Issuer: cfg.Issuer, Audience: r.Audience, TTL: cfg.Tokens.AccessTTL, Keys: ring}),
		Verifier: token.NewVerifier(token.VerifierOptions{
			Issuer: cfg.Issuer, Audiences: []string{r.Audience}, Leeway: cfg.Tokens.Leeway, Keys: ring,
			MaxTokenBytes: cfg.Tokens.MaxBytes, CacheSize: cfg.Tokens.CacheSize,
		}),
		Policy: r.Policy.Policy,
	}
}

// providerLogin connects to the identity provider of the oidc section
// (discovery, refreshed hourly until ctx ends) and returns the Check's
// provider login, or nil when the section is off. The client secret comes
// from oidc.clientSecretFile, else SILENTAUTH_OIDC_CLIENT_SECRET.
func providerLogin(ctx context.Context, cfg config.Completed, e *env, ring *keys.Holder, st store.Store) (*authz.Login, *oidc.Provider, error) {
	if !cfg.OIDC.Enabled() {
		return nil, nil, nil
	}
	secret := e.getenv("SILENTAUTH_OIDC_CLIENT_SECRET")
	if f := cfg.OIDC.ClientSecretFile; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("oidc.clientSecretFile: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	p, err := oidc.New(ctx, cfg.OIDC, secret, e.log.With("component", "oidc"))
	if err != nil {
		return nil, nil, fmt.Errorf("oidc: %w", err)
	}
	go p.Run(ctx)
	fp := ""
	if secret != "" {
		fp = authz.Fingerprint(secret)
	}
	e.log.Info("provider login", "issuer", cfg.OIDC.IssuerURL, "clientID", cfg.OIDC.ClientID, "clientSecret", fp, "callbackPath", cfg.OIDC.CallbackPath)
	return &authz.Login{Provider: p, Keys: ring, Options: cfg.OIDC, Store: st, Log: e.log}, p, nil
}
