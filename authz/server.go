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
	"errors"
	"log/slog"
	"runtime"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/silentauth/silentauth/authz/session"
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
	r, err := NewRequest(cr)
	d := s.engine.Decide(ctx, r, err)
	s.observe(ctx, r, d, time.Since(start))
	return respond(d), nil
}

// observe records the decision in metrics and, by its level, in the log.
// Logs name the request by Envoy's request id and the caller by subject
// and session id; tokens and cookie values never reach them.
func (s *Server) observe(ctx context.Context, r *Request, d Decision, took time.Duration) {
	decision := decisionLabel(d.Allow)
	s.metrics.observe(d.Allow, d.Reason, took)
	if !s.log.Enabled(ctx, d.Level) {
		return
	}
	var dropped int64
	if d.Event == "" { // a security event is never dropped
		var write bool
		if write, dropped = s.metrics.lineLimit().admit(d.Reason, time.Now()); !write {
			return
		}
	}
	attrs := []slog.Attr{
		slog.String("decision", decision),
		slog.String("reason", d.Reason),
		slog.Int("status", d.Status),
	}
	if dropped > 0 {
		attrs = append(attrs, slog.Int64("suppressed", dropped))
	}
	if r != nil {
		attrs = append(attrs, slog.String("request_id", r.ID))
	}
	if d.Subject != "" {
		attrs = append(attrs, slog.String("subject", d.Subject), slog.String("session", d.Session))
	}
	if d.Err != nil {
		attrs = append(attrs, slog.String("error", d.Err.Error()))
	}
	if d.Event != "" {
		attrs = append(attrs, slog.String("event", d.Event))
		if re := (*session.ReuseError)(nil); errors.As(d.Err, &re) {
			attrs = append(attrs, slog.Uint64("generation_presented", re.Presented), slog.Uint64("generation_current", re.Current))
		}
		if r != nil {
			// Who presented it: an operator acting on the event needs the
			// client, never the token.
			attrs = append(attrs, slog.String("client_address", r.Peer), slog.String("user_agent", r.Header("user-agent")))
		}
	}
	s.log.LogAttrs(ctx, d.Level, checkMessage, attrs...)
}

// checkMessage is the message of every decision line.
const checkMessage = "check"

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
	// counters holds a counter per reason and decision (deny, allow),
	// created up front from the answers table (reasons), so every series
	// exists from the start and a Check hashes no labels. Read-only.
	counters  [2]map[string]prometheus.Counter
	observers [2]prometheus.Observer // deny, allow
	// lines caps the decision lines of every Server sharing these
	// metrics (nil: no cap).
	lines *lineLimit
}

// lineLimit returns m's cap on decision lines; nil m or no cap: nil.
func (m *Metrics) lineLimit() *lineLimit {
	if m == nil {
		return nil
	}
	return m.lines
}

// NewMetrics registers the Check metrics on reg. checkLinesPerSecond caps
// the decision lines logged per reason and second by every Server sharing
// them (see lineLimit; < 1: no cap), as log.checkLinesPerSecond says.
func NewMetrics(reg prometheus.Registerer, checkLinesPerSecond int) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "silentauth_check_decisions_total",
			Help: "Check decisions by decision (allow, deny) and reason.",
		}, []string{"decision", "reason"}),
	}
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "silentauth_check_duration_seconds",
		Help:    "Time spent deciding a Check, by decision.",
		Buckets: []float64{10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3, 1},
	}, []string{"decision"})
	for i, list := range reasons() {
		m.counters[i] = make(map[string]prometheus.Counter, len(list))
		for _, reason := range list {
			m.counters[i][reason] = m.decisions.WithLabelValues(decisionLabel(i == 1), reason)
		}
		m.observers[i] = latency.WithLabelValues(decisionLabel(i == 1))
	}
	reg.MustRegister(m.decisions, latency)
	m.lines = newLineLimit(checkLinesPerSecond, reg)
	return m
}

func (m *Metrics) observe(allow bool, reason string, took time.Duration) {
	if m == nil {
		return
	}
	i := boolIndex(allow)
	c, ok := m.counters[i][reason]
	if !ok {
		// Not in the answers table: a reason added without its row.
		// Counted all the same (TestEveryReasonIsCountedUpFront guards).
		c = m.decisions.WithLabelValues(decisionLabel(allow), reason)
	}
	c.Inc()
	m.observers[i].Observe(took.Seconds())
}

func decisionLabel(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}
