package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/silentauth/silentauth/authz/keys"
)

const ns = "auth"

var secretsGVR = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}

// harness runs the plugin against a fake clientset with a settable clock.
type harness struct {
	t      *testing.T
	client *fake.Clientset
	now    time.Time
	opts   []kubeOptions // what each command connected with
	out    strings.Builder
}

func newHarness(t *testing.T, objs ...runtime.Object) *harness {
	return &harness{t: t, client: fake.NewClientset(objs...), now: t0}
}

// run runs one command line and returns its stdout and stderr together.
func (h *harness) run(line string) (string, error) {
	var stdout, stderr bytes.Buffer
	c := &cli{
		stdout: &stdout, stderr: &stderr,
		now:      func() time.Time { return h.now },
		generate: keys.Generate,
		connect: func(o kubeOptions) (secretClient, string, error) {
			h.opts = append(h.opts, o)
			if o.Namespace == "" {
				return h.client.CoreV1().Secrets(ns), ns, nil // the context's namespace
			}
			return h.client.CoreV1().Secrets(o.Namespace), o.Namespace, nil
		},
	}
	err := c.run(h.t.Context(), strings.Fields(line))
	out := stdout.String() + stderr.String()
	h.out.WriteString(out)
	return out, err
}

func (h *harness) mustRun(line string) string {
	h.t.Helper()
	out, err := h.run(line)
	if err != nil {
		h.t.Fatalf("%s: %v\n%s", line, err, out)
	}
	return out
}

func (h *harness) refused(line, want string) string {
	h.t.Helper()
	before := h.writes()
	out, err := h.run(line)
	if err == nil || !strings.Contains(err.Error(), want) {
		h.t.Fatalf("%s: %v, want an error containing %q\n%s", line, err, want, out)
	}
	if h.writes() != before {
		h.t.Fatalf("%s: refused, yet the Secret was written", line)
	}
	return out
}

func (h *harness) secret() *corev1.Secret {
	h.t.Helper()
	s, err := h.client.Tracker().Get(secretsGVR, ns, defaultSecret)
	if err != nil {
		h.t.Fatal(err)
	}
	return s.(*corev1.Secret)
}

func (h *harness) entries() map[string]keys.Entry {
	h.t.Helper()
	s := h.secret()
	es, err := keys.ParseSecret(s.Data, s.Annotations)
	if err != nil {
		h.t.Fatal(err)
	}
	m := map[string]keys.Entry{}
	for _, e := range es {
		m[e.Name] = e
	}
	return m
}

// writes counts the creates and updates of Secrets sent so far.
func (h *harness) writes() int {
	n := 0
	for _, a := range h.client.Actions() {
		if a.GetResource().Resource == "secrets" && (a.GetVerb() == "create" || a.GetVerb() == "update") {
			n++
		}
	}
	return n
}

func (h *harness) annotation(name, suffix string) string {
	return h.secret().Annotations[keys.AnnotationPrefix+name+suffix]
}

