package authz

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// lineLimit caps the Check decision lines at perSecond per reason and per
// wall-clock second, so that a flood of forged tokens, or an outage
// answering every request with an error, is neither a flood of log lines
// nor a write per request. A line over the cap is dropped and counted in
// silentauth_check_log_suppressed_total; the next line of that reason that
// is written carries suppressed=N. Security events are never dropped
// (observe does not ask). It is safe for concurrent use.
type lineLimit struct {
	perSecond int
	counter   *prometheus.CounterVec
	mu        sync.Mutex
	reasons   map[string]*window // bounded: reasons are a closed set (reasons)
}

// window counts one reason's lines in one second.
type window struct {
	second  int64
	lines   int
	dropped int64 // since the last line written
	counter prometheus.Counter
}

// newLineLimit registers the suppressed-lines counter on reg; perSecond < 1
// means no cap (nil).
func newLineLimit(perSecond int, reg prometheus.Registerer) *lineLimit {
	if perSecond < 1 {
		return nil
	}
	suppressed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "silentauth_check_log_suppressed_total",
		Help: "Check decision lines not logged because their reason exceeded log.checkLinesPerSecond.",
	}, []string{"reason"})
	reg.MustRegister(suppressed)
	return &lineLimit{perSecond: perSecond, counter: suppressed, reasons: map[string]*window{}}
}

// admit reports whether a line of reason logged at t may be written, and
// how many lines of that reason were dropped before it. A nil limit admits
// every line.
func (l *lineLimit) admit(reason string, t time.Time) (write bool, dropped int64) {
	if l == nil {
		return true, 0
	}
	second := t.Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.reasons[reason]
	if w == nil {
		w = &window{second: second, counter: l.counter.WithLabelValues(reason)}
		l.reasons[reason] = w
	}
	if second != w.second {
		w.second, w.lines = second, 0
	}
	if w.lines >= l.perSecond {
		w.dropped++
		w.counter.Inc()
		return false, 0
	}
	w.lines++
	dropped, w.dropped = w.dropped, 0
	return true, dropped
}

// Fingerprint names a secret in logs without revealing it: the first 12
// hex digits of its SHA-256.
func Fingerprint(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:6])
}
