// Package authz is silentauth's Check server: it reads an Envoy
// CheckRequest into a Request, decides it with an Engine (a pure story of
// the request: public path, valid token, refresh, deny) and turns the
// Decision into a CheckResponse in one adapter. Security decisions are
// always CheckResponses, never gRPC errors: Envoy may be configured to fail
// open on errors.
//
// authz composes the domain packages (token, session, cookie, keys); none
// of them imports authz.
package authz

import (
	"context"
	"log/slog"
	"runtime"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
)

var _ authv3.AuthorizationServer = (*Server)(nil)

// Server implements envoy.service.auth.v3.Authorization. It is safe for
// concurrent use.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	engine *Engine
	obs    *Observer
}

// NewServer returns a Server deciding with engine, its decisions observed
// by NewObserver(log, m).
func NewServer(engine *Engine, log *slog.Logger, m *Metrics) *Server {
	return &Server{engine: engine, obs: NewObserver(log, m)}
}

// GRPCOptions are the gRPC server options Check is served with: requests
// up to 1 MiB (Envoy's CheckRequest carries headers and, if configured,
// a bounded body), and a pool of streamWorkersPerCPU worker goroutines per
// CPU that handle stream after stream. A Check that finds every worker busy
// runs on a new goroutine, which pays for growing its stack (about 5 µs of
// CPU per Check under load); the pool is sized for the Checks in flight
// at once when the CPUs are saturated, so that this stays rare.
func GRPCOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(1 << 20),
		grpc.NumStreamWorkers(uint32(streamWorkersPerCPU * runtime.GOMAXPROCS(0))),
	}
}

// streamWorkersPerCPU sizes the stream worker pool. Measured with 16
// concurrent streams on two CPUs: one worker per CPU left Checks that take
// longer than a cache hit (a signature to verify, a refresh) spawning
// goroutines; eight per CPU removed that cost, and 32 per CPU gained
// nothing more.
const streamWorkersPerCPU = 8

// Check decides one request. Its error is always nil.
func (s *Server) Check(ctx context.Context, cr *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	start := time.Now()
	r, err := FromCheckRequest(cr)
	d := s.engine.Decide(ctx, r, err)
	s.obs.Observe(ctx, r, d, time.Since(start))
	return respond(d), nil
}
