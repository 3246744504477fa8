package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/silentauth/silentauth/authz"
	"github.com/silentauth/silentauth/authz/config"
	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/sessionapi"
	"github.com/silentauth/silentauth/authz/store/memstore"
	"github.com/silentauth/silentauth/authz/token"
)

// inproc is the Check server wired in this process exactly as
// cmd/silentauth's serve wires it (same configuration file, same parts,
// memory store, JSON logs written to a pipe that is drained, as the real
// binary's stderr is), so a CPU or allocation profile can be taken: the
// binary exposes no pprof endpoint. Its CPU time is the whole process's.
type inproc struct {
	check    *authz.Server
	grpc     *grpc.Server
	api      *http.Server
	admin    *http.Server
	addrs    map[string]string
	logR     *os.File
	logW     *os.File
	drained  chan struct{}
	sessions *session.Manager
}

// startInproc builds the server from the configuration file at cfgPath,
// with extra gRPC server options (to try a change before proposing it).
// Only what a load scenario touches is wired: Check, the session API
// (bearer apiToken) and the decision metrics; not TLS, JWKS, health.
func startInproc(cfgPath string, grpcOpts ...grpc.ServerOption) (*inproc, error) {
	cfg, err := config.Resolve(config.Default(), cfgPath, func(k string) string {
		if k == "SILENTAUTH_API_TOKEN" {
			return apiToken
		}
		return ""
	}, nil)
	if err != nil {
		return nil, err
	}
	if cfg.Store.Backend != "memory" {
		return nil, fmt.Errorf("in-process server: store %q not wired here", cfg.Store.Backend)
	}
	ring, err := keys.LoadDir(cfg.Keys.Dir, cfg.Keys.Active)
	if err != nil {
		return nil, err
	}
	holder := &keys.Holder{}
	holder.Store(ring)

	s := &inproc{addrs: map[string]string{}, drained: make(chan struct{})}
	if s.logR, s.logW, err = os.Pipe(); err != nil {
		return nil, err
	}
	go func() { _, _ = io.Copy(io.Discard, s.logR); close(s.drained) }()
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	log := slog.New(slog.NewJSONHandler(s.logW, &slog.HandlerOptions{Level: level}))

	s.sessions = session.New(memstore.New(time.Now), session.Lifetimes{
		Idle: cfg.Sessions.IdleTTL, Absolute: cfg.Sessions.AbsoluteTTL, Grace: cfg.Sessions.Grace,
	}, time.Now)
	minter := token.NewMinter(token.MinterOptions{Issuer: cfg.Issuer, Audience: cfg.Audience, TTL: cfg.Tokens.AccessTTL, Keys: holder})
	verifier := token.NewVerifier(token.VerifierOptions{
		Issuer: cfg.Issuer, Audiences: []string{cfg.Audience}, Leeway: cfg.Tokens.Leeway, Keys: holder,
		MaxTokenBytes: cfg.Tokens.MaxBytes, CacheSize: cfg.Tokens.CacheSize,
	})
	cookies := cfg.Cookies.Policy()
	engine, err := authz.NewEngine(authz.Options{
		Verifier: verifier, Minter: minter, Sessions: s.sessions, Cookies: cookies,
		RefreshBefore: cfg.Tokens.RefreshBefore,
		Policy: authz.Policy{
			LoginURL: cfg.Policy.LoginURL, ReturnToParam: cfg.Policy.ReturnToParam,
			PublicPaths: cfg.Policy.PublicPaths, ClaimHeaders: cfg.Policy.ClaimHeaders,
			TrustedOrigins: cfg.Policy.TrustedOrigins, RefreshPath: cfg.Policy.RefreshPath,
			LogoutPath: cfg.Policy.LogoutPath, AccessTokenHeader: cfg.Policy.AccessTokenHeader,
		},
	})
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	s.check = authz.NewServer(engine, authz.LimitCheckLog(log, cfg.Log.CheckLinesPerSecond, reg), authz.NewMetrics(reg))
	s.grpc = grpc.NewServer(append(authz.GRPCOptions(), grpcOpts...)...)
	authv3.RegisterAuthorizationServer(s.grpc, s.check)

	admin := http.NewServeMux()
	admin.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	s.admin = &http.Server{Handler: admin, ReadHeaderTimeout: 5 * time.Second}
	s.api = &http.Server{Handler: sessionapi.New(sessionapi.Options{
		Auth: sessionapi.NewBearer(apiToken), Sessions: s.sessions, Minter: minter, Cookies: cookies, Log: log,
	}), ReadHeaderTimeout: 5 * time.Second}

	serve := map[string]func(net.Listener) error{
		"grpc": s.grpc.Serve, "sessionAPI": s.api.Serve, "admin": s.admin.Serve,
	}
	for name, fn := range serve {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			_ = s.stop()
			return nil, err
		}
		s.addrs[name] = ln.Addr().String()
		go func() { _ = fn(ln) }()
	}
	return s, nil
}

func (s *inproc) addr(listener string) string { return s.addrs[listener] }
func (s *inproc) cpu() (time.Duration, error) { return procCPU(os.Getpid()) }
func (s *inproc) alive() error                { return nil }

func (s *inproc) decisions(ctx context.Context) (map[string]int64, error) {
	return scrapeDecisions(ctx, s.addrs["admin"])
}

func (s *inproc) stop() error {
	if s.grpc != nil {
		s.grpc.Stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for _, h := range []*http.Server{s.api, s.admin} {
		if h != nil {
			errs = append(errs, h.Shutdown(ctx))
		}
	}
	if s.logW != nil {
		s.logW.Close()
		<-s.drained
		s.logR.Close()
	}
	return errors.Join(errs...)
}
