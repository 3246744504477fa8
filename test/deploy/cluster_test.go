package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/internal/testenv/kubetest"
	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// istioAPIVersionFile pins the istio.io/api module whose CRDs
// (kubernetes/customresourcedefinitions.gen.yaml) validate the chart's Istio
// objects; scripts/tools/helm.sh downloads the same version ahead of time.
const istioAPIVersionFile = "testdata/istio-api-version"

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func clientsFor(t *testing.T, cfg *rest.Config) (kubernetes.Interface, dynamic.Interface, meta.RESTMapper) {
	t.Helper()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client, dyn, restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
}

// TestInstallAndUpgrade installs the chart into a real API server, checks
// what it created and what its ServiceAccount may do, rotates a key the way
// the kubectl plugin does, upgrades, and proves the key Secret untouched.
func TestInstallAndUpgrade(t *testing.T) {
	env := kubetest.Shared(t)
	ctx := ctxFor(t)
	client, dyn, mapper := clientsFor(t, env.AdminConfig())
	kc := env.AdminKubeconfig(t)
	ns := env.NewNamespace(t)
	install := []string{"charts/silentauth", "--namespace", ns, "--kubeconfig", kc, "--set", "config.sessionAPI.serviceAccounts={shop/web}"}

	start := time.Now()
	helm(t, append([]string{"install", "silentauth"}, install...)...)
	t.Logf("helm install: %s", time.Since(start).Round(time.Millisecond))

	// Every object of the release exists, and the only cluster-scoped one is
	// the auth-delegator binding (asked of the API server's own mapping).
	m := decode(t, helm(t, "get", "manifest", "silentauth", "--namespace", ns, "--kubeconfig", kc))
	for _, u := range m {
		gvk := u.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s: %v", gvk, err)
		}
		res := dyn.Resource(mapping.Resource)
		var live *unstructured.Unstructured
		if mapping.Scope.Name() == meta.RESTScopeNameRoot {
			if gvk.Kind != "ClusterRoleBinding" {
				t.Errorf("cluster-scoped %s %s", gvk.Kind, u.GetName())
			}
			live, err = res.Get(ctx, u.GetName(), metav1.GetOptions{})
		} else {
			live, err = res.Namespace(u.GetNamespace()).Get(ctx, u.GetName(), metav1.GetOptions{})
		}
		if err != nil {
			t.Errorf("%s %s: %v", gvk.Kind, u.GetName(), err)
		} else if live.GetNamespace() != "" && live.GetNamespace() != ns {
			t.Errorf("%s %s in namespace %s, want %s", gvk.Kind, u.GetName(), live.GetNamespace(), ns)
		}
	}
	if n := len(m.all("ServiceMonitor")); n != 0 {
		t.Errorf("%d ServiceMonitors without the CRD", n)
	}

	// The key Secret: created, usable by the service.
	secret, err := client.CoreV1().Secrets(ns).Get(ctx, keysSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("key Secret: %v", err)
	}
	checkKeysUsable(t, secret, keys.ES256)

	checkServiceAccountRights(t, env, ns)

	// A rotation, as `kubectl silentauth keys rotate` writes it: a second key
	// that activates later.
	k2, err := keys.Generate(keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	dataKey, pemBytes, annotations, err := keys.EncodeEntry(keys.Entry{Name: "k2", Key: k2, ActivateAt: time.Now().Add(time.Hour).Truncate(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	secret.Data[dataKey] = pemBytes
	maps.Copy(secret.Annotations, annotations)
	rotated, err := client.CoreV1().Secrets(ns).Update(ctx, secret, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checksum := deploymentChecksum(t, ctx, client, ns)

	start = time.Now()
	helm(t, append([]string{"upgrade", "silentauth"}, append(install, "--set", "config.log.level=debug")...)...)
	t.Logf("helm upgrade: %s", time.Since(start).Round(time.Millisecond))
	checkSecretUnchanged(t, ctx, client, ns, rotated, "upgrade")
	if checksum == deploymentChecksum(t, ctx, client, ns) {
		t.Error("a config change left the pod template's checksum as it was")
	}

	// With the ServiceMonitor CRD served, the next upgrade adds one.
	applyServiceMonitorCRD(t, ctx, dyn)
	helm(t, append([]string{"upgrade", "silentauth"}, install...)...)
	if _, err := dyn.Resource(schema.GroupVersionResource{Group: "monitoring.coreos.com", Version: "v1", Resource: "servicemonitors"}).
		Namespace(ns).Get(ctx, fullname, metav1.GetOptions{}); err != nil {
		t.Errorf("ServiceMonitor after the CRD appeared: %v", err)
	}
	checkSecretUnchanged(t, ctx, client, ns, rotated, "second upgrade")

	// Provider login: the client secret's Secret is mounted, and the live
	// config names its file.
	helm(t, append([]string{"upgrade", "silentauth"}, append(install, "-f", "charts/silentauth/examples/oidc-values.yaml")...)...)
	live, err := client.AppsV1().Deployments(ns).Get(ctx, fullname, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v := mountedFrom(live.Spec.Template.Spec, live.Spec.Template.Spec.Containers[0], "/var/run/secrets/silentauth/oidc-client/client-secret"); v == nil || v.Secret == nil || v.Secret.SecretName != "silentauth-oidc" {
		t.Errorf("after the oidc upgrade the client secret is not mounted from Secret silentauth-oidc: %+v", v)
	}
	cm, err := client.CoreV1().ConfigMaps(ns).Get(ctx, fullname, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cm.Data["config.yaml"], "clientSecretFile: /var/run/secrets/silentauth/oidc-client/client-secret") {
		t.Errorf("after the oidc upgrade config.yaml lacks oidc.clientSecretFile:\n%s", cm.Data["config.yaml"])
	}
	checkSecretUnchanged(t, ctx, client, ns, rotated, "oidc upgrade")

	// Uninstalling keeps the keys; installing again reuses them.
	helm(t, "uninstall", "silentauth", "--namespace", ns, "--kubeconfig", kc)
	checkSecretUnchanged(t, ctx, client, ns, rotated, "uninstall")
	helm(t, append([]string{"install", "silentauth"}, install...)...)
	checkSecretUnchanged(t, ctx, client, ns, rotated, "reinstall")
}

// checkSecretUnchanged: the key Secret is byte-for-byte want, and nothing
// wrote it since (same resourceVersion).
func checkSecretUnchanged(t *testing.T, ctx context.Context, client kubernetes.Interface, ns string, want *corev1.Secret, after string) {
	t.Helper()
	got, err := client.CoreV1().Secrets(ns).Get(ctx, keysSecret, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("after %s: key Secret: %v", after, err)
	}
	if got.ResourceVersion != want.ResourceVersion || !reflect.DeepEqual(got.Data, want.Data) || !reflect.DeepEqual(got.Annotations, want.Annotations) {
		t.Fatalf("after %s the key Secret changed: resourceVersion %s → %s, keys %v → %v",
			after, want.ResourceVersion, got.ResourceVersion, slicesOfKeys(want.Data), slicesOfKeys(got.Data))
	}
}

func slicesOfKeys(m map[string][]byte) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func deploymentChecksum(t *testing.T, ctx context.Context, client kubernetes.Interface, ns string) string {
	t.Helper()
	d, err := client.AppsV1().Deployments(ns).Get(ctx, fullname, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Annotations["checksum/config"]
}

// checkServiceAccountRights asks the API server, as silentauth's
// ServiceAccount, for what the key watcher and the session API do, and for
// a few things they must not be able to do.
func checkServiceAccountRights(t *testing.T, env *kubetest.Env, ns string) {
	t.Helper()
	ctx := ctxFor(t)
	sa, err := kubernetes.NewForConfig(env.ServiceAccountConfig(t, ns, fullname))
	if err != nil {
		t.Fatal(err)
	}
	byName := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", keysSecret).String()}
	allowed := func(what string, err error) {
		if err != nil {
			t.Errorf("silentauth's ServiceAccount cannot %s: %v", what, err)
		}
	}
	forbidden := func(what string, err error) {
		if !apierrors.IsForbidden(err) {
			t.Errorf("silentauth's ServiceAccount can %s (err %v), want Forbidden", what, err)
		}
	}
	_, err = sa.CoreV1().Secrets(ns).Get(ctx, keysSecret, metav1.GetOptions{})
	allowed("get its key Secret", err)
	_, err = sa.CoreV1().Secrets(ns).List(ctx, byName)
	allowed("list its key Secret by name", err)
	w, err := sa.CoreV1().Secrets(ns).Watch(ctx, byName)
	allowed("watch its key Secret by name", err)
	if err == nil {
		w.Stop()
	}
	_, err = sa.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: "not-a-token"}}, metav1.CreateOptions{})
	allowed("review tokens", err)

	_, err = sa.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	forbidden("list every Secret", err)
	_, err = sa.CoreV1().Secrets(ns).Get(ctx, "other", metav1.GetOptions{})
	forbidden("get another Secret", err)
	_, err = sa.CoreV1().Secrets("kube-system").Get(ctx, keysSecret, metav1.GetOptions{})
	forbidden("get a Secret in another namespace", err)
	// Dry run: should the grant be wrong, the check still writes nothing.
	_, err = sa.CoreV1().Secrets(ns).Update(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: keysSecret, Namespace: ns}}, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
	forbidden("update its key Secret", err)
	_, err = sa.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	forbidden("list ConfigMaps", err)
	_, err = sa.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	forbidden("list Pods", err)
}

// applyServiceMonitorCRD serves monitoring.coreos.com/v1 ServiceMonitor with
// a schema that accepts anything: the test needs the API, not its rules.
func applyServiceMonitorCRD(t *testing.T, ctx context.Context, dyn dynamic.Interface) {
	t.Helper()
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": "servicemonitors.monitoring.coreos.com"},
		"spec": map[string]any{
			"group": "monitoring.coreos.com",
			"scope": "Namespaced",
			"names": map[string]any{"kind": "ServiceMonitor", "listKind": "ServiceMonitorList", "plural": "servicemonitors", "singular": "servicemonitor"},
			"versions": []any{map[string]any{
				"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
			}},
		},
	}}
	applyCRDs(t, ctx, dyn, []*unstructured.Unstructured{crd})
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// applyCRDs applies crds server-side and waits until each is Established.
func applyCRDs(t *testing.T, ctx context.Context, dyn dynamic.Interface, crds []*unstructured.Unstructured) {
	t.Helper()
	start := time.Now()
	for _, crd := range crds {
		if _, err := dyn.Resource(crdGVR).Apply(ctx, crd.GetName(), crd, metav1.ApplyOptions{FieldManager: "silentauth-deploy-test", Force: true}); err != nil {
			t.Fatalf("apply CRD %s: %v", crd.GetName(), err)
		}
	}
	for _, crd := range crds {
		for {
			got, err := dyn.Resource(crdGVR).Get(ctx, crd.GetName(), metav1.GetOptions{})
			if err != nil {
				t.Fatalf("CRD %s: %v", crd.GetName(), err)
			}
			if crdEstablished(got) {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("CRD %s not Established: %v", crd.GetName(), ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	t.Logf("%d CRDs applied and Established in %s", len(crds), time.Since(start).Round(time.Millisecond))
}

func crdEstablished(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		c, _ := c.(map[string]any)
		if c["type"] == "Established" && c["status"] == "True" {
			return true
		}
	}
	return false
}

// warnings collects the API server's warnings (Pod Security's among them).
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// TestPodSecurityRestricted: in a namespace that enforces (and warns
// about) the restricted Pod Security Standard, the pods of the chart in
// several configurations and of the sidecar manifest are admitted without
// a single warning.
func TestPodSecurityRestricted(t *testing.T) {
	env := kubetest.Shared(t)
	ctx := ctxFor(t)
	w := &warnings{}
	cfg := env.AdminConfig()
	cfg.WarningHandler = w
	client, _, _ := clientsFor(t, cfg)

	restricted := func(t *testing.T) string {
		ns := env.NewNamespace(t)
		patch := `{"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"restricted","pod-security.kubernetes.io/warn":"restricted","pod-security.kubernetes.io/audit":"restricted"}}}`
		if _, err := client.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
		return ns
	}
	// admit dry-run creates the Deployment and a Pod made from its
	// template, as the ReplicaSet controller would, and wants no warning.
	admit := func(t *testing.T, ns string, d *appsv1.Deployment) {
		t.Helper()
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: d.Spec.Template.Spec.ServiceAccountName, Namespace: ns}}
		if _, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"}
		d = d.DeepCopy()
		d.Namespace = ns
		w.take()
		if _, err := client.AppsV1().Deployments(ns).Create(ctx, d, dry); err != nil {
			t.Errorf("Deployment %s refused: %v", d.Name, err)
		}
		if msgs := w.take(); len(msgs) != 0 {
			t.Errorf("Deployment %s: warnings %q", d.Name, msgs)
		}
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: d.Name + "-pod", Namespace: ns, Labels: d.Spec.Template.Labels, Annotations: d.Spec.Template.Annotations},
			Spec:       d.Spec.Template.Spec,
		}
		if _, err := client.CoreV1().Pods(ns).Create(ctx, pod, dry); err != nil {
			t.Errorf("Pod of %s refused: %v", d.Name, err)
		}
		if msgs := w.take(); len(msgs) != 0 {
			t.Errorf("Pod of %s: warnings %q", d.Name, msgs)
		}
	}

	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			admit(t, restricted(t), as[appsv1.Deployment](t, render(t, vs.args...).one(t, "Deployment")))
		})
	}
	t.Run("sidecar", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(repoRoot(t), "manifests", "install", "sidecar.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		admit(t, restricted(t), as[appsv1.Deployment](t, decode(t, string(data)).one(t, "Deployment")))
	})
	// The control: the same namespace refuses a pod that only drops the
	// security context, so the checks above did run.
	t.Run("control", func(t *testing.T) {
		ns := restricted(t)
		d := as[appsv1.Deployment](t, render(t, caller...).one(t, "Deployment"))
		spec := d.Spec.Template.Spec
		spec.SecurityContext, spec.Containers[0].SecurityContext = nil, nil
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: spec.ServiceAccountName, Namespace: ns}}
		if _, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "insecure", Namespace: ns}, Spec: spec}
		_, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil || !strings.Contains(err.Error(), "violates PodSecurity") {
			t.Errorf("a pod without securityContext was not refused by Pod Security: %v", err)
		}
		w.take()
	})
}

