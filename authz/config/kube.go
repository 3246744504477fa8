package config

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
)

// ServiceAccountNamespaceFile is where Kubernetes mounts the namespace of a
// pod that has a ServiceAccount token.
const ServiceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// ErrNoNamespace is returned by SecretNamespace when keys.secret.namespace
// is empty and the pod's namespace cannot be found.
var ErrNoNamespace = errors.New("config: keys.secret.namespace: empty, and the pod's namespace is unknown")

// SecretNamespace returns the namespace of the key Secret:
// keys.secret.namespace, or when it is empty the pod's own namespace, from
// the POD_NAMESPACE variable (set it from the downward API's
// metadata.namespace), else from ServiceAccountNamespaceFile. getenv and
// readFile are os.Getenv and os.ReadFile in main. It fails with
// ErrNoNamespace when neither gives one (outside a cluster: set the field
// or POD_NAMESPACE), and when the value found is not a DNS-1123 label.
func (k Keys) SecretNamespace(getenv func(string) string, readFile func(string) ([]byte, error)) (string, error) {
	if k.Secret.Namespace != "" {
		return k.Secret.Namespace, nil
	}
	ns, from := "", ""
	if getenv != nil {
		ns, from = strings.TrimSpace(getenv("POD_NAMESPACE")), "POD_NAMESPACE"
	}
	if ns == "" && readFile != nil {
		b, err := readFile(ServiceAccountNamespaceFile)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return "", fmt.Errorf("%w: %w", ErrNoNamespace, err)
		default:
			ns, from = strings.TrimSpace(string(b)), ServiceAccountNamespaceFile
		}
	}
	switch {
	case ns == "":
		return "", fmt.Errorf("%w: set keys.secret.namespace, SILENTAUTH_KEYS_SECRET_NAMESPACE or POD_NAMESPACE (no %s: not in a pod?)", ErrNoNamespace, ServiceAccountNamespaceFile)
	case !isDNSLabel(ns):
		return "", fmt.Errorf("%w: %s holds %q, not a DNS-1123 label", ErrNoNamespace, from, ns)
	}
	return ns, nil
}
