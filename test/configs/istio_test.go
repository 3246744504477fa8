package configs

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/silentauth/silentauth/authz"
	"github.com/silentauth/silentauth/authz/config"
)

const (
	istioDir        = "../../manifests/istio"
	meshFile        = istioDir + "/mesh-config.yaml"
	policyFile      = istioDir + "/authorization-policy.yaml"
	authnFile       = istioDir + "/request-authentication.yaml"
	perRouteFile    = istioDir + "/per-route-policy.yaml"
	silentauthHost  = "silentauth.silentauth.svc.cluster.local"
	grpcProviderKey = "silentauth"
	httpProviderKey = "silentauth-http"
)

// Paths and whether silentauth must be asked about them, in every example
// (Envoy's per-route disabled: true and Istio's notPaths must agree).
var pathCases = []struct {
	path    string
	checked bool
}{
	{"/", true},
	{"/api/hello", true},
	{"/admin/users", true},
	{config.Default().Policy.RefreshPath, true},
	{config.Default().Policy.LogoutPath, true},
	{"/staticfile", true},
	{"/healthz/deep", true},
	{"/static/app.js", false},
	{"/healthz", false},
}

// TestIstioManifestsValid decodes every file under manifests/istio strictly
// and applies istiod's rules to it.
func TestIstioManifestsValid(t *testing.T) {
	mesh := mustLoadMesh(t)
	files, err := filepath.Glob(istioDir + "/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("found %d files under %s, want at least 4", len(files), istioDir)
	}
	for _, path := range files {
		if path == meshFile {
			continue
		}
		f, err := loadIstio(path)
		if err != nil {
			t.Error(err)
			continue
		}
		for _, p := range checkIstio(f, mesh) {
			t.Errorf("%s: %v", path, p)
		}
	}
}

// TestIstioRejects: each input has one defect, refused with a message that
// names it.
func TestIstioRejects(t *testing.T) {
	mesh := mustLoadMesh(t)
	for _, tc := range []struct{ file, want string }{
		{"istio-bad-mesh-grpc-headers.yaml", "line 10: field includeRequestHeadersInCheck not found in type configs.grpcProvider"},
		{"istio-bad-mesh-status-number.yaml", `line 10: want a string, found !!int "503" (quote it)`},
		{"istio-bad-mesh-timeout-ms.yaml", `line 9: "500ms" is not a protobuf duration`},
		{"istio-bad-mesh-fail-open-yes.yaml", `line 9: want true or false, found "yes"`},
		{"istio-bad-mesh-lone-wildcard.yaml", `provider "silentauth-http": includeRequestHeadersInCheck: a single "*" is not supported`},
		{"istio-bad-mesh-duplicate-provider.yaml", `provider names must be unique: "silentauth" twice`},
		{"istio-bad-custom-principals.yaml", "CUSTOM rules cannot use requestPrincipals"},
		{"istio-bad-path-wildcard.yaml", `path "/auth/*/x": Istio matches only exact paths, prefix* and *suffix`},
		{"istio-bad-unknown-provider.yaml", `provider "silentauth-grpc" is not defined in mesh-config.yaml`},
		{"istio-bad-policy-field.yaml", "line 12: field actions not found"},
		{"istio-bad-envoyfilter-value.yaml", `unknown field "typed_per_filter_configs"`},
	} {
		path := filepath.Join("testdata", tc.file)
		var problems []error
		if strings.HasPrefix(tc.file, "istio-bad-mesh-") {
			m, err := loadMesh(path)
			if err != nil {
				problems = []error{err}
			} else {
				problems = checkMesh(m)
			}
		} else {
			f, err := loadIstio(path)
			if err != nil {
				problems = []error{err}
			} else {
				problems = checkIstio(f, mesh)
			}
		}
		switch {
		case len(problems) == 0:
			t.Errorf("%s: accepted, want %q", tc.file, tc.want)
		case len(problems) > 1:
			t.Errorf("%s: %d problems, want exactly one: %v", tc.file, len(problems), problems)
		case !strings.Contains(problems[0].Error(), tc.want):
			t.Errorf("%s: %v\nwant it to contain %s", tc.file, problems[0], tc.want)
		}
	}
}

