package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/sessionapi"
	"github.com/silentauth/silentauth/internal/testenv/kubetest"
)

// The real plugin binary lists and revokes sessions of a real session API
// that checks callers with TokenReview against a real kube-apiserver. The
// operator's only right is to request tokens of the ServiceAccount the
// session API admits (create serviceaccounts/token on that one name).
func TestSessionsPluginAgainstAPIServer(t *testing.T) {
	env := kubetest.Shared(t)
	bin, err := pluginBinary()
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	ns := env.NewNamespace(t)
	admin, err := kubernetes.NewForConfig(env.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	env.ServiceAccountToken(t, ns, "ops") // creates the ServiceAccount the API admits
	operator := env.Kubeconfig(t, env.ServiceAccountConfig(t, ns, "operator"))
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "silentauth-sessions-operator"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, Verbs: []string{"create"}, ResourceNames: []string{"ops"}}},
	}
	if _, err := admin.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "operator"}},
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	reviewer, err := sessionapi.NewReviewer(env.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	r := newAPIRig(t, sessionapi.NewTokenReview(reviewer, defaultAPIAudience, []string{ns + "/ops"}, nil))
	r.now = time.Now() // the plugin tells live from expired by its own clock
	s1, err := r.sessions.StartLogin(ctx, session.Login{Subject: "alice", UserAgent: "Firefox/140.0", ClientAddress: "192.0.2.10"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.sessions.Start(ctx, "alice", "", nil); err != nil {
		t.Fatal(err)
	}

	home := t.TempDir()
	plugin := func(args ...string) (string, string, error) {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append(args, "--api", r.srv.URL, "--kubeconfig", operator, "-n", ns)...)
		cmd.Env = []string{"HOME=" + home}
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		t.Logf("$ kubectl silentauth %s\n%s%s", strings.Join(args, " "), o.String(), e.String())
		return o.String(), e.String(), err
	}

	// RBAC reaches the authorizer through an informer: retry until the
	// token request is allowed.
	var out string
	for deadline := time.Now().Add(30 * time.Second); ; {
		o, _, err := plugin("sessions", "list", "alice", "--as-service-account", ns+"/ops")
		if err == nil {
			out = o
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions list never succeeded: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(out, s1.Family.ID) || !strings.Contains(out, "Firefox/140.0") || strings.Count(out, "\n") != 3 || strings.Count(out, " live ") != 2 {
		t.Fatalf("list:\n%s", out)
	}
	// A token of another ServiceAccount cannot be requested ...
	if _, errOut, err := plugin("sessions", "list", "alice", "--as-service-account", ns+"/operator"); err == nil || !strings.Contains(errOut, "You need create on serviceaccounts/token") {
		t.Fatalf("token for operator: %v %s", err, errOut)
	}
	// ... and one for the API server's audience is refused by the API.
	if _, errOut, err := plugin("sessions", "list", "alice", "--as-service-account", ns+"/ops", "--audience", "https://kubernetes.default.svc"); err == nil || !strings.Contains(errOut, "401") {
		t.Fatalf("token for another audience: %v %s", err, errOut)
	}
	if out, _, err := plugin("sessions", "revoke", "alice", "--as-service-account", ns+"/ops", "--yes"); err != nil || !strings.Contains(out, `2 sessions of "alice" revoked`) {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	if f := r.stored(s1.Family.ID); f.RevokeReason != session.CauseAdmin {
		t.Fatalf("reason %q, want admin", f.RevokeReason)
	}
}
