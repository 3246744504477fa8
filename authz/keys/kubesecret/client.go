package kubesecret

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// NewListWatch returns, for Options.Secrets, a lister-watcher of the
// Secrets of namespace on a client-go REST client whose scheme holds only
// Secrets. The Watcher needs nothing else, and a client that knows one kind
// keeps the typed clients and types of every other API group out of the
// binary (kubernetes.NewForConfig links all of them). The Watcher narrows
// every list and watch to its one Secret.
func NewListWatch(cfg *rest.Config, namespace string) (cache.ListerWatcher, error) {
	scheme := runtime.NewScheme()
	scheme.AddKnownTypes(corev1.SchemeGroupVersion, &corev1.Secret{}, &corev1.SecretList{})
	metav1.AddToGroupVersion(scheme, corev1.SchemeGroupVersion) // list options, watch events, Status
	c := rest.CopyConfig(cfg)
	c.GroupVersion = &corev1.SchemeGroupVersion
	c.APIPath = "/api"
	c.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	client, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("keys: watcher: Secret client: %w", err)
	}
	return cache.NewFilteredListWatchFromClient(client, "secrets", namespace, func(*metav1.ListOptions) {}), nil
}