// TestIstioMeshChoices pins the providers: silentauth's address, a short
// timeout, fail closed with 503, and header lists equal to the Envoy
// HTTP-service example's.
func TestIstioMeshChoices(t *testing.T) {
	providers := providersByName(mustLoadMesh(t))
	def := config.Default()

	g := providers[grpcProviderKey].EnvoyExtAuthzGrpc
	if g == nil {
		t.Fatalf("no envoyExtAuthzGrpc provider %q", grpcProviderKey)
	}
	if g.Service != silentauthHost || g.Port != defaultPort(t, def.Listen.GRPC.Address) {
		t.Errorf("%s: service %s:%d, want %s:%d", grpcProviderKey, g.Service, g.Port, silentauthHost, defaultPort(t, def.Listen.GRPC.Address))
	}
	wantShortTimeout(t, grpcProviderKey, g.Timeout)
	if g.FailOpen || g.StatusOnError != "503" || g.IncludeRequestBodyInCheck != nil {
		t.Errorf("%s: failOpen=%v statusOnError=%q body=%v, want false, \"503\", none", grpcProviderKey, g.FailOpen, g.StatusOnError, g.IncludeRequestBodyInCheck)
	}

	h := providers[httpProviderKey].EnvoyExtAuthzHttp
	if h == nil {
		t.Fatalf("no envoyExtAuthzHttp provider %q", httpProviderKey)
	}
	if h.Service != silentauthHost || h.Port != defaultPort(t, def.Listen.Public.Address) || h.PathPrefix != "/authz/envoy" {
		t.Errorf("%s: %s:%d%s, want %s:%d/authz/envoy", httpProviderKey, h.Service, h.Port, h.PathPrefix, silentauthHost, defaultPort(t, def.Listen.Public.Address))
	}
	wantShortTimeout(t, httpProviderKey, h.Timeout)
	if h.FailOpen || h.StatusOnError != "503" || h.IncludeRequestBodyInCheck != nil {
		t.Errorf("%s: failOpen=%v statusOnError=%q body=%v, want false, \"503\", none", httpProviderKey, h.FailOpen, h.StatusOnError, h.IncludeRequestBodyInCheck)
	}

	// The same contract as manifests/envoy/envoy-http-service.yaml.
	ea := extAuthzOf(t, onlyConnectionManager(t, mustLoadEnvoy(t, envoyHTTPService)))
	resp := ea.GetHttpService().GetAuthorizationResponse()
	for _, tc := range []struct {
		field string
		got   []text
		want  []string
	}{
		{"includeRequestHeadersInCheck", h.IncludeRequestHeadersInCheck, headerPatterns(t, ea.GetAllowedHeaders())},
		{"headersToUpstreamOnAllow", h.HeadersToUpstreamOnAllow, headerPatterns(t, resp.GetAllowedUpstreamHeaders())},
		{"headersToDownstreamOnDeny", h.HeadersToDownstreamOnDeny, headerPatterns(t, resp.GetAllowedClientHeaders())},
		{"headersToDownstreamOnAllow", h.HeadersToDownstreamOnAllow, headerPatterns(t, resp.GetAllowedClientHeadersOnSuccess())},
	} {
		got := texts(tc.got)
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s.%s = %v, want %v as in %s", httpProviderKey, tc.field, got, tc.want, envoyHTTPService)
		}
	}
	if got := texts(h.IncludeRequestHeadersInCheck); !slices.Equal(sorted(got), checkHeaders) {
		t.Errorf("includeRequestHeadersInCheck = %v, want %v", got, checkHeaders)
	}
}

