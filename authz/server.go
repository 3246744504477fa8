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
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
)

var _ authv3.AuthorizationServer = (*Server)(nil)

// Server implements envoy.service.auth.v3.Authorization. It is safe for
// concurrent use.
type Server struct {
	authv3.UnimplementedAuthorizationServer
	engine  *Engine
	log     *slog.Logger
	metrics *Metrics
}

// NewServer returns a Server deciding with engine.
func NewServer(engine *Engine, log *slog.Logger, m *Metrics) *Server {
	return &Server{engine: engine, log: log, metrics: m}
}

// Check decides one request. Its error is always nil.
func (s *Server) Check(ctx context.Context, cr *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	start := time.Now()
	r, err := NewRequest(cr)
	d := s.engine.Decide(ctx, r, err)
	s.observe(ctx, cr, d, time.Since(start))
	return respond(d), nil
}

// observe records the decision in metrics and, by its level, in the log.
// Logs name the request by Envoy's request id and the caller by subject
// and session id; tokens and cookie values never reach them.
func (s *Server) observe(ctx context.Context, cr *authv3.CheckRequest, d Decision, took time.Duration) {
	decision := "deny"
	if d.Allow {
		decision = "allow"
	}
	s.metrics.observe(decision, d.Reason, took)
	if !s.log.Enabled(ctx, d.Level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("decision", decision),
		slog.String("reason", d.Reason),
		slog.Int("status", d.Status),
		slog.String("request_id", cr.GetAttributes().GetRequest().GetHttp().GetId()),
	}
	if d.Subject != "" {
		attrs = append(attrs, slog.String("subject", d.Subject), slog.String("session", d.Session))
	}
	if d.Err != nil {
		attrs = append(attrs, slog.String("error", d.Err.Error()))
	}
	if d.Reason == "refresh_reuse" || d.Reason == "endpoint_logout_reuse" {
		attrs = append(attrs, slog.String("event", "refresh_token_reuse"))
	}
	s.log.LogAttrs(ctx, d.Level, "check", attrs...)
}

// Fingerprint names a secret in logs without revealing it: the first 12
// hex digits of its SHA-256.
func Fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:6])
}

// Metrics are the Check server's Prometheus metrics, on a private
// registry, with low-cardinality labels only.
type Metrics struct {
	decisions *prometheus.CounterVec
	latency   *prometheus.HistogramVec
}

// NewMetrics registers the Check metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "silentauth_check_decisions_total",
			Help: "Check decisions by decision (allow, deny) and reason.",
		}, []string{"decision", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "silentauth_check_duration_seconds",
			Help:    "Time spent deciding a Check, by decision.",
			Buckets: []float64{10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3, 1},
		}, []string{"decision"}),
	}
	reg.MustRegister(m.decisions, m.latency)
	return m
}

func (m *Metrics) observe(decision, reason string, took time.Duration) {
	if m == nil {
		return
	}
	m.decisions.WithLabelValues(decision, reason).Inc()
	m.latency.WithLabelValues(decision).Observe(took.Seconds())
}
