package deploy

import (
	"cmp"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/keys"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// The release every render uses: `helm template silentauth ... -n silentauth`.
const (
	releaseNS  = "silentauth"
	fullname   = "silentauth"
	keysSecret = "silentauth-keys"
)

// caller is the one value the chart requires: who may start sessions.
// "defaults" below means the defaults and this.
var caller = []string{"--set", "config.sessionAPI.serviceAccounts={shop/web}"}

// withCaller is caller followed by args.
func withCaller(args ...string) []string { return append(slices.Clone(caller), args...) }

// valueSets are the configurations in which every chart invariant is
// checked. The example files are the ones the chart README points to.
var valueSets = []struct {
	name string
	args []string
}{
	{"defaults", caller},
	{"istio", []string{"-f", "charts/silentauth/examples/istio-values.yaml"}},
	{"redis-hpa", []string{"-f", "charts/silentauth/examples/redis-values.yaml"}},
	{"redis-3-replicas", withCaller("--set", "store.backend=redis,store.redis.addrs={redis.redis.svc:6379},replicaCount=3,store.redis.passwordSecret.name=redis-auth")},
	{"redis-tls", withCaller("--set", "store.backend=redis,store.redis.mode=cluster,store.redis.addrs={r-0:6379,r-1:6379},store.redis.tls.enabled=true,store.redis.tls.caSecret.name=redis-ca,store.redis.tls.clientCertSecret=redis-client")},
	{"tls", []string{"-f", "charts/silentauth/examples/tls-values.yaml"}},
	{"oidc", []string{"-f", "charts/silentauth/examples/oidc-values.yaml"}},
	{"oidc-private-ca", withCaller("--set", "config.oidc.issuerURL=https://dex.auth.svc:5556/dex,config.oidc.clientID=silentauth,oidcClientSecret.name=dex-client,oidcClientSecret.key=secret,oidcCASecret.name=dex-ca")},
	{"tls-own-ca", withCaller("--set", "grpcTLS.secretName=grpc-tls,grpcTLS.clientCA.enabled=true,grpcTLS.clientCA.secretName=envoy-ca,grpcTLS.clientCA.key=bundle.pem")},
	{"ed25519-key", withCaller("--set", "keys.secret.algorithm=ed25519")},
	{"rsa-key", withCaller("--set", "keys.secret.algorithm=rsa")},
	{"existing-sa", []string{"--set", "serviceAccount.create=false,serviceAccount.name=auth-sa,config.sessionAPI.serviceAccounts={shop/web}"}},
}

func TestLint(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			t.Parallel()
			helm(t, append([]string{"lint", "--strict", "charts/silentauth"}, vs.args...)...)
		})
	}
}

// TestChartInvariants renders every value set and checks what must hold in
// all of them.
func TestChartInvariants(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			t.Parallel()
			m := render(t, vs.args...)
			checkScope(t, m)
			cfg := renderedConfig(t, m)
			checkRBAC(t, m, cfg)
			checkPod(t, m)
			checkMountedFiles(t, m, cfg)
			checkService(t, m)
			checkNetworkPolicy(t, m, cfg)
			checkKeysSecret(t, m)
		})
	}
}

// namespacedKinds are the kinds the chart may render besides its one
// cluster-scoped kind, ClusterRoleBinding.
var namespacedKinds = []string{
	"ConfigMap", "Secret", "ServiceAccount", "Role", "RoleBinding", "Service", "Deployment",
	"HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor",
	"AuthorizationPolicy", "RequestAuthentication",
}

// checkScope: nothing cluster-scoped but the auth-delegator binding, and
// every other object in a namespace.
func checkScope(t *testing.T, m manifest) {
	t.Helper()
	for _, u := range m {
		switch {
		case u.GetKind() == "ClusterRoleBinding":
		case !slices.Contains(namespacedKinds, u.GetKind()):
			t.Errorf("unexpected kind %s %s (cluster-scoped objects other than the auth-delegator binding are not allowed)", u.GetKind(), u.GetName())
		case u.GetNamespace() == "":
			t.Errorf("%s %s has no namespace", u.GetKind(), u.GetName())
		}
	}
}

// renderedConfig is config.yaml from the ConfigMap, as a map.
func renderedConfig(t *testing.T, m manifest) map[string]any {
	t.Helper()
	for _, u := range m.all("ConfigMap") {
		if u.GetName() != fullname {
			continue
		}
		cm := as[corev1.ConfigMap](t, u)
		var cfg map[string]any
		if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
			t.Fatalf("config.yaml: %v", err)
		}
		return cfg
	}
	t.Fatalf("no ConfigMap %s", fullname)
	return nil
}

