package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// limitRig is a capped logger writing JSON lines to a buffer, with the
// suppressed-lines counter on its own registry.
type limitRig struct {
	buf *bytes.Buffer
	log *slog.Logger
	reg *prometheus.Registry
}

func newLimitRig(t *testing.T, perSecond int) limitRig {
	t.Helper()
	buf := &bytes.Buffer{}
	reg := prometheus.NewRegistry()
	base := slog.New(slog.NewJSONHandler(buf, nil))
	return limitRig{buf, LimitCheckLog(base, perSecond, reg), reg}
}

// line logs a Check line at time at through l (the rig's logger or a
// copy of it).
func line(t *testing.T, l *slog.Logger, at time.Time, msg string, attrs ...slog.Attr) {
	t.Helper()
	r := slog.NewRecord(at, slog.LevelWarn, msg, 0)
	r.AddAttrs(attrs...)
	if err := l.Handler().Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

// lines decodes what was written.
func (r limitRig) lines(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(r.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func (r limitRig) suppressed(t *testing.T, reason string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == "silentauth_check_log_suppressed_total" && m.GetLabel()[0].GetValue() == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func TestCheckLogCappedPerReasonAndSecond(t *testing.T) {
	r := newLimitRig(t, 3)
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	sig := slog.String("reason", "token_signature")
	// One second: 3 of 5 forged-token lines are written; another reason,
	// and a copy of the logger made by With, count on their own budget
	// and the shared one respectively.
	for range 5 {
		line(t, r.log, t0, checkMessage, sig)
	}
	line(t, r.log, t0.Add(900*time.Millisecond), checkMessage, slog.String("reason", "csrf"))
	line(t, r.log.With("transport", "http"), t0.Add(999*time.Millisecond), checkMessage, sig)
	// Never capped: security events and other messages.
	for range 5 {
		line(t, r.log, t0, checkMessage, slog.String("reason", "refresh_reuse"), slog.String("event", "refresh_token_reuse"))
		line(t, r.log, t0, "keyring reloaded", sig)
	}
	// The next second: the first line says how many were dropped.
	line(t, r.log, t0.Add(time.Second), checkMessage, sig)
	line(t, r.log, t0.Add(time.Second), checkMessage, sig)

	var sigLines, reuse, other, csrf int
	var notes []float64
	for _, l := range r.lines(t) {
		switch {
		case l["msg"] != checkMessage:
			other++
		case l["event"] != nil:
			reuse++
		case l["reason"] == "csrf":
			csrf++
		default:
			sigLines++
			if n, ok := l["suppressed"].(float64); ok {
				notes = append(notes, n)
			}
		}
	}
	if sigLines != 5 || csrf != 1 || reuse != 5 || other != 5 {
		t.Fatalf("written: %d token_signature (want 3+2), %d csrf, %d reuse, %d other", sigLines, csrf, reuse, other)
	}
	if len(notes) != 1 || notes[0] != 3 {
		t.Fatalf("suppressed notes %v, want one saying 3", notes)
	}
	if n := r.suppressed(t, "token_signature"); n != 3 {
		t.Fatalf("suppressed counter %v, want 3", n)
	}
}

func TestCheckLogUncapped(t *testing.T) {
	base := slog.New(slog.DiscardHandler)
	if got := LimitCheckLog(base, 0, prometheus.NewRegistry()); got != base {
		t.Fatal("a cap of 0 wrapped the logger")
	}
}
