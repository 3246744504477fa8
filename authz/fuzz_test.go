package authz

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/code"

	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/authz/store/memstore"
)

// fuzzTokens stands the fuzzer's placeholders for real tokens of a fresh
// session: $AT a valid access token, $XAT an expired one, $RT the current
// refresh token and $OLD one superseded past its grace (a reuse).
func fuzzTokens(r *rig) *strings.Replacer {
	r.t.Helper()
	xat, old := r.login("alice", nil)
	iss, err := r.sessions.Refresh(context.Background(), old, "")
	if err != nil {
		r.t.Fatal(err)
	}
	r.clock.Advance(testAccessTTL + time.Minute)
	at, _, err := r.minter.Mint("alice", iss.Family.ID, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	return strings.NewReplacer("$XAT", xat, "$AT", at, "$RT", iss.RefreshToken, "$OLD", old)
}

// swapStore is the store FuzzCheck's rig uses: reset puts a fresh memory
// store behind it.
type swapStore struct{ store.Store }

// fuzzRig is one Check server for every input of FuzzCheck. A rig (a key,
// an engine, a metrics registry) and a session (three signatures) built for
// each input cost about a millisecond: the fuzzer ran at tens of inputs a
// second. Every input still meets the same state: reset replays the
// session's family, as fuzzTokens left it, into a new memory store, so a
// refresh, a logout or a reuse seen by one input never reaches the next,
// and a failing input reproduces alone.
type fuzzRig struct {
	*rig
	tokens   *strings.Replacer
	swap     *swapStore
	families []*store.Family
}

func newFuzzRig(tb testing.TB) *fuzzRig {
	fr := &fuzzRig{}
	fr.rig = newRigWithStore(tb, func(s store.Store) store.Store { fr.swap = &swapStore{s}; return fr.swap })
	// Logged as in production, into nothing: a log kept in memory would
	// grow with every input.
	fr.server = NewServer(fr.engine, slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug})), NewMetrics(prometheus.NewRegistry(), 0))
	fr.tokens = fuzzTokens(fr.rig)
	families, err := fr.mem.Subject(context.Background(), "alice")
	if err != nil || len(families) == 0 {
		tb.Fatalf("the fuzz session's families: %v, %v", families, err)
	}
	fr.families = families
	return fr
}

// reset gives the rig a store holding the session exactly as fuzzTokens
// left it: each family created at version 1, then swapped up to its
// version.
func (fr *fuzzRig) reset(t *testing.T) {
	ctx := context.Background()
	mem := memstore.New(fr.clock.Now)
	for _, f := range fr.families {
		c := f.Clone()
		c.Version = 1
		if err := mem.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
		for v := uint64(1); v < f.Version; v++ {
			next := f.Clone()
			next.Version = v + 1
			if err := mem.Swap(ctx, v, next); err != nil {
				t.Fatal(err)
			}
		}
	}
	fr.swap.Store = mem
}