// field walks cfg along a dotted path; nil when absent.
func field(cfg map[string]any, dotted string) any {
	var cur any = cfg
	for _, k := range strings.Split(dotted, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func str(cfg map[string]any, dotted string) string {
	s, _ := field(cfg, dotted).(string)
	return s
}

// serviceAccountName is the pod's ServiceAccount.
func serviceAccountName(t *testing.T, m manifest) string {
	t.Helper()
	return as[appsv1.Deployment](t, m.one(t, "Deployment")).Spec.Template.Spec.ServiceAccountName
}

// checkRBAC: a Role for get/list/watch on the one key Secret, its binding,
// and a ClusterRoleBinding to system:auth-delegator exactly when
// ServiceAccounts call the session API.
func checkRBAC(t *testing.T, m manifest, cfg map[string]any) {
	t.Helper()
	sa := rbacv1.Subject{Kind: "ServiceAccount", Name: serviceAccountName(t, m), Namespace: releaseNS}
	checkKeysRole(t, as[rbacv1.Role](t, m.one(t, "Role")), str(cfg, "keys.secret.name"))
	if got := str(cfg, "keys.secret.name"); got != keysSecret {
		t.Errorf("config keys.secret.name = %q, want %q", got, keysSecret)
	}
	rb := as[rbacv1.RoleBinding](t, m.one(t, "RoleBinding"))
	if rb.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: m.one(t, "Role").GetName()}) {
		t.Errorf("RoleBinding roleRef = %+v", rb.RoleRef)
	}
	if !slices.Equal(rb.Subjects, []rbacv1.Subject{sa}) {
		t.Errorf("RoleBinding subjects = %+v, want [%+v]", rb.Subjects, sa)
	}
	crbs := m.all("ClusterRoleBinding")
	callers, _ := field(cfg, "sessionAPI.serviceAccounts").([]any)
	if want := min(len(callers), 1); len(crbs) != want {
		t.Fatalf("%d ClusterRoleBindings with %d session-API ServiceAccounts, want %d", len(crbs), len(callers), want)
	}
	for _, u := range crbs {
		crb := as[rbacv1.ClusterRoleBinding](t, u)
		if crb.RoleRef != (rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"}) {
			t.Errorf("ClusterRoleBinding %s roleRef = %+v, want system:auth-delegator", crb.Name, crb.RoleRef)
		}
		if !slices.Equal(crb.Subjects, []rbacv1.Subject{sa}) {
			t.Errorf("ClusterRoleBinding subjects = %+v, want [%+v]", crb.Subjects, sa)
		}
	}
}

// checkKeysRole: exactly one rule, get/list/watch on the one named Secret.
func checkKeysRole(t *testing.T, role *rbacv1.Role, secret string) {
	t.Helper()
	if len(role.Rules) != 1 {
		t.Fatalf("Role %s has %d rules, want 1: %+v", role.Name, len(role.Rules), role.Rules)
	}
	r := role.Rules[0]
	verbs := slices.Sorted(slices.Values(r.Verbs))
	if !slices.Equal(r.APIGroups, []string{""}) || !slices.Equal(r.Resources, []string{"secrets"}) ||
		!slices.Equal(r.ResourceNames, []string{secret}) || !slices.Equal(verbs, []string{"get", "list", "watch"}) || len(r.NonResourceURLs) != 0 {
		t.Errorf("Role %s rule = %+v, want get/list/watch on secrets [%s] only", role.Name, r, secret)
	}
}

// checkPod: the restricted Pod Security Standard fields, no automounted
// token, probes on the admin port, the config mounted where the args say.
func checkPod(t *testing.T, m manifest) {
	t.Helper()
	d := as[appsv1.Deployment](t, m.one(t, "Deployment"))
	pod := d.Spec.Template.Spec
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("pod automountServiceAccountToken is not false")
	}
	psc := pod.SecurityContext
	if psc == nil || !isTrue(psc.RunAsNonRoot) || psc.RunAsUser == nil || *psc.RunAsUser != 65532 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext = %+v", psc)
	}
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
		t.Fatalf("want the silentauth container alone, got %d containers, %d init containers", len(pod.Containers), len(pod.InitContainers))
	}
	c := pod.Containers[0]
	checkRestrictedContainer(t, pod, c)
	if want := []string{"serve", "--config", "/etc/silentauth/config.yaml"}; !slices.Equal(c.Args, want) {
		t.Errorf("args = %q, want %q", c.Args, want)
	}
	if mountedFrom(pod, c, "/etc/silentauth/config.yaml") == nil {
		t.Error("config.yaml is not mounted at /etc/silentauth")
	}
	wantPorts := map[string]int32{"grpc-authz": 9001, "http-jwks": 9002, "http-session": 9003, "http-admin": 9090}
	for _, p := range c.Ports {
		if wantPorts[p.Name] != p.ContainerPort {
			t.Errorf("container port %s = %d", p.Name, p.ContainerPort)
		}
		delete(wantPorts, p.Name)
	}
	if len(wantPorts) != 0 {
		t.Errorf("container ports missing: %v", wantPorts)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"startup", c.StartupProbe, "/healthz"}, {"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "http-admin" {
			t.Errorf("%s probe = %+v, want GET %s on http-admin", p.name, p.probe, p.path)
		}
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources = %+v, want CPU and memory requests and a memory limit", c.Resources)
	}
	// The only API token in the pod: projected, for this container.
	tok := mountedFrom(pod, c, "/var/run/secrets/kubernetes.io/serviceaccount/token")
	if tok == nil || tok.Projected == nil {
		t.Error("no projected ServiceAccount token mounted for client-go")
	}
	if len(pod.TopologySpreadConstraints) == 0 {
		t.Error("no topologySpreadConstraints")
	}
	for _, tsc := range pod.TopologySpreadConstraints {
		if tsc.LabelSelector == nil || !subset(tsc.LabelSelector.MatchLabels, d.Spec.Template.Labels) {
			t.Errorf("topologySpreadConstraint %s does not select the pods: %+v", tsc.TopologyKey, tsc.LabelSelector)
		}
	}
	if sum := d.Spec.Template.Annotations["checksum/config"]; !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(sum) {
		t.Errorf("checksum/config annotation = %q", sum)
	}
}

func isTrue(b *bool) bool { return b != nil && *b }

