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
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"slices"
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
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/sessionapi"
	"github.com/silentauth/silentauth/authz/token"
	internalhealth "github.com/silentauth/silentauth/internal/health"
	"github.com/silentauth/silentauth/internal/tlsreload"
)

// serve runs the service until ctx is cancelled, then shuts down in order:
// readiness and gRPC health NOT_SERVING, a drain period, gRPC GracefulStop
// with a deadline, HTTP Shutdown with a timeout.
func serve(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := loadConfig("serve", args, getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	log.Info("starting silentauth", "config", cfg)
	for _, w := range cfg.Warnings() {
		log.Warn("configuration allows what is probably a mistake", "warning", w)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	checks := internalhealth.New()

	ring := &keys.Holder{}
	keys.RegisterMetrics(reg, ring, time.Now)
	var kube *rest.Config
	if cfg.Keys.Secret.Name != "" || len(cfg.SessionAPI.ServiceAccounts) > 0 {
		if kube, err = kubeConfig(cfg, log); err != nil {
			return err
		}
	}
	if cfg.Keys.Secret.Name != "" {
		if err := watchSecretKeys(ctx, cfg, kube, getenv, ring, log, reg, checks); err != nil {
			return err
		}
	} else {
		if err := loadKeys(cfg, ring, log); err != nil {
			return err
		}
		checks.Add("keyring", true, func() internalhealth.Status {
			r := ring.Keyring()
			return internalhealth.Status{OK: true, Message: fmt.Sprintf("%d key(s) from %s, signing with %s", len(r.Keys()), keySource(cfg), r.Signer(time.Now()).ID)}
		})
	}

	apiAuth, err := sessionAPIAuth(cfg, getenv, kube, log)
	if err != nil {
		return err
	}

	st, closeStore, err := openStore(ctx, cfg, getenv, log, reg, checks)
	if err != nil {
		return err
	}
	defer closeStore()
	sessions := session.New(st, session.Lifetimes{
		Idle: cfg.Sessions.IdleTTL, Absolute: cfg.Sessions.AbsoluteTTL, Grace: cfg.Sessions.Grace,
	}, time.Now, session.AcceptSessions(cfg.SessionSharing()))
	// Rotations whose caller left and refresh-token confirmations finish
	// before the store closes.
	defer sessions.Wait()
	routes := map[string]authz.Route{}
	for _, name := range append([]string{""}, slices.Sorted(maps.Keys(cfg.Policies))...) {
		routes[name] = route(cfg, name, ring)
	}
	def := routes[""]
	delete(routes, "")
	minters := map[string]*token.Minter{}
	for name, rt := range routes {
		minters[name] = rt.Minter
	}
	minter := def.Minter
	cookies := cfg.Cookies.Policy()
	engine, err := authz.NewEngine(authz.Options{
		Verifier: def.Verifier, Minter: def.Minter, Policy: def.Policy, Named: routes,
		Sessions: sessions, Cookies: cookies, RefreshBefore: cfg.Tokens.RefreshBefore,
	})
	if err != nil {
		return err
	}

	// gRPC: Check and the standard health service.
	grpcOpts := authz.GRPCOptions()
	if t := cfg.Listen.GRPC.TLS; t.Enabled() {
		rl, err := tlsreload.New(t.CertFile, t.KeyFile, t.ClientCAFile, log.With("listener", "grpc"))
		if err != nil {
			return fmt.Errorf("listen.grpc.tls: %w", err)
		}
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(rl.TLSConfig())))
	}
	grpcSrv := grpc.NewServer(grpcOpts...)
	checkMetrics := authz.NewMetrics(reg, cfg.Log.CheckLinesPerSecond)
	authv3.RegisterAuthorizationServer(grpcSrv, authz.NewServer(engine, log, checkMetrics))
	grpcHealth := health.NewServer()
	healthpb.RegisterHealthServer(grpcSrv, grpcHealth)

	// HTTP: public JWKS, the session API on its own listener, and admin.
	public := http.NewServeMux()
	public.Handle("/.well-known/jwks.json", keys.JWKSHandler(ring, cfg.Keys.JWKSMaxAge))
	// The HTTP authorization mode sits in front of the mux, not on it:
	// ServeMux would redirect the unnormalised paths Envoy's path_prefix
	// passes on, which the Engine must judge itself.
	var publicHandler http.Handler = public
	if h := cfg.HTTPAuthz; h.Enabled {
		publicHandler = httpauthz.NewHandler(engine, httpauthz.Options{
			Profile: httpauthz.Profile(h.Profile), TrustedProxies: h.Prefixes(), Next: public,
		}, log, checkMetrics)
	}
	admin := http.NewServeMux()
	admin.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	admin.HandleFunc("/healthz", checks.Livez)
	admin.HandleFunc("/livez", checks.Livez)
	admin.HandleFunc("/readyz", checks.Readyz)
	if cfg.Profiling {
		admin.HandleFunc("/debug/pprof/", pprof.Index)
		admin.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		admin.HandleFunc("/debug/pprof/profile", pprof.Profile)
		admin.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		admin.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	api := sessionapi.New(sessionapi.Options{
		Auth: apiAuth, Sessions: sessions, Minter: minter, Minters: minters, Cookies: cookies, Log: log,
	})
	var apiTLS *tls.Config
	if t := cfg.Listen.SessionAPI.TLS; t.Enabled() {
		rl, err := tlsreload.New(t.CertFile, t.KeyFile, t.ClientCAFile, log.With("listener", "sessionAPI"))
		if err != nil {
			return fmt.Errorf("listen.sessionAPI.tls: %w", err)
		}
		apiTLS = rl.TLSConfig()
	}

	// Bind every listener before serving anything, so a port clash fails
	// the start instead of leaving a half-running service.
	lns := map[string]net.Listener{}
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for name, addr := range map[string]string{
		"grpc": cfg.Listen.GRPC.Address, "public": cfg.Listen.Public.Address,
		"sessionAPI": cfg.Listen.SessionAPI.Address, "admin": cfg.Listen.Admin.Address,
	} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen.%s.address: %w", name, err)
		}
		lns[name] = ln
		log.Info("listening", "listener", name, "address", ln.Addr().String())
	}
	if apiTLS != nil {
		lns["sessionAPI"] = tls.NewListener(lns["sessionAPI"], apiTLS)
	}

	httpSrvs := map[string]*http.Server{
		"public":     newHTTPServer(publicHandler, log),
		"sessionAPI": newHTTPServer(api, log),
		"admin":      newHTTPServer(admin, log),
	}
	errc := make(chan error, 4)
	go func() { errc <- grpcSrv.Serve(lns["grpc"]) }()
	for name, srv := range httpSrvs {
		go func() {
			if err := srv.Serve(lns[name]); !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("%s listener: %w", name, err)
			}
		}()
	}
	setServing(grpcHealth, healthpb.HealthCheckResponse_SERVING)
	log.Info("silentauth ready")
	if cfg.Development {
		printDevBanner(stderr, lns, apiAuth)
	}

	select {
	case <-ctx.Done():
	case err := <-errc:
		log.Error("listener failed; shutting down", "error", err)
		shutdown(cfg.Shutdown, log, checks, grpcHealth, grpcSrv, httpSrvs, 0)
		return err
	}
	shutdown(cfg.Shutdown, log, checks, grpcHealth, grpcSrv, httpSrvs, cfg.Shutdown.Drain)
	return nil
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

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
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
func sessionAPIAuth(cfg config.Config, getenv func(string) string, kube *rest.Config, log *slog.Logger) (*apiAuth, error) {
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

// route builds the policy named name (the top-level one for "") with the
// verifier and minter of its audience.
func route(cfg config.Config, name string, ring keys.Source) authz.Route {
	p, aud := cfg.Resolved(name)
	return authz.Route{
		Minter: token.NewMinter(token.MinterOptions{Issuer: cfg.Issuer, Audience: aud, TTL: cfg.Tokens.AccessTTL, Keys: ring}),
		Verifier: token.NewVerifier(token.VerifierOptions{
			Issuer: cfg.Issuer, Audiences: []string{aud}, Leeway: cfg.Tokens.Leeway, Keys: ring,
			MaxTokenBytes: cfg.Tokens.MaxBytes, CacheSize: cfg.Tokens.CacheSize,
		}),
		Policy: authz.Policy{
			LoginURL: p.LoginURL, ReturnToParam: p.ReturnToParam,
			PublicPaths: p.PublicPaths, ClaimHeaders: p.ClaimHeaders, RequiredClaims: p.RequiredClaims,
			TrustedOrigins: p.TrustedOrigins, RefreshPath: p.RefreshPath,
			LogoutPath: p.LogoutPath, AccessTokenHeader: p.AccessTokenHeader,
		},
	}
}