// The whole life of two keys, command by command, checking the Secret
// after each.
func TestKeyLifecycle(t *testing.T) {
	h := newHarness(t)
	h.refused("keys list", "not found; create the first key with: kubectl silentauth keys add")
	h.refused("keys rotate", "not found")

	// A fresh install: the Secret is created and the first key signs at once.
	out := h.mustRun("keys add --name k1")
	if !strings.Contains(out, "secret auth/silentauth-keys (create):\n  k1: add ES256 key, kid ") ||
		!strings.Contains(out, "active at once (no key signs now)") || !strings.Contains(out, "secret auth/silentauth-keys created") {
		t.Errorf("add output:\n%s", out)
	}
	if h.annotation("k1", keys.PublishedAtSuffix) != "2026-11-25T12:00:00Z" || h.annotation("k1", keys.ActivateAtSuffix) != "" {
		t.Errorf("k1 annotations %v, want published-at now and no activate-at", h.secret().Annotations)
	}
	if len(h.secret().Data) != 1 || len(h.secret().Data["k1.pem"]) == 0 {
		t.Errorf("data keys %v", h.secret().Data)
	}

	// Routine rotation an hour later.
	h.now = t0.Add(time.Hour)
	out = h.mustRun("keys rotate --name k2")
	want := "secret auth/silentauth-keys (update):\n" +
		"  k2: add ES256 key, kid " + h.entries()["k2"].Key.ID + ", published-at 2026-11-25T13:00:00Z, activate-at 2026-11-25T13:30:00Z (in 30m)\n" +
		"  k1: retire-at 2026-11-25T13:30:00Z (in 30m), when k2 takes over\n" +
		"secret auth/silentauth-keys updated\n"
	if out != want {
		t.Errorf("rotate printed\n%s\nwant\n%s", out, want)
	}
	if a, r := h.annotation("k2", keys.ActivateAtSuffix), h.annotation("k1", keys.RetireAtSuffix); a != "2026-11-25T13:30:00Z" || a != r {
		t.Errorf("k2 activate-at %q, k1 retire-at %q: want both 13:30", a, r)
	}

	out = h.mustRun("keys list")
	table := regexp.MustCompile(`(?m)^NAME +KID +ALG +STATE +PUBLISHED +ACTIVATES +RETIRES +REFRESHES-UNTIL\n` +
		`k1 +\S+ +ES256 +active +2026-11-25T12:00:00Z +- +2026-11-25T13:30:00Z +2026-12-25T13:30:00Z\n` +
		`k2 +\S+ +ES256 +next +2026-11-25T13:00:00Z +2026-11-25T13:30:00Z +- +-\n$`)
	if !table.MatchString(out) {
		t.Errorf("list at 13:00:\n%s", out)
	}
	h.refused("keys rotate", "k2 is already waiting to activate at 2026-11-25T13:30:00Z")
	h.refused("keys retire k1", "no key would sign from 2026-11-25T13:00:00Z")
	h.refused("keys revoke k1 --yes", "no key would sign")
	h.refused("keys retire k2", "keys revoke k2")
	h.refused("keys revoke k2 --yes", "keep k1 signing: kubectl silentauth keys retire k1 --cancel")

	// After the handover.
	h.now = t0.Add(90*time.Minute + time.Second)
	out = h.mustRun("keys list -o json")
	var listed struct {
		Keys []keyView `json:"keys"`
	}
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(listed.Keys) != 2 || listed.Keys[0].Name != "k1" || listed.Keys[0].State != "retiring" || listed.Keys[0].Signing ||
		listed.Keys[1].State != "active" || !listed.Keys[1].Signing || listed.Keys[0].GoneAt.Format(time.RFC3339) != "2026-11-25T13:45:30Z" ||
		listed.Keys[0].RefreshesUntil.Format(time.RFC3339) != "2026-12-25T13:30:00Z" || listed.Keys[1].RefreshesUntil != nil {
		t.Errorf("list -o json after the handover:\n%s", out)
	}

	// Gone from the JWKS, k1 still verifies refresh tokens: the table
	// says so, and revoke refuses to delete it without --force, naming
	// the time from which it may (retire-at + the 30-day idle TTL).
	gone := t0.Add(3 * time.Hour)
	h.now = gone
	if out := h.mustRun("keys list"); !regexp.MustCompile(`(?m)^k1 +\S+ +ES256 +gone \(refresh only\) +.* 2026-12-25T13:30:00Z$`).MatchString(out) {
		t.Errorf("list with k1 gone:\n%s", out)
	}
	h.refused("keys revoke k1 --yes", "k1 may still verify refresh tokens until 2026-12-25T13:30:00Z")
	h.refused("keys revoke k1 --yes --idle-ttl 2h", "k1 may still verify refresh tokens until 2026-11-25T15:30:00Z (in 30m)")
	if out := h.mustRun("keys revoke k1 --yes --idle-ttl 1h --dry-run"); !strings.Contains(out, "it no longer verifies anything, refresh tokens included") {
		t.Errorf("revoke after the idle TTL printed:\n%s", out)
	}
	h.now = t0.Add(30*24*time.Hour + 90*time.Minute)
	if out := h.mustRun("keys list"); !regexp.MustCompile(`(?m)^k1 +\S+ +ES256 +gone +.* 2026-12-25T13:30:00Z$`).MatchString(out) {
		t.Errorf("list with k1 past its refresh horizon:\n%s", out)
	}
	if out := h.mustRun("keys revoke k1 --yes --dry-run"); !strings.Contains(out, "refresh tokens included") {
		t.Errorf("revoke after the idle TTL printed:\n%s", out)
	}

	// Emergency revoke of the retiring key: --force, then confirmation.
	h.now = t0.Add(90*time.Minute + time.Second)
	out = h.refused("keys revoke k1 --force", "run again with --yes")
	if !strings.Contains(out, "k1: delete the key (kid "+h.entries()["k1"].Key.ID+", retiring) and its annotations; access tokens it signed stop verifying at once") ||
		!strings.Contains(out, "are logged out at their next refresh: their token is unknown, their cookies are cleared") {
		t.Errorf("revoke without --yes printed:\n%s", out)
	}
	if out := h.mustRun("keys revoke k1 --force --yes --dry-run"); !strings.HasSuffix(out, "dry run: nothing written\n") {
		t.Errorf("dry run printed:\n%s", out)
	}
	h.mustRun("keys revoke k1 --force --yes")
	s := h.secret()
	if _, ok := s.Data["k1.pem"]; ok || len(s.Data) != 1 {
		t.Errorf("data after revoke: %v", s.Data)
	}
	for a := range s.Annotations {
		if strings.HasPrefix(a, keys.AnnotationPrefix+"k1.") {
			t.Errorf("annotation %s left after revoke", a)
		}
	}

	// The last key can be neither retired nor revoked.
	h.refused("keys retire k2", "k2 is the only usable key")
	_, err := h.run("keys retire k2")
	if err == nil || !strings.Contains(err.Error(), "kubectl silentauth keys rotate") {
		t.Errorf("retire refusal does not say what to do: %v", err)
	}
	h.refused("keys revoke k2 --yes", "k2 is the only usable key")

	if strings.Contains(h.out.String(), "PRIVATE KEY") || strings.Contains(h.out.String(), "-----BEGIN") {
		t.Errorf("key material printed:\n%s", h.out.String())
	}
}

