package authz

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/silentauth/silentauth/authz/cookie"
	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/authz/store/memstore"
	"github.com/silentauth/silentauth/authz/token"
)

// clock is a fake clock the tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// rig is a complete Check server over a real keyring and memory store,
// with a fake clock.
type rig struct {
	t        *testing.T
	clock    *clock
	ring     *keys.Holder
	key      *keys.Key
	store    store.Store
	sessions *session.Manager
	minter   *token.Minter
	engine   *Engine
	server   *Server
	cookies  cookie.Policy
	logs     *strings.Builder
}

var testCookies = cookie.Policy{
	Access: "__Host-sa-at", Refresh: "__Host-sa-rt", Hint: "__Host-sa-exp",
	Path: "/", Secure: true, SameSite: http.SameSiteLaxMode,
}

const (
	testAccessTTL = 15 * time.Minute
	testGrace     = 30 * time.Second
)

func newRig(t *testing.T, mutate ...func(*Options)) *rig {
	t.Helper()
	r := &rig{t: t, clock: &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}, ring: &keys.Holder{}, cookies: testCookies}
	k, err := keys.Generate(keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keys.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	r.key = k
	r.ring.Store(kr)
	r.store = memstore.New(r.clock.Now)
	r.sessions = session.New(r.store, session.Lifetimes{Idle: 30 * 24 * time.Hour, Absolute: 90 * 24 * time.Hour, Grace: testGrace}, r.clock.Now)
	r.minter = token.NewMinter(token.MinterOptions{Issuer: "silentauth", Audience: "app", TTL: testAccessTTL, Keys: r.ring, Now: r.clock.Now})
	o := Options{
		Verifier: token.NewVerifier(token.VerifierOptions{Issuer: "silentauth", Audiences: []string{"app"}, Leeway: 30 * time.Second, Keys: r.ring, Now: r.clock.Now, MaxTokenBytes: 8192, CacheSize: 100}),
		Minter:   r.minter, Sessions: r.sessions, Cookies: r.cookies,
		RefreshBefore: time.Minute,
		Now:           r.clock.Now,
		Policy: Policy{
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
	r.engine, err = NewEngine(o)
	if err != nil {
		t.Fatal(err)
	}
	r.logs = &strings.Builder{}
	r.server = NewServer(r.engine, slog.New(slog.NewJSONHandler(&lockedWriter{w: r.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})), NewMetrics(prometheus.NewRegistry()))
	return r
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

// login starts a session as the session API would and returns its tokens.
func (r *rig) login(subject string, claims map[string]any) (access, refresh string) {
	r.t.Helper()
	iss, err := r.sessions.Start(context.Background(), subject, claims)
	if err != nil {
		r.t.Fatal(err)
	}
	access, _, err = r.minter.Mint(subject, iss.Family.ID, iss.Family.Claims)
	if err != nil {
		r.t.Fatal(err)
	}
	return access, iss.RefreshToken
}

// client serves r.server over an in-memory gRPC connection (bufconn).
func (r *rig) client() authv3.AuthorizationClient {
	r.t.Helper()
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, r.server)
	go gs.Serve(lis)
	r.t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

// fixture loads testdata/name, a CheckRequest as Envoy sends it, with
// $ACCESS_TOKEN and $REFRESH_TOKEN replaced.
func fixture(t *testing.T, name, access, refresh string) *authv3.CheckRequest {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer("$ACCESS_TOKEN", access, "$REFRESH_TOKEN", refresh).Replace(string(b))
	var cr authv3.CheckRequest
	if err := protojson.Unmarshal([]byte(s), &cr); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &cr
}

// req builds an Envoy-shaped CheckRequest from a method, a path and
// header pairs.
func req(method, path string, kv ...string) *authv3.CheckRequest {
	h := map[string]string{":authority": "app.example.com", ":method": method, ":path": path, ":scheme": "http", "x-forwarded-proto": "https"}
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = kv[i+1]
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Id: "test", Method: method, Path: path, Host: "app.example.com", Scheme: "http", Protocol: "HTTP/1.1", Headers: h},
	}}}
}

// check runs one request through the server directly.
func (r *rig) check(cr *authv3.CheckRequest) *authv3.CheckResponse {
	r.t.Helper()
	resp, err := r.server.Check(context.Background(), cr)
	if err != nil {
		r.t.Fatalf("Check returned a gRPC error: %v", err)
	}
	return resp
}

// view is a CheckResponse flattened for assertions.
type view struct {
	allow     bool
	status    int
	upstream  map[string]string
	remove    []string
	response  map[string]string
	setCookie []string
	body      string
}

func flatten(t *testing.T, resp *authv3.CheckResponse) view {
	t.Helper()
	if err := resp.ValidateAll(); err != nil {
		t.Fatalf("CheckResponse fails Envoy's validation: %v", err)
	}
	v := view{upstream: map[string]string{}, response: map[string]string{}}
	if ok := resp.GetOkResponse(); ok != nil {
		v.allow = true
		v.status = 200
		for _, h := range ok.GetHeaders() {
			if h.GetAppendAction() != overwriteAction {
				t.Errorf("upstream header %s: append_action %v, want OVERWRITE_IF_EXISTS_OR_ADD", h.GetHeader().GetKey(), h.GetAppendAction())
			}
			v.upstream[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		v.remove = ok.GetHeadersToRemove()
		v.flattenResponse(t, ok.GetResponseHeadersToAdd())
		if resp.GetStatus().GetCode() != 0 {
			t.Errorf("ok response with gRPC status %d", resp.GetStatus().GetCode())
		}
		return v
	}
	d := resp.GetDeniedResponse()
	if d == nil {
		t.Fatalf("response is neither ok nor denied: %v", resp)
	}
	if resp.GetStatus().GetCode() == 0 {
		t.Errorf("denied response with gRPC status OK")
	}
	v.status = int(d.GetStatus().GetCode())
	v.body = d.GetBody()
	v.flattenResponse(t, d.GetHeaders())
	return v
}

const overwriteAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD

// flattenResponse records client-bound headers; Set-Cookie must be
// appended, one entry each, and everything else overwritten.
func (v *view) flattenResponse(t *testing.T, hs []*corev3.HeaderValueOption) {
	t.Helper()
	for _, h := range hs {
		k := h.GetHeader().GetKey()
		if k == "set-cookie" {
			if h.GetAppendAction() != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
				t.Errorf("set-cookie with append_action %v, want APPEND_IF_EXISTS_OR_ADD", h.GetAppendAction())
			}
			v.setCookie = append(v.setCookie, h.GetHeader().GetValue())
			continue
		}
		if h.GetAppendAction() != overwriteAction {
			t.Errorf("response header %s: append_action %v", k, h.GetAppendAction())
		}
		v.response[k] = h.GetHeader().GetValue()
	}
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
