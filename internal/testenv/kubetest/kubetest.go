// Package kubetest runs a real etcd and kube-apiserver on loopback for
// integration tests, so authentication, RBAC, TokenRequest, TokenReview and
// watches behave as in a cluster. No controllers run (no
// kube-controller-manager, scheduler or kubelet): objects are stored, served
// and watched, but nothing acts on them, and namespaces get no "default"
// ServiceAccount by themselves.
//
// The binaries come from `make tools` (scripts/tools.sh) and are looked up in
// $SILENTAUTH_TOOLS_DIR/bin, else .tools/bin at the module root. Without them
// a test is skipped, or fails when SILENTAUTH_REQUIRE_INTEGRATION=1 (CI).
//
// Start gives a test its own Env. Starting one takes a few seconds, so a
// package whose tests can share a cluster starts one for the whole test binary,
// on first use, and stops it after the last test:
//
//	func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }
//
//	func TestWatch(t *testing.T) {
//		env := kubetest.Shared(t)
//		...
//	}
//
// Tests that share an Env keep out of each other's way in namespaces of their
// own, from NewNamespace.
package kubetest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silentauth/silentauth/internal/testenv/toolsdir"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/silentauth/silentauth/internal/testenv/testproc"
)

// Issuer is the service-account token issuer, and so the audience of tokens
// requested without one.
const Issuer = "https://kubernetes.default.svc.cluster.local"

// readyTimeout bounds how long etcd and then kube-apiserver may take to
// become ready. Both are usually ready within seconds; the margin is for a
// loaded two-core machine running several test binaries at once.
const readyTimeout = 60 * time.Second

// Env is a running etcd and kube-apiserver pair on 127.0.0.1, listening on
// free ports, with its data in a temporary folder. Its methods are safe for
// concurrent use.
type Env struct {
	dir       string
	host      string // https://127.0.0.1:port
	caPEM     []byte
	admin     *rest.Config
	client    kubernetes.Interface
	etcd      *testproc.Process
	apiserver *testproc.Process
	startup   time.Duration // from key generation to a ready apiserver
}

