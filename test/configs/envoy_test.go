package configs

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"

	"github.com/silentauth/silentauth/authz"
	"github.com/silentauth/silentauth/authz/config"
	"github.com/silentauth/silentauth/authz/httpauthz"
)

const (
	envoyDir         = "../../manifests/envoy"
	envoyGRPC        = envoyDir + "/envoy.yaml"
	envoyHTTPService = envoyDir + "/envoy-http-service.yaml"
	extAuthzName     = "envoy.filters.http.ext_authz"
)

// checkHeaders are the request headers silentauth's Check reads (see
// authz.Request): both Envoy examples and the Istio HTTP provider must send
// exactly these. A trailing * is a prefix.
var checkHeaders = []string{"accept", "authorization", "cookie", "origin", "sec-fetch-*", "x-forwarded-proto"}

// TestEnvoyManifestsValid loads every YAML file under manifests/envoy, so a
// new example is checked the day it is added.
func TestEnvoyManifestsValid(t *testing.T) {
	var files []string
	err := filepath.WalkDir(envoyDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("found %d Envoy configs under %s, want at least envoy.yaml and envoy-http-service.yaml", len(files), envoyDir)
	}
	for _, f := range files {
		if _, err := loadEnvoy(f); err != nil {
			t.Errorf("%v", err)
		}
	}
}

// TestEnvoyRejects proves the loader is not a rubber stamp: each input has
// one defect, and is refused with exactly one message naming it.
func TestEnvoyRejects(t *testing.T) {
	const hcm = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config<HttpConnectionManager>"
	const authz = hcm + ".http_filters[0].typed_config<ExtAuthz>"
	for _, tc := range []struct{ file, want string }{
		{"envoy-minimal.yaml", ""},
		{"envoy-bad-negative-timeout.yaml", authz + ".grpc_service.timeout: negative duration -1s: Envoy accepts only durations ≥ 0"},
		{"envoy-bad-unknown-field.yaml", `: line 27: unknown field "failure_mode_alow"`},
		{"envoy-bad-unknown-type.yaml", `: line 22: unable to resolve "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuth"`},
		{"envoy-bad-no-service.yaml", authz + ": ext_authz needs grpc_service or http_service"},
		{"envoy-bad-status-code.yaml", authz + ": invalid ExtAuthz.StatusOnError: embedded message failed validation | caused by: invalid HttpStatus.Code: value must be one of the defined enum values"},
		{"envoy-bad-unknown-cluster.yaml", authz + `.grpc_service.envoy_grpc: unknown cluster "silentauth-grpc"`},
		{"envoy-bad-grpc-over-http1.yaml", authz + `.grpc_service.envoy_grpc: cluster "silentauth" carries gRPC but does not speak HTTP/2`},
		{"envoy-bad-router-first.yaml", hcm + ".http_filters[0]: the router must be the last HTTP filter; the 1 after it would never run"},
		{"envoy-bad-per-route-name.yaml", hcm + ".route_config.virtual_hosts[0].routes[0].typed_per_filter_config[envoy.filters.http.extauthz]: names no HTTP filter"},
		{"envoy-bad-deprecated-field.yaml", authz + ".http_service.authorization_request.allowed_headers: deprecated field"},
		{"envoy-bad-timeout-unit.yaml", `: line 26: invalid google.protobuf.Duration value "500ms"`},
	} {
		path := filepath.Join("testdata", tc.file)
		_, err := loadEnvoy(path)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%v", err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: accepted, want %q", tc.file, tc.want)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, path+":") || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: error\n%v\nwant it to start with the file name and contain\n%s", tc.file, msg, tc.want)
		}
		if n := len(strings.Split(strings.TrimSpace(strings.TrimPrefix(msg, path+":")), "\n")); n != 1 {
			t.Errorf("%s: %d problems reported, want exactly one:\n%v", tc.file, n, msg)
		}
	}
}

