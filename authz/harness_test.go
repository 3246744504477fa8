package authz

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"maps"
	"net"
	"os"
	"strings"
	"sync/atomic"
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
	"github.com/silentauth/silentauth/authz/internal/authztest"
	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/authz/store/memstore"
	"github.com/silentauth/silentauth/authz/token"
	"github.com/silentauth/silentauth/internal/testenv/fakeclock"
	"github.com/silentauth/silentauth/internal/testenv/logbuf"
)

// rig is a complete Check server over a real keyring and memory store,
// with a fake clock.
type rig struct {
	t        testing.TB
	parts    *authztest.Parts
	clock    *fakeclock.Clock
	ring     *keys.Holder
	key      *keys.Key
	store    store.Store     // what the session manager uses: mem, or a wrapper of it
	mem      *memstore.Store // the records themselves, for assertions that must not count
	opts     Options         // the engine's options, to build replicas
	sessions *session.Manager
	minter   *token.Minter
	engine   *Engine
	server   *Server
	cookies  cookie.Policy
	logs     *logbuf.Buffer
}

var testCookies = authztest.Cookies

const (
	testAccessTTL = authztest.AccessTTL
	testGrace     = authztest.Grace
)

func newRig(t testing.TB, mutate ...func(*Options)) *rig {
	t.Helper()
	return newRigWithStore(t, nil, mutate...)
}

// testLifetimes are the rig's session lifetimes.
var testLifetimes = authztest.Lifetimes

// newRigWithStore is newRig with the memory store seen through wrap (nil:
// no wrapper), e.g. a faultStore that counts or fails calls.
func newRigWithStore(t testing.TB, wrap func(store.Store) store.Store, mutate ...func(*Options)) *rig {
	t.Helper()
	p := authztest.New(t, wrap)
	r := &rig{t: t, parts: p, clock: p.Clock, ring: p.Ring, key: p.Key, mem: p.Mem, store: p.Store, sessions: p.Sessions, minter: p.Minter, cookies: testCookies}
	o := Options{
		Verifier: p.Verifier("app"), Minter: r.minter, Sessions: r.sessions, Cookies: r.cookies,
		RefreshBefore: time.Minute, Now: r.clock.Now, Policy: authztest.Policy(),
	}
	for _, m := range mutate {
		m(&o)
	}
	r.opts = o
	var err error
	if r.engine, err = NewEngine(o); err != nil {
		t.Fatal(err)
	}
	r.logs = &logbuf.Buffer{}
	reg := prometheus.NewRegistry()
	r.server = NewServer(r.engine, slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), NewMetrics(reg, 0))
	t.Cleanup(func() { checkReasonsKnown(t, reg) })
	return r
}

// login starts a session for the default policy as the session API would
// and returns its tokens.
func (r *rig) login(subject string, claims map[string]any) (access, refresh string) {
	r.t.Helper()
	return r.loginFor("", r.minter, subject, claims)
}

// loginFor starts a session for policy, its first access token minted by
// minter (that policy's), and returns its tokens.
func (r *rig) loginFor(policy string, minter *token.Minter, subject string, claims map[string]any) (access, refresh string) {
	r.t.Helper()
	return authztest.Login(r.t, r.sessions, policy, minter, subject, claims)
}

// client serves r.server over an in-memory gRPC connection (bufconn).
func (r *rig) client() authv3.AuthorizationClient {
	r.t.Helper()
	return r.serve(r.server)
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
// peer is an Envoy source address.
func peer(addr string) *authv3.AttributeContext_Peer {
	return &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
		SocketAddress: &corev3.SocketAddress{Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 51234}},
	}}}
}

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
	upstream  map[string]string // headers the answer sets upstream
	remove    []string
	received  map[string]string // what the upstream receives (rig.run only)
	response  map[string]string
	setCookie []string
	body      string
}

