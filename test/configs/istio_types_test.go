package configs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The Istio examples are decoded into the local types below rather than
// into istio.io/api's generated ones. istio.io/api is a module of its own
// (all of Istio's APIs, with gogo/k8s helpers) that the product never
// needs; adding it to go.mod for four example files would grow every
// build's module graph. The types mirror exactly the fields of istio.io/api
// v1.32 the examples use, spelled as Istio's JSON names; decoding is
// strict (unknown fields and wrongly typed scalars are errors, as in
// istiod's proto JSON parsing), and the rules istiod applies to those
// fields are repeated in the tests. The deploy tests apply the same files
// to a real API server with Istio's CRDs installed, which checks them
// against Istio's own OpenAPI schemas.

// text is a YAML string. Numbers and booleans are refused: Istio parses
// YAML → JSON → proto, where `statusOnError: 503` (a number) is an error
// for a string field.
type text string

func (s *text) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return fmt.Errorf("line %d: want a string, found %s %q (quote it)", n.Line, n.ShortTag(), n.Value)
	}
	*s = text(n.Value)
	return nil
}

// flag is a YAML boolean, true or false only (YAML 1.1's yes/no/on/off are
// refused: Istio's parser and ours would disagree on them).
type flag bool

func (b *flag) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || (n.Value != "true" && n.Value != "false") {
		return fmt.Errorf("line %d: want true or false, found %q", n.Line, n.Value)
	}
	*b = n.Value == "true"
	return nil
}

// duration is a google.protobuf.Duration in its JSON form: seconds with an
// "s" suffix ("0.5s"); Go's "500ms" is refused, as protojson refuses it.
type duration struct{ *durationpb.Duration }

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return fmt.Errorf("line %d: want a duration such as 0.5s, found %q", n.Line, n.Value)
	}
	pb := &durationpb.Duration{}
	if err := protojson.Unmarshal([]byte(strconv.Quote(n.Value)), pb); err != nil {
		return fmt.Errorf("line %d: %q is not a protobuf duration (seconds with an s suffix, e.g. 0.5s)", n.Line, n.Value)
	}
	d.Duration = pb
	return nil
}

// meshValues is the istiod Helm values that mesh-config.yaml sets.
type meshValues struct {
	MeshConfig struct {
		ExtensionProviders []extensionProvider `yaml:"extensionProviders"`
	} `yaml:"meshConfig"`
}

// extensionProvider is mesh/v1alpha1 MeshConfig.ExtensionProvider, the two
// ext_authz kinds.
type extensionProvider struct {
	Name              text          `yaml:"name"`
	EnvoyExtAuthzGrpc *grpcProvider `yaml:"envoyExtAuthzGrpc"`
	EnvoyExtAuthzHttp *httpProvider `yaml:"envoyExtAuthzHttp"`
}

// grpcProvider is EnvoyExternalAuthorizationGrpcProvider. It has no header
// list: Istio sends every request header to a gRPC service.
type grpcProvider struct {
	Service                   text         `yaml:"service"`
	Port                      uint32       `yaml:"port"`
	Timeout                   *duration    `yaml:"timeout"`
	FailOpen                  flag         `yaml:"failOpen"`
	ClearRouteCache           flag         `yaml:"clearRouteCache"`
	StatusOnError             text         `yaml:"statusOnError"`
	IncludeRequestBodyInCheck *requestBody `yaml:"includeRequestBodyInCheck"`
}

// httpProvider is EnvoyExternalAuthorizationHttpProvider.
type httpProvider struct {
	Service                         text          `yaml:"service"`
	Port                            uint32        `yaml:"port"`
	Timeout                         *duration     `yaml:"timeout"`
	PathPrefix                      text          `yaml:"pathPrefix"`
	FailOpen                        flag          `yaml:"failOpen"`
	ClearRouteCache                 flag          `yaml:"clearRouteCache"`
	StatusOnError                   text          `yaml:"statusOnError"`
	IncludeRequestHeadersInCheck    []text        `yaml:"includeRequestHeadersInCheck"`
	IncludeAdditionalHeadersInCheck map[text]text `yaml:"includeAdditionalHeadersInCheck"`
	IncludeRequestBodyInCheck       *requestBody  `yaml:"includeRequestBodyInCheck"`
	HeadersToUpstreamOnAllow        []text        `yaml:"headersToUpstreamOnAllow"`
	HeadersToDownstreamOnDeny       []text        `yaml:"headersToDownstreamOnDeny"`
	HeadersToDownstreamOnAllow      []text        `yaml:"headersToDownstreamOnAllow"`
}

