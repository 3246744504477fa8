package kubesecret

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/internal/testenv/kubetest"
	"github.com/silentauth/silentauth/internal/testenv/logbuf"
)

// TestMain stops the kube-apiserver that kubetest.Shared starts.
func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

// kubeWait bounds each wait on the real API server: watches deliver within
// milliseconds, the margin is for a loaded two-core machine.
const kubeWait = 30 * time.Second

// Against a real kube-apiserver, as silentauth runs: a ServiceAccount whose
// Role names only the key Secret (get, list, watch with resourceNames). The
// keyring loads; updates, patches and annotations are seen; a broken
// Secret and a deleted one keep the last good keyring; recreating recovers;
// and RBAC keeps every other Secret out of reach.
func TestWatcherKubeAPIServer(t *testing.T) {
	env := kubetest.Shared(t)
	ctx := t.Context()
	ns := env.NewNamespace(t)
	admin := kubeClient(t, env.AdminConfig())
	secrets := admin.CoreV1().Secrets(ns)

	k1, k2 := mustKey(t, p256Key()), mustKey(t, edKey())
	now := time.Now().UTC().Truncate(time.Second)
	keySecret := secretOf(t, testSecret, keys.Entry{Name: "k1", Key: k1, ActivateAt: now.Add(-hour)})
	keySecret.Namespace = ns
	other := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other"}, StringData: map[string]string{"password": "hunter2"}}
	for _, s := range []*corev1.Secret{keySecret, other} {
		if _, err := secrets.Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// The Role of the Helm chart: this one Secret, read only.
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "silentauth"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""}, Resources: []string{"secrets"},
			Verbs: []string{"get", "list", "watch"}, ResourceNames: []string{testSecret},
		}},
	}
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "silentauth"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "silentauth"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "silentauth"}},
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	saConfig := env.ServiceAccountConfig(t, ns, "silentauth")
	sa := kubeClient(t, saConfig)

	holder := &keys.Holder{}
	logs := &logbuf.Buffer{}
	w, err := NewWatcher(Options{
		Secrets: secretsOf(t, saConfig, ns), Namespace: ns, Name: testSecret, Lifecycle: lc, Holder: holder,
		Log: slog.New(slog.NewJSONHandler(logs, nil)), Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	wait := func(what string, cond func() bool) { t.Helper(); waitUntil(t, w, kubeWait, what, cond, logs) }
	status := func(parts ...string) func() bool {
		return func() bool {
			_, msg := w.Status()
			for _, p := range parts {
				if !strings.Contains(msg, p) {
					return false
				}
			}
			return true
		}
	}

	// First load. RBAC reaches the authorizer through its informer, so the
	// first list may be forbidden for a moment; the reflector retries.
	wait("the first keyring", func() bool { return holder.Keyring() != nil })
	ring := holder.Keyring()
	if ring.Signer(time.Now()).ID != k1.ID {
		t.Fatal("k1 does not sign")
	}

	// Update: publish k2, to sign in an hour.
	current := func() *corev1.Secret {
		t.Helper()
		s, err := secrets.Get(ctx, testSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := current()
	key, pem, ann, err := keys.EncodeEntry(keys.Entry{Name: "k2", Key: k2, ActivateAt: now.Add(hour)})
	if err != nil {
		t.Fatal(err)
	}
	s.Data[key] = pem
	for k, v := range ann {
		s.Annotations[k] = v
	}
	if _, err := secrets.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait("k2 published", func() bool { _, ok := holder.Keyring().Lookup(k2.ID, time.Now()); return ok })
	if holder.Keyring().Signer(time.Now()).ID != k1.ID {
		t.Error("k2 signs before its activate-at")
	}

	// Annotate by merge patch, as `kubectl annotate --overwrite` does: k2 now.
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, keys.AnnotationPrefix+"k2"+keys.ActivateAtSuffix, stamp(now.Add(-minute)))
	if _, err := secrets.Patch(ctx, testSecret, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	wait("k2 signing", func() bool { return holder.Keyring().Signer(time.Now()).ID == k2.ID })
	good := holder.Keyring()

	// Broken by JSON patch: a weak key replaces k2. The last good stays.
	weak := fmt.Sprintf(`[{"op":"replace","path":"/data/k2.pem","value":%q}]`, b64std(weakPEM()))
	if _, err := secrets.Patch(ctx, testSecret, types.JSONPatchType, []byte(weak), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	wait("refusal", status("data entry k2.pem: unsupported key: RSA modulus of 1024 bits", "serving the last good keyring"))
	if ready, _ := w.Status(); !ready || holder.Keyring() != good {
		t.Error("a broken Secret replaced the keyring or readiness")
	}

	// Deleted: the last good stays.
	if err := secrets.Delete(ctx, testSecret, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wait("delete", status("deleted; serving the last good keyring"))
	if ready, _ := w.Status(); !ready || holder.Keyring() != good {
		t.Error("a delete replaced the keyring or readiness")
	}

	// Recreated: recovered.
	keySecret.ResourceVersion = ""
	if _, err := secrets.Create(ctx, keySecret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait("recovery", func() bool {
		k := holder.Keyring()
		return k != good && k.Signer(time.Now()).ID == k1.ID && reported(w, k)
	})
	if ready, msg := w.Status(); !ready || strings.Contains(msg, "serving the last good") {
		t.Errorf("after recreate: %q", msg)
	}

	// The ServiceAccount reaches nothing else: not the other Secret, not a
	// list or watch of the namespace.
	other2 := sa.CoreV1().Secrets(ns)
	if _, err := other2.Get(ctx, "other", metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("get other Secret: %v, want Forbidden", err)
	}
	if _, err := other2.List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list Secrets: %v, want Forbidden", err)
	}
	if _, err := other2.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=other"}); !apierrors.IsForbidden(err) {
		t.Errorf("list other Secret by name: %v, want Forbidden", err)
	}
	if _, err := sa.CoreV1().Secrets("default").Get(ctx, testSecret, metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("get in another namespace: %v, want Forbidden", err)
	}
	if _, err := other2.Update(ctx, current(), metav1.UpdateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("update the key Secret: %v, want Forbidden (silentauth never writes)", err)
	}
	assertNoKeyMaterialInLogs(t, logs.String(), ecPEM(), edPEM(), weakPEM())
}

// A ServiceAccount without a Role: the watcher waits, Status names the
// API's refusal, and Run does not return before its context ends.
func TestWatcherKubeForbidden(t *testing.T) {
	env := kubetest.Shared(t)
	ns := env.NewNamespace(t)
	// A ServiceAccount with no Role at all.
	sa := secretsOf(t, env.ServiceAccountConfig(t, ns, "nobody"), ns)
	w, err := NewWatcher(Options{Secrets: sa, Namespace: ns, Name: testSecret, Lifecycle: lc, Holder: &keys.Holder{}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	waitUntil(t, w, kubeWait, "forbidden", func() bool {
		ready, msg := w.Status()
		return !ready && strings.Contains(msg, "forbidden")
	}, &logbuf.Buffer{})
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

// b64std encodes data as a Secret's data field is written in JSON.
func b64std(data []byte) string { return base64.StdEncoding.EncodeToString(data) }

func kubeClient(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// secretsOf lists and watches the Secrets of namespace as cfg's user,
// through NewListWatch as silentauth does.
func secretsOf(t *testing.T, cfg *rest.Config, namespace string) cache.ListerWatcher {
	t.Helper()
	lw, err := NewListWatch(cfg, namespace)
	if err != nil {
		t.Fatal(err)
	}
	return lw
}
