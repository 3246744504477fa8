package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/internal/testenv/kubetest"
)

func TestMain(m *testing.M) {
	code := kubetest.Main(m)
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binDir holds the plugin binary pluginBinary built, if any.
var binDir string

// pluginBinary builds the real plugin once per test binary, only for the
// tests that run it (and only once the cluster they need is there).
var pluginBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "kubectl-silentauth-")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "kubectl-silentauth")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// The real plugin binary, run as an operator whose only rights are on the
// keys Secret of one namespace, through a full key lifecycle against a
// real kube-apiserver; kubectl shows the result.
func TestPluginAgainstAPIServer(t *testing.T) {
	env := kubetest.Shared(t)
	bin, err := pluginBinary()
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const ns = "plugin-e2e"
	admin, err := kubernetes.NewForConfig(env.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}

	// The operator: get and update on the one Secret, create (which RBAC
	// cannot narrow to a name) on Secrets of the namespace. Nothing else.
	operator := env.Kubeconfig(t, env.ServiceAccountConfig(t, ns, "operator"))
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "silentauth-keys-operator"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "update"}, ResourceNames: []string{defaultSecret}},
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create"}},
		},
	}
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "silentauth-keys-operator"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "operator"}},
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	home := t.TempDir() // no ~/.kube/config of the machine running the tests
	plugin := func(kubeconfigEnv string, args ...string) (stdout, stderr string, err error) {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = []string{"HOME=" + home, "KUBECONFIG=" + kubeconfigEnv}
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err = cmd.Run()
		t.Logf("$ kubectl silentauth %s\n%s%s", strings.Join(args, " "), o.String(), e.String())
		return o.String(), e.String(), err
	}
	ok := func(args ...string) string {
		t.Helper()
		out, errOut, err := plugin("", append(args, "--kubeconfig", operator, "-n", ns)...)
		if err != nil {
			t.Fatalf("kubectl silentauth %s: %v\n%s", strings.Join(args, " "), err, errOut)
		}
		return out
	}
	refused := func(want string, args ...string) {
		t.Helper()
		_, errOut, err := plugin("", append(args, "--kubeconfig", operator, "-n", ns)...)
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(errOut, want) || !strings.HasPrefix(errOut, "error: ") {
			t.Fatalf("kubectl silentauth %s: %v, stderr %q; want exit status 1 and %q", strings.Join(args, " "), err, errOut, want)
		}
	}
	// Whatever the plugin writes, the server accepts now.
	serverAccepts := func() []keys.Entry {
		t.Helper()
		s, err := admin.CoreV1().Secrets(ns).Get(ctx, defaultSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		es, err := keys.ParseSecret(s.Data, s.Annotations)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := keys.NewSecretKeyring(es, defaultLifecycle, time.Now()); err != nil {
			t.Fatalf("the server would refuse the Secret: %v", err)
		}
		return es
	}

	// RBAC reaches the authorizer through an informer: wait until the
	// operator's list is refused for want of the Secret, not of rights.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, errOut, _ := plugin("", "keys", "list", "--kubeconfig", operator, "-n", ns)
		if strings.Contains(errOut, "not found; create the first key with") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the operator's Role never took effect: %s", errOut)
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}

	// A fresh install.
	if out := ok("keys", "add", "--name", "k1"); !strings.Contains(out, "active at once") || !strings.Contains(out, "created") {
		t.Errorf("add:\n%s", out)
	}
	serverAccepts()
	// KUBECONFIG and the flags before the command work the same.
	if out, errOut, err := plugin(operator, "-n", ns, "keys", "list"); err != nil || !strings.Contains(out, "k1 ") || !strings.Contains(out, " active ") {
		t.Fatalf("list through $KUBECONFIG: %v\n%s%s", err, out, errOut)
	}

	// Rotation: the new key is next, the old one retires when it activates.
	ok("keys", "rotate", "--name", "k2")
	var listed struct {
		Keys []keyView `json:"keys"`
	}
	if err := json.Unmarshal([]byte(ok("keys", "list", "-o", "json")), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed.Keys) != 2 || listed.Keys[0].Name != "k1" || !listed.Keys[0].Signing || listed.Keys[1].State != "next" ||
		listed.Keys[0].RetireAt == nil || listed.Keys[1].ActivateAt == nil || !listed.Keys[0].RetireAt.Equal(*listed.Keys[1].ActivateAt) {
		t.Fatalf("after rotate: %+v", listed.Keys)
	}
	serverAccepts()

	// Nothing may leave the cluster without a signer.
	refused("no key would sign", "keys", "retire", "k1")
	refused("kubectl silentauth keys retire k1 --cancel", "keys", "revoke", "k2", "--yes")

	// Abort the rotation instead: keep k1, drop k2.
	ok("keys", "retire", "k1", "--cancel")
	refused("run again with --yes", "keys", "revoke", "k2")
	ok("keys", "revoke", "k2", "--yes")
	serverAccepts()

	// An emergency: k1 leaked. k3 signs at once (forced), k1 retires and
	// is revoked.
	ok("keys", "add", "--name", "k3", "--alg", "EdDSA", "--activate-in", "0s", "--force")
	ok("keys", "retire", "k1")
	refused("may still verify refresh tokens until", "keys", "revoke", "k1", "--yes")
	ok("keys", "revoke", "k1", "--force", "--yes")
	es := serverAccepts()
	if len(es) != 1 || es[0].Name != "k3" || es[0].Key.Alg != keys.EdDSA {
		t.Errorf("left in the Secret: %+v", es)
	}
	refused("k3 is the only usable key", "keys", "revoke", "k3", "--yes")
	if out := ok("keys", "list"); !strings.Contains(out, "k3 ") || strings.Contains(out, "k1 ") {
		t.Errorf("final list:\n%s", out)
	}

	// The operator cannot reach anything else.
	refused("forbidden", "keys", "list", "--secret", "other")

	// kubectl shows the Secret as the plugin left it: one data entry, its
	// annotations, and no key material printed by anyone but kubectl.
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Logf("kubectl not found, skipping its view: %v", err)
		return
	}
	cmd := exec.CommandContext(ctx, kubectl, "--kubeconfig", operator, "-n", ns, "get", "secret", defaultSecret,
		"-o", `go-template={{range $k, $v := .data}}data {{$k}}{{"\n"}}{{end}}{{range $k, $v := .metadata.annotations}}{{$k}}={{$v}}{{"\n"}}{{end}}`)
	out, err := cmd.CombinedOutput()
	t.Logf("$ kubectl get secret %s -n %s (data keys and annotations)\n%s", defaultSecret, ns, out)
	if err != nil || !strings.Contains(string(out), "data k3.pem\n") || !strings.Contains(string(out), "keys.silentauth.dev/k3.activate-at=") ||
		strings.Contains(string(out), "k1") || strings.Contains(string(out), "k2") {
		t.Errorf("kubectl get secret: %v\n%s", err, out)
	}
}
