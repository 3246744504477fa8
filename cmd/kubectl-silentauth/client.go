package main

import (
	"fmt"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// kubeOptions are the kubeconfig flags, as kubectl spells them.
type kubeOptions struct {
	Kubeconfig string // --kubeconfig; empty: $KUBECONFIG, then ~/.kube/config
	Context    string // --context; empty: the current context
	Namespace  string // -n/--namespace; empty: the context's namespace
}

// clientFactory connects to the cluster o selects and returns the
// namespace to use: o.Namespace, else the context's, else "default".
// Tests inject a fake clientset through it.
type clientFactory func(o kubeOptions) (kubernetes.Interface, string, error)

// kubeClient connects the way kubectl does: the usual kubeconfig loading
// rules and overrides, with the user's own credentials (exec plugins
// included). The plugin asks for nothing beyond what those grant.
func kubeClient(o kubeOptions) (kubernetes.Interface, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = o.Kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: o.Context}
	overrides.Context.Namespace = o.Namespace
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)

	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.UserAgent = "kubectl-silentauth"
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	return client, ns, nil
}