// TestIstioPolicyChoices: the CUSTOM policy asks silentauth about every
// path but the public ones, /auth/* included, exactly like envoy.yaml; the
// RequestAuthentication verifies silentauth's tokens on the same workload.
func TestIstioPolicyChoices(t *testing.T) {
	f, err := loadIstio(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.policies) != 1 {
		t.Fatalf("%d policies, want 1", len(f.policies))
	}
	p := f.policies[0]
	if p.Spec.Action != "CUSTOM" || p.Spec.Provider == nil || p.Spec.Provider.Name != grpcProviderKey {
		t.Fatalf("action %s provider %v, want CUSTOM with provider %s", p.Spec.Action, p.Spec.Provider, grpcProviderKey)
	}
	envoy := onlyConnectionManager(t, mustLoadEnvoy(t, envoyGRPC))
	for _, tc := range pathCases {
		if got := customCovers(t, p.Spec, tc.path); got != tc.checked {
			t.Errorf("%s: CUSTOM policy covers = %v, want %v", tc.path, got, tc.checked)
		}
		if envoySkips := checkFor(t, envoy, tc.path) == "skip"; envoySkips == tc.checked {
			t.Errorf("%s: envoy.yaml and the Istio policy disagree on asking silentauth", tc.path)
		}
	}

	a, err := loadIstio(authnFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.authns) != 1 || len(a.authns[0].Spec.JWTRules) != 1 {
		t.Fatalf("want one RequestAuthentication with one jwtRule")
	}
	ra := a.authns[0]
	if !sameWorkload(ra.Spec.Selector, p.Spec.Selector) || ra.Metadata.Namespace != p.Metadata.Namespace {
		t.Errorf("RequestAuthentication selects %v in %s, the CUSTOM policy %v in %s: they must guard the same workload",
			ra.Spec.Selector, ra.Metadata.Namespace, p.Spec.Selector, p.Metadata.Namespace)
	}
	rule := ra.Spec.JWTRules[0]
	def := config.Default()
	if string(rule.Issuer) != def.Issuer || !slices.Contains(texts(rule.Audiences), def.Audience) {
		t.Errorf("issuer %q audiences %v, want silentauth's issuer %q and audience %q", rule.Issuer, rule.Audiences, def.Issuer, def.Audience)
	}
	wantJWKS := "http://" + silentauthHost + ":" + strconv.Itoa(int(defaultPort(t, def.Listen.Public.Address))) + "/.well-known/jwks.json"
	if string(rule.JWKSURI) != wantJWKS {
		t.Errorf("jwksUri = %s, want %s", rule.JWKSURI, wantJWKS)
	}
	if !rule.ForwardOriginalToken {
		t.Error("forwardOriginalToken is false: Istio would remove the token the app needs")
	}

	// RequestAuthentication lets token-less requests through; the ALLOW
	// policy beside it requires silentauth's principal except on the
	// public paths.
	if len(a.policies) != 1 || a.policies[0].Spec.Action != "ALLOW" || !sameWorkload(a.policies[0].Spec.Selector, p.Spec.Selector) {
		t.Fatalf("want one ALLOW policy for the same workload beside the RequestAuthentication")
	}
	allow := a.policies[0].Spec
	var principals []string
	var open []text
	for _, r := range allow.Rules {
		for _, f := range r.From {
			principals = append(principals, texts(f.Source.RequestPrincipals)...)
		}
		for _, to := range r.To {
			open = append(open, to.Operation.Paths...)
		}
	}
	if !slices.Equal(principals, []string{def.Issuer + "/*"}) {
		t.Errorf("ALLOW requestPrincipals = %v, want [%s/*]", principals, def.Issuer)
	}
	var public []text
	for _, r := range p.Spec.Rules {
		for _, to := range r.To {
			public = append(public, to.Operation.NotPaths...)
		}
	}
	if !slices.Equal(sorted(texts(open)), sorted(texts(public))) {
		t.Errorf("ALLOW opens %v without a token, the CUSTOM policy skips %v: they must be the same", open, public)
	}
}