// checkRestrictedContainer: the fields the restricted Pod Security Standard
// requires, set on the container or inherited from the pod.
func checkRestrictedContainer(t *testing.T, pod corev1.PodSpec, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		t.Fatalf("container %s has no securityContext", c.Name)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || !isTrue(sc.ReadOnlyRootFilesystem) || isTrue(sc.Privileged) ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("container %s securityContext = %+v", c.Name, sc)
	}
	psc := pod.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	nonRoot, user, seccomp := cmp.Or(sc.RunAsNonRoot, psc.RunAsNonRoot), cmp.Or(sc.RunAsUser, psc.RunAsUser), cmp.Or(sc.SeccompProfile, psc.SeccompProfile)
	if !isTrue(nonRoot) || user == nil || *user != 65532 || seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container %s runs as %v (non-root %v), seccomp %+v", c.Name, user, nonRoot, seccomp)
	}
}

// mountedFrom returns the volume that provides file inside container c, or
// nil: a mount at the file's folder whose volume holds the file's name (all
// keys, or an item with that path).
func mountedFrom(pod corev1.PodSpec, c corev1.Container, file string) *corev1.Volume {
	dir, base := path.Split(file)
	for _, vm := range c.VolumeMounts {
		if strings.TrimSuffix(vm.MountPath, "/") != strings.TrimSuffix(dir, "/") || vm.SubPath != "" {
			continue
		}
		for i, v := range pod.Volumes {
			if v.Name == vm.Name && volumeHolds(v, base) {
				return &pod.Volumes[i]
			}
		}
	}
	return nil
}

func volumeHolds(v corev1.Volume, name string) bool {
	has := func(items []corev1.KeyToPath) bool {
		return len(items) == 0 || slices.ContainsFunc(items, func(k corev1.KeyToPath) bool { return k.Path == name })
	}
	switch {
	case v.Secret != nil:
		return has(v.Secret.Items)
	case v.ConfigMap != nil:
		return has(v.ConfigMap.Items)
	case v.Projected != nil:
		for _, s := range v.Projected.Sources {
			if s.ServiceAccountToken != nil && s.ServiceAccountToken.Path == name ||
				s.ConfigMap != nil && has(s.ConfigMap.Items) && len(s.ConfigMap.Items) > 0 ||
				s.Secret != nil && has(s.Secret.Items) {
				return true
			}
		}
	}
	return false
}

// checkMountedFiles: every file the config names is mounted from the
// Secret and key the values name.
func checkMountedFiles(t *testing.T, m manifest, cfg map[string]any) {
	t.Helper()
	d := as[appsv1.Deployment](t, m.one(t, "Deployment"))
	pod := d.Spec.Template.Spec
	for _, f := range []string{"listen.grpc.tls.certFile", "listen.grpc.tls.keyFile", "listen.grpc.tls.clientCAFile", "sessionAPI.tokenFile", "store.redis.passwordFile",
		"store.redis.tls.caFile", "store.redis.tls.certFile", "store.redis.tls.keyFile", "oidc.clientSecretFile", "oidc.caFile"} {
		file := str(cfg, f)
		if file == "" {
			continue
		}
		v := mountedFrom(pod, pod.Containers[0], file)
		if v == nil || v.Secret == nil {
			t.Errorf("%s = %s: not mounted from a Secret", f, file)
			continue
		}
		t.Logf("%s = %s from Secret %s", f, file, v.Secret.SecretName)
	}
	if (str(cfg, "listen.grpc.tls.certFile") == "") != (str(cfg, "listen.grpc.tls.keyFile") == "") {
		t.Errorf("listen.grpc.tls has only one of certFile and keyFile: %v", field(cfg, "listen.grpc.tls"))
	}
}

// checkService: the four ports, named for Istio's protocol selection.
func checkService(t *testing.T, m manifest) {
	t.Helper()
	svc := as[corev1.Service](t, m.one(t, "Service"))
	d := as[appsv1.Deployment](t, m.one(t, "Deployment"))
	if !subset(svc.Spec.Selector, d.Spec.Template.Labels) {
		t.Errorf("Service selector %v does not select the pods %v", svc.Spec.Selector, d.Spec.Template.Labels)
	}
	type port struct {
		name, appProtocol string
		port              int32
	}
	var got []port
	for _, p := range svc.Spec.Ports {
		got = append(got, port{p.Name, ptrString(p.AppProtocol), p.Port})
	}
	want := []port{{"grpc-authz", "grpc", 9001}, {"http-jwks", "http", 9002}, {"http-session", "http", 9003}, {"http-admin", "http", 9090}}
	if !slices.Equal(got, want) {
		t.Errorf("Service ports = %+v, want %+v", got, want)
	}
}

