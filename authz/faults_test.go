package authz

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/store"
)

// errBackend is an infrastructure failure: no store sentinel.
var errBackend = errors.New("store: dial tcp 10.0.0.5:6379: connection refused")

// Requirement 8: a valid access token is answered without the store.
func TestValidTokenNeverTouchesStore(t *testing.T) {
	r, fs := newFaultRig(t)
	at, rt := r.login("alice", nil)
	fs.creates.Store(0)
	for i := range 100 {
		r.clock.Advance(5 * time.Second) // 500 s in all: never within RefreshBefore
		cr := req("GET", "/api", "cookie", ours(at, rt))
		if i%2 == 1 {
			cr = req("POST", "/api", "authorization", "Bearer "+at, "cookie", ours("", rt))
		}
		d := r.decide(cr)
		if !d.Allow || d.Reason != "valid" || len(d.SetCookie) != 0 {
			t.Fatalf("check %d: allow=%v reason %s set-cookie %d", i, d.Allow, d.Reason, len(d.SetCookie))
		}
	}
	if c, g, s := fs.creates.Load(), fs.gets.Load(), fs.swaps.Load(); c+g+s != 0 {
		t.Fatalf("valid tokens reached the store: %d creates, %d gets, %d swaps", c, g, s)
	}
}

// Requirement 9: a store that fails or is too slow never logs anyone out:
// no Set-Cookie at all on a 503, and valid tokens still pass.
func TestStoreFaultsKeepSessions(t *testing.T) {
	faults := []struct {
		name            string
		getErr, swapErr error
	}{
		{"get fails", errBackend, nil},
		{"swap fails", nil, errBackend},
		{"get too slow", context.DeadlineExceeded, nil},
		{"swap too slow", nil, context.DeadlineExceeded},
	}
	requests := []struct {
		name    string
		advance time.Duration // after login
		method  string
		path    string
		bearer  bool
		status  int    // 200 = allowed
		reason  string //
		current bool   // allowed with the presented access token
	}{
		{"expired token", testAccessTTL + time.Minute, "GET", "/api", false, 503, "unavailable", false},
		{"expired bearer token", testAccessTTL + time.Minute, "GET", "/api", true, 503, "unavailable", false},
		{"expiring token", testAccessTTL - 30*time.Second, "GET", "/api", false, 200, "valid_store_unavailable", true},
		{"expiring bearer token", testAccessTTL - 30*time.Second, "GET", "/api", true, 200, "valid_store_unavailable", true},
		{"valid token", time.Minute, "GET", "/api", false, 200, "valid", true},
		{"refresh endpoint", time.Minute, "POST", "/auth/refresh", false, 503, "unavailable", false},
		{"logout endpoint", time.Minute, "POST", "/auth/logout", false, 503, "unavailable", false},
	}
	for _, f := range faults {
		for _, tc := range requests {
			t.Run(f.name+"/"+tc.name, func(t *testing.T) {
				r, fs := newFaultRig(t)
				at, rt := r.login("alice", nil)
				r.clock.Advance(tc.advance)
				fs.getErr, fs.swapErr = f.getErr, f.swapErr
				cr := req(tc.method, tc.path, "cookie", ours(at, rt))
				if tc.bearer {
					cr = req(tc.method, tc.path, "authorization", "Bearer "+at, "cookie", ours("", rt))
				}
				d, v := r.run(t, cr)
				if v.status != tc.status || d.Reason != tc.reason {
					t.Fatalf("status %d reason %s, want %d %s", v.status, d.Reason, tc.status, tc.reason)
				}
				if len(v.setCookie) != 0 {
					t.Fatalf("a store fault sent Set-Cookie: %q", v.setCookie)
				}
				if tc.current && v.received["authorization"] != "Bearer "+at {
					t.Fatal("allowed without the presented access token")
				}
				if tc.status == 503 && (!strings.Contains(v.body, `"reason":"unavailable"`) || d.Err == nil) {
					t.Fatalf("503 body %s, err %v", v.body, d.Err)
				}
				fam := r.family(familyOf(t, rt))
				if fam.Version != 1 || !fam.RevokedAt.IsZero() {
					t.Fatalf("family changed: version %d, revoked %v", fam.Version, fam.RevokedAt)
				}
			})
		}
	}
}

// Requirement 15: Envoy cancelling the Check in the middle of a rotation
// does not leave it half done: the swap runs on a detached context, the
// family moves by exactly one version, and a grace replay returns the
// successor the cancelled request would have carried.
func TestRotationFinishesWhenCheckIsCancelled(t *testing.T) {
	r, fs := newFaultRig(t)
	at, rt := r.login("alice", nil)
	r.clock.Advance(testAccessTTL + time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var swapCtxErr error
	fs.beforeSwap = func(swapCtx context.Context) {
		cancel() // Envoy gives up on the Check
		swapCtxErr = swapCtx.Err()
	}
	cr, err := NewRequest(req("GET", "/api", "cookie", ours(at, rt)))
	if err != nil {
		t.Fatal(err)
	}
	d := r.engine.Decide(ctx, cr, nil)
	fs.beforeSwap = nil
	if ctx.Err() == nil || fs.swaps.Load() != 1 {
		t.Fatalf("the hook did not run inside the one swap (swaps %d)", fs.swaps.Load())
	}
	if swapCtxErr != nil {
		t.Fatalf("the swap ran on the caller's cancelled context: %v", swapCtxErr)
	}
	if !d.Allow || d.Reason != "refreshed" {
		t.Fatalf("allow=%v reason %s err %v", d.Allow, d.Reason, d.Err)
	}
	successor, _ := cookieValue(d.SetCookie, testCookies.Refresh)
	f := r.family(familyOf(t, rt))
	if f.Version != 2 || !bytes.Equal(f.Secrets[0], secretHash(t, successor)) {
		t.Fatalf("family not rotated consistently: version %d", f.Version)
	}
	r.clock.Advance(5 * time.Second)
	replay := r.decide(req("GET", "/api", "cookie", ours(at, rt)))
	if got, _ := cookieValue(replay.SetCookie, testCookies.Refresh); !replay.Allow || got != successor {
		t.Fatalf("grace replay: allow=%v, same successor %v", replay.Allow, got == successor)
	}
}

// A store's own sentinels are answers, not outages: a family that vanished
// between read and swap is unknown, and the cookies go.
func TestStoreSentinelIsNotAnOutage(t *testing.T) {
	r, fs := newFaultRig(t)
	at, rt := r.login("alice", nil)
	r.clock.Advance(testAccessTTL + time.Minute)
	fs.swapErr = store.ErrNotFound
	d, v := r.run(t, req("GET", "/api", "cookie", ours(at, rt)))
	if v.status != 401 || d.Reason != "refresh_unknown" || !slices.Equal(v.setCookie, r.cookies.Clear()) {
		t.Fatalf("status %d reason %s cookies %q", v.status, d.Reason, v.setCookie)
	}
}