// TestEnvoyGRPCChoices pins the security and availability choices of
// envoy.yaml that silentauth depends on (README "Wiring Envoy").
func TestEnvoyGRPCChoices(t *testing.T) {
	b := mustLoadEnvoy(t, envoyGRPC)
	hcm := onlyConnectionManager(t, b)
	ea := extAuthzOf(t, hcm)

	if ea.GetFailureModeAllow() {
		t.Error("failure_mode_allow is true: an unreachable silentauth would let every request through")
	}
	if got := ea.GetStatusOnError().GetCode(); got != typev3.StatusCode_ServiceUnavailable {
		t.Errorf("status_on_error = %v, want 503 so an outage never reads as logged out", got)
	}
	if ea.GetTransportApiVersion() != corev3.ApiVersion_V3 {
		t.Errorf("transport_api_version = %v, want V3", ea.GetTransportApiVersion())
	}
	if !ea.GetValidateMutations() {
		t.Error("validate_mutations is false")
	}
	if ea.GetWithRequestBody() != nil {
		t.Error("with_request_body is set: silentauth decides on headers and never needs the body")
	}
	if ea.GetClearRouteCache() {
		t.Error("clear_route_cache is true: silentauth's headers must not re-route requests")
	}
	gs := ea.GetGrpcService()
	if gs == nil {
		t.Fatal("ext_authz does not use grpc_service")
	}
	if d := gs.GetTimeout().AsDuration(); d <= 0 || d > time.Second {
		t.Errorf("grpc_service.timeout = %v, want in (0, 1s]", d)
	}
	if got := gs.GetEnvoyGrpc().GetClusterName(); got != "silentauth" {
		t.Errorf("envoy_grpc.cluster_name = %q, want silentauth", got)
	}
	wantEndpoint(t, b, "silentauth", "127.0.0.1", defaultPort(t, config.Default().Listen.GRPC.Address))
	if got := headerPatterns(t, ea.GetAllowedHeaders()); !slices.Equal(got, checkHeaders) {
		t.Errorf("allowed_headers = %v, want %v", got, checkHeaders)
	}

	pol := config.Default().Policy
	for _, tc := range []struct{ path, want string }{
		{"/static/app.js", "skip"},
		{"/static/", "skip"},
		{"/healthz", "skip"},
		{"/healthz/deep", "check"},
		{"/staticfile", "check"},
		{"/admin/users", "check policy=admin"},
		{"/api/hello", "check"},
		{"/", "check"},
		{pol.RefreshPath, "check"},
		{pol.LogoutPath, "check"},
	} {
		if got := checkFor(t, hcm, tc.path); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.path, got, tc.want)
		}
	}
	// A route that skips Check also skips silentauth's header hygiene, so
	// it must drop the session cookies, a client Authorization and forged
	// identity headers itself.
	for _, p := range []string{"/static/app.js", "/healthz"} {
		r := routeFor(t, hcm, p)
		for _, h := range []string{"cookie", "authorization", "x-user-id"} {
			if !slices.Contains(r.GetRequestHeadersToRemove(), h) {
				t.Errorf("%s (route %s) skips Check but keeps the %s header", p, r.GetName(), h)
			}
		}
	}
}

// TestEnvoyHTTPServiceChoices pins envoy-http-service.yaml: the same
// choices, and header lists that let silentauth's cookies and redirects
// reach the browser.
func TestEnvoyHTTPServiceChoices(t *testing.T) {
	b := mustLoadEnvoy(t, envoyHTTPService)
	hcm := onlyConnectionManager(t, b)
	ea := extAuthzOf(t, hcm)

	if ea.GetFailureModeAllow() || ea.GetStatusOnError().GetCode() != typev3.StatusCode_ServiceUnavailable ||
		!ea.GetValidateMutations() || ea.GetWithRequestBody() != nil {
		t.Errorf("failure_mode_allow=%v status_on_error=%v validate_mutations=%v with_request_body=%v; want false, 503, true, unset",
			ea.GetFailureModeAllow(), ea.GetStatusOnError().GetCode(), ea.GetValidateMutations(), ea.GetWithRequestBody())
	}
	hs := ea.GetHttpService()
	if hs == nil {
		t.Fatal("ext_authz does not use http_service")
	}
	// The "envoy" profile of silentauth's HTTP mode (httpauthz.NewHandler).
	if hs.GetPathPrefix() != "/authz/envoy" {
		t.Errorf("path_prefix = %q, want /authz/envoy", hs.GetPathPrefix())
	}
	if d := hs.GetServerUri().GetTimeout().AsDuration(); d <= 0 || d > time.Second {
		t.Errorf("server_uri.timeout = %v, want in (0, 1s]", d)
	}
	wantEndpoint(t, b, hs.GetServerUri().GetCluster(), "127.0.0.1", defaultPort(t, config.Default().Listen.Public.Address))
	if got := headerPatterns(t, ea.GetAllowedHeaders()); !slices.Equal(got, checkHeaders) {
		t.Errorf("allowed_headers = %v, want %v", got, checkHeaders)
	}

	resp := hs.GetAuthorizationResponse()
	for _, tc := range []struct {
		list string
		m    *matcherv3.ListStringMatcher
		want []string
	}{
		{"allowed_upstream_headers", resp.GetAllowedUpstreamHeaders(), []string{"authorization", "cookie", "x-user-*"}},
		{"allowed_client_headers", resp.GetAllowedClientHeaders(), []string{"set-cookie", "www-authenticate", "location", "cache-control", "content-type"}},
		{"allowed_client_headers_on_success", resp.GetAllowedClientHeadersOnSuccess(), []string{"set-cookie", "cache-control", config.Default().Policy.AccessTokenHeader}},
	} {
		got := headerPatterns(t, tc.m)
		for _, h := range tc.want {
			if !slices.Contains(got, h) {
				t.Errorf("%s = %v, missing %s", tc.list, got, h)
			}
		}
	}
	for _, tc := range []struct{ path, want string }{
		{"/static/app.js", "skip"},
		{"/healthz", "skip"},
		{"/api/hello", "check"},
		{"/admin/users", "check policy=admin"},
		{config.Default().Policy.RefreshPath, "check"},
	} {
		if got := checkFor(t, hcm, tc.path); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.path, got, tc.want)
		}
	}
	// The admin route's own copy of the service must differ from the
	// filter's only in the policy header.
	per := perRoute(t, routeFor(t, hcm, "/admin/users"))
	over := proto.Clone(per.GetCheckSettings().GetHttpService()).(*extauthzv3.HttpService)
	over.AuthorizationRequest = nil
	if !proto.Equal(over, hs) {
		t.Errorf("the admin route's http_service differs from the filter's beyond the policy header:\n%v\n%v", over, hs)
	}
}