// TestIstioPerRoutePolicy: the EnvoyFilter patches a route the
// VirtualService defines, on the workload the CUSTOM policy puts ext_authz
// on, with context_extensions {policy: admin}.
func TestIstioPerRoutePolicy(t *testing.T) {
	f, err := loadIstio(perRouteFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.policies) != 1 || len(f.services) != 1 || len(f.filters) != 1 {
		t.Fatalf("want one AuthorizationPolicy, VirtualService and EnvoyFilter")
	}
	p, vs, ef := f.policies[0], f.services[0], f.filters[0]
	if p.Spec.Action != "CUSTOM" || !maps.Equal(p.Spec.Selector.MatchLabels, ef.Spec.WorkloadSelector.Labels) || p.Metadata.Namespace != ef.Metadata.Namespace {
		t.Errorf("the EnvoyFilter must select the workload of the CUSTOM policy (%v in %s), got %v in %s",
			p.Spec.Selector.MatchLabels, p.Metadata.Namespace, ef.Spec.WorkloadSelector.Labels, ef.Metadata.Namespace)
	}
	for _, tc := range pathCases {
		if got := customCovers(t, p.Spec, tc.path); got != tc.checked {
			t.Errorf("%s: gateway CUSTOM policy covers = %v, want %v", tc.path, got, tc.checked)
		}
	}
	routes := map[text]bool{}
	for _, h := range vs.Spec.HTTP {
		routes[h.Name] = true
	}
	if len(ef.Spec.ConfigPatches) != 1 {
		t.Fatalf("%d config patches, want 1", len(ef.Spec.ConfigPatches))
	}
	cp := ef.Spec.ConfigPatches[0]
	name := cp.Match.RouteConfiguration.Vhost.Route.Name
	if !routes[name] {
		t.Errorf("the EnvoyFilter patches route %q, which the VirtualService does not define (it has %v)", name, slices.Collect(maps.Keys(routes)))
	}
	r, problems := envoyRoutePatch(&cp.Patch.Value)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	per := perRoute(t, r)
	if got := per.GetCheckSettings().GetContextExtensions()[authz.PolicyKey]; got != "admin" || per.GetDisabled() {
		t.Errorf("patched route: policy %q disabled %v, want admin, false", got, per.GetDisabled())
	}
}

// checkMesh applies istiod's rules for extension providers
// (ValidateExtensionProviderEnvoyExtAuthzGRPC/HTTP and the builder's).
func checkMesh(m *meshValues) []error {
	var problems []error
	bad := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	seen := map[text]bool{}
	for i, p := range m.MeshConfig.ExtensionProviders {
		if p.Name == "" {
			bad("extensionProviders[%d]: name must not be empty", i)
		} else if seen[p.Name] {
			bad("provider names must be unique: %q twice", p.Name)
		}
		seen[p.Name] = true
		var service text
		var port uint32
		var status text
		switch {
		case (p.EnvoyExtAuthzGrpc == nil) == (p.EnvoyExtAuthzHttp == nil):
			bad("provider %q: exactly one of envoyExtAuthzGrpc and envoyExtAuthzHttp", p.Name)
			continue
		case p.EnvoyExtAuthzGrpc != nil:
			g := p.EnvoyExtAuthzGrpc
			service, port, status = g.Service, g.Port, g.StatusOnError
		default:
			h := p.EnvoyExtAuthzHttp
			service, port, status = h.Service, h.Port, h.StatusOnError
			if h.PathPrefix != "" && !strings.HasPrefix(string(h.PathPrefix), "/") {
				bad("provider %q: pathPrefix must begin with /, found %q", p.Name, h.PathPrefix)
			}
			for field, list := range map[string][]text{
				"includeRequestHeadersInCheck": h.IncludeRequestHeadersInCheck,
				"headersToUpstreamOnAllow":     h.HeadersToUpstreamOnAllow,
				"headersToDownstreamOnDeny":    h.HeadersToDownstreamOnDeny,
				"headersToDownstreamOnAllow":   h.HeadersToDownstreamOnAllow,
			} {
				if slices.Contains(list, "*") {
					bad(`provider %q: %s: a single "*" is not supported, use a prefix* or *suffix`, p.Name, field)
				}
			}
		}
		if service == "" {
			bad("provider %q: service must not be empty", p.Name)
		}
		if port < 1 || port > 65535 {
			bad("provider %q: port must be in [1, 65535], found %d", p.Name, port)
		}
		if status != "" {
			code, err := strconv.Atoi(string(status))
			if _, known := typev3.StatusCode_name[int32(code)]; err != nil || !known {
				bad("provider %q: statusOnError %q is not an HTTP status Envoy knows", p.Name, status)
			}
		}
	}
	return problems
}

