package httpauthz

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz"
	"github.com/silentauth/silentauth/authz/access"
	"github.com/silentauth/silentauth/authz/internal/authztest"
	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/authz/token"
	"github.com/silentauth/silentauth/internal/testenv/fakeclock"
	"github.com/silentauth/silentauth/internal/testenv/logbuf"
)

// rig is an Engine over a real keyring and memory store, with a fake
// clock, as the authz package's own tests build it.
type rig struct {
	t        testing.TB
	parts    *authztest.Parts
	clock    *fakeclock.Clock
	ring     *keys.Holder
	opts     authz.Options
	sessions *session.Manager
	minter   *token.Minter
	engine   *authz.Engine
	logs     *logbuf.Buffer
}

var testCookies = authztest.Cookies

const testAccessTTL = authztest.AccessTTL

var trustedOrigins = []string{"https://trusted.example", "https://admin.example.com"}

func withTrustedOrigins(o *authz.Options) { o.Policy.TrustedOrigins = trustedOrigins }

func newRig(t testing.TB, mutate ...func(*authz.Options)) *rig {
	t.Helper()
	return newRigWithStore(t, nil, mutate...)
}

// newRigWithStore is newRig with the memory store seen through wrap (nil:
// no wrapper).
func newRigWithStore(t testing.TB, wrap func(store.Store) store.Store, mutate ...func(*authz.Options)) *rig {
	t.Helper()
	p := authztest.New(t, wrap)
	r := &rig{t: t, parts: p, clock: p.Clock, ring: p.Ring, sessions: p.Sessions, minter: p.Minter, logs: &logbuf.Buffer{}}
	o := authz.Options{
		Verifier: r.verifier("app"), Minter: r.minter, Sessions: r.sessions, Cookies: testCookies,
		RefreshBefore: time.Minute, Now: r.clock.Now, Policy: authztest.Policy(),
	}
	for _, m := range mutate {
		m(&o)
	}
	r.opts = o
	var err error
	if r.engine, err = authz.NewEngine(o); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) verifier(audience string) *token.Verifier {
	return r.parts.Verifier(audience)
}

// withNamed rebuilds the rig's engine with named per-route policies.
func (r *rig) withNamed(t *testing.T, named map[string]authz.Route) {
	t.Helper()
	o := r.opts
	o.Named = named
	e, err := authz.NewEngine(o)
	if err != nil {
		t.Fatal(err)
	}
	r.engine = e
}

func (r *rig) route(audience string, p access.Policy) authz.Route {
	return authz.Route{
		Verifier: r.verifier(audience),
		Minter:   r.parts.MinterFor(audience),
		Policy:   p,
	}
}

// login starts a session for the default policy as the session API would
// and returns its tokens.
func (r *rig) login(subject string, claims map[string]any) (access, refresh string) {
	r.t.Helper()
	return authztest.Login(r.t, r.sessions, "", r.minter, subject, claims)
}

// logger writes JSON lines into r.logs.
func (r *rig) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// ours is the Cookie header a browser holding our access and refresh
// cookies sends (empty values left out).
func ours(at, rt string) string {
	var out []string
	for _, kv := range [][2]string{{testCookies.Access, at}, {testCookies.Refresh, rt}} {
		if kv[1] != "" {
			out = append(out, kv[0]+"="+kv[1])
		}
	}
	return strings.Join(out, "; ")
}

// cookieValue returns the value a Set-Cookie list gives to name.
func cookieValue(setCookie []string, name string) (string, bool) {
	for _, c := range setCookie {
		if v, ok := strings.CutPrefix(c, name+"="); ok {
			v, _, _ = strings.Cut(v, ";")
			return v, true
		}
	}
	return "", false
}

// reason is the deny reason carried in a JSON deny body ("" if none).
func reason(t testing.TB, body string) string {
	t.Helper()
	if body == "" {
		return ""
	}
	var b struct{ Reason string }
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("deny body %q: %v", body, err)
	}
	return b.Reason
}

var errBackend = errors.New("store: dial tcp 10.0.0.5:6379: connection refused")

// faultStore counts swaps and fails Gets with getErr when set.
type faultStore struct {
	store.Store
	swaps  atomic.Int64
	getErr error
}

func (s *faultStore) Get(ctx context.Context, id string) (*store.Family, error) {
	if s.getErr != nil {
		return nil, s.getErr
	}
	return s.Store.Get(ctx, id)
}

func (s *faultStore) Swap(ctx context.Context, expected uint64, next *store.Family) error {
	s.swaps.Add(1)
	return s.Store.Swap(ctx, expected, next)
}

func newFaultRig(t testing.TB, mutate ...func(*authz.Options)) (*rig, *faultStore) {
	t.Helper()
	var fs *faultStore
	r := newRigWithStore(t, func(s store.Store) store.Store {
		fs = &faultStore{Store: s}
		return fs
	}, mutate...)
	return r, fs
}
