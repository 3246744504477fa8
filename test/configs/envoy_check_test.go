package configs

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	// Every typed_config and typed_extension_protocol_options in the
	// manifests names a type of one of these packages; protojson resolves
	// an Any only when its package is linked in. A new extension in a
	// manifest needs its package imported in this package (blank if
	// nothing else uses it), or loading fails with "unable to resolve".
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The type URLs the rules below look for.
var (
	routerType       = typeURL(&routerv3.Router{})
	protocolOptsType = typeURL(&upstreamhttpv3.HttpProtocolOptions{})
)

func typeURL(m proto.Message) string {
	return "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName())
}

// loadEnvoy reads a YAML bootstrap the way Envoy does (YAML → JSON →
// proto, unknown fields and unknown types refused) and then applies every
// check Envoy would make before serving: see checkEnvoy. The error names
// the file and, for each problem, the field path inside it.
func loadEnvoy(path string) (*bootstrapv3.Bootstrap, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	js, err := yamlToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	b := &bootstrapv3.Bootstrap{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, b); err != nil {
		return nil, fmt.Errorf("%s: %s", path, yamlPosition(data, err))
	}
	if problems := checkEnvoy(b); len(problems) > 0 {
		return nil, fmt.Errorf("%s:\n%w", path, errors.Join(problems...))
	}
	return b, nil
}

// protojsonPosition is the "(line 1:740)" protojson puts in its errors: a
// position in the one-line JSON made from the YAML, useless to a reader.
// protobuf-go varies the space after "proto:" on purpose, hence the class.
var protojsonPosition = regexp.MustCompile(`^proto:[\s\x{00a0}]*\(line \d+:\d+\):[\s\x{00a0}]*`)

// yamlPosition rewrites a protojson error to point into the YAML file: the
// JSON position is dropped and, when the quoted name in the message (an
// unknown field, type or value) occurs on exactly one YAML line, comments
// aside, that line is named. Presentation only: the message is otherwise
// kept whole.
func yamlPosition(data []byte, err error) string {
	msg := protojsonPosition.ReplaceAllString(err.Error(), "")
	_, rest, ok := strings.Cut(msg, `"`)
	quoted, _, ok2 := strings.Cut(rest, `"`)
	if !ok || !ok2 || quoted == "" {
		return msg
	}
	line := 0
	for i, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if strings.Contains(l, quoted) {
			if line != 0 {
				return msg // ambiguous
			}
			line = i + 1
		}
	}
	if line == 0 {
		return msg
	}
	return fmt.Sprintf("line %d: %s", line, msg)
}

// checkEnvoy returns every problem of a parsed bootstrap, each naming its
// field path:
//   - protoc-gen-validate rules (ValidateAll) of the bootstrap and of the
//     message inside every google.protobuf.Any, at any depth: the generated
//     validators stop at an Any, so each payload is validated on its own;
//   - the checks Envoy makes itself when it loads a config: durations are
//     never negative (checkTree), ext_authz names a service, referenced
//     clusters exist, gRPC clusters speak HTTP/2, the router is the last
//     HTTP filter;
//   - and two that Envoy would accept silently: deprecated fields or enum
//     values, and a typed_per_filter_config naming no filter of its
//     connection manager (a typo there would quietly skip a disabled:
//     true or a policy).
func checkEnvoy(b *bootstrapv3.Bootstrap) []error {
	nodes, problems := checkTree(b)
	return append(problems, envoyRules(b, nodes)...)
}

// checkTree applies the checks that need no context to any Envoy message
// (a bootstrap, or a fragment such as an EnvoyFilter patch): the
// validation rules of the message and of every Any payload in it,
// non-negative durations, and no deprecated fields. It returns the
// messages of the tree for further rules.
func checkTree(root proto.Message) ([]node, []error) {
	nodes, problems := collect(root)
	for _, n := range nodes {
		if n.payload {
			if v, ok := n.msg.(interface{ ValidateAll() error }); ok {
				if err := v.ValidateAll(); err != nil {
					problems = append(problems, fmt.Errorf("%s: %w", n.where(), err))
				}
			}
		}
		if d, ok := n.msg.(*durationpb.Duration); ok {
			// Envoy's MessageUtil::validateDurationFields: every duration in
			// a config is ≥ 0 and fits in int64 milliseconds.
			if d.GetSeconds() < 0 || d.GetNanos() < 0 {
				problems = append(problems, fmt.Errorf("%s: negative duration %v: Envoy accepts only durations ≥ 0", n.path, d.AsDuration()))
			} else if d.GetSeconds() > 9_223_372_036 || d.GetNanos() > 999_999_999 {
				problems = append(problems, fmt.Errorf("%s: duration out of range", n.path))
			}
		}
		problems = append(problems, deprecations(n)...)
	}
	return nodes, problems
}

// node is one message of the config tree with its path. payload marks the
// root and each message unpacked from an Any, the units that ValidateAll
// checks as a whole.
type node struct {
	path    string
	msg     proto.Message
	payload bool
}

func (n node) where() string {
	if n.path == "" {
		return "bootstrap"
	}
	return n.path
}