// checkIstio applies istiod's rules to the policies, authentications and
// EnvoyFilters of one file; mesh names the providers a CUSTOM policy may
// use.
func checkIstio(f *istioFile, mesh *meshValues) []error {
	var problems []error
	providers := providersByName(mesh)
	for _, p := range f.policies {
		bad := func(format string, args ...any) {
			problems = append(problems, fmt.Errorf("AuthorizationPolicy %s/%s: %s", p.Metadata.Namespace, p.Metadata.Name, fmt.Sprintf(format, args...)))
		}
		if p.Metadata.Name == "" || p.Metadata.Namespace == "" {
			bad("metadata.name and metadata.namespace are required")
		}
		if p.Spec.Selector == nil || len(p.Spec.Selector.MatchLabels) == 0 {
			bad("selects no workload: the examples always name one")
		}
		custom := p.Spec.Action == "CUSTOM"
		switch {
		case !slices.Contains([]text{"", "ALLOW", "DENY", "AUDIT", "CUSTOM"}, p.Spec.Action):
			bad("unknown action %q", p.Spec.Action)
		case custom && (p.Spec.Provider == nil || p.Spec.Provider.Name == ""):
			bad("CUSTOM needs provider.name")
		case custom && providers[p.Spec.Provider.Name] == nil:
			bad("provider %q is not defined in mesh-config.yaml", p.Spec.Provider.Name)
		case !custom && p.Spec.Provider != nil:
			bad("provider is only for CUSTOM")
		}
		for _, r := range p.Spec.Rules {
			for _, fr := range r.From {
				if custom && (len(fr.Source.RequestPrincipals) > 0 || len(fr.Source.NotRequestPrincipals) > 0) {
					bad("CUSTOM rules cannot use requestPrincipals: the JWT is verified after ext_authz runs")
				}
			}
			for _, w := range r.When {
				if custom && strings.HasPrefix(string(w.Key), "request.auth.") {
					bad("CUSTOM rules cannot use %s: the JWT is verified after ext_authz runs", w.Key)
				}
			}
			for _, to := range r.To {
				for _, path := range slices.Concat(to.Operation.Paths, to.Operation.NotPaths) {
					if !validIstioPath(string(path)) {
						bad("path %q: Istio matches only exact paths, prefix* and *suffix", path)
					}
				}
			}
		}
	}
	for _, a := range f.authns {
		bad := func(format string, args ...any) {
			problems = append(problems, fmt.Errorf("RequestAuthentication %s/%s: %s", a.Metadata.Namespace, a.Metadata.Name, fmt.Sprintf(format, args...)))
		}
		if len(a.Spec.JWTRules) == 0 {
			bad("no jwtRules")
		}
		for _, r := range a.Spec.JWTRules {
			if r.Issuer == "" {
				bad("issuer is required")
			}
			if (r.JWKSURI == "") == (r.JWKS == "") {
				bad("exactly one of jwksUri and jwks")
			}
			if r.JWKSURI != "" {
				if u, err := url.Parse(string(r.JWKSURI)); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					bad("jwksUri %q is not an http(s) URL", r.JWKSURI)
				}
			}
		}
	}
	for _, e := range f.filters {
		for i, cp := range e.Spec.ConfigPatches {
			at := fmt.Sprintf("EnvoyFilter %s/%s configPatches[%d]", e.Metadata.Namespace, e.Metadata.Name, i)
			if !slices.Contains([]text{"HTTP_ROUTE", "NETWORK_FILTER"}, cp.ApplyTo) || cp.Patch.Operation != "MERGE" ||
				!slices.Contains([]text{"GATEWAY", "SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "ANY"}, cp.Match.Context) {
				problems = append(problems, fmt.Errorf("%s: want an HTTP_ROUTE or NETWORK_FILTER MERGE patch with a known context, found %s %s %s", at, cp.ApplyTo, cp.Patch.Operation, cp.Match.Context))
				continue
			}
			var errs []error
			if cp.ApplyTo == "HTTP_ROUTE" {
				_, errs = envoyRoutePatch(&cp.Patch.Value)
			} else if cp.Match.Listener.FilterChain.Filter.Name != hcmName {
				errs = []error{fmt.Errorf("a NETWORK_FILTER patch must match the filter %s, found %q", hcmName, cp.Match.Listener.FilterChain.Filter.Name)}
			} else {
				_, errs = connectionManagerPatch(&cp.Patch.Value)
			}
			for _, err := range errs {
				problems = append(problems, fmt.Errorf("%s: patch.value: %w", at, err))
			}
		}
	}
	return problems
}

