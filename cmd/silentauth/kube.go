package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/silentauth/silentauth/authz/config"
	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/authz/keys/kubesecret"
	internalhealth "github.com/silentauth/silentauth/internal/health"
)

// kubeConfig finds the Kubernetes API: keys.kubeconfig when set, else the
// in-cluster ServiceAccount, else $KUBECONFIG or ~/.kube/config. client-go's
// own log lines are routed into the structured log. Each user builds a REST
// client that knows only its kinds (kubesecret.NewListWatch,
// sessionapi.NewReviewer) rather than the full clientset.
func kubeConfig(kubeconfig string, log *slog.Logger) (*rest.Config, error) {
	klog.SetSlogLogger(log.With("component", "client-go"))
	var (
		rc  *rest.Config
		err error
	)
	switch {
	case kubeconfig != "":
		rc, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	default:
		if rc, err = rest.InClusterConfig(); err == rest.ErrNotInCluster {
			rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
				clientcmd.NewDefaultClientConfigLoadingRules(), &clientcmd.ConfigOverrides{}).ClientConfig()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	rc.UserAgent = "silentauth"
	return rc, nil
}

// watchSecretKeys starts the watcher of the key Secret. Readiness waits
// for its first usable keyring; later trouble keeps the last good keyring
// and shows in the verbose health view, metrics and the log.
func watchSecretKeys(ctx context.Context, cfg config.Completed, kube *rest.Config, ring *keys.Holder, e *env) error {
	log := e.log
	ns, err := cfg.Keys.SecretNamespace(e.getenv, os.ReadFile)
	if err != nil {
		return fmt.Errorf("keys.secret.namespace: %w", err)
	}
	secrets, err := kubesecret.NewListWatch(kube, ns)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}
	// A retired key verifies access tokens for their TTL + leeway, and
	// refresh tokens made under it for the sessions' idle TTL.
	lifecycle := cfg.Tokens.Lifecycle()
	lifecycle.RefreshTTL = cfg.Sessions.Idle
	w, err := kubesecret.NewWatcher(kubesecret.Options{
		Secrets: secrets, Namespace: ns, Name: cfg.Keys.Secret.Name,
		Lifecycle: lifecycle,
		Holder:    ring, Log: log.With("component", "keyring"), Registerer: e.reg, Now: time.Now,
	})
	if err != nil {
		return err
	}
	e.checks.Add("keyring", true, func() internalhealth.Status {
		ready, msg := w.Status()
		return internalhealth.Status{OK: ready, Message: msg}
	})
	go w.Run(ctx)
	log.Info("watching the signing-key Secret", "namespace", ns, "name", cfg.Keys.Secret.Name)
	return nil
}