// istioCRDs returns Istio's CRDs from the istio.io/api module, downloaded
// into the module cache (not added to go.mod): only the security.istio.io
// ones the chart uses.
func istioCRDs(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	gobin, err := exec.LookPath("go")
	if err != nil {
		skipOrFail(t, "no go command to download istio.io/api: %v", err)
	}
	pin, err := os.ReadFile(istioAPIVersionFile)
	if err != nil {
		t.Fatal(err)
	}
	istioAPIVersion := strings.TrimSpace(string(pin))
	ctx := ctxFor(t)
	cmd := exec.CommandContext(ctx, gobin, "mod", "download", "-json", "istio.io/api@"+istioAPIVersion)
	cmd.Dir = t.TempDir() // outside any module: go.mod stays as it is
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	out, err := cmd.Output()
	var mod struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &mod); err != nil || jerr != nil || mod.Error != "" {
		var stderr string
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		skipOrFail(t, "download istio.io/api@%s: %v %s %s", istioAPIVersion, err, mod.Error, stderr)
	}
	data, err := os.ReadFile(filepath.Join(mod.Dir, "kubernetes", "customresourcedefinitions.gen.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crds []*unstructured.Unstructured
	for _, u := range decode(t, string(data)) {
		if group, _, _ := unstructured.NestedString(u.Object, "spec", "group"); group == "security.istio.io" {
			crds = append(crds, u)
		}
	}
	if len(crds) == 0 {
		t.Fatalf("no security.istio.io CRDs in istio.io/api@%s", istioAPIVersion)
	}
	t.Logf("%d security.istio.io CRDs from istio.io/api@%s", len(crds), istioAPIVersion)
	return crds
}

// TestIstioCRDsAcceptObjects: the chart's AuthorizationPolicy and
// RequestAuthentication are valid against Istio's own CRD schemas (strict:
// no unknown or pruned field), and helm installs them.
func TestIstioCRDsAcceptObjects(t *testing.T) {
	env := kubetest.Shared(t)
	ctx := ctxFor(t)
	_, dyn, _ := clientsFor(t, env.AdminConfig())
	applyCRDs(t, ctx, dyn, istioCRDs(t))

	workloadNS := env.NewNamespace(t)
	args := []string{"-f", "charts/silentauth/examples/istio-values.yaml", "--set", "istio.authorizationPolicy.namespace=" + workloadNS}
	m := render(t, args...)
	gvr := map[string]schema.GroupVersionResource{
		"AuthorizationPolicy":   {Group: "security.istio.io", Version: "v1", Resource: "authorizationpolicies"},
		"RequestAuthentication": {Group: "security.istio.io", Version: "v1", Resource: "requestauthentications"},
	}
	for kind, res := range gvr {
		u := m.one(t, kind).DeepCopy()
		u.SetName(u.GetName() + "-strict")
		created, err := dyn.Resource(res).Namespace(workloadNS).Create(ctx, u, metav1.CreateOptions{FieldValidation: "Strict"})
		if err != nil {
			t.Errorf("%s refused by Istio's CRD: %v", kind, err)
			continue
		}
		// Nothing pruned: what the server stored is what the chart wrote.
		if !reflect.DeepEqual(created.Object["spec"], u.Object["spec"]) {
			t.Errorf("%s spec stored as\n%v\nrendered\n%v", kind, created.Object["spec"], u.Object["spec"])
		}
	}
	// The control: the schema is enforced, so the creates above were judged.
	bad := m.one(t, "AuthorizationPolicy").DeepCopy()
	bad.SetName("bad-action")
	_ = unstructured.SetNestedField(bad.Object, "PERMIT", "spec", "action")
	if _, err := dyn.Resource(gvr["AuthorizationPolicy"]).Namespace(workloadNS).Create(ctx, bad, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err == nil {
		t.Error("an AuthorizationPolicy with action PERMIT was accepted: Istio's schema is not enforced")
	}

	// End to end: helm installs the Istio objects into the workload's
	// namespace beside the release.
	ns := env.NewNamespace(t)
	helm(t, append([]string{"install", "silentauth", "charts/silentauth", "--namespace", ns, "--kubeconfig", env.AdminKubeconfig(t)}, args...)...)
	for kind, res := range gvr {
		if _, err := dyn.Resource(res).Namespace(workloadNS).Get(ctx, fullname, metav1.GetOptions{}); err != nil {
			t.Errorf("%s after helm install: %v", kind, err)
		}
	}
}

// TestPlainManifestsApply: the API server accepts every object of
// manifests/install (strict field validation, dry run), in namespaces that
// enforce the restricted Pod Security Standard, without a warning.
func TestPlainManifestsApply(t *testing.T) {
	env := kubetest.Shared(t)
	ctx := ctxFor(t)
	w := &warnings{}
	cfg := env.AdminConfig()
	cfg.WarningHandler = w
	client, dyn, mapper := clientsFor(t, cfg)
	for _, file := range []string{"silentauth.yaml", "sidecar.yaml"} {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(repoRoot(t), "manifests", "install", file))
			if err != nil {
				t.Fatal(err)
			}
			m := decode(t, string(data))
			for _, u := range m {
				if ns := u.GetNamespace(); ns != "" {
					labels := map[string]string{"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}
					nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels}}
					if _, err := client.CoreV1().Namespaces().Create(ctx, nsObj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
						t.Fatal(err)
					}
				}
				// The ServiceAccount admission plugin wants the pod's
				// ServiceAccount to exist, even for a dry run.
				if u.GetKind() == "ServiceAccount" {
					sa := as[corev1.ServiceAccount](t, u)
					if _, err := client.CoreV1().ServiceAccounts(sa.Namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
						t.Fatal(err)
					}
				}
			}
			w.take()
			for _, u := range m {
				gvk := u.GroupVersionKind()
				mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
				if err != nil {
					t.Fatalf("%s: %v", gvk, err)
				}
				var res dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
				if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
					res = dyn.Resource(mapping.Resource).Namespace(u.GetNamespace())
				}
				dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict"}
				if _, err := res.Create(ctx, u, dry); err != nil && !(gvk.Kind == "ServiceAccount" && apierrors.IsAlreadyExists(err)) {
					t.Errorf("%s %s refused: %v", gvk.Kind, u.GetName(), err)
				}
				if msgs := w.take(); len(msgs) != 0 {
					t.Errorf("%s %s: warnings %q", gvk.Kind, u.GetName(), msgs)
				}
			}
		})
	}
}
