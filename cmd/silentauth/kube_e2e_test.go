package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/silentauth/silentauth/internal/testenv/kubetest"
)

// plugin builds kubectl-silentauth once per test and returns a runner
// acting with kubeconfig.
func plugin(t *testing.T, kubeconfig, ns string) func(args ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kubectl-silentauth")
	if out, err := exec.Command("go", "build", "-o", bin, "../kubectl-silentauth").CombinedOutput(); err != nil {
		t.Fatalf("building the plugin: %v\n%s", err, out)
	}
	return func(args ...string) string {
		t.Helper()
		args = append(args, "--kubeconfig", kubeconfig, "-n", ns, "--secret", "silentauth-keys")
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl silentauth %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
}

// grantKeyReader gives ServiceAccount ns/silentauth what the Helm chart
// gives it: get/list/watch on the one key Secret, and TokenReview.
func grantKeyReader(t *testing.T, c kubernetes.Interface, ns string) {
	t.Helper()
	ctx := context.Background()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "silentauth"}}, metav1.CreateOptions{}))
	must(c.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "silentauth-keys"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"silentauth-keys"}, Verbs: []string{"get", "list", "watch"}}},
	}, metav1.CreateOptions{}))
	subject := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "silentauth", Namespace: ns}}
	must(c.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "silentauth-keys"}, Subjects: subject,
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "silentauth-keys"},
	}, metav1.CreateOptions{}))
	must(c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "silentauth-auth-delegator-" + ns}, Subjects: subject,
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
	}, metav1.CreateOptions{}))
}

// kidOf returns the kid in a JWT's header.
func kidOf(t *testing.T, jwt string) string {
	head, _, _ := strings.Cut(jwt, ".")
	b, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		t.Fatalf("token header: %v", err)
	}
	var h struct{ Kid string }
	json.Unmarshal(b, &h)
	return h.Kid
}

// browser is one user's cookie jar, updated from every response like a
// browser's.
type browser struct {
	mu      sync.Mutex
	at, rt  string
	lastKid string
}

func TestKeyRotationUnderLoad(t *testing.T) {
	env := kubetest.Start(t)
	ns := env.NewNamespace(t)
	admin := kubernetes.NewForConfigOrDie(env.AdminConfig())
	grantKeyReader(t, admin, ns)
	kp := plugin(t, env.AdminKubeconfig(t), ns)
	kp("keys", "add", "--name", "k1")

	p := startOnKeySecret(t, env, ns, 30*24*time.Hour) // the default idle TTL, the plugin's too
	client := p.authz(t)

	// Sessions are started by the app with its projected ServiceAccount
	// token (TokenReview); another ServiceAccount is refused.
	appToken := env.ServiceAccountToken(t, ns, "app", "silentauth")
	if code, _ := p.createSession(t, env.ServiceAccountToken(t, ns, "intruder", "silentauth"), `{"subject":"x"}`); code != 401 {
		t.Fatalf("a ServiceAccount not in the allow-list got %d", code)
	}
	const users = 10
	bs := make([]*browser, users)
	for i := range bs {
		code, s := p.createSession(t, appToken, fmt.Sprintf(`{"subject":"user-%d"}`, i))
		if code != 201 {
			t.Fatalf("session via TokenReview: %d %s", code, s.Message)
		}
		bs[i] = &browser{at: s.AccessToken, rt: s.RefreshToken, lastKid: kidOf(t, s.AccessToken)}
	}
	k1 := kidOf(t, bs[0].at)

	// Continuous traffic, every user's jar updated from each answer.
	tr := startTraffic(t, client, bs)
	defer tr.halt()
	signingKid := tr.signingKids
	jwks := func() string { _, body := get(t, "http://"+p.addrs["public"]+"/.well-known/jwks.json"); return body }

	// Rotate with a 3 s lead: the new key is published first, signs from
	// its activate-at, and the old one verifies until its tokens expire.
	kp("keys", "rotate", "--name", "k2", "--lead", "3s", "--force")
	var k2 string
	waitFor(t, 10*time.Second, "k2 published in the JWKS before it signs", func() bool {
		return strings.Count(jwks(), `"kid"`) == 2
	})
	if kids := signingKid(); !kids[k1] || len(kids) != 1 {
		t.Fatalf("a key signed before its activate-at: %v", kids)
	}
	waitFor(t, 40*time.Second, "tokens signed by k2", func() bool {
		kids := signingKid()
		for kid := range kids {
			if kid != k1 && kid != "" {
				k2 = kid
			}
		}
		return len(kids) == 1 && k2 != ""
	})
	waitFor(t, 40*time.Second, "k1 gone from the JWKS after its tokens expired", func() bool {
		return !strings.Contains(jwks(), k1)
	})

	// Emergency: rotate again and revoke k2 at once (--force: it may
	// still verify refresh tokens). Access tokens it signed stop verifying
	// and are re-minted through the refresh path; every browser has
	// refreshed under k3 by then, so nobody is logged out (a session
	// still on k2 would be).
	kp("keys", "rotate", "--name", "k3", "--lead", "1s", "--force")
	waitFor(t, 20*time.Second, "tokens signed by k3", func() bool {
		kids := signingKid()
		return len(kids) == 1 && !kids[k2] && !kids[k1]
	})
	kp("keys", "revoke", "k2", "--force", "--yes")
	waitFor(t, 20*time.Second, "k2 gone from the JWKS", func() bool { return !strings.Contains(jwks(), k2) })
	before := tr.refreshes.Load()
	waitFor(t, 20*time.Second, "more traffic after the revoke", func() bool { return tr.refreshes.Load() > before+users })
	tr.stopAndCheck(t, "rotation under load")
}