func ptrString(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func subset(sub, of map[string]string) bool {
	for k, v := range sub {
		if of[k] != v {
			return false
		}
	}
	return len(sub) > 0
}

// checkNetworkPolicy: one rule per open port, none without peers (which
// would admit everyone), and the session API open only to configured
// callers.
func checkNetworkPolicy(t *testing.T, m manifest, cfg map[string]any) {
	t.Helper()
	np := as[networkingv1.NetworkPolicy](t, m.one(t, "NetworkPolicy"))
	d := as[appsv1.Deployment](t, m.one(t, "Deployment"))
	if !subset(np.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("NetworkPolicy selects %v, not the pods %v", np.Spec.PodSelector.MatchLabels, d.Spec.Template.Labels)
	}
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
		t.Errorf("policyTypes = %v", np.Spec.PolicyTypes)
	}
	peers := map[int32][]networkingv1.NetworkPolicyPeer{}
	for _, r := range np.Spec.Ingress {
		if len(r.From) == 0 || len(r.Ports) != 1 || r.Ports[0].Port == nil {
			t.Errorf("ingress rule %+v: want one port and at least one peer", r)
			continue
		}
		peers[r.Ports[0].Port.IntVal] = r.From
	}
	for _, p := range []int32{9001, 9002, 9090} {
		if len(peers[p]) == 0 {
			t.Errorf("port %d: no rule", p)
		}
	}
	// The session API: exactly the callers' namespaces (no extra peers in
	// the value sets).
	var want []string
	callers, _ := field(cfg, "sessionAPI.serviceAccounts").([]any)
	for _, c := range callers {
		ns, _, _ := strings.Cut(c.(string), "/")
		if !slices.Contains(want, ns) {
			want = append(want, ns)
		}
	}
	var got []string
	for _, p := range peers[9003] {
		if p.NamespaceSelector == nil || p.PodSelector != nil || p.IPBlock != nil {
			t.Errorf("session-API peer %+v: want a namespace selector alone", p)
			continue
		}
		got = append(got, p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"])
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("session API open to namespaces %q, want %q", got, want)
	}
}

// checkKeysSecret: `helm template` cannot look up, so it renders the key
// Secret, and the service must accept it: one key, the configured
// algorithm, signing at once, kept by Helm.
func checkKeysSecret(t *testing.T, m manifest) {
	t.Helper()
	s := as[corev1.Secret](t, m.one(t, "Secret"))
	if s.Name != keysSecret {
		t.Fatalf("Secret %s, want %s", s.Name, keysSecret)
	}
	if s.Annotations["helm.sh/resource-policy"] != "keep" {
		t.Error("key Secret lacks helm.sh/resource-policy: keep")
	}
	checkKeysUsable(t, s, map[string]keys.Alg{"ecdsa": keys.ES256, "ed25519": keys.EdDSA, "rsa": keys.RS256}[algorithmOf(m)])
}

// algorithmOf reads the algorithm back from the rendered key's PEM type.
func algorithmOf(m manifest) string {
	for _, u := range m.all("Secret") {
		data, _, _ := unstructured.NestedStringMap(u.Object, "data")
		for _, v := range data {
			switch {
			case strings.HasPrefix(v, "LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0t"): // "-----BEGIN EC PRIVATE KEY-----"
				return "ecdsa"
			case strings.HasPrefix(v, "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tL"): // "-----BEGIN RSA PRIVATE KEY-----"
				return "rsa"
			case strings.HasPrefix(v, "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0t"): // "-----BEGIN PRIVATE KEY-----" (PKCS#8: Ed25519)
				return "ed25519"
			}
		}
	}
	return ""
}

// checkKeysUsable parses s exactly as the service's watcher does and wants
// one key of alg that signs now.
func checkKeysUsable(t *testing.T, s *corev1.Secret, alg keys.Alg) {
	t.Helper()
	entries, err := keys.ParseSecret(s.Data, s.Annotations)
	if err != nil {
		t.Fatalf("the service would refuse the key Secret: %v", err)
	}
	if len(entries) != 1 || !entries[0].ActivateAt.IsZero() {
		t.Fatalf("entries = %+v, want one key without activate-at", entries)
	}
	now := time.Now()
	ring, err := keys.NewSecretKeyring(entries, keys.Lifecycle{AccessTTL: 15 * time.Minute, Leeway: 30 * time.Second}, now)
	if err != nil {
		t.Fatalf("keyring: %v", err)
	}
	if k := ring.Signer(now); k == nil || k.Alg != alg {
		t.Fatalf("signer = %+v, want a %s key signing now", k, alg)
	}
}

// TestMemoryStoreRecreates: the memory store never runs two pods at once.
func TestMemoryStoreRecreates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		args     []string
		strategy appsv1.DeploymentStrategyType
		replicas int32
	}{
		{"memory", caller, appsv1.RecreateDeploymentStrategyType, 1},
		{"redis", withCaller("--set", "store.backend=redis,store.redis.addrs={r:6379},replicaCount=2"), appsv1.RollingUpdateDeploymentStrategyType, 2},
	} {
		d := as[appsv1.Deployment](t, render(t, tc.args...).one(t, "Deployment"))
		if d.Spec.Strategy.Type != tc.strategy || d.Spec.Replicas == nil || *d.Spec.Replicas != tc.replicas {
			t.Errorf("%s: strategy %s, replicas %v; want %s, %d", tc.name, d.Spec.Strategy.Type, d.Spec.Replicas, tc.strategy, tc.replicas)
		}
		if ru := d.Spec.Strategy.RollingUpdate; ru != nil && ru.MaxUnavailable.IntValue() != 0 {
			t.Errorf("%s: maxUnavailable %s, want 0", tc.name, ru.MaxUnavailable.String())
		}
	}
}

// TestAutoscalerAndBudget: HPA and PDB only with Redis and several replicas.
func TestAutoscalerAndBudget(t *testing.T) {
	t.Parallel()
	redis := "store.backend=redis,store.redis.addrs={r:6379}"
	for _, tc := range []struct {
		name     string
		set      string
		hpa, pdb bool
	}{
		{"memory", "replicaCount=1", false, false},
		{"redis, 1 replica", redis, false, false},
		{"redis, 3 replicas", redis + ",replicaCount=3", false, true},
		{"redis, autoscaling", redis + ",autoscaling.enabled=true", true, true},
		{"redis, 3 replicas, no PDB", redis + ",replicaCount=3,podDisruptionBudget.enabled=false", false, false},
	} {
		m := render(t, withCaller("--set", tc.set)...)
		if got := len(m.all("HorizontalPodAutoscaler")) == 1; got != tc.hpa {
			t.Errorf("%s: HPA rendered %v, want %v", tc.name, got, tc.hpa)
		}
		if got := len(m.all("PodDisruptionBudget")) == 1; got != tc.pdb {
			t.Errorf("%s: PDB rendered %v, want %v", tc.name, got, tc.pdb)
		}
		d := as[appsv1.Deployment](t, m.one(t, "Deployment"))
		if tc.hpa {
			hpa := as[autoscalingv2.HorizontalPodAutoscaler](t, m.one(t, "HorizontalPodAutoscaler"))
			if hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != d.Name || hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 {
				t.Errorf("%s: HPA %+v", tc.name, hpa.Spec)
			}
			if d.Spec.Replicas != nil {
				t.Errorf("%s: the Deployment sets replicas %d under an HPA", tc.name, *d.Spec.Replicas)
			}
		}
		if tc.pdb {
			pdb := as[policyv1.PodDisruptionBudget](t, m.one(t, "PodDisruptionBudget"))
			if pdb.Spec.Selector == nil || !subset(pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels) || pdb.Spec.MaxUnavailable == nil {
				t.Errorf("%s: PDB %+v", tc.name, pdb.Spec)
			}
		}
	}
}

