package httpauthz

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/silentauth/silentauth/authz"
)

// BenchmarkHTTPModeValidCookie: nginx asks about a page load with a valid
// access cookie; the handler logs as production does by default (JSON,
// info) to nowhere.
func BenchmarkHTTPModeValidCookie(b *testing.B) {
	r := newRig(b)
	at, rt := r.login("alice", map[string]any{"role": "admin"})
	h := NewHandler(r.engine, Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}},
		slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo})), authz.NewMetrics(prometheus.NewRegistry(), 0))
	req := shape(ProfileNginx, orig("GET", "/dashboard", "cookie", "theme=dark; "+ours(at, rt),
		"sec-fetch-site", "same-origin", "sec-fetch-mode", "navigate", "accept", "text/html"))
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatalf("answer %d", rec.Code)
		}
	}
}