// collect walks the whole message tree, descending into every Any, and
// returns every message in it. Map entries are visited in key order so
// that problems are reported in a stable order.
func collect(root proto.Message) ([]node, []error) {
	var nodes []node
	var problems []error
	var visit func(path string, m protoreflect.Message, payload bool)
	visit = func(path string, m protoreflect.Message, payload bool) {
		if a, ok := m.Interface().(*anypb.Any); ok {
			inner, err := a.UnmarshalNew()
			if err != nil {
				problems = append(problems, fmt.Errorf("%s: %w", path, err))
				return
			}
			visit(path+"<"+string(inner.ProtoReflect().Descriptor().Name())+">", inner.ProtoReflect(), true)
			return
		}
		nodes = append(nodes, node{path: path, msg: m.Interface(), payload: payload})
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			p := fd.TextName()
			if path != "" {
				p = path + "." + p
			}
			switch {
			case fd.IsList() && fd.Message() != nil:
				for i := range v.List().Len() {
					visit(fmt.Sprintf("%s[%d]", p, i), v.List().Get(i).Message(), false)
				}
			case fd.IsMap() && fd.MapValue().Message() != nil:
				var keys []protoreflect.MapKey
				v.Map().Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
					keys = append(keys, k)
					return true
				})
				slices.SortFunc(keys, func(a, b protoreflect.MapKey) int { return strings.Compare(a.String(), b.String()) })
				for _, k := range keys {
					visit(fmt.Sprintf("%s[%s]", p, k.String()), v.Map().Get(k).Message(), false)
				}
			case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
				visit(p, v.Message(), false)
			}
			return true
		})
	}
	visit("", root.ProtoReflect(), true)
	return nodes, problems
}

// deprecations reports the deprecated fields and enum values a message
// sets. Envoy only logs a warning for them, and removes them a few
// releases later; an example config must not teach them.
func deprecations(n node) []error {
	var problems []error
	n.msg.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		at := fd.TextName()
		if n.path != "" {
			at = n.path + "." + at
		}
		if fd.Options().(*descriptorpb.FieldOptions).GetDeprecated() {
			problems = append(problems, fmt.Errorf("%s: deprecated field of %s", at, fd.ContainingMessage().FullName()))
		}
		if fd.Kind() == protoreflect.EnumKind && !fd.IsList() && !fd.IsMap() {
			if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil && ev.Options().(*descriptorpb.EnumValueOptions).GetDeprecated() {
				problems = append(problems, fmt.Errorf("%s: deprecated value %s", at, ev.Name()))
			}
		}
		return true
	})
	return problems
}

// envoyRules are the checks Envoy makes in code rather than in
// protoc-gen-validate annotations, plus the per-filter-config name check.
func envoyRules(b *bootstrapv3.Bootstrap, nodes []node) []error {
	clusters := map[string]*clusterv3.Cluster{}
	for _, c := range b.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = c
	}
	var problems []error
	bad := func(path, format string, args ...any) {
		problems = append(problems, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	for _, n := range nodes {
		switch m := n.msg.(type) {
		case *extauthzv3.ExtAuthz:
			if m.GetServices() == nil {
				bad(n.path, "ext_authz needs grpc_service or http_service: without one it has no authorization service to ask")
			}
		case *corev3.GrpcService_EnvoyGrpc:
			c, ok := clusters[m.GetClusterName()]
			if !ok {
				bad(n.path, "unknown cluster %q", m.GetClusterName())
			} else if !speaksHTTP2(c) {
				bad(n.path, "cluster %q carries gRPC but does not speak HTTP/2: set typed_extension_protocol_options %s explicit_http_config.http2_protocol_options", m.GetClusterName(), protocolOptsType)
			}
		case *corev3.HttpUri:
			if _, ok := clusters[m.GetCluster()]; !ok {
				bad(n.path, "unknown cluster %q", m.GetCluster())
			}
		case *routev3.RouteAction:
			if c := m.GetCluster(); c != "" && clusters[c] == nil {
				bad(n.path, "unknown cluster %q", c)
			}
		case *hcmv3.HttpConnectionManager:
			problems = append(problems, connectionManagerRules(n.path, m)...)
		}
	}
	return problems
}

// connectionManagerRules: the router ends the HTTP filter chain (Envoy
// refuses a terminal filter anywhere else, and filters after it would
// never run), and every typed_per_filter_config of the inline routes
// names one of the chain's filters.
func connectionManagerRules(path string, hcm *hcmv3.HttpConnectionManager) []error {
	var problems []error
	filters := hcm.GetHttpFilters()
	names := map[string]bool{}
	router := -1
	for i, f := range filters {
		names[f.GetName()] = true
		if f.GetTypedConfig().GetTypeUrl() == routerType && router < 0 {
			router = i
		}
	}
	switch last := len(filters) - 1; {
	case router < 0:
		problems = append(problems, fmt.Errorf("%s.http_filters: no router: the chain must end with %s", path, routerType))
	case router != last:
		problems = append(problems, fmt.Errorf("%s.http_filters[%d]: the router must be the last HTTP filter; the %d after it would never run", path, router, last-router))
	}
	checkNames := func(at string, cfg map[string]*anypb.Any) {
		keys := make([]string, 0, len(cfg))
		for k := range cfg {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if !names[k] {
				problems = append(problems, fmt.Errorf("%s.typed_per_filter_config[%s]: names no HTTP filter of this connection manager, so it applies to nothing", at, k))
			}
		}
	}
	for i, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		at := fmt.Sprintf("%s.route_config.virtual_hosts[%d]", path, i)
		checkNames(at, vh.GetTypedPerFilterConfig())
		for j, r := range vh.GetRoutes() {
			checkNames(fmt.Sprintf("%s.routes[%d]", at, j), r.GetTypedPerFilterConfig())
		}
	}
	return problems
}

// speaksHTTP2 reports whether a cluster is configured for HTTP/2 upstream,
// which gRPC requires.
func speaksHTTP2(c *clusterv3.Cluster) bool {
	for _, a := range c.GetTypedExtensionProtocolOptions() {
		if a.GetTypeUrl() != protocolOptsType {
			continue
		}
		opts := &upstreamhttpv3.HttpProtocolOptions{}
		if a.UnmarshalTo(opts) == nil && opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil {
			return true
		}
	}
	return false
}
