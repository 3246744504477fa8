package kubesecret

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/silentauth/silentauth/internal/kubeclient"
)

// NewListWatch returns, for Options.Secrets, a lister-watcher of the
// Secrets of namespace on a client-go REST client whose scheme holds only
// Secrets. The Watcher needs nothing else, and a client that knows one kind
// keeps the typed clients and types of every other API group out of the
// binary (kubernetes.NewForConfig links all of them). The Watcher narrows
// every list and watch to its one Secret.
func NewListWatch(cfg *rest.Config, namespace string) (cache.ListerWatcher, error) {
	client, err := kubeclient.For(cfg, corev1.SchemeGroupVersion, &corev1.Secret{}, &corev1.SecretList{})
	if err != nil {
		return nil, fmt.Errorf("keys: watcher: Secret client: %w", err)
	}
	return cache.NewFilteredListWatchFromClient(client, "secrets", namespace, func(*metav1.ListOptions) {}), nil
}