func TestAddAndActivate(t *testing.T) {
	h := newHarness(t)
	h.mustRun("keys add --name k1")
	h.refused("keys add --name k2 --activate-in 10m", "sooner than 30m")
	h.mustRun("keys add --name k2 --activate-in 2h")
	if got := h.annotation("k2", keys.ActivateAtSuffix); got != "2026-11-25T14:00:00Z" {
		t.Errorf("k2 activate-at %q", got)
	}
	h.refused("keys add --name k2", "a key named k2 already exists")

	// Sooner than published-at + 30m is refused, then forced.
	h.now = t0.Add(10 * time.Minute)
	h.refused("keys activate k2", "activating it before 2026-11-25T12:30:00Z (published-at + 30m)")
	h.mustRun("keys activate k2 --at 2026-11-25T12:30:00Z")
	if got := h.annotation("k2", keys.ActivateAtSuffix); got != "2026-11-25T12:30:00Z" {
		t.Errorf("k2 activate-at %q", got)
	}
	out := h.mustRun("keys activate k2 --force")
	if !strings.Contains(out, "k2: activate-at 2026-11-25T12:10:00Z (now)") {
		t.Errorf("activate --force printed:\n%s", out)
	}
	if out := h.mustRun("keys activate k2 --force"); !strings.Contains(out, "nothing to change") {
		t.Errorf("second activate printed:\n%s", out)
	}

	// Both are active now; the later activation signs.
	out = h.mustRun("keys list")
	if !regexp.MustCompile(`(?m)^k1 .* active \(not signing\) `).MatchString(out) || !regexp.MustCompile(`(?m)^k2 .* active `).MatchString(out) {
		t.Errorf("list:\n%s", out)
	}

	// Default name and other algorithms.
	h.now = t0.Add(time.Hour)
	out = h.mustRun("keys add --alg EdDSA")
	name := regexp.MustCompile(`k-20261125-[a-z0-9]{8}`).FindString(out)
	if e, ok := h.entries()[name]; name == "" || !ok || e.Key.Alg != keys.EdDSA {
		t.Errorf("add --alg EdDSA printed:\n%s", out)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	h := newHarness(t)
	for _, line := range []string{"keys add --dry-run", "keys add --name k1 --dry-run"} {
		if out := h.mustRun(line); !strings.Contains(out, "(create):") || !strings.Contains(out, "dry run: nothing written") {
			t.Errorf("%s printed:\n%s", line, out)
		}
	}
	h.mustRun("keys add --name k1")
	before := h.secret().DeepCopy()
	for _, line := range []string{"keys rotate --dry-run", "keys add --dry-run", "keys retire k1 --at 1h --dry-run"} {
		if _, err := h.run(line); err != nil && !errors.Is(err, errRefused) {
			t.Errorf("%s: %v", line, err)
		}
	}
	if h.writes() != 1 || !equalSecrets(before, h.secret()) {
		t.Errorf("dry runs wrote: %d writes", h.writes())
	}
}

func equalSecrets(a, b *corev1.Secret) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// seeded returns a Secret holding k1, active since long ago, at
// resourceVersion "42".
func seeded(t *testing.T) *corev1.Secret {
	e := k(t, "k1", -600, no, no)
	dataKey, pem, ann, err := keys.EncodeEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	ann["example.com/unrelated"] = "kept"
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: defaultSecret, ResourceVersion: "42", Annotations: ann, Labels: map[string]string{"app": "silentauth"}},
		Data:       map[string][]byte{dataKey: pem},
	}
}