// traffic is users browsing: each browser sends Checks with its cookies and
// updates its jar from every answer, like a browser, until halt.
type traffic struct {
	bs                                 []*browser
	checks, failed, logouts, refreshes atomic.Int64
	halt                               func() // stops the traffic and waits for it; safe to call again
}

func startTraffic(t *testing.T, client authv3.AuthorizationClient, bs []*browser) *traffic {
	tr := &traffic{bs: bs}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	tr.halt = sync.OnceFunc(func() { close(stop); wg.Wait() })
	for _, b := range bs {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				b.mu.Lock()
				cookie := "__Host-sa-at=" + b.at + "; __Host-sa-rt=" + b.rt
				b.mu.Unlock()
				resp, err := client.Check(context.Background(), envoyRequest("GET", "/api", "cookie", cookie))
				tr.checks.Add(1)
				if err != nil || resp.GetOkResponse() == nil {
					tr.failed.Add(1)
					t.Logf("failed check: %v %v", err, resp.GetDeniedResponse().GetBody())
				}
				set := setCookies(resp)
				b.mu.Lock()
				if at, _ := cookieOf(set, "__Host-sa-at"); at != "" {
					b.at = at
					tr.refreshes.Add(1)
				}
				if rt, attrs := cookieOf(set, "__Host-sa-rt"); rt != "" {
					b.rt = rt
				} else if strings.Contains(attrs, "Max-Age=0") {
					tr.logouts.Add(1)
				}
				b.lastKid = kidOf(t, strings.TrimPrefix(upstream(resp)["authorization"], "Bearer "))
				b.mu.Unlock()
				time.Sleep(20 * time.Millisecond) // pacing of a user, not a wait for a condition
			}
		})
	}
	return tr
}

// signingKids returns the kids of the access tokens the browsers last sent
// upstream.
func (tr *traffic) signingKids() map[string]bool {
	out := map[string]bool{}
	for _, b := range tr.bs {
		b.mu.Lock()
		out[b.lastKid] = true
		b.mu.Unlock()
	}
	return out
}

// stopAndCheck halts the traffic and fails the test if any Check failed or
// logged anyone out.
func (tr *traffic) stopAndCheck(t *testing.T, what string) {
	t.Helper()
	tr.halt()
	t.Logf("%s: %d checks, %d refreshes, %d failed, %d forced logouts", what, tr.checks.Load(), tr.refreshes.Load(), tr.failed.Load(), tr.logouts.Load())
	if tr.failed.Load() != 0 || tr.logouts.Load() != 0 {
		t.Fatalf("%d failed checks, %d forced logouts; want none", tr.failed.Load(), tr.logouts.Load())
	}
}

// startOnKeySecret runs the service on the keys Secret of namespace ns
// (10 s access tokens, sessions idle for at most idleTTL, started by the
// ServiceAccount ns/app) and waits until its first keyring is loaded.
func startOnKeySecret(t *testing.T, env *kubetest.Env, ns string, idleTTL time.Duration) *proc {
	t.Helper()
	cfg := writeConfig(t, fmt.Sprintf(`
keys:
  secret: {name: silentauth-keys, namespace: %s}
  kubeconfig: %s
tokens: {accessTTL: 10s, leeway: 1s, refreshBefore: 2s}
sessions: {grace: 3s, idleTTL: %s}
sessionAPI:
  serviceAccounts: [%s/app]
shutdown: {drain: 0s, timeout: 5s}
`, ns, env.Kubeconfig(t, env.ServiceAccountConfig(t, ns, "silentauth")), idleTTL, ns))
	p := start(t, []string{"--config", cfg})
	p.waitReady(t)
	return p
}