// decodePatch decodes an EnvoyFilter patch value strictly into m.
func decodePatch(value *yaml.Node, m proto.Message) error {
	v, err := nodeValue(value)
	if err != nil {
		return err
	}
	js, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := protojson.Unmarshal(js, m); err != nil {
		return fmt.Errorf("%s", yamlPosition(nil, err))
	}
	return nil
}

// envoyRoutePatch reads an HTTP_ROUTE patch value as the Envoy Route it
// merges into, and checks it like any Envoy config (validation rules of
// the per-route Any payloads included).
func envoyRoutePatch(value *yaml.Node) (*routev3.Route, []error) {
	r := &routev3.Route{}
	if err := decodePatch(value, r); err != nil {
		return nil, []error{err}
	}
	// A merged fragment lacks the route's required match and action, so
	// only the per-filter configs are validated as whole messages.
	var problems []error
	for name, a := range r.GetTypedPerFilterConfig() {
		per := &extauthzv3.ExtAuthzPerRoute{}
		if name != extAuthzName || !a.MessageIs(per) {
			problems = append(problems, fmt.Errorf("typed_per_filter_config[%s]: want %s with an ExtAuthzPerRoute", name, extAuthzName))
			continue
		}
		if _, errs := checkTree(a); len(errs) > 0 {
			problems = append(problems, errs...)
		}
	}
	return r, problems
}

// hcmName is the network filter Istio generates for HTTP.
const hcmName = "envoy.filters.network.http_connection_manager"

// connectionManagerPatch reads a NETWORK_FILTER patch value as the Envoy
// Filter it merges into, whose typed_config must be an
// HttpConnectionManager. A merged fragment lacks the manager's required
// fields, so it is decoded strictly but not validated as a whole.
func connectionManagerPatch(value *yaml.Node) (*hcmv3.HttpConnectionManager, []error) {
	f := &listenerv3.Filter{}
	if err := decodePatch(value, f); err != nil {
		return nil, []error{err}
	}
	hcm := &hcmv3.HttpConnectionManager{}
	if !f.GetTypedConfig().MessageIs(hcm) {
		return nil, []error{fmt.Errorf("typed_config: want an HttpConnectionManager, found %q", f.GetTypedConfig().GetTypeUrl())}
	}
	if err := f.GetTypedConfig().UnmarshalTo(hcm); err != nil {
		return nil, []error{err}
	}
	return hcm, nil
}

