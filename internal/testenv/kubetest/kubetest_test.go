package kubetest

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/silentauth/silentauth/internal/testenv/toolsdir"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/silentauth/silentauth/internal/testenv/testproc"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// A ServiceAccount whose Role names one Secret reaches that Secret, by get
// and by list or watch narrowed to its name, and nothing else: the shape of
// silentauth's single-Secret keyring watcher.
func TestRoleWithResourceNames(t *testing.T) {
	t.Parallel()
	env := Shared(t)
	ctx := t.Context()
	ns := env.NewNamespace(t)
	admin := clientFor(t, env.AdminConfig())
	for _, name := range []string{"wanted", "other"} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: map[string]string{"k": name}}
		if _, err := admin.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	bindRole(t, admin, ns, "reader", rbacv1.PolicyRule{
		APIGroups: []string{""}, Resources: []string{"secrets"},
		Verbs: []string{"get", "list", "watch"}, ResourceNames: []string{"wanted"},
	})
	secrets := clientFor(t, env.ServiceAccountConfig(t, ns, "reader")).CoreV1().Secrets(ns)
	// RBAC answers from an informer cache: the binding takes effect shortly
	// after it is created.
	waitFor(t, func() error { _, err := secrets.Get(ctx, "wanted", metav1.GetOptions{}); return err })

	do := func(verb, name, selector string) error {
		switch verb {
		case "get":
			_, err := secrets.Get(ctx, name, metav1.GetOptions{})
			return err
		case "list":
			list, err := secrets.List(ctx, metav1.ListOptions{FieldSelector: selector})
			if err == nil && (len(list.Items) != 1 || list.Items[0].Name != "wanted") {
				return errors.New("list did not return exactly the wanted Secret")
			}
			return err
		default:
			w, err := secrets.Watch(ctx, metav1.ListOptions{FieldSelector: selector})
			if err == nil {
				w.Stop()
			}
			return err
		}
	}
	for _, tc := range []struct {
		verb, name, selector string
		allowed              bool
	}{
		{"get", "wanted", "", true},
		{"get", "other", "", false},
		{"list", "", "metadata.name=wanted", true},
		{"list", "", "metadata.name=other", false},
		{"list", "", "", false},
		{"watch", "", "metadata.name=wanted", true},
		{"watch", "", "metadata.name=other", false},
		{"watch", "", "", false},
	} {
		err := do(tc.verb, tc.name, tc.selector)
		switch {
		case tc.allowed && err != nil:
			t.Errorf("%s %q %q: %v, want allowed", tc.verb, tc.name, tc.selector, err)
		case !tc.allowed && !apierrors.IsForbidden(err):
			t.Errorf("%s %q %q: %v, want 403 Forbidden", tc.verb, tc.name, tc.selector, err)
		}
	}

	// The narrowed watch delivers changes, through etcd's watch.
	list, err := secrets.List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=wanted"})
	if err != nil {
		t.Fatal(err)
	}
	w, err := secrets.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=wanted", ResourceVersion: list.ResourceVersion})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	changed := list.Items[0].DeepCopy()
	changed.StringData = map[string]string{"k": "rotated"}
	if _, err := admin.CoreV1().Secrets(ns).Update(ctx, changed, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ResultChan():
		s, ok := ev.Object.(*corev1.Secret)
		if ev.Type != watch.Modified || !ok || string(s.Data["k"]) != "rotated" {
			t.Fatalf("watch event %s %T, want Modified Secret with k=rotated", ev.Type, ev.Object)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no watch event 30s after the update")
	}
}

// A TokenReview made by a ServiceAccount bound to system:auth-delegator
// authenticates a token for the audience it names and no other.
func TestTokenReview(t *testing.T) {
	t.Parallel()
	env := Shared(t)
	ctx := t.Context()
	ns := env.NewNamespace(t)
	admin := clientFor(t, env.AdminConfig())
	reviewer := clientFor(t, env.ServiceAccountConfig(t, ns, "reviewer"))
	bystander := clientFor(t, env.ServiceAccountConfig(t, ns, "bystander"))
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-reviewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "reviewer"}},
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	right := env.ServiceAccountToken(t, ns, "subject", "silentauth")
	wrong := env.ServiceAccountToken(t, ns, "subject", "elsewhere")
	review := func(c kubernetes.Interface, token string) (*authenticationv1.TokenReview, error) {
		tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: []string{"silentauth"}}}
		return c.AuthenticationV1().TokenReviews().Create(ctx, tr, metav1.CreateOptions{})
	}
	waitFor(t, func() error { _, err := review(reviewer, right); return err })

	for _, tc := range []struct {
		name          string
		client        kubernetes.Interface
		token         string
		authenticated bool
	}{
		{"right audience", reviewer, right, true},
		{"wrong audience", reviewer, wrong, false},
		{"not a token", reviewer, "not-a-token", false},
	} {
		got, err := review(tc.client, tc.token)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got.Status.Authenticated != tc.authenticated {
			t.Errorf("%s: authenticated=%v (error %q), want %v", tc.name, got.Status.Authenticated, got.Status.Error, tc.authenticated)
		}
		if tc.authenticated && (got.Status.User.Username != "system:serviceaccount:"+ns+":subject" || !slices.Equal(got.Status.Audiences, []string{"silentauth"})) {
			t.Errorf("%s: user %q audiences %q", tc.name, got.Status.User.Username, got.Status.Audiences)
		}
	}
	if _, err := review(bystander, right); !apierrors.IsForbidden(err) {
		t.Errorf("review without system:auth-delegator: %v, want 403 Forbidden", err)
	}
}