func TestUpdateIsConditional(t *testing.T) {
	sec := seeded(t)
	h := newHarness(t, sec)
	h.mustRun("keys rotate")
	var updates []*corev1.Secret
	for _, a := range h.client.Actions() {
		if u, ok := a.(k8stesting.UpdateAction); ok {
			updates = append(updates, u.GetObject().(*corev1.Secret))
		}
	}
	if len(updates) != 1 || updates[0].ResourceVersion != "42" {
		t.Fatalf("updates %d, want one carrying resourceVersion 42", len(updates))
	}
	got := updates[0]
	if got.Annotations["example.com/unrelated"] != "kept" || got.Labels["app"] != "silentauth" ||
		!bytes.Equal(got.Data["k1.pem"], sec.Data["k1.pem"]) {
		t.Errorf("the update lost what it does not own: %v %v", got.Annotations, got.Labels)
	}
}

// conflictOnce makes the next Secret update fail with a Conflict, after
// another writer changed the Secret with change.
func conflictOnce(t *testing.T, h *harness, change func(*corev1.Secret)) *int {
	calls := 0
	h.client.PrependReactor("update", "secrets", func(a k8stesting.Action) (bool, runtime.Object, error) {
		calls++
		if calls > 1 {
			return false, nil, nil
		}
		o, err := h.client.Tracker().Get(secretsGVR, ns, defaultSecret)
		if err != nil {
			t.Error(err)
		}
		s := o.(*corev1.Secret).DeepCopy()
		change(s)
		s.ResourceVersion = "43"
		if err := h.client.Tracker().Update(secretsGVR, s, ns); err != nil {
			t.Error(err)
		}
		return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "secrets"}, defaultSecret, errors.New("the object has been modified"))
	})
	return &calls
}

// addEntry writes e into s, as another writer would.
func addEntry(t *testing.T, s *corev1.Secret, e keys.Entry) {
	dataKey, pem, ann, err := keys.EncodeEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	s.Data[dataKey] = pem
	for k, v := range ann {
		s.Annotations[k] = v
	}
}

func TestConflictRereadsAndRetries(t *testing.T) {
	h := newHarness(t, seeded(t))
	calls := conflictOnce(t, h, func(s *corev1.Secret) { addEntry(t, s, k(t, "k3", 0, 60, no)) })
	out := h.mustRun("keys add --name k2")
	if *calls != 2 || !strings.Contains(out, "changed while this command ran; reading it again") {
		t.Errorf("%d update calls, output:\n%s", *calls, out)
	}
	es := h.entries()
	if len(es) != 3 || es["k2"].ActivateAt.IsZero() || es["k3"].Key == nil {
		t.Errorf("after the retry: %v", h.secret().Annotations)
	}
}