// Requirement 17: whatever Envoy forwards, Check answers with a valid
// CheckResponse and never a gRPC error, and it lets a request through only
// with a valid access token (one it minted or was shown) or to a public
// path.
//
// The seeds are the hostile cases, kept small so that the fuzzer spends its
// time mutating rather than minimising; the 16 KiB limits have their own
// tests (TestCookieHeaderTooBigToRewrite, TestLoginLocationFits).
func FuzzCheck(f *testing.F) {
	type seed struct{ method, path, authorization, cookie, origin, site, mode, accept string }
	for _, s := range []seed{
		{"GET", "/api", "Bearer $AT", "", "", "", "", ""},
		{"GET", "/api", "Bearer $XAT", "__Host-sa-rt=$RT", "", "same-origin", "cors", "application/json"},
		{"GET", "/dashboard?tab=1", "", "theme=dark; __Host-sa-at=$XAT; __Host-sa-rt=$RT", "", "none", "navigate", "text/html"},
		{"POST", "/api/transfer", "", "__Host-sa-at=$AT; __Host-sa-rt=$RT", "https://evil.example", "cross-site", "navigate", ""},
		{"POST", "/api/transfer", "", "__Host-sa-at=$XAT; __Host-sa-rt=$RT", "null", "", "", ""},
		{"GET", "/api", "", "__Host-sa-rt=$OLD", "", "", "", ""},
		{"GET", "/api", "", "__Host-sa-rt=$RT; __Host-sa-rt=$RT", "", "", "", ""},
		{"GET", "/api", "", "__host-sa-rt=$RT; __HOST-SA-AT=$AT", "", "", "", ""},
		{"GET", "/api", "", "__Host-sa-rt=\"$RT\"", "", "cross-site", "no-cors", ""},
		{"GET", "/static/../api", "", "__Host-sa-rt=$RT", "", "", "", ""},
		{"GET", "/static%2f..%2fapi", "", "", "", "", "", ""},
		{"GET", "//static/x.js", "", "__Host-sa-at=$AT", "", "", "", ""},
		{"GET", "/healthz?x=1#frag", "Bearer garbage", "", "", "", "", ""},
		{"POST", "/auth/refresh", "", "__Host-sa-rt=$RT", "https://app.example.com", "same-origin", "cors", "application/json"},
		{"GET", "/auth/refresh", "", "__Host-sa-rt=$RT", "", "", "navigate", ""},
		{"POST", "/auth/logout", "", "__Host-sa-rt=$OLD", "", "same-origin", "navigate", ""},
		{"get", "/api", "bearer $AT", "", "", "", "", ""},
		{"GET", "/api", "Bearer $AT\r\nx-user-id: admin", "", "", "", "", ""},
		{"GET", "/api", "Bearer eyJhbGciOiJub25lIn0.e30.", "", "", "", "", ""},
		{"GET", "/api", "", "a=\x00; __Host-sa-rt=$RT; b=\r\n", "", "", "", ""},
		{"", "", "", "", "", "", "", ""},
		{"GET", "/page?next=//evil.example&a=%00", "", "", "", "", "navigate", "text/html"},
		{"GET", "/api", "", "__Host-sa-at=$AT;__Host-sa-exp=at=1&rt=2;;; =x; __Host-sa-rt", "", "", "", ""},
		{"DELETE", "/api;x=1", "", "__Host-sa-at=$AT", "", "", "", ""},
	} {
		f.Add(s.method, s.path, s.authorization, s.cookie, s.origin, s.site, s.mode, s.accept)
	}
	r := newFuzzRig(f)
	tokens := r.tokens
	f.Fuzz(func(t *testing.T, method, path, authorization, cookie, origin, site, mode, accept string) {
		r.reset(t)
		var kv []string
		for _, h := range [][2]string{
			{"authorization", authorization}, {"cookie", cookie}, {"origin", origin},
			{"sec-fetch-site", site}, {"sec-fetch-mode", mode}, {"accept", accept},
		} {
			if h[1] != "" {
				kv = append(kv, h[0], tokens.Replace(h[1]))
			}
		}
		cr := req(method, path, kv...)
		resp, err := r.server.Check(context.Background(), cr)
		if err != nil {
			t.Fatalf("gRPC error: %v", err)
		}
		if err := resp.ValidateAll(); err != nil {
			t.Fatalf("CheckResponse fails Envoy's validation: %v", err)
		}
		if d := resp.GetDeniedResponse(); d != nil {
			if c := resp.GetStatus().GetCode(); c != int32(code.Code_UNAUTHENTICATED) && c != int32(code.Code_PERMISSION_DENIED) {
				t.Fatalf("deny with gRPC status %d", c)
			}
			return
		}
		ok := resp.GetOkResponse()
		if ok == nil || resp.GetStatus().GetCode() != 0 {
			t.Fatalf("neither ok nor denied: %v", resp)
		}
		// What the upstream receives: the client's Authorization header
		// unless the answer replaced it.
		bearer, canonical := strings.CutPrefix(upstreamAfter(cr.GetAttributes().GetRequest().GetHttp().GetHeaders(), resp)["authorization"], "Bearer ")
		if req, err := FromCheckRequest(cr); err == nil && r.engine.def.public(req.Path) {
			return
		}
		if !canonical {
			t.Fatalf("allowed without a bearer token to a path that is not public (%q)", path)
		}
		c, verr := r.opts.Verifier.Verify(bearer)
		if verr != nil || c.Subject != "alice" || c.ExpiresAt.Before(r.clock.Now()) {
			t.Fatalf("allowed with an upstream token that does not verify: %v", verr)
		}
	})
}