// TestEnvoyDropsUnderscoreHeaders: both examples drop (or reject) client
// headers spelt with "_", which CGI, WSGI and PHP apps read as the "-"
// spelling: silentauth's allowed_headers never show it X_User_Id, and
// headers_to_remove matches exact names only, so Envoy must. A connection
// manager without the setting (Envoy's default is ALLOW) fails.
func TestEnvoyDropsUnderscoreHeaders(t *testing.T) {
	for _, tc := range []struct {
		file string
		ok   bool
	}{
		{envoyGRPC, true},
		{envoyHTTPService, true},
		{filepath.Join("testdata", "envoy-minimal.yaml"), false},
	} {
		err := underscoreProblem(onlyConnectionManager(t, mustLoadEnvoy(t, tc.file)))
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok=%v", tc.file, err, tc.ok)
		}
	}
}

// underscoreProblem says why hcm lets headers spelt with "_" through.
func underscoreProblem(hcm *hcmv3.HttpConnectionManager) error {
	switch a := hcm.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction(); a {
	case corev3.HttpProtocolOptions_DROP_HEADER, corev3.HttpProtocolOptions_REJECT_REQUEST:
		return nil
	default:
		return fmt.Errorf("common_http_protocol_options.headers_with_underscores_action is %v: a client's X_User_Id would reach the app as X-User-Id; set DROP_HEADER or REJECT_REQUEST", a)
	}
}