// TestConfigChangeRollsPods: the pod template's checksum follows config.yaml
// and nothing else.
func TestConfigChangeRollsPods(t *testing.T) {
	t.Parallel()
	sum := func(args ...string) string {
		return as[appsv1.Deployment](t, render(t, args...).one(t, "Deployment")).Spec.Template.Annotations["checksum/config"]
	}
	base := sum(caller...)
	for _, tc := range []struct {
		set     string
		changes bool
	}{
		{"config.log.level=debug", true},
		{"config.policy.loginURL=/login", true},
		{"ports.grpc=9101", true},
		{"store.backend=redis,store.redis.addrs={r:6379}", true},
		{"resources.requests.cpu=250m", false},
		{"podAnnotations.team=auth", false},
	} {
		if got := sum(withCaller("--set", tc.set)...); (got != base) != tc.changes {
			t.Errorf("--set %s: checksum changed %v, want %v", tc.set, got != base, tc.changes)
		}
	}
}

// TestSchemaRefusesBadValues: helm refuses these values before rendering,
// naming the value at fault.
func TestSchemaRefusesBadValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		set  string
		want []string
	}{
		{"2 replicas with memory", "replicaCount=2", []string{"/store/backend", "value must be 'redis'"}},
		{"autoscaling with memory", "autoscaling.enabled=true", []string{"/store/backend", "value must be 'redis'"}},
		{"port not a number", "ports.grpc=grpc", []string{"/ports/grpc", "got string, want integer"}},
		{"port out of range", "ports.admin=70000", []string{"/ports/admin", "maximum"}},
		{"unknown store backend", "store.backend=postgres", []string{"/store/backend", "value must be one of 'memory', 'redis'"}},
		{"misspelt value", "replicas=3", []string{"additional properties 'replicas' not allowed"}},
		{"redis without addresses", "store.backend=redis", []string{"/store/redis/addrs", "minItems"}},
		{"sentinel without master", "store.backend=redis,store.redis.addrs={s:26379},store.redis.mode=sentinel", []string{"/store/redis/masterName"}},
		{"unknown redis mode", "store.redis.mode=ring", []string{"/store/redis/mode"}},
		{"istio without workload", "istio.enabled=true", []string{"/istio/authorizationPolicy/namespace", "/istio/authorizationPolicy/selector/matchLabels"}},
		{"client CA without TLS", "grpcTLS.clientCA.enabled=true", []string{"/grpcTLS/secretName"}},
		{"caller not namespace/name", "config.sessionAPI.serviceAccounts={web}", []string{"/config/sessionAPI/serviceAccounts/0"}},
		{"unknown key algorithm", "keys.secret.algorithm=dsa", []string{"/keys/secret/algorithm"}},
		{"existing SA without name", "serviceAccount.create=false", []string{"/serviceAccount/name"}},
		{"oidc without client", "config.oidc.issuerURL=https://sso.example.com", []string{"/config/oidc", "missing property 'clientID'"}},
		{"oidc with an empty client", "config.oidc.issuerURL=https://sso.example.com,config.oidc.clientID=", []string{"/config/oidc/clientID"}},
		{"oidc issuer over http", "config.oidc.issuerURL=http://sso.example.com,config.oidc.clientID=a", []string{"/config/oidc/issuerURL"}},
		{"oidc scopes without openid", "config.oidc.issuerURL=https://sso.example.com,config.oidc.clientID=a,config.oidc.scopes={email}", []string{"/config/oidc/scopes"}},
		{"oidc misspelt field", "config.oidc.issuerUrl=https://sso.example.com", []string{"/config/oidc", "additional properties 'issuerUrl' not allowed"}},
		{"oidc duration without unit", "config.oidc.refreshLease=2", []string{"/config/oidc/refreshLease"}},
		{"oidc too many pending logins", "config.oidc.maxPendingLogins=11", []string{"/config/oidc/maxPendingLogins", "maximum"}},
		{"oidc client secret without oidc", "oidcClientSecret.name=sso", []string{"/config", "oidc"}},
		{"oidc CA without oidc", "oidcCASecret.name=sso-ca", []string{"/config", "oidc"}},
	} {
		_, stderr, err := helmRun(t, "template", "silentauth", "charts/silentauth", "--set", tc.set)
		if err == nil {
			t.Errorf("%s: --set %s rendered", tc.name, tc.set)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: error lacks %q:\n%s", tc.name, w, stderr)
			}
		}
	}
}

