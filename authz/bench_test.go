package authz

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
)

// benchServer is the rig's engine behind a Server that logs as production
// does by default (JSON, info) to nowhere, with metrics on a private
// registry.
func benchServer(r *rig) *Server {
	log := slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return NewServer(r.engine, log, NewMetrics(prometheus.NewRegistry(), 0))
}

// benchCheck runs cr through s.Check b.N times and fails on an unexpected
// answer.
func benchCheck(b *testing.B, s *Server, cr *authv3.CheckRequest, allow bool) {
	b.Helper()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		resp, _ := s.Check(ctx, cr)
		if (resp.GetOkResponse() != nil) != allow {
			b.Fatalf("unexpected answer: %v", resp)
		}
	}
}

func BenchmarkCheckValidCached(b *testing.B) {
	r := newRig(b)
	at, _ := r.login("alice", map[string]any{"role": "admin"})
	benchCheck(b, benchServer(r), req("GET", "/api/items", "authorization", "Bearer "+at, "accept", "application/json"), true)
}

func BenchmarkCheckValidCookie(b *testing.B) {
	r := newRig(b)
	at, rt := r.login("alice", map[string]any{"role": "admin"})
	cr := req("GET", "/dashboard", "cookie", "theme=dark; "+ours(at, rt)+"; __Host-sa-exp=at%3D1",
		"sec-fetch-site", "same-origin", "sec-fetch-mode", "navigate")
	benchCheck(b, benchServer(r), cr, true)
}

// BenchmarkCheckRefresh: an expired access token and a refresh cookie, so
// every Check verifies, rotates the family on the memory store, mints a
// token and sets three cookies. Each iteration presents the refresh token
// the previous one set, as a browser would.
func BenchmarkCheckRefresh(b *testing.B) {
	benchRefresh(b, newRig(b))
}

// benchRefresh is BenchmarkCheckRefresh on r.
func benchRefresh(b *testing.B, r *rig) {
	at, rt := r.login("alice", map[string]any{"role": "admin"})
	r.clock.Advance(testAccessTTL + time.Minute)
	s := benchServer(r)
	cr := req("GET", "/api/items", "cookie", ours(at, rt))
	headers := cr.Attributes.Request.Http.Headers
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		headers["cookie"] = ours(at, rt)
		resp, _ := s.Check(ctx, cr)
		ok := resp.GetOkResponse()
		if ok == nil {
			b.Fatalf("refresh denied: %v", resp)
		}
		rt = ""
		for _, h := range ok.GetResponseHeadersToAdd() {
			if v, found := strings.CutPrefix(h.GetHeader().GetValue(), testCookies.Refresh+"="); found {
				rt, _, _ = strings.Cut(v, ";")
			}
		}
		if rt == "" {
			b.Fatal("no refresh cookie set")
		}
	}
}

func BenchmarkCheckMalformed(b *testing.B) {
	r := newRig(b)
	benchCheck(b, benchServer(r), req("GET", "/api/items", "authorization", "Bearer not.a.jwt"), false)
}

func BenchmarkCheckNoCredentials(b *testing.B) {
	r := newRig(b)
	benchCheck(b, benchServer(r), req("GET", "/api/items", "accept", "application/json"), false)
}

// BenchmarkCheckValidMiss: more distinct valid tokens than the rig's
// verifier caches, taken in turn, so every Check verifies a signature.
func BenchmarkCheckValidMiss(b *testing.B) {
	r := newRig(b)
	crs := make([]*authv3.CheckRequest, 1000)
	for i := range crs {
		at, _ := r.login("alice", map[string]any{"role": "admin"})
		crs[i] = req("GET", "/api/items", "authorization", "Bearer "+at, "accept", "application/json")
	}
	benchCheckEach(b, benchServer(r), crs, true)
}