// underscoreContexts lists the proxy contexts (GATEWAY, SIDECAR_INBOUND,
// ...) in which the EnvoyFilters of files drop or reject headers spelt
// with "_" for every proxy: a mesh-wide filter (root namespace, no
// workload selector) whose connection-manager patch passes
// underscoreProblem.
func underscoreContexts(t *testing.T, files ...*istioFile) []string {
	t.Helper()
	var out []string
	for _, f := range files {
		for _, e := range f.filters {
			if e.Metadata.Namespace != "istio-system" || e.Spec.WorkloadSelector != nil {
				continue
			}
			for _, cp := range e.Spec.ConfigPatches {
				if cp.ApplyTo != "NETWORK_FILTER" || cp.Match.Listener.FilterChain.Filter.Name != hcmName {
					continue
				}
				hcm, errs := connectionManagerPatch(&cp.Patch.Value)
				if len(errs) > 0 {
					t.Fatalf("%s: %v", f.path, errs)
				}
				if underscoreProblem(hcm) == nil {
					out = append(out, string(cp.Match.Context))
				}
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// TestIstioDropsUnderscoreHeaders: the Istio manifests make every gateway
// and every sidecar's inbound listener drop client headers spelt with "_",
// as envoy.yaml does (TestEnvoyDropsUnderscoreHeaders); Istio has no mesh
// setting for it. Manifests without such a filter, or with it set to
// ALLOW or on gateways only, fail.
func TestIstioDropsUnderscoreHeaders(t *testing.T) {
	mesh := mustLoadMesh(t)
	want := []string{"GATEWAY", "SIDECAR_INBOUND"}
	files, err := filepath.Glob(istioDir + "/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var all []*istioFile
	for _, path := range files {
		if path == meshFile {
			continue
		}
		f, err := loadIstio(path)
		if err != nil {
			t.Fatal(err)
		}
		if problems := checkIstio(f, mesh); len(problems) > 0 {
			t.Fatalf("%s: %v", path, problems)
		}
		all = append(all, f)
	}
	if got := underscoreContexts(t, all...); !slices.Equal(got, want) {
		t.Errorf("%s: headers spelt with \"_\" dropped in %v, want %v", istioDir, got, want)
	}
	for _, file := range []string{policyFile, "testdata/istio-bad-underscore-allow.yaml", "testdata/istio-bad-underscore-gateway-only.yaml"} {
		f, err := loadIstio(file)
		if err != nil {
			t.Fatal(err)
		}
		if problems := checkIstio(f, mesh); len(problems) > 0 {
			t.Fatalf("%s: %v", file, problems)
		}
		if got := underscoreContexts(t, f); slices.Equal(got, want) {
			t.Errorf("%s: accepted as dropping underscore headers in %v", file, got)
		}
	}
}

// customCovers evaluates the CUSTOM policy's rules for a request to path,
// as Istio's RBAC shadow filter does: a rule matches when one of its
// operations does (or it has none); an operation matches when a path
// matches (or it lists none) and no notPath does.
func customCovers(t *testing.T, p authorizationPolicy, path string) bool {
	t.Helper()
	for _, r := range p.Rules {
		if len(r.From) > 0 || len(r.When) > 0 {
			t.Fatalf("rule with from/when is not modelled by this test")
		}
		if len(r.To) == 0 {
			return true
		}
		for _, to := range r.To {
			op := to.Operation
			in := len(op.Paths) == 0 || slices.ContainsFunc(op.Paths, func(p text) bool { return istioPathMatch(string(p), path) })
			out := slices.ContainsFunc(op.NotPaths, func(p text) bool { return istioPathMatch(string(p), path) })
			if in && !out {
				return true
			}
		}
	}
	return false
}

// istioPathMatch is Istio's path matching: "*", a prefix ending in *, a
// suffix starting with *, or exact.
func istioPathMatch(pattern, path string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(path, strings.TrimSuffix(pattern, "*"))
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(path, pattern[1:])
	default:
		return path == pattern
	}
}

func validIstioPath(p string) bool {
	n := strings.Count(p, "*")
	return p != "" && (n == 0 || p == "*" || n == 1 && (strings.HasPrefix(p, "*") || strings.HasSuffix(p, "*")))
}

func mustLoadMesh(t *testing.T) *meshValues {
	t.Helper()
	m, err := loadMesh(meshFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range checkMesh(m) {
		t.Errorf("%s: %v", meshFile, p)
	}
	return m
}

func providersByName(m *meshValues) map[text]*extensionProvider {
	out := map[text]*extensionProvider{}
	for i := range m.MeshConfig.ExtensionProviders {
		p := &m.MeshConfig.ExtensionProviders[i]
		out[p.Name] = p
	}
	return out
}

func wantShortTimeout(t *testing.T, provider string, d *duration) {
	t.Helper()
	if d == nil {
		t.Errorf("%s: no timeout: Istio's default is 600s", provider)
		return
	}
	if v := d.AsDuration(); v <= 0 || v > time.Second {
		t.Errorf("%s: timeout %v, want in (0, 1s]", provider, v)
	}
}

func sameWorkload(a, b *workloadSelector) bool {
	return a != nil && b != nil && maps.Equal(a.MatchLabels, b.MatchLabels)
}

func texts(l []text) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = string(s)
	}
	return out
}

func sorted(l []string) []string {
	l = slices.Clone(l)
	slices.Sort(l)
	return l
}