// requestBody is EnvoyExternalAuthorizationRequestBody.
type requestBody struct {
	MaxRequestBytes     uint32 `yaml:"maxRequestBytes"`
	AllowPartialMessage flag   `yaml:"allowPartialMessage"`
	PackAsBytes         flag   `yaml:"packAsBytes"`
}

// object is the Kubernetes envelope of an Istio resource.
type object[S any] struct {
	APIVersion text `yaml:"apiVersion"`
	Kind       text `yaml:"kind"`
	Metadata   struct {
		Name        text          `yaml:"name"`
		Namespace   text          `yaml:"namespace"`
		Labels      map[text]text `yaml:"labels"`
		Annotations map[text]text `yaml:"annotations"`
	} `yaml:"metadata"`
	Spec S `yaml:"spec"`
}

// workloadSelector is type/v1beta1 WorkloadSelector.
type workloadSelector struct {
	MatchLabels map[text]text `yaml:"matchLabels"`
}

// authorizationPolicy is security/v1 AuthorizationPolicy.
type authorizationPolicy struct {
	Selector *workloadSelector `yaml:"selector"`
	Action   text              `yaml:"action"`
	Provider *struct {
		Name text `yaml:"name"`
	} `yaml:"provider"`
	Rules []struct {
		From []struct {
			Source struct {
				Principals           []text `yaml:"principals"`
				NotPrincipals        []text `yaml:"notPrincipals"`
				RequestPrincipals    []text `yaml:"requestPrincipals"`
				NotRequestPrincipals []text `yaml:"notRequestPrincipals"`
				Namespaces           []text `yaml:"namespaces"`
				NotNamespaces        []text `yaml:"notNamespaces"`
				IPBlocks             []text `yaml:"ipBlocks"`
				NotIPBlocks          []text `yaml:"notIpBlocks"`
				RemoteIPBlocks       []text `yaml:"remoteIpBlocks"`
				NotRemoteIPBlocks    []text `yaml:"notRemoteIpBlocks"`
			} `yaml:"source"`
		} `yaml:"from"`
		To []struct {
			Operation operation `yaml:"operation"`
		} `yaml:"to"`
		When []struct {
			Key       text   `yaml:"key"`
			Values    []text `yaml:"values"`
			NotValues []text `yaml:"notValues"`
		} `yaml:"when"`
	} `yaml:"rules"`
}

// operation is security/v1beta1 Operation.
type operation struct {
	Hosts      []text `yaml:"hosts"`
	NotHosts   []text `yaml:"notHosts"`
	Ports      []text `yaml:"ports"`
	NotPorts   []text `yaml:"notPorts"`
	Methods    []text `yaml:"methods"`
	NotMethods []text `yaml:"notMethods"`
	Paths      []text `yaml:"paths"`
	NotPaths   []text `yaml:"notPaths"`
}

// requestAuthentication is security/v1 RequestAuthentication.
type requestAuthentication struct {
	Selector *workloadSelector `yaml:"selector"`
	JWTRules []struct {
		Issuer      text   `yaml:"issuer"`
		Audiences   []text `yaml:"audiences"`
		JWKSURI     text   `yaml:"jwksUri"`
		JWKS        text   `yaml:"jwks"`
		FromHeaders []struct {
			Name   text `yaml:"name"`
			Prefix text `yaml:"prefix"`
		} `yaml:"fromHeaders"`
		FromParams            []text    `yaml:"fromParams"`
		FromCookies           []text    `yaml:"fromCookies"`
		OutputPayloadToHeader text      `yaml:"outputPayloadToHeader"`
		ForwardOriginalToken  flag      `yaml:"forwardOriginalToken"`
		Timeout               *duration `yaml:"timeout"`
	} `yaml:"jwtRules"`
}