// BenchmarkCheckBadSignature: the same tokens with one signature bit
// flipped; a forged token must cost no more than a cache miss.
func BenchmarkCheckBadSignature(b *testing.B) {
	r := newRig(b)
	crs := make([]*authv3.CheckRequest, 1000)
	for i := range crs {
		at, _ := r.login("alice", map[string]any{"role": "admin"})
		crs[i] = req("GET", "/api/items", "authorization", "Bearer "+forge(b, at), "accept", "application/json")
	}
	s := benchServer(r)
	if resp, _ := s.Check(context.Background(), crs[0]); reason(b, resp.GetDeniedResponse().GetBody()) != "token_signature" {
		b.Fatalf("forged token not refused for its signature: %v", resp)
	}
	benchCheckEach(b, s, crs, false)
}

// benchCheckEach is benchCheck over several requests taken in turn.
func benchCheckEach(b *testing.B, s *Server, crs []*authv3.CheckRequest, allow bool) {
	b.Helper()
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		resp, _ := s.Check(ctx, crs[i%len(crs)])
		if (resp.GetOkResponse() != nil) != allow {
			b.Fatalf("unexpected answer: %v", resp)
		}
		i++
	}
}

// forge flips one bit of a JWT's decoded signature: the token still parses
// and names a known key; only the signature check can refuse it.
func forge(t testing.TB, jwt string) string {
	t.Helper()
	i := strings.LastIndexByte(jwt, '.')
	sig, err := base64.RawURLEncoding.DecodeString(jwt[i+1:])
	if err != nil || len(sig) < 11 {
		t.Fatalf("signature of %.20q…: %v", jwt, err)
	}
	sig[10] ^= 0x01
	return jwt[:i+1] + base64.RawURLEncoding.EncodeToString(sig)
}

// BenchmarkCheckFullStore runs the refresh and the cache-hit Check next
// to 0, 10⁵ and 10⁶ other live families in the memory store (10⁶ skipped
// with -short), reporting the garbage collector's share of the CPU during
// the run (gc-%) and the live heap (heap-MB): a full store should cost
// the Checks nothing (issue #18).
func BenchmarkCheckFullStore(b *testing.B) {
	for _, n := range []int{0, 100_000, 1_000_000} {
		for _, kind := range []string{"Refresh", "ValidCached"} {
			b.Run(fmt.Sprintf("%s/families=%d", kind, n), func(b *testing.B) {
				if n > 100_000 && testing.Short() {
					b.Skip("prefills a million families")
				}
				r := newRig(b)
				prefill(b, r, n)
				gc := startGCShare()
				if kind == "Refresh" {
					benchRefresh(b, r)
				} else {
					at, _ := r.login("alice", map[string]any{"role": "admin"})
					benchCheck(b, benchServer(r), req("GET", "/api/items", "authorization", "Bearer "+at, "accept", "application/json"), true)
				}
				b.StopTimer()
				share, live := gc()
				b.ReportMetric(100*share, "gc-%")
				b.ReportMetric(float64(live)/(1<<20), "heap-MB")
				runtime.KeepAlive(r)
			})
		}
	}
}

// prefill starts n typical families (an OIDC-like subject of 20
// characters, three short claims) in r's store, then collects garbage.
func prefill(b *testing.B, r *rig, n int) {
	b.Helper()
	claims := map[string]any{"email": "ada.lovelace@example.com", "name": "Ada Lovelace", "groups": []any{"engineering", "admins"}}
	for i := range n {
		if _, err := r.sessions.Start(context.Background(), fmt.Sprintf("00u1abcd2EFG%08d", i), "", claims); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
}

// startGCShare starts measuring; the function it returns gives the share
// of the process's CPU time spent by the garbage collector since, and the
// live heap after the last collection.
func startGCShare() func() (share float64, live uint64) {
	samples := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}, {Name: "/cpu/classes/total:cpu-seconds"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(samples)
	gc0, total0 := samples[0].Value.Float64(), samples[1].Value.Float64()
	return func() (float64, uint64) {
		metrics.Read(samples)
		gc, total := samples[0].Value.Float64()-gc0, samples[1].Value.Float64()-total0
		if total <= 0 {
			return 0, samples[2].Value.Uint64()
		}
		return gc / total, samples[2].Value.Uint64()
	}
}