func flatten(t testing.TB, resp *authv3.CheckResponse) view {
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
func (v *view) flattenResponse(t testing.TB, hs []*corev3.HeaderValueOption) {
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

// serve serves srv over an in-memory gRPC connection (bufconn) and returns
// a client of it.
func (r *rig) serve(srv *Server) authv3.AuthorizationClient {
	r.t.Helper()
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer()
	authv3.RegisterAuthorizationServer(gs, srv)
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

// replica returns another Server as a second silentauth replica would run
// it: its own session manager (so no shared singleflight) over the rig's
// store, the same keys, clock, policy and log.
func (r *rig) replica() *Server {
	r.t.Helper()
	o := r.opts
	o.Sessions = session.New(r.store, testLifetimes, r.clock.Now)
	e, err := NewEngine(o)
	if err != nil {
		r.t.Fatal(err)
	}
	return NewServer(e, r.server.obs.log, nil)
}

// run decides cr with the engine and returns the Decision together with
// the flattened CheckResponse it becomes on the wire.
func (r *rig) run(t testing.TB, cr *authv3.CheckRequest) (Decision, view) {
	t.Helper()
	d := r.decide(cr)
	resp := respond(d)
	v := flatten(t, resp)
	if v.allow {
		v.received = upstreamAfter(cr.GetAttributes().GetRequest().GetHttp().GetHeaders(), resp)
	}
	return d, v
}

// family reads family id straight from the memory store, past any wrapper.
func (r *rig) family(id string) *store.Family {
	r.t.Helper()
	f, err := r.mem.Get(context.Background(), id)
	if err != nil {
		r.t.Fatalf("family %s: %v", id, err)
	}
	return f
}

// familyOf is the family id of refresh token rt.
func familyOf(t testing.TB, rt string) string {
	t.Helper()
	id, err := session.FamilyID(rt)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// secretHash is what the store keeps for refresh token rt: the SHA-256 of
// its decoded secret.
// generationOf returns the generation a refresh token names (its first
// 8 bytes after the dot, big-endian), 0 if rt is not a keyed token.
func generationOf(rt string) uint64 {
	_, body, _ := strings.Cut(rt, ".")
	b, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(b) != 44 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// jar builds a Cookie header from name=value pairs, skipping empty values.
func jar(pairs ...string) string {
	var out []string
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			out = append(out, pairs[i]+"="+pairs[i+1])
		}
	}
	return strings.Join(out, "; ")
}

// ours is the Cookie header a browser holding our access and refresh
// cookies sends.
func ours(at, rt string) string {
	return jar(testCookies.Access, at, testCookies.Refresh, rt)
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

// upstreamAfter applies an OkHttpResponse to request headers in the order
// Envoy's ext_authz filter does (Filter::onComplete): headers to set first,
// then headers_to_remove. It returns what the upstream receives.
func upstreamAfter(in map[string]string, resp *authv3.CheckResponse) map[string]string {
	out := maps.Clone(in)
	ok := resp.GetOkResponse()
	for _, h := range ok.GetHeaders() {
		out[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	for _, name := range ok.GetHeadersToRemove() {
		delete(out, name)
	}
	return out
}

// faultStore wraps a store.Store for the tests: it counts calls, fails them
// with injected errors, runs hooks, and, like a networked backend, fails
// any call made on a context that is already done. Set errors and hooks
// before any concurrent use.
type faultStore struct {
	store.Store
	creates, gets, swaps atomic.Int64

	getErr, swapErr error
	hang            atomic.Bool               // Get waits for its context, as a paused Redis would
	afterGet        func()                    // after a successful Get
	beforeSwap      func(ctx context.Context) // before the context check of Swap
}

func (s *faultStore) Create(ctx context.Context, f *store.Family) error {
	s.creates.Add(1)
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.Store.Create(ctx, f)
}

func (s *faultStore) Get(ctx context.Context, id string) (*store.Family, error) {
	s.gets.Add(1)
	if s.hang.Load() {
		<-ctx.Done()
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s.getErr != nil {
		return nil, s.getErr
	}
	f, err := s.Store.Get(ctx, id)
	if err == nil && s.afterGet != nil {
		s.afterGet()
	}
	return f, err
}

func (s *faultStore) Swap(ctx context.Context, expected uint64, next *store.Family) error {
	s.swaps.Add(1)
	if s.beforeSwap != nil {
		s.beforeSwap(ctx)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.swapErr != nil {
		return s.swapErr
	}
	return s.Store.Swap(ctx, expected, next)
}

// newFaultRig returns a rig whose session manager sees the memory store
// through a faultStore.
func newFaultRig(t testing.TB, mutate ...func(*Options)) (*rig, *faultStore) {
	t.Helper()
	var fs *faultStore
	r := newRigWithStore(t, func(s store.Store) store.Store {
		fs = &faultStore{Store: s}
		return fs
	}, mutate...)
	return r, fs
}