// virtualService is networking/v1 VirtualService, the HTTP routes only.
type virtualService struct {
	Hosts    []text `yaml:"hosts"`
	Gateways []text `yaml:"gateways"`
	HTTP     []struct {
		Name  text `yaml:"name"`
		Match []struct {
			URI map[text]text `yaml:"uri"` // exact, prefix or regex
		} `yaml:"match"`
		Route []struct {
			Destination struct {
				Host text `yaml:"host"`
				Port *struct {
					Number uint32 `yaml:"number"`
				} `yaml:"port"`
			} `yaml:"destination"`
		} `yaml:"route"`
	} `yaml:"http"`
}

// envoyFilter is networking/v1alpha3 EnvoyFilter: route patches and
// connection-manager patches only. The patch value is Envoy config,
// checked by the Envoy loader.
type envoyFilter struct {
	WorkloadSelector *struct {
		Labels map[text]text `yaml:"labels"`
	} `yaml:"workloadSelector"`
	ConfigPatches []struct {
		ApplyTo text `yaml:"applyTo"`
		Match   struct {
			Context            text `yaml:"context"`
			RouteConfiguration struct {
				Vhost struct {
					Name  text `yaml:"name"`
					Route struct {
						Name text `yaml:"name"`
					} `yaml:"route"`
				} `yaml:"vhost"`
			} `yaml:"routeConfiguration"`
			Listener struct {
				FilterChain struct {
					Filter struct {
						Name text `yaml:"name"`
					} `yaml:"filter"`
				} `yaml:"filterChain"`
			} `yaml:"listener"`
		} `yaml:"match"`
		Patch struct {
			Operation text      `yaml:"operation"`
			Value     yaml.Node `yaml:"value"`
		} `yaml:"patch"`
	} `yaml:"configPatches"`
}

// istioFile is one manifest file decoded: each document by its kind.
type istioFile struct {
	path     string
	policies []object[authorizationPolicy]
	authns   []object[requestAuthentication]
	services []object[virtualService]
	filters  []object[envoyFilter]
}

// loadIstio decodes every document of a manifest file strictly into the
// type its apiVersion and kind name. The file is read twice: once for the
// kinds, then with a strict decoder that reports unknown fields at their
// line in the file.
func loadIstio(path string) (*istioFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var kinds []string
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var meta struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
		}
		if err := dec.Decode(&meta); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		kinds = append(kinds, meta.APIVersion+" "+meta.Kind)
	}
	f := &istioFile{path: path}
	strict := yaml.NewDecoder(bytes.NewReader(data))
	strict.KnownFields(true)
	for i, kind := range kinds {
		var err error
		switch kind {
		case "security.istio.io/v1 AuthorizationPolicy":
			err = decodeInto(strict, &f.policies)
		case "security.istio.io/v1 RequestAuthentication":
			err = decodeInto(strict, &f.authns)
		case "networking.istio.io/v1 VirtualService":
			err = decodeInto(strict, &f.services)
		case "networking.istio.io/v1alpha3 EnvoyFilter":
			err = decodeInto(strict, &f.filters)
		default:
			err = fmt.Errorf("unexpected %q: the security and networking kinds used here are v1, EnvoyFilter is v1alpha3", kind)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i+1, err)
		}
	}
	return f, nil
}

// decodeInto decodes the decoder's next document and appends it to list.
func decodeInto[T any](dec *yaml.Decoder, list *[]T) error {
	var v T
	if err := dec.Decode(&v); err != nil {
		return err
	}
	*list = append(*list, v)
	return nil
}

// loadMesh decodes mesh-config.yaml strictly.
func loadMesh(path string) (*meshValues, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	m := &meshValues{}
	if err := dec.Decode(m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}