// Start starts an Env for t and stops it, removing its data, when t ends.
// When the binaries are missing it skips t, or fails it when
// SILENTAUTH_REQUIRE_INTEGRATION=1.
func Start(t testing.TB) *Env {
	t.Helper()
	apiserverBin, etcdBin, err := binaries()
	if err != nil {
		skipOrFail(t, err)
	}
	dir := t.TempDir()
	e, err := launch(dir, apiserverBin, etcdBin)
	t.Cleanup(func() {
		if t.Failed() && err == nil {
			t.Log(e.logTails())
		}
		e.stop()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubetest: etcd and kube-apiserver ready at %s in %s", e.host, e.startup.Round(time.Millisecond))
	return e
}

// shared is the Env of Shared, started on first use and stopped by Main.
var shared struct {
	mu     sync.Mutex
	inMain bool
	tried  bool
	env    *Env
	err    error
}

// Main runs m's tests and then stops the Env that Shared started, if any.
// Call it from TestMain: os.Exit(kubetest.Main(m)).
func Main(m *testing.M) int {
	shared.mu.Lock()
	shared.inMain = true
	shared.mu.Unlock()

	code := m.Run()

	shared.mu.Lock()
	defer shared.mu.Unlock()
	if e := shared.env; e != nil {
		if code != 0 && shared.err == nil {
			fmt.Fprintln(os.Stderr, e.logTails())
		}
		e.stop()
		_ = os.RemoveAll(e.dir)
	}
	return code
}

// Shared returns the Env shared by the tests of this test binary, starting it
// on the first call. The package's TestMain must call Main, which stops it.
// Like Start, it skips t, or fails it, when the binaries are missing.
func Shared(t testing.TB) *Env {
	t.Helper()
	apiserverBin, etcdBin, err := binaries()
	if err != nil {
		skipOrFail(t, err)
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.inMain {
		t.Fatal("kubetest.Shared needs this package's TestMain to call kubetest.Main, which stops the shared Env")
	}
	if !shared.tried {
		shared.tried = true
		dir, err := os.MkdirTemp("", "kubetest-")
		if err != nil {
			shared.err = err
		} else {
			shared.env, shared.err = launch(dir, apiserverBin, etcdBin)
		}
		if shared.err == nil {
			t.Logf("kubetest: shared etcd and kube-apiserver ready at %s in %s", shared.env.host, shared.env.startup.Round(time.Millisecond))
		}
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.env
}

// skipOrFail ends t for want of something only the integration setup brings.
func skipOrFail(t testing.TB, err error) {
	t.Helper()
	toolsdir.Missing(t, "kubetest: %v", err)
}

// launch starts etcd, waits until it is healthy, then starts kube-apiserver
// and waits until its /readyz passes. Even on error it returns an Env whose
// stop ends whatever was started; the error then carries the servers' logs.
func launch(dir, apiserverBin, etcdBin string) (e *Env, err error) {
	began := time.Now()
	e = &Env{dir: dir}
	defer func() {
		if err != nil {
			err = fmt.Errorf("kubetest: %w\n%s", err, e.logTails())
		}
	}()
	keys, err := newPKI(dir)
	if err != nil {
		return e, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return e, err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	e.host = fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	e.caPEM = keys.caPEM

	e.etcd, err = startProcess("etcd", etcdBin, filepath.Join(dir, "etcd.log"),
		"--name=kubetest",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubetest="+peerURL,
		// The data dies with the test: skip the fsyncs that make each
		// write wait for the disk.
		"--unsafe-no-fsync",
		// A lone member still waits out most of an election timeout
		// (default 1s) before it leads and serves; ten times faster ticks
		// save ~0.6s of every start. Nothing can outvote a single member, so
		// a late heartbeat on a busy machine costs nothing.
		"--heartbeat-interval=10",
		"--election-timeout=100",
	)
	if err != nil {
		return e, err
	}
	if err := e.poll("etcd", func(ctx context.Context) error { return etcdHealthy(ctx, etcdURL) }); err != nil {
		return e, err
	}

	e.apiserver, err = startProcess("kube-apiserver", apiserverBin, filepath.Join(dir, "kube-apiserver.log"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", ports[2]),
		"--advertise-address=127.0.0.1",
		// The default (lease) reconciler publishes the advertise address
		// in the "kubernetes" Endpoints and exits at start on a loopback
		// one: "may not be in the loopback range".
		"--endpoint-reconciler-type=none",
		// Serving pair and client CA from one test CA: clients verify the
		// server, and the admin authenticates by client certificate.
		"--tls-cert-file="+keys.servingCertFile,
		"--tls-private-key-file="+keys.servingKeyFile,
		"--client-ca-file="+keys.caFile,
		// RBAC alone, as in a cluster, so what a test sees allowed or
		// forbidden is RBAC's answer (system:masters passes before it).
		"--authorization-mode=RBAC",
		// TokenRequest signs with this key and the authenticator checks
		// with it; ServiceAccount tokens need no controller-manager.
		"--service-account-issuer="+Issuer,
		"--service-account-key-file="+keys.saKeyFile,
		"--service-account-signing-key-file="+keys.saKeyFile,
		// Only a range to allocate Service IPs from, never routed; leaving
		// it out picks the same range with a deprecation warning.
		"--service-cluster-ip-range=10.0.0.0/24",
	)
	if err != nil {
		return e, err
	}
	e.admin = &rest.Config{
		Host: e.host,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   e.caPEM,
			CertData: keys.adminCertPEM,
			KeyData:  keys.adminKeyPEM,
		},
		QPS:       -1, // no client-side rate limit: tests, not a shared cluster
		UserAgent: "kubetest",
	}
	client, err := kubernetes.NewForConfig(e.admin)
	if err != nil {
		return e, err
	}
	e.client = client
	err = e.poll("kube-apiserver", func(ctx context.Context) error {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return fmt.Errorf("%w: %s", err, body)
		}
		return nil
	})
	if err != nil {
		return e, err
	}
	e.startup = time.Since(began)
	return e, nil
}

// poll calls ready, each try for at most 2 s, until it succeeds, a server
// exits, or readyTimeout passes.
func (e *Env) poll(what string, ready func(context.Context) error) error {
	return testproc.Poll(context.Background(), readyTimeout, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}, e.etcd, e.apiserver)
}

func etcdHealthy(ctx context.Context, etcdURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, etcdURL+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"health":"true"`) {
		return fmt.Errorf("etcd /health: %s: %s", resp.Status, body)
	}
	return nil
}

// stop kills the servers, apiserver first so it does not log etcd's
// absence. The data they leave is thrown away with the temporary folder, so
// there is nothing a graceful stop would save.
func (e *Env) stop() {
	for _, p := range []*testproc.Process{e.apiserver, e.etcd} {
		if p != nil {
			p.Kill()
		}
	}
}

// logTails returns the end of each server's log, for a failure message.
func (e *Env) logTails() string {
	var b strings.Builder
	for _, p := range []*testproc.Process{e.etcd, e.apiserver} {
		if p != nil {
			fmt.Fprintf(&b, "--- last lines of %s ---\n%s\n", p.LogPath(), p.Tail(30))
		}
	}
	return b.String()
}

// Host is the apiserver's URL, https://127.0.0.1:port.
func (e *Env) Host() string { return e.host }

// CAData is the PEM certificate that signed the apiserver's serving
// certificate.
func (e *Env) CAData() []byte { return append([]byte(nil), e.caPEM...) }

// AdminConfig is a new rest.Config for a cluster administrator: a client
// certificate in the system:masters group, which no RBAC rule can deny.
func (e *Env) AdminConfig() *rest.Config { return rest.CopyConfig(e.admin) }

// AdminKubeconfig writes a kubeconfig for AdminConfig's identity into a
// temporary folder of t and returns its path, for kubectl or clientcmd.
func (e *Env) AdminKubeconfig(t testing.TB) string {
	t.Helper()
	return e.Kubeconfig(t, e.admin)
}

// Kubeconfig writes a kubeconfig for cfg's server and credentials (client
// certificate, or bearer token) into a temporary folder of t and returns its
// path.
func (e *Env) Kubeconfig(t testing.TB, cfg *rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["kubetest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["kubetest"] = &clientcmdapi.AuthInfo{
		ClientCertificateData: cfg.CertData,
		ClientKeyData:         cfg.KeyData,
		Token:                 cfg.BearerToken,
	}
	kc.Contexts["kubetest"] = &clientcmdapi.Context{Cluster: "kubetest", AuthInfo: "kubetest"}
	kc.CurrentContext = "kubetest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatalf("kubetest: write kubeconfig: %v", err)
	}
	return path
}

// NewNamespace creates a namespace with a fresh name derived from t's name and
// returns the name, so tests sharing an Env, or run again with -count, never
// meet. Nothing deletes it: without kube-controller-manager a deleted
// namespace stays Terminating, and the Env's data goes when the Env stops.
func (e *Env) NewNamespace(t testing.TB) string {
	t.Helper()
	prefix := strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9':
			return r
		case 'A' <= r && r <= 'Z':
			return r + ('a' - 'A')
		}
		return '-'
	}, t.Name())
	prefix = strings.Trim(prefix[:min(len(prefix), 40)], "-")
	if prefix == "" {
		prefix = "test"
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns, err := e.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: create namespace: %v", err)
	}
	return ns.Name
}

// ServiceAccountConfig returns a rest.Config that authenticates only with a
// bearer token of the ServiceAccount namespace/name (see ServiceAccountToken).
// It holds no client certificate: the apiserver tries certificates before
// tokens, so one beside the token would decide who the caller is.
func (e *Env) ServiceAccountConfig(t testing.TB, namespace, name string, audiences ...string) *rest.Config {
	t.Helper()
	return &rest.Config{
		Host:            e.host,
		TLSClientConfig: rest.TLSClientConfig{CAData: e.CAData()},
		BearerToken:     e.ServiceAccountToken(t, namespace, name, audiences...),
		QPS:             -1,
		UserAgent:       "kubetest",
	}
}

// ServiceAccountToken returns a token for the ServiceAccount namespace/name,
// valid for an hour, from the TokenRequest API, creating the namespace and the
// ServiceAccount if they are missing. Without audiences the token is for the
// apiserver itself (Issuer).
func (e *Env) ServiceAccountToken(t testing.TB, namespace, name string, audiences ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if _, err := e.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("kubetest: create namespace %s: %v", namespace, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if _, err := e.client.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("kubetest: create serviceaccount %s/%s: %v", namespace, name, err)
	}
	expiry := int64(time.Hour / time.Second)
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         audiences,
		ExpirationSeconds: &expiry,
	}}
	tr, err := e.client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, tr, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("kubetest: token for serviceaccount %s/%s: %v", namespace, name, err)
	}
	if tr.Status.Token == "" {
		t.Fatal("kubetest: TokenRequest returned no token")
	}
	return tr.Status.Token
}