// A retry plans again, against what the other writer left: here another
// operator's rotation makes ours a second one, which is refused.
func TestConflictRevalidates(t *testing.T) {
	h := newHarness(t, seeded(t))
	conflictOnce(t, h, func(s *corev1.Secret) {
		addEntry(t, s, k(t, "k3", 0, 30, no))
		s.Annotations[keys.AnnotationPrefix+"k1"+keys.RetireAtSuffix] = "2026-11-25T12:30:00Z"
	})
	out, err := h.run("keys rotate --name k2")
	if err == nil || !strings.Contains(err.Error(), "k3 is already waiting to activate") {
		t.Fatalf("rotate after a concurrent rotation: %v\n%s", err, out)
	}
	if _, ok := h.entries()["k2"]; ok {
		t.Error("k2 was written")
	}
}

func TestConflictGivesUp(t *testing.T) {
	h := newHarness(t, seeded(t))
	calls := 0
	h.client.PrependReactor("update", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		calls++
		return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "secrets"}, defaultSecret, errors.New("the object has been modified"))
	})
	if _, err := h.run("keys rotate"); !apierrors.IsConflict(err) {
		t.Errorf("err = %v, want the Conflict", err)
	}
	if calls != maxAttempts {
		t.Errorf("%d attempts, want %d", calls, maxAttempts)
	}
}

// Two first installs race: the loser reads the winner's Secret and adds
// its key as the next one.
func TestCreateRace(t *testing.T) {
	h := newHarness(t)
	first := true
	h.client.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		if !first {
			return false, nil, nil
		}
		first = false
		if err := h.client.Tracker().Create(secretsGVR, seeded(t), ns); err != nil {
			t.Error(err)
		}
		return true, nil, apierrors.NewAlreadyExists(schema.GroupResource{Resource: "secrets"}, defaultSecret)
	})
	h.mustRun("keys add --name k2")
	if got := h.annotation("k2", keys.ActivateAtSuffix); got != "2026-11-25T12:30:00Z" {
		t.Errorf("k2 activate-at %q, want next at +30m", got)
	}
}

func TestAPIErrors(t *testing.T) {
	h := newHarness(t)
	h.client.PrependReactor("get", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, defaultSecret, errors.New("RBAC"))
	})
	h.refused("keys list", "kubectl auth can-i get secrets -n auth")

	sec := seeded(t)
	sec.Data["broken.pem"] = []byte("not a key")
	h = newHarness(t, sec)
	h.refused("keys rotate", "does not parse, so nothing was changed")
	out, err := h.run("keys list")
	if err == nil || !strings.Contains(err.Error(), "broken.pem") || strings.Contains(out+err.Error(), "not a key") {
		t.Errorf("list of a broken Secret: %v\n%s", err, out)
	}
}

func TestFlags(t *testing.T) {
	h := newHarness(t, seeded(t))
	tests := []struct {
		line string
		want kubeOptions
	}{
		{"keys list", kubeOptions{}},
		{"-n auth keys list", kubeOptions{Namespace: "auth"}},
		{"keys -n auth list", kubeOptions{Namespace: "auth"}},
		{"keys list --namespace=auth --context dev --kubeconfig /tmp/kc", kubeOptions{Namespace: "auth", Context: "dev", Kubeconfig: "/tmp/kc"}},
		{"--context dev keys list -n auth", kubeOptions{Namespace: "auth", Context: "dev"}},
	}
	for _, tc := range tests {
		h.opts = nil
		if _, err := h.run(tc.line); err != nil {
			t.Errorf("%s: %v", tc.line, err)
			continue
		}
		if len(h.opts) != 1 || h.opts[0] != tc.want {
			t.Errorf("%s: connected with %+v, want %+v", tc.line, h.opts, tc.want)
		}
	}
	// --secret selects another Secret.
	if _, err := h.run("keys list --secret other"); err == nil || !strings.Contains(err.Error(), "secret auth/other not found") {
		t.Errorf("--secret other: %v", err)
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		line, want string
	}{
		{"", "a command is required"},
		{"frob", `unknown command "frob"`},
		{"keys", "a keys command is required"},
		{"keys frob", `unknown keys command "frob"`},
		{"keys activate", "expected 1 argument (the key's NAME), got 0"},
		{"keys revoke a b", "expected 1 argument"},
		{"keys list extra", "unexpected arguments: extra"},
		{"keys list -o yaml", `-o "yaml"`},
		{"keys add --alg HS256", `--alg "HS256": want ES256, EdDSA or RS256`},
		{"keys add --activate-in 1h --activate-at now", "exclusive"},
		{"keys add --name K1", "invalid key name"},
		{"keys activate k1 --at tomorrow", "want an RFC 3339 time"},
		{"keys list --bogus", "unknown flag: --bogus\nSee 'kubectl silentauth keys list --help' for usage."},
	}
	for _, tc := range tests {
		h := newHarness(t)
		h.client.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
			t.Errorf("%s: API called (%s)", tc.line, a.GetVerb())
			return true, nil, errors.New("no")
		})
		if _, err := h.run(tc.line); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error containing %q", tc.line, err, tc.want)
		}
	}
}

