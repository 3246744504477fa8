// Package kubeclient builds Kubernetes REST clients that know only the API
// types their caller names, so that a binary links those types and not
// every API group (kubernetes.NewForConfig links all of them). The
// clients honour the rest.Config as client-go's typed clients do: server,
// credentials, TLS, rate limits and user agent.
package kubeclient

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
)

// For returns a REST client of group version gv that encodes and decodes
// types, and the meta types every API answers with (list and watch
// options, watch events, Status). cfg is copied, not changed.
func For(cfg *rest.Config, gv schema.GroupVersion, types ...runtime.Object) (*rest.RESTClient, error) {
	scheme := runtime.NewScheme()
	scheme.AddKnownTypes(gv, types...)
	metav1.AddToGroupVersion(scheme, gv)
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &gv
	c.APIPath = "/apis"
	if gv.Group == "" {
		c.APIPath = "/api" // the core group
	}
	c.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	return rest.RESTClientFor(c)
}
