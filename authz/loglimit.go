package authz

import (
	"context"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// LimitCheckLog returns log with its Check decision lines capped at
// perSecond per reason and per wall-clock second, so that a flood of
// forged tokens, or an outage answering every request with an error, is
// neither a flood of log lines nor a write per request. A line over the
// cap is dropped and counted in silentauth_check_log_suppressed_total;
// the next line of that reason that is written carries suppressed=N.
// Security events (lines with an event attribute, such as refresh-token
// reuse) are never dropped, nor is anything but Check decision lines.
// perSecond < 1 returns log unchanged.
func LimitCheckLog(log *slog.Logger, perSecond int, reg prometheus.Registerer) *slog.Logger {
	if perSecond < 1 {
		return log
	}
	suppressed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "silentauth_check_log_suppressed_total",
		Help: "Check decision lines not logged because their reason exceeded log.checkLinesPerSecond.",
	}, []string{"reason"})
	reg.MustRegister(suppressed)
	return slog.New(&limitHandler{next: log.Handler(), state: &limitState{
		perSecond: perSecond,
		reasons:   map[string]*window{},
		counter:   suppressed,
	}})
}

// limitHandler drops Check lines over the cap; every copy made by
// WithAttrs or WithGroup shares one limitState.
type limitHandler struct {
	next  slog.Handler
	state *limitState
}

type limitState struct {
	perSecond int
	counter   *prometheus.CounterVec
	mu        sync.Mutex
	reasons   map[string]*window // bounded: reasons are a fixed set of labels
}

// window counts one reason's lines in one second.
type window struct {
	second  int64
	lines   int
	dropped int64 // since the last line written
	counter prometheus.Counter
}

func (h *limitHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *limitHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &limitHandler{next: h.next.WithAttrs(as), state: h.state}
}

func (h *limitHandler) WithGroup(name string) slog.Handler {
	return &limitHandler{next: h.next.WithGroup(name), state: h.state}
}

func (h *limitHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message != checkMessage {
		return h.next.Handle(ctx, r)
	}
	var reason string
	event := false
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "reason":
			reason = a.Value.String()
		case "event":
			event = true
		}
		return true
	})
	if event {
		return h.next.Handle(ctx, r)
	}
	write, dropped := h.state.admit(reason, r.Time.Unix())
	if !write {
		return nil
	}
	if dropped > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int64("suppressed", dropped))
	}
	return h.next.Handle(ctx, r)
}

// admit reports whether a line of reason logged in second may be written,
// and how many lines of that reason were dropped before it.
func (s *limitState) admit(reason string, second int64) (write bool, dropped int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.reasons[reason]
	if w == nil {
		w = &window{second: second, counter: s.counter.WithLabelValues(reason)}
		s.reasons[reason] = w
	}
	if second != w.second {
		w.second, w.lines = second, 0
	}
	if w.lines >= s.perSecond {
		w.dropped++
		w.counter.Inc()
		return false, 0
	}
	w.lines++
	dropped, w.dropped = w.dropped, 0
	return true, dropped
}