func TestHelp(t *testing.T) {
	tests := []struct{ line, want string }{
		{"--help", "kubectl silentauth keys rotate -n auth"},
		{"-h", "Global flags:"},
		{"help", "Commands:"},
		{"keys --help", "revoke NAME --yes"},
		{"keys add --help", "--activate-in duration"},
		{"keys list -h", "must match the server's"},
		{"keys activate -h", "published for 30m"},
		{"keys retire --help", "kubectl silentauth keys rotate"},
		{"keys revoke --help", "silently re-issued tokens"},
		{"keys revoke --help", "logged out at their next refresh"},
		{"keys rotate --help", "--lead duration"},
	}
	for _, tc := range tests {
		h := newHarness(t)
		out, err := h.run(tc.line)
		if err != nil || !strings.Contains(out, tc.want) || !strings.Contains(out, "Usage:") || !strings.Contains(out, "kubectl silentauth") {
			t.Errorf("%q: %v\n%s", tc.line, err, out)
		}
		if len(h.opts) != 0 {
			t.Errorf("%q connected to the cluster", tc.line)
		}
	}
}

// kubeClient loads kubeconfig the way kubectl does: $KUBECONFIG, then
// --kubeconfig, --context and -n on top.
func TestKubeClientLoadingRules(t *testing.T) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:1"}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "t"}
	kc.Contexts["dev"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u", Namespace: "team-dev"}
	kc.Contexts["prod"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u", Namespace: "team-prod"}
	kc.Contexts["bare"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	kc.CurrentContext = "dev"
	path := filepath.Join(t.TempDir(), "config")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", path)
	t.Setenv("HOME", t.TempDir())

	tests := []struct {
		o    kubeOptions
		want string
	}{
		{kubeOptions{}, "team-dev"},
		{kubeOptions{Context: "prod"}, "team-prod"},
		{kubeOptions{Context: "bare"}, "default"},
		{kubeOptions{Context: "prod", Namespace: "mine"}, "mine"},
		{kubeOptions{Kubeconfig: path, Context: "prod"}, "team-prod"},
	}
	for _, tc := range tests {
		client, got, err := kubeClient(tc.o)
		if err != nil || client == nil || got != tc.want {
			t.Errorf("%+v: namespace %q, %v; want %q", tc.o, got, err, tc.want)
		}
	}
	if _, _, err := kubeClient(kubeOptions{Context: "nope"}); err == nil {
		t.Error("unknown context accepted")
	}
	if _, _, err := kubeClient(kubeOptions{Kubeconfig: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("missing --kubeconfig accepted")
	}
}

// The plugin only ever needs the operator's namespaced rights: it never
// lists, watches or touches anything cluster-scoped.
func TestPluginAsksForNothingClusterWide(t *testing.T) {
	h := newHarness(t)
	h.mustRun("keys add")
	h.now = h.now.Add(time.Hour)
	h.mustRun("keys rotate")
	h.mustRun("keys list")
	for _, a := range h.client.Actions() {
		if a.GetNamespace() != ns || a.GetResource().Resource != "secrets" || !slices.Contains([]string{"get", "create", "update"}, a.GetVerb()) {
			t.Errorf("the plugin made a %s of %s in %q", a.GetVerb(), a.GetResource().Resource, a.GetNamespace())
		}
	}
}

func TestVersion(t *testing.T) {
	h := newHarness(t)
	want := "kubectl-silentauth dev (commit unknown, " + goruntime.Version() + ")\n"
	if out := h.mustRun("version"); out != want {
		t.Errorf("version printed %q, want %q", out, want)
	}
}