// TestTemplateGuards: what the templates refuse themselves, with the schema
// skipped or unable to see it.
func TestTemplateGuards(t *testing.T) {
	t.Parallel()
	for _, other := range [][]string{
		{"--set", "sessionAPITokenSecret.name=api-token"},
		{"--set", "extraEnv[0].name=SILENTAUTH_API_TOKEN,extraEnv[0].valueFrom.secretKeyRef.name=api-token,extraEnv[0].valueFrom.secretKeyRef.key=token"},
	} {
		if _, stderr, err := helmRun(t, append([]string{"template", "silentauth", "charts/silentauth"}, other...)...); err != nil {
			t.Errorf("%q: a session-API credential, yet refused: %s", other, stderr)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no session-API caller"},
		{[]string{"--set", "config.sessionAPI.serviceAccounts=null"}, "set config.sessionAPI.serviceAccounts to your login handlers' ServiceAccounts"},
		{[]string{"--skip-schema-validation", "--set", "replicaCount=2"}, "replicaCount 2 needs store.backend=redis"},
		{[]string{"--skip-schema-validation", "--set", "autoscaling.enabled=true"}, "autoscaling.enabled needs store.backend=redis"},
		{[]string{"--set", "config.listen.grpc.address=:1234"}, "config.listen.grpc.address is set by the chart; use the value ports.grpc instead"},
		{[]string{"--set", "config.keys.secret.name=other"}, "config.keys.secret is set by the chart"},
		{[]string{"--set", "config.store.backend=redis"}, "config.store.backend is set by the chart"},
		{[]string{"--set", "config.sessionAPI.tokenFile=/x"}, "use the value sessionAPITokenSecret instead"},
		{[]string{"--set", "config.oidc.clientSecretFile=/x"}, "config.oidc.clientSecretFile is set by the chart; use the value oidcClientSecret instead"},
		{[]string{"--set", "config.oidc.caFile=/x"}, "config.oidc.caFile is set by the chart; use the value oidcCASecret instead"},
	} {
		args := tc.args
		if !strings.Contains(tc.want, "session-API caller") && !strings.Contains(tc.want, "login handlers") {
			args = withCaller(args...)
		}
		_, stderr, err := helmRun(t, append([]string{"template", "silentauth", "charts/silentauth"}, args...)...)
		if err == nil || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: err %v, want an error containing %q:\n%s", tc.args, err, tc.want, stderr)
		}
	}
}

// TestIstioObjects: the extension provider to paste, the CUSTOM policy with
// the /auth paths, and the RequestAuthentication on silentauth's JWKS.
func TestIstioObjects(t *testing.T) {
	t.Parallel()
	m := render(t, "-f", "charts/silentauth/examples/istio-values.yaml", "--set", "config.policy.refreshPath=/session/refresh")

	cm := m.all("ConfigMap")
	i := slices.IndexFunc(cm, func(u *unstructured.Unstructured) bool { return u.GetName() == "silentauth-istio-mesh-config" })
	if i < 0 {
		t.Fatal("no ConfigMap silentauth-istio-mesh-config")
	}
	var mesh struct {
		ExtensionProviders []struct {
			Name              string `json:"name"`
			EnvoyExtAuthzGrpc struct {
				Service       string `json:"service"`
				Port          int    `json:"port"`
				Timeout       string `json:"timeout"`
				FailOpen      bool   `json:"failOpen"`
				StatusOnError string `json:"statusOnError"`
			} `json:"envoyExtAuthzGrpc"`
		} `json:"extensionProviders"`
	}
	if err := yaml.UnmarshalStrict([]byte(as[corev1.ConfigMap](t, cm[i]).Data["mesh.yaml"]), &mesh); err != nil {
		t.Fatalf("mesh.yaml: %v", err)
	}
	if len(mesh.ExtensionProviders) != 1 {
		t.Fatalf("extensionProviders = %+v", mesh.ExtensionProviders)
	}
	p := mesh.ExtensionProviders[0]
	if p.Name != "silentauth" || p.EnvoyExtAuthzGrpc.Service != "silentauth.silentauth.svc.cluster.local" || p.EnvoyExtAuthzGrpc.Port != 9001 ||
		p.EnvoyExtAuthzGrpc.Timeout != "0.5s" || p.EnvoyExtAuthzGrpc.FailOpen || p.EnvoyExtAuthzGrpc.StatusOnError != "503" {
		t.Errorf("extension provider = %+v", p)
	}

	ap := m.one(t, "AuthorizationPolicy")
	if ap.GetAPIVersion() != "security.istio.io/v1" || ap.GetNamespace() != "shop" {
		t.Errorf("AuthorizationPolicy %s in %s", ap.GetAPIVersion(), ap.GetNamespace())
	}
	action, _, _ := unstructured.NestedString(ap.Object, "spec", "action")
	provider, _, _ := unstructured.NestedString(ap.Object, "spec", "provider", "name")
	selector, _, _ := unstructured.NestedStringMap(ap.Object, "spec", "selector", "matchLabels")
	if action != "CUSTOM" || provider != "silentauth" || len(selector) != 1 || selector["app"] != "web" {
		t.Errorf("AuthorizationPolicy action %q provider %q selector %v", action, provider, selector)
	}
	rules, _, _ := unstructured.NestedSlice(ap.Object, "spec", "rules")
	paths, _, _ := unstructured.NestedStringSlice(rules[0].(map[string]any)["to"].([]any)[0].(map[string]any), "operation", "paths")
	if want := []string{"/*", "/session/refresh", "/auth/logout"}; !slices.Equal(paths, want) {
		t.Errorf("AuthorizationPolicy paths = %q, want %q", paths, want)
	}

	ra := m.one(t, "RequestAuthentication")
	jwt, _, _ := unstructured.NestedSlice(ra.Object, "spec", "jwtRules")
	rule := jwt[0].(map[string]any)
	if rule["jwksUri"] != "http://silentauth.silentauth.svc.cluster.local:9002/.well-known/jwks.json" || rule["forwardOriginalToken"] != true ||
		rule["issuer"] != "silentauth" || ra.GetNamespace() != "shop" {
		t.Errorf("RequestAuthentication in %s: jwtRules[0] = %v", ra.GetNamespace(), rule)
	}

	// Without istio.enabled, none of it.
	for _, kind := range []string{"AuthorizationPolicy", "RequestAuthentication"} {
		if n := len(render(t, caller...).all(kind)); n != 0 {
			t.Errorf("%d %s rendered without istio.enabled", n, kind)
		}
	}
}

