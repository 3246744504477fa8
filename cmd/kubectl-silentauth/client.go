package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/silentauth/silentauth/internal/kubeclient"
)

// kubeOptions are the kubeconfig flags, as kubectl spells them.
type kubeOptions struct {
	Kubeconfig string // --kubeconfig; empty: $KUBECONFIG, then ~/.kube/config
	Context    string // --context; empty: the current context
	Namespace  string // -n/--namespace; empty: the context's namespace
}

// secretClient is all the plugin asks of the API server: the Secrets of
// one namespace. client-go's typed SecretInterface has this shape.
type secretClient interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Secret, error)
	Create(ctx context.Context, s *corev1.Secret, opts metav1.CreateOptions) (*corev1.Secret, error)
	Update(ctx context.Context, s *corev1.Secret, opts metav1.UpdateOptions) (*corev1.Secret, error)
}

// clientFactory connects to the cluster o selects and returns the Secrets
// of the namespace to use: o.Namespace, else the context's, else
// "default". The commands depend on it, not on kubeClient, so they run
// against any implementation of secretClient.
type clientFactory func(o kubeOptions) (secretClient, string, error)

// kubeClient connects the way kubectl does: the usual kubeconfig loading
// rules and overrides, with the user's own credentials (exec plugins
// included). The plugin asks for nothing beyond what those grant.
func kubeClient(o kubeOptions) (secretClient, string, error) {
	client, ns, err := coreClient(o)
	if err != nil {
		return nil, "", err
	}
	return restSecrets{client, ns}, ns, nil
}

// coreClient is a REST client of the core API group as kubectl would
// connect, and the namespace to use.
func coreClient(o kubeOptions) (*rest.RESTClient, string, error) {
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
	// A client that knows only Secrets keeps every other API group out of
	// the plugin (kubernetes.NewForConfig links all of them).
	client, err := kubeclient.For(cfg, corev1.SchemeGroupVersion, &corev1.Secret{})
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig: %w", err)
	}
	return client, ns, nil
}

// tokenRequester returns a token of ServiceAccount namespace/name for
// audience, valid for ttl, asked of the cluster o selects.
type tokenRequester func(ctx context.Context, o kubeOptions, namespace, name, audience string, ttl time.Duration) (string, error)

// kubeTokenRequest is a TokenRequest (POST serviceaccounts/NAME/token)
// with the user's kubeconfig credentials, which need create on
// serviceaccounts/token for that ServiceAccount. The body is written and
// read as JSON here, so the narrow core client needs no
// authentication.k8s.io types registered.
func kubeTokenRequest(ctx context.Context, o kubeOptions, namespace, name, audience string, ttl time.Duration) (string, error) {
	client, _, err := coreClient(o)
	if err != nil {
		return "", err
	}
	secs := int64(ttl / time.Second)
	req := authenticationv1.TokenRequest{
		TypeMeta: metav1.TypeMeta{APIVersion: "authentication.k8s.io/v1", Kind: "TokenRequest"},
		Spec:     authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: &secs},
	}
	body, err := json.Marshal(req)
	if err != nil {
		return "", err
	}
	// Do, not DoRaw: Do decodes a refusal's Status into the error.
	raw, err := client.Post().Namespace(namespace).Resource("serviceaccounts").Name(name).SubResource("token").
		SetHeader("Content-Type", "application/json").Body(body).Do(ctx).Raw()
	if apierrors.IsForbidden(err) {
		return "", fmt.Errorf("%w\nYou need create on serviceaccounts/token for %s (kubectl auth can-i create serviceaccounts --subresource=token -n %s), or pass a token with --token-file", err, name, namespace)
	}
	if err != nil {
		return "", err
	}
	var out authenticationv1.TokenRequest
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", fmt.Errorf("token request: %w", err)
	}
	if out.Status.Token == "" {
		return "", errors.New("token request: no token in the answer")
	}
	return out.Status.Token, nil
}

// restSecrets is secretClient on a REST client: the same requests as
// client-go's typed client, and API errors decoded into *StatusError.
type restSecrets struct {
	c         *rest.RESTClient
	namespace string
}

func (r restSecrets) Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Secret, error) {
	out := &corev1.Secret{}
	err := r.c.Get().Namespace(r.namespace).Resource("secrets").Name(name).
		VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Into(out)
	return out, err
}

func (r restSecrets) Create(ctx context.Context, s *corev1.Secret, opts metav1.CreateOptions) (*corev1.Secret, error) {
	out := &corev1.Secret{}
	err := r.c.Post().Namespace(r.namespace).Resource("secrets").
		VersionedParams(&opts, metav1.ParameterCodec).Body(s).Do(ctx).Into(out)
	return out, err
}

func (r restSecrets) Update(ctx context.Context, s *corev1.Secret, opts metav1.UpdateOptions) (*corev1.Secret, error) {
	out := &corev1.Secret{}
	err := r.c.Put().Namespace(r.namespace).Resource("secrets").Name(s.Name).
		VersionedParams(&opts, metav1.ParameterCodec).Body(s).Do(ctx).Into(out)
	return out, err
}
