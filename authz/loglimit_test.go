package authz

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/silentauth/silentauth/internal/testenv/logbuf"
)

// limitRig is a pair of Servers (gRPC and an HTTP profile) sharing one set
// of metrics, logging JSON lines to one buffer.
type limitRig struct {
	buf       *logbuf.Buffer
	grpc, web *Server
	reg       *prometheus.Registry
}

func newLimitRig(perSecond int) limitRig {
	buf := &logbuf.Buffer{}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, perSecond)
	log := slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return limitRig{buf, NewServer(nil, log, m), NewServer(nil, log.With("transport", "http"), m), reg}
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

// The cap is per reason and wall-clock second, shared by every Server of
// the same metrics; security events are never dropped; the first line
// after a drop says how many went. Time is synctest's, starting on a
// second boundary.
func TestCheckLogCappedPerReasonAndSecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newLimitRig(3)
		ctx := context.Background()
		sig := Decision{Reason: "token_signature", Status: 401, Level: slog.LevelWarn}
		reuse := Decision{Reason: "refresh_reuse", Status: 401, Level: slog.LevelWarn, Event: eventReuse}
		// One second: 3 of 5 forged-token lines are written; another
		// reason counts on its own budget, the HTTP profile on the shared one.
		for range 5 {
			r.grpc.obs.Observe(ctx, nil, sig, 0)
		}
		time.Sleep(900 * time.Millisecond)
		r.grpc.obs.Observe(ctx, nil, Decision{Reason: "csrf", Status: 403, Level: slog.LevelWarn}, 0)
		time.Sleep(99 * time.Millisecond)
		r.web.obs.Observe(ctx, nil, sig, 0)
		for range 5 {
			r.grpc.obs.Observe(ctx, nil, reuse, 0)
		}
		// The next second: the first line says how many were dropped.
		time.Sleep(time.Second)
		r.grpc.obs.Observe(ctx, nil, sig, 0)
		r.web.obs.Observe(ctx, nil, sig, 0)

		var sigLines, reuseLines, csrf int
		var notes []float64
		for _, l := range r.lines(t) {
			switch {
			case l["event"] != nil:
				reuseLines++
			case l["reason"] == "csrf":
				csrf++
			default:
				sigLines++
				if n, ok := l["suppressed"].(float64); ok {
					notes = append(notes, n)
				}
			}
		}
		if sigLines != 5 || csrf != 1 || reuseLines != 5 {
			t.Fatalf("written: %d token_signature (want 3+2), %d csrf, %d reuse", sigLines, csrf, reuseLines)
		}
		if len(notes) != 1 || notes[0] != 3 {
			t.Fatalf("suppressed notes %v, want one saying 3", notes)
		}
		if n := r.suppressed(t, "token_signature"); n != 3 {
			t.Fatalf("suppressed counter %v, want 3", n)
		}
	})
}

// A cap below 1 caps nothing and registers no counter.
func TestCheckLogUncapped(t *testing.T) {
	r := newLimitRig(0)
	for range 50 {
		r.grpc.obs.Observe(context.Background(), nil, Decision{Reason: "token_signature", Level: slog.LevelWarn}, 0)
	}
	if n := len(r.lines(t)); n != 50 {
		t.Fatalf("%d lines written, want 50", n)
	}
	mfs, _ := r.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "silentauth_check_log_suppressed_total" {
			t.Fatal("an uncapped log registered the suppressed counter")
		}
	}
}