// TestServiceMonitorNeedsCRD: rendered only when the cluster serves the
// ServiceMonitor API.
func TestServiceMonitorNeedsCRD(t *testing.T) {
	t.Parallel()
	const api = "monitoring.coreos.com/v1/ServiceMonitor"
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, 0},
		{[]string{"--api-versions", api}, 1},
		{[]string{"--api-versions", api, "--set", "serviceMonitor.enabled=false"}, 0},
	} {
		m := render(t, withCaller(tc.args...)...)
		if got := len(m.all("ServiceMonitor")); got != tc.want {
			t.Errorf("%q: %d ServiceMonitors, want %d", tc.args, got, tc.want)
		}
		for _, sm := range m.all("ServiceMonitor") {
			eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
			if ep := eps[0].(map[string]any); ep["port"] != "http-admin" || ep["path"] != "/metrics" {
				t.Errorf("ServiceMonitor endpoint = %v", ep)
			}
		}
	}
}

// installManifest is manifests/install/silentauth.yaml.
func installManifest(t testing.TB) string {
	return filepath.Join(repoRoot(t), "manifests", "install", "silentauth.yaml")
}

// renderInstallManifest renders manifests/install/silentauth.yaml: the
// chart's defaults, without the generated key (a private key must not be
// committed, and would differ on every render).
func renderInstallManifest(t testing.TB) string {
	const header = `# silentauth, the Helm chart charts/silentauth rendered with its default values
# (release silentauth, namespace silentauth), keys.secret.create=false (no
# private key in this file) and sessionAPITokenSecret.name=silentauth-session-api.
# Generated; do not edit. After changing the chart, regenerate it with:
#   go test ./test/deploy -run TestRenderedManifests -update
#
# Install:
#   kubectl create namespace silentauth
#   kubectl label namespace silentauth pod-security.kubernetes.io/enforce=restricted
#   kubectl -n silentauth create secret generic silentauth-session-api --from-literal=token="$(openssl rand -hex 32)"
#   kubectl apply -f manifests/install/silentauth.yaml
#   kubectl silentauth keys add -n silentauth     # the first signing key; the pod is unready until then
# Login handlers call the session API (port 9003) with that token; open the
# port to them with a NetworkPolicy rule (it admits nobody here). For
# ServiceAccount callers, Redis or Istio, render your own with helm template.
`
	out := helm(t, "template", "silentauth", "charts/silentauth", "--namespace", "silentauth",
		"--set", "keys.secret.create=false", "--set", "sessionAPITokenSecret.name=silentauth-session-api")
	return header + out
}

// TestRenderedManifests: manifests/install/silentauth.yaml is the chart as
// it is now. -update rewrites it.
func TestRenderedManifests(t *testing.T) {
	t.Parallel()
	want := renderInstallManifest(t)
	file := installManifest(t)
	if *update {
		if err := os.WriteFile(file, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", file)
		return
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v; generate it with: go test ./test/deploy -run TestRenderedManifests -update", err)
	}
	if string(got) != want {
		t.Fatalf("%s is out of date with charts/silentauth; regenerate it with:\n  go test ./test/deploy -run TestRenderedManifests -update", file)
	}
	m := decode(t, string(got))
	if n := len(m.all("Secret")); n != 0 {
		t.Errorf("the plain manifest holds %d Secrets; it must not carry a private key", n)
	}
	checkScope(t, m)
}

// TestSidecarManifest: in manifests/install/sidecar.yaml only silentauth's
// container holds a token the API server accepts; the app's is bound to the
// session API's audience.
func TestSidecarManifest(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "manifests", "install", "sidecar.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, string(data))
	sa := as[corev1.ServiceAccount](t, m.one(t, "ServiceAccount"))
	if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
		t.Error("ServiceAccount automountServiceAccountToken is not false")
	}
	checkKeysRole(t, as[rbacv1.Role](t, m.one(t, "Role")), "silentauth-keys")
	crb := as[rbacv1.ClusterRoleBinding](t, m.one(t, "ClusterRoleBinding"))
	if crb.RoleRef.Name != "system:auth-delegator" || len(crb.Subjects) != 1 || crb.Subjects[0].Name != sa.Name {
		t.Errorf("ClusterRoleBinding = %+v", crb)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(as[corev1.ConfigMap](t, m.one(t, "ConfigMap")).Data["config.yaml"]), &cfg); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"grpc", "public", "sessionAPI"} {
		if addr := str(cfg, "listen."+l+".address"); !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Errorf("listen.%s.address = %q, want loopback", l, addr)
		}
	}
	d := as[appsv1.Deployment](t, m.one(t, "Deployment"))
	pod := d.Spec.Template.Spec
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("pod automountServiceAccountToken is not false")
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("memory store: strategy %s, replicas %v; want Recreate, 1", d.Spec.Strategy.Type, d.Spec.Replicas)
	}
	// apiTokens: the volumes holding a token for the API server (no
	// audience: the API server's own).
	apiToken := func(v corev1.Volume) (api, bound bool) {
		if v.Projected == nil {
			return false, false
		}
		for _, s := range v.Projected.Sources {
			if s.ServiceAccountToken != nil {
				if s.ServiceAccountToken.Audience == "" {
					api = true
				} else if s.ServiceAccountToken.Audience == str(cfg, "sessionAPI.audience") {
					bound = true
				}
			}
		}
		return api, bound
	}
	names := map[string]bool{}
	for _, c := range pod.Containers {
		names[c.Name] = true
		checkRestrictedContainer(t, pod, c)
		var api, bound bool
		for _, vm := range c.VolumeMounts {
			for _, v := range pod.Volumes {
				if v.Name == vm.Name {
					a, b := apiToken(v)
					api, bound = api || a, bound || b
				}
			}
		}
		switch c.Name {
		case "silentauth":
			if !api || mountedFrom(pod, c, "/var/run/secrets/kubernetes.io/serviceaccount/token") == nil {
				t.Error("silentauth has no API token where client-go looks for it")
			}
		default:
			if api {
				t.Errorf("container %s can read the signing keys: it mounts an API-server token", c.Name)
			}
			if !bound {
				t.Errorf("container %s has no token for the session API's audience", c.Name)
			}
		}
	}
	if !names["silentauth"] || len(names) != 2 {
		t.Errorf("containers = %v, want the app and silentauth", names)
	}
}

