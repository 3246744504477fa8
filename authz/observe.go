package authz

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/silentauth/silentauth/authz/session"
)

// Observer records decisions, whichever transport carried them: in the
// Check metrics and, by the decision's level and under the Metrics' cap on
// decision lines, as one "check" log line. It is safe for concurrent use.
type Observer struct {
	log     *slog.Logger
	metrics *Metrics
}

// NewObserver returns an Observer logging to log and counting in m (nil:
// not counted, and no cap on lines).
func NewObserver(log *slog.Logger, m *Metrics) *Observer {
	return &Observer{log: log, metrics: m}
}

// Observe records decision d on request r (nil when the request could not
// be read), which took took. Logs name the request by its id and the
// caller by subject and session id; tokens and cookie values never reach
// them.
func (o *Observer) Observe(ctx context.Context, r *Request, d Decision, took time.Duration) {
	decision := decisionLabel(d.Allow)
	o.metrics.observe(d.Allow, d.Reason, took)
	if !o.log.Enabled(ctx, d.Level) {
		return
	}
	var dropped int64
	if d.Event == "" { // a security event is never dropped
		var write bool
		if write, dropped = o.metrics.lineLimit().admit(d.Reason, time.Now()); !write {
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
	o.log.LogAttrs(ctx, d.Level, checkMessage, attrs...)
}

// checkMessage is the message of every decision line.
const checkMessage = "check"

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