func mustLoadEnvoy(t *testing.T, path string) *bootstrapv3.Bootstrap {
	t.Helper()
	b, err := loadEnvoy(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// onlyConnectionManager returns the HTTP connection manager of the one
// listener the examples define.
func onlyConnectionManager(t *testing.T, b *bootstrapv3.Bootstrap) *hcmv3.HttpConnectionManager {
	t.Helper()
	nodes, _ := collect(b)
	var found []*hcmv3.HttpConnectionManager
	for _, n := range nodes {
		if m, ok := n.msg.(*hcmv3.HttpConnectionManager); ok {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("found %d HTTP connection managers, want 1", len(found))
	}
	return found[0]
}

// extAuthzOf returns the one ext_authz filter of the chain, named as the
// per-route configs expect.
func extAuthzOf(t *testing.T, hcm *hcmv3.HttpConnectionManager) *extauthzv3.ExtAuthz {
	t.Helper()
	var found []*extauthzv3.ExtAuthz
	for _, f := range hcm.GetHttpFilters() {
		ea := &extauthzv3.ExtAuthz{}
		if f.GetTypedConfig().MessageIs(ea) {
			if f.GetName() != extAuthzName {
				t.Errorf("ext_authz filter is named %q, want %q (the key of its per-route configs)", f.GetName(), extAuthzName)
			}
			if err := f.GetTypedConfig().UnmarshalTo(ea); err != nil {
				t.Fatal(err)
			}
			found = append(found, ea)
		}
	}
	if len(found) != 1 {
		t.Fatalf("found %d ext_authz filters, want 1", len(found))
	}
	return found[0]
}

// routeFor returns the route Envoy picks for path: the first route of the
// single virtual host whose prefix or exact path matches.
func routeFor(t *testing.T, hcm *hcmv3.HttpConnectionManager, path string) *routev3.Route {
	t.Helper()
	vhs := hcm.GetRouteConfig().GetVirtualHosts()
	if len(vhs) != 1 {
		t.Fatalf("%d virtual hosts, want 1", len(vhs))
	}
	for _, r := range vhs[0].GetRoutes() {
		m := r.GetMatch()
		switch p := m.GetPathSpecifier().(type) {
		case *routev3.RouteMatch_Prefix:
			if strings.HasPrefix(path, p.Prefix) {
				return r
			}
		case *routev3.RouteMatch_Path:
			if path == p.Path {
				return r
			}
		default:
			t.Fatalf("route %q: matcher %T is not modelled by this test", r.GetName(), p)
		}
	}
	t.Fatalf("no route matches %s", path)
	return nil
}

// checkFor says what ext_authz does for a request to path: "skip" (per-route
// disabled), "check", or "check policy=NAME" from the route's
// context_extensions.
func checkFor(t *testing.T, hcm *hcmv3.HttpConnectionManager, path string) string {
	t.Helper()
	r := routeFor(t, hcm, path)
	per := perRoute(t, r)
	if per.GetDisabled() {
		return "skip"
	}
	if p := per.GetCheckSettings().GetContextExtensions()[authz.PolicyKey]; p != "" {
		return "check policy=" + p
	}
	// The HTTP mode's equivalent: the policy header of a per-route service.
	for _, h := range per.GetCheckSettings().GetHttpService().GetAuthorizationRequest().GetHeadersToAdd() {
		if strings.EqualFold(h.GetKey(), httpauthz.HeaderPolicy) {
			return "check policy=" + h.GetValue()
		}
	}
	return "check"
}

// perRoute returns the route's ext_authz per-route config, empty if none.
func perRoute(t *testing.T, r *routev3.Route) *extauthzv3.ExtAuthzPerRoute {
	t.Helper()
	per := &extauthzv3.ExtAuthzPerRoute{}
	if a, ok := r.GetTypedPerFilterConfig()[extAuthzName]; ok {
		if err := a.UnmarshalTo(per); err != nil {
			t.Fatalf("route %s: %v", r.GetName(), err)
		}
	}
	return per
}

// headerPatterns lists a header matcher as names, a prefix ending in *.
func headerPatterns(t *testing.T, l *matcherv3.ListStringMatcher) []string {
	t.Helper()
	var out []string
	for _, p := range l.GetPatterns() {
		switch {
		case p.GetExact() != "":
			out = append(out, p.GetExact())
		case p.GetPrefix() != "":
			out = append(out, p.GetPrefix()+"*")
		default:
			t.Fatalf("header matcher %v is not an exact name or a prefix", p)
		}
	}
	slices.Sort(out)
	return out
}

// wantEndpoint asserts that a static cluster has exactly one endpoint,
// host:port.
func wantEndpoint(t *testing.T, b *bootstrapv3.Bootstrap, cluster, host string, port uint32) {
	t.Helper()
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() != cluster {
			continue
		}
		var got []string
		for _, e := range c.GetLoadAssignment().GetEndpoints() {
			for _, lb := range e.GetLbEndpoints() {
				sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
				got = append(got, net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))))
			}
		}
		if want := net.JoinHostPort(host, strconv.Itoa(int(port))); len(got) != 1 || got[0] != want {
			t.Errorf("cluster %s endpoints = %v, want [%s]", cluster, got, want)
		}
		return
	}
	t.Errorf("no static cluster %q", cluster)
}

// defaultPort is the port of one of silentauth's default listen addresses.
func defaultPort(t *testing.T, addr string) uint32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err == nil {
		var n uint64
		if n, err = strconv.ParseUint(p, 10, 16); err == nil {
			return uint32(n)
		}
	}
	t.Fatal(errors.Join(errors.New("bad default address "+addr), err))
	return 0
}