// TestOIDC: provider login from values. The client secret comes from the
// named Secret, mounted read-only into the silentauth container alone and
// named in config.yaml as oidc.clientSecretFile, never from a value; the
// Istio policy sends the callback through Check; NOTES print the redirect
// URI to register.
func TestOIDC(t *testing.T) {
	t.Parallel()
	m := render(t, "-f", "charts/silentauth/examples/oidc-values.yaml", "--set", "oidcCASecret.name=sso-ca")
	cfg := renderedConfig(t, m)
	for dotted, want := range map[string]string{
		"oidc.issuerURL":        "https://sso.example.com/realms/main",
		"oidc.clientID":         "silentauth",
		"oidc.clientSecretFile": "/var/run/secrets/silentauth/oidc-client/client-secret",
		"oidc.caFile":           "/var/run/secrets/silentauth/oidc-ca/ca.crt",
	} {
		if got := str(cfg, dotted); got != want {
			t.Errorf("%s = %q, want %q", dotted, got, want)
		}
	}
	d := as[appsv1.Deployment](t, m.one(t, "Deployment"))
	pod := d.Spec.Template.Spec
	for file, secret := range map[string]string{str(cfg, "oidc.clientSecretFile"): "silentauth-oidc", str(cfg, "oidc.caFile"): "sso-ca"} {
		v := mountedFrom(pod, pod.Containers[0], file)
		if v == nil || v.Secret == nil || v.Secret.SecretName != secret {
			t.Errorf("%s: not mounted from Secret %s (volume %+v)", file, secret, v)
			continue
		}
		for _, vm := range pod.Containers[0].VolumeMounts {
			if vm.Name == v.Name && !vm.ReadOnly {
				t.Errorf("volume %s mounted writable", v.Name)
			}
		}
		if mode := v.Secret.DefaultMode; mode == nil || *mode&0o007 != 0 {
			t.Errorf("volume %s: mode %v readable by others", v.Name, mode)
		}
	}
	// The secret's value is nowhere in the release: only the Secret's name.
	for _, u := range m {
		if u.GetKind() == "Secret" && u.GetName() != keysSecret {
			t.Errorf("the chart renders Secret %s", u.GetName())
		}
	}

	// Without oidc values: no oidc section, no mount.
	plain := render(t, caller...)
	if v := field(renderedConfig(t, plain), "oidc"); v != nil {
		t.Errorf("oidc section without oidc values: %v", v)
	}
	for _, v := range as[appsv1.Deployment](t, plain.one(t, "Deployment")).Spec.Template.Spec.Volumes {
		if strings.HasPrefix(v.Name, "oidc") {
			t.Errorf("volume %s without oidc values", v.Name)
		}
	}

	// Istio: the callback path goes through Check even when paths are narrowed.
	istio := render(t, "-f", "charts/silentauth/examples/istio-values.yaml",
		"--set", "config.oidc.issuerURL=https://sso.example.com,config.oidc.clientID=silentauth,config.oidc.callbackPath=/sso/done",
		"--set", "istio.authorizationPolicy.paths={/app/*}")
	rules, _, _ := unstructured.NestedSlice(istio.one(t, "AuthorizationPolicy").Object, "spec", "rules")
	paths, _, _ := unstructured.NestedStringSlice(rules[0].(map[string]any)["to"].([]any)[0].(map[string]any), "operation", "paths")
	if want := []string{"/app/*", "/auth/refresh", "/auth/logout", "/sso/done"}; !slices.Equal(paths, want) {
		t.Errorf("AuthorizationPolicy paths = %q, want %q", paths, want)
	}

	// NOTES: the redirect URI to register, derived or as configured.
	for _, tc := range []struct {
		set, want string
	}{
		{"", "https://<host>/auth/callback"},
		{"config.oidc.callbackPath=/sso/done", "https://<host>/sso/done"},
		{"config.oidc.redirectURL=https://app.example.com/auth/callback", "https://app.example.com/auth/callback"},
	} {
		args := []string{"install", "silentauth", "charts/silentauth", "--dry-run=client", "-f", "charts/silentauth/examples/oidc-values.yaml"}
		if tc.set != "" {
			args = append(args, "--set", tc.set)
		}
		out := helm(t, args...)
		notes := out[strings.Index(out, "NOTES:"):]
		if !strings.Contains(notes, "Register this redirect URI") || !strings.Contains(notes, "     "+tc.want+"\n") {
			t.Errorf("--set %q: NOTES lack the redirect URI %s:\n%s", tc.set, tc.want, notes)
		}
	}
	if out := helm(t, "install", "silentauth", "charts/silentauth", "--dry-run=client", "--set", caller[1]); strings.Contains(out, "redirect URI") {
		t.Error("NOTES name a redirect URI without oidc")
	}
}
