package httpauthz

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz"
	"github.com/silentauth/silentauth/authz/access"
	"github.com/silentauth/silentauth/authz/cookie"
	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/authz/store/memstore"
	"github.com/silentauth/silentauth/authz/token"
	"github.com/silentauth/silentauth/internal/testenv/fakeclock"
)

// rig is an Engine over a real keyring and memory store, with a fake
// clock, as the authz package's own tests build it.
type rig struct {
	t        testing.TB
	clock    *fakeclock.Clock
	ring     *keys.Holder
	opts     authz.Options
	sessions *session.Manager
	minter   *token.Minter
	engine   *authz.Engine
	logs     *strings.Builder
}

var testCookies = cookie.Policy{
	Access: "__Host-sa-at", Refresh: "__Host-sa-rt", Hint: "__Host-sa-exp",
	Path: "/", Secure: true, SameSite: http.SameSiteLaxMode,
}

const testAccessTTL = 15 * time.Minute

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
	r := &rig{t: t, clock: fakeclock.New(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)), ring: &keys.Holder{}, logs: &strings.Builder{}}
	k, err := keys.Generate(keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keys.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	r.ring.Store(kr)
	var st store.Store = memstore.New(r.clock.Now)
	if wrap != nil {
		st = wrap(st)
	}
	r.sessions = session.New(st, session.Lifetimes{Idle: 30 * 24 * time.Hour, Absolute: 90 * 24 * time.Hour, Grace: 30 * time.Second}, r.clock.Now)
	r.minter = token.NewMinter(token.MinterOptions{Issuer: "silentauth", Audience: "app", TTL: testAccessTTL, Keys: r.ring, Now: r.clock.Now})
	o := authz.Options{
		Verifier: r.verifier("app"),
		Minter:   r.minter, Sessions: r.sessions, Cookies: testCookies,
		RefreshBefore: time.Minute,
		Now:           r.clock.Now,
		Policy: access.Policy{
			LoginURL: "/login", ReturnToParam: "return_to",
			PublicPaths:  []string{"/healthz", "/static/"},
			ClaimHeaders: map[string]string{"x-user-id": "sub", "x-user-role": "role"},
			RefreshPath:  "/auth/refresh", LogoutPath: "/auth/logout",
			AccessTokenHeader: "x-silentauth-access-token",
		},
	}
	for _, m := range mutate {
		m(&o)
	}
	r.opts = o
	if r.engine, err = authz.NewEngine(o); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) verifier(audience string) *token.Verifier {
	return token.NewVerifier(token.VerifierOptions{Issuer: "silentauth", Audiences: []string{audience}, Leeway: 30 * time.Second, Keys: r.ring, Now: r.clock.Now, MaxTokenBytes: 8192, CacheSize: 100})
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
		Minter:   token.NewMinter(token.MinterOptions{Issuer: "silentauth", Audience: audience, TTL: testAccessTTL, Keys: r.ring, Now: r.clock.Now}),
		Policy:   p,
	}
}

// login starts a session for the default policy as the session API would
// and returns its tokens.
func (r *rig) login(subject string, claims map[string]any) (access, refresh string) {
	r.t.Helper()
	iss, err := r.sessions.Start(context.Background(), subject, "", claims)
	if err != nil {
		r.t.Fatal(err)
	}
	access, _, err = r.minter.Mint(subject, iss.Family.ID, iss.Family.Claims)
	if err != nil {
		r.t.Fatal(err)
	}
	return access, iss.RefreshToken
}

// logger writes JSON lines into r.logs.
func (r *rig) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(&lockedWriter{w: r.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
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