// kubectl, the tool operators use, works with the admin kubeconfig and with a
// ServiceAccount's token.
func TestKubectl(t *testing.T) {
	t.Parallel()
	kubectl := toolsdir.Need(t, "kubectl")
	env := Shared(t)
	ns := env.NewNamespace(t)
	adminKubeconfig := env.AdminKubeconfig(t)
	run := func(kubeconfig string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := run(adminKubeconfig, "get", "ns", "-o", "name"); err != nil || !strings.Contains(out, "namespace/default") {
		t.Fatalf("kubectl get ns: %v\n%s", err, out)
	}

	admin := clientFor(t, env.AdminConfig())
	bindRole(t, admin, ns, "operator", rbacv1.PolicyRule{
		APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: []string{"keys"},
	})
	saKubeconfig := env.Kubeconfig(t, env.ServiceAccountConfig(t, ns, "operator"))
	if out, err := run(saKubeconfig, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"); err != nil || out != "system:serviceaccount:"+ns+":operator" {
		t.Errorf("kubectl auth whoami: %v: %s", err, out)
	}
	waitFor(t, func() error {
		if out, err := run(saKubeconfig, "auth", "can-i", "get", "secret/keys", "-n", ns); out != "yes" {
			return errors.New(out + ": " + errString(err))
		}
		return nil
	})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "secret/keys"}, "yes"},
		{[]string{"get", "secret/other"}, "no"},
		{[]string{"list", "secrets"}, "no"},
		{[]string{"delete", "secret/keys"}, "no"},
	} {
		// can-i answers "no" with exit status 1; the printed answer is the result.
		out, _ := run(saKubeconfig, append(append([]string{"auth", "can-i"}, tc.args...), "-n", ns)...)
		if out != tc.want {
			t.Errorf("kubectl auth can-i %s: %q, want %q", strings.Join(tc.args, " "), out, tc.want)
		}
	}
}

// AdminKubeconfig loads through clientcmd as client-go programs load it.
func TestAdminKubeconfigLoads(t *testing.T) {
	t.Parallel()
	env := Shared(t)
	cfg, err := clientcmd.BuildConfigFromFlags("", env.AdminKubeconfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clientFor(t, cfg).CoreV1().Namespaces().Get(t.Context(), "kube-system", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
}

// Start's Env is gone, processes and data, when its test ends.
func TestStartCleansUp(t *testing.T) {
	var env *Env
	t.Run("env", func(t *testing.T) {
		env = Start(t)
		if _, err := clientFor(t, env.AdminConfig()).Discovery().ServerVersion(); err != nil {
			t.Fatal(err)
		}
	})
	if env == nil {
		return // the subtest skipped or failed, and said why
	}
	for _, p := range []*testproc.Process{env.etcd, env.apiserver} {
		select {
		case <-p.Exited():
		default:
			t.Errorf("%s still running after its test ended", p.Name())
		}
	}
	if _, err := os.Stat(env.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("data folder %s: %v, want removed", env.dir, err)
	}
}

// Without the binaries the message tells the way to get them.
func TestMissingBinariesSayMakeTools(t *testing.T) {
	t.Setenv("SILENTAUTH_TOOLS_DIR", t.TempDir())
	_, _, err := binaries()
	if err == nil || !strings.Contains(err.Error(), "make tools") {
		t.Fatalf("binaries() = %v, want an error naming `make tools`", err)
	}
}

func clientFor(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// bindRole grants the ServiceAccount ns/sa the rule through a Role and a
// RoleBinding of the same name.
func bindRole(t *testing.T, c kubernetes.Interface, ns, sa string, rule rbacv1.PolicyRule) {
	t.Helper()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: sa}, Rules: []rbacv1.PolicyRule{rule}}
	if _, err := c.RbacV1().Roles(ns).Create(t.Context(), role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: sa},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: sa},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}},
	}
	if _, err := c.RbacV1().RoleBindings(ns).Create(t.Context(), rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls f until it succeeds, for what the apiserver applies
// asynchronously (RBAC changes reach the authorizer through an informer).
func waitFor(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after 30s: %v", err)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}
