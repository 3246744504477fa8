package kubesecret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"

	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/internal/testenv/fakeclock"
	"github.com/silentauth/silentauth/internal/testenv/logbuf"
)

const (
	testNS     = "auth"
	testSecret = "silentauth-keys"
)

// secretOf renders entries as a Secret, the way kubectl-silentauth writes it.
func secretOf(t testing.TB, name string, entries ...keys.Entry) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: name, Annotations: map[string]string{}},
		Data:       map[string][]byte{},
	}
	for _, e := range entries {
		key, pem, ann, err := keys.EncodeEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		s.Data[key] = pem
		maps.Copy(s.Annotations, ann)
	}
	return s
}

// rig is a Watcher on a fake clientset, running until the test ends.
type rig struct {
	t      *testing.T
	client *fake.Clientset
	w      *Watcher
	holder *keys.Holder
	clock  *fakeclock.Clock
	reg    *prometheus.Registry
	logs   *logbuf.Buffer
}

func newRig(t *testing.T, objs ...runtime.Object) *rig {
	t.Helper()
	r := &rig{t: t, client: fake.NewClientset(objs...), holder: &keys.Holder{}, clock: fakeclock.New(t0), reg: prometheus.NewRegistry(), logs: &logbuf.Buffer{}}
	w, err := NewWatcher(Options{
		Secrets: fakeSecrets(r.client, testNS), Namespace: testNS, Name: testSecret, Lifecycle: lc, Holder: r.holder,
		Log:        slog.New(slog.NewJSONHandler(r.logs, nil)),
		Registerer: r.reg, Now: r.clock.Now,
		CheckEvery: -1, // tests call tick themselves
	})
	if err != nil {
		t.Fatal(err)
	}
	r.w = w
	return r
}

// fakeSecrets lists and watches the Secrets of namespace on c, as
// NewListWatch does on a real API server. Like the fake clientset it says
// it cannot stream the initial list.
func fakeSecrets(c *fake.Clientset, namespace string) cache.ListerWatcher {
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, lo metav1.ListOptions) (runtime.Object, error) {
			return c.CoreV1().Secrets(namespace).List(ctx, lo)
		},
		WatchFuncWithContext: func(ctx context.Context, lo metav1.ListOptions) (watch.Interface, error) {
			return c.CoreV1().Secrets(namespace).Watch(ctx, lo)
		},
	}, c)
}

// run starts the watcher and stops it, waiting for Run to return, when the
// test ends.
func (r *rig) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.w.Run(ctx) }()
	r.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			r.t.Errorf("Run = %v", err)
		}
	})
}

// waitFor waits until cond holds, for at most 10 seconds.
func (r *rig) waitFor(what string, cond func() bool) {
	r.t.Helper()
	waitUntil(r.t, r.w, 10*time.Second, what, cond, r.logs)
}

// waitUntil polls cond, which looks at what the watcher shows (Holder,
// Status), until it holds, for at most limit.
func waitUntil(t *testing.T, w *Watcher, limit time.Duration, what string, cond func() bool, logs fmt.Stringer) {
	t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	poll := time.NewTicker(2 * time.Millisecond)
	defer poll.Stop()
	for !cond() {
		select {
		case <-poll.C:
		case <-deadline.C:
			_, msg := w.Status()
			t.Fatalf("timed out after %v waiting for %s; status: %s\nlogs:\n%s", limit, what, msg, logs)
		}
	}
}

// waitForMessage waits until Status's message contains every part.
func (r *rig) waitForMessage(parts ...string) (ready bool, msg string) {
	r.t.Helper()
	r.waitFor("status "+strings.Join(parts, " … "), func() bool {
		ready, msg = r.w.Status()
		for _, p := range parts {
			if !strings.Contains(msg, p) {
				return false
			}
		}
		return true
	})
	return ready, msg
}

func (r *rig) create(s *corev1.Secret) {
	r.t.Helper()
	if _, err := r.client.CoreV1().Secrets(s.Namespace).Create(context.Background(), s, metav1.CreateOptions{}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) update(s *corev1.Secret) {
	r.t.Helper()
	if _, err := r.client.CoreV1().Secrets(s.Namespace).Update(context.Background(), s, metav1.UpdateOptions{}); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) delete(name string) {
	r.t.Helper()
	if err := r.client.CoreV1().Secrets(testNS).Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
		r.t.Fatal(err)
	}
}

// ringChange waits until the Holder holds a keyring other than old.
func (r *rig) ringChange(old *keys.Keyring) *keys.Keyring {
	r.t.Helper()
	r.waitFor("a new keyring", func() bool { k := r.holder.Keyring(); return k != nil && k != old && reported(r.w, k) })
	return r.holder.Keyring()
}

// reported reports whether Status already describes k: the Holder is
// filled just before the status is published.
func reported(w *Watcher, k *keys.Keyring) bool {
	s := w.snap.Load()
	return s.good != nil && s.good.ring == k
}

// metric returns the value of the named counter or gauge (with labels
// name=value pairs) from the rig's registry.
func (r *rig) metric(name string, labels ...string) float64 {
	r.t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if labelValue(m, labels[i]) != labels[i+1] {
					continue next
				}
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	r.t.Fatalf("no metric %s%v", name, labels)
	return 0
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// The whole life of a Secret: missing, created, updated, broken, deleted,
// recreated. The keyring in use changes only for a usable Secret.
func TestWatcherLifecycle(t *testing.T) {
	k1, k2 := mustKey(t, p256Key()), mustKey(t, edKey())
	r := newRig(t)

	if ready, msg := r.w.Status(); ready || msg != "waiting for Secret auth/silentauth-keys: connecting to the API server" {
		t.Errorf("before Run: %v %q", ready, msg)
	}
	r.run()

	// Not found: not ready, and Status says why.
	if ready, _ := r.waitForMessage("waiting for Secret auth/silentauth-keys: not found"); ready {
		t.Error("ready without a Secret")
	}
	if r.holder.Keyring() != nil {
		t.Fatal("a keyring without a Secret")
	}

	// First load.
	r.create(secretOf(t, testSecret, keys.Entry{Name: "k1", Key: k1}))
	ring1 := r.ringChange(nil)
	if ready, msg := r.w.Status(); !ready || !strings.HasPrefix(msg, "Secret auth/silentauth-keys: 1 key, signing with k1 (kid "+k1.ID+"), loaded 2026-11-25T12:00:00Z") {
		t.Errorf("after load: %v %q", ready, msg)
	}
	if ring1.Signer(t0).ID != k1.ID || r.metric("silentauth_keyring_reloads_total", "result", "ok") != 1 ||
		r.metric("silentauth_keyring_last_reload_success") != 1 || r.metric("silentauth_keyring_last_success_timestamp_seconds") != float64(t0.Unix()) {
		t.Errorf("first load: signer %s, metrics ok=%v", ring1.Signer(t0).ID, r.metric("silentauth_keyring_reloads_total", "result", "ok"))
	}

	// Update: publish k2 before it signs.
	r.clock.Set(t0.Add(minute))
	s := secretOf(t, testSecret, keys.Entry{Name: "k1", Key: k1}, keys.Entry{Name: "k2", Key: k2, ActivateAt: t0.Add(hour)})
	r.update(s)
	ring2 := r.ringChange(ring1)
	if _, ok := ring2.Lookup(k2.ID, t0); !ok || ring2.Signer(t0).ID != k1.ID || ring2.Signer(t0.Add(hour)).ID != k2.ID {
		t.Error("k2 not published before it signs")
	}
	if st := ring2.States(t0); st[0].PublishedAt != t0 || st[1].PublishedAt != t0.Add(minute) {
		t.Errorf("published-at is not when first seen: %v, %v", st[0].PublishedAt, st[1].PublishedAt)
	}

	// Malformed update: the last good keyring stays, and everyone is told.
	bad := s.DeepCopy()
	bad.Data["k2.pem"] = weakPEM()
	r.update(bad)
	ready, msg := r.waitForMessage("data entry k2.pem: unsupported key: RSA modulus of 1024 bits", "serving the last good keyring (2 keys, signing with k1")
	if !ready || r.holder.Keyring() != ring2 {
		t.Errorf("a malformed Secret replaced the keyring or readiness: %v %q", ready, msg)
	}
	if r.metric("silentauth_keyring_reloads_total", "result", "error") != 1 || r.metric("silentauth_keyring_last_reload_success") != 0 {
		t.Error("refusal not counted")
	}
	if logs := r.logs.String(); !strings.Contains(logs, "key Secret refused; serving the last good keyring") || !strings.Contains(logs, "k2.pem") {
		t.Errorf("refusal not logged:\n%s", logs)
	}

	// Delete: the last good keyring stays.
	r.delete(testSecret)
	if ready, _ := r.waitForMessage("Secret auth/silentauth-keys: deleted; serving the last good keyring"); !ready || r.holder.Keyring() != ring2 {
		t.Error("delete cleared the keyring or readiness")
	}
	if r.metric("silentauth_keyring_reloads_total", "result", "error") != 2 {
		t.Error("delete not counted")
	}

	// Recreate: recovered.
	s.ResourceVersion = ""
	r.create(s)
	ring3 := r.ringChange(ring2)
	if ready, msg := r.w.Status(); !ready || strings.Contains(msg, "serving the last good") || r.metric("silentauth_keyring_last_reload_success") != 1 {
		t.Errorf("after recreate: %v %q", ready, msg)
	}
	if len(ring3.Keys()) != 2 {
		t.Errorf("recreated keyring has %d keys", len(ring3.Keys()))
	}

	assertNoKeyMaterialInLogs(t, r.logs.String(), ecPEM(), edPEM(), weakPEM())
}

func assertNoKeyMaterialInLogs(t *testing.T, logs string, pems ...[]byte) {
	t.Helper()
	for _, pem := range pems {
		assertNoKeyMaterial(t, logs, pem)
	}
	for line := range strings.Lines(logs) {
		if !json.Valid([]byte(line)) {
			t.Errorf("log line is not JSON: %s", line)
		}
	}
}

// A Secret broken from the start: never ready, and Status says why.
func TestWatcherBrokenFromStart(t *testing.T) {
	s := secretOf(t, testSecret, keys.Entry{Name: "k1", Key: mustKey(t, p256Key())})
	s.Data["k1.pem"] = []byte("not a key")
	r := newRig(t, s)
	r.run()
	ready, msg := r.waitForMessage("waiting for Secret auth/silentauth-keys: data entry k1.pem: invalid PEM private key")
	if ready || r.holder.Keyring() != nil {
		t.Errorf("ready with a broken Secret: %q", msg)
	}
	if r.metric("silentauth_keyring_reloads_total", "result", "error") != 1 {
		t.Error("refusal not counted")
	}
}

// An empty Secret is refused with a message that says what to add.
func TestWatcherEmptySecret(t *testing.T) {
	r := newRig(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: testSecret}})
	r.run()
	r.waitForMessage("waiting for Secret auth/silentauth-keys: no usable active key: the Secret holds no keys")
}

// Objects with another name are ignored even where the field selector is
// not applied (the fake clientset), and the selector is sent.
func TestWatcherOneSecretOnly(t *testing.T) {
	other := secretOf(t, "other", keys.Entry{Name: "k1", Key: mustKey(t, edKey())})
	other.Data["junk.txt"] = []byte("x")
	r := newRig(t, other, secretOf(t, testSecret, keys.Entry{Name: "k1", Key: mustKey(t, p256Key())}))
	r.run()
	r.ringChange(nil)
	if _, msg := r.w.Status(); strings.Contains(msg, "junk") {
		t.Errorf("another Secret was read: %q", msg)
	}
	var lists, watches int
	for _, a := range r.client.Actions() {
		var sel string
		switch a := a.(type) {
		case k8stesting.ListAction:
			sel, lists = a.GetListRestrictions().Fields.String(), lists+1
		case k8stesting.WatchAction:
			sel, watches = a.GetWatchRestrictions().Fields.String(), watches+1
		default:
			t.Errorf("unexpected %s %s: the watcher only lists and watches", a.GetVerb(), a.GetResource().Resource)
			continue
		}
		if a.GetNamespace() != testNS || sel != "metadata.name="+testSecret {
			t.Errorf("%s in %q with field selector %q", a.GetVerb(), a.GetNamespace(), sel)
		}
	}
	if lists == 0 {
		t.Error("no list seen")
	}
}

// Emergency revoke by hand: removing a key's data entry revokes it at once,
// even with its annotations left behind; an annotation naming a key the
// keyring never had is still a refusal (a typo would make a key sign early).
func TestWatcherRevoke(t *testing.T) {
	k1, k2 := mustKey(t, p256Key()), mustKey(t, edKey())
	s := secretOf(t, testSecret, keys.Entry{Name: "k1", Key: k1, RetireAt: t0.Add(hour)}, keys.Entry{Name: "k2", Key: k2, ActivateAt: t0.Add(-minute)})
	r := newRig(t, s)
	r.run()
	ring := r.ringChange(nil)
	if ring.Signer(t0).ID != k2.ID {
		t.Fatal("k2 does not sign")
	}

	revoked := s.DeepCopy()
	delete(revoked.Data, "k1.pem") // the annotation k1.retire-at stays behind
	r.update(revoked)
	ring = r.ringChange(ring)
	if _, ok := ring.Lookup(k1.ID, t0); ok {
		t.Error("revoked k1 still verifies")
	}
	if ready, msg := r.w.Status(); !ready || !strings.Contains(msg, "warning: annotation keys.silentauth.dev/k1.retire-at") {
		t.Errorf("leftovers not reported: %q", msg)
	}

	typo := revoked.DeepCopy()
	typo.Annotations[keys.AnnotationPrefix+"k3.activate-at"] = stamp(t0)
	r.update(typo)
	r.waitForMessage("annotation keys.silentauth.dev/k3.activate-at: annotation without a data entry", "serving the last good keyring")
	if r.holder.Keyring() != ring {
		t.Error("an unknown orphan annotation was accepted")
	}
}

// Time alone: a Secret of next keys loads once the first is due, and a
// change of signer or of degraded state is logged by the tick.
func TestWatcherTick(t *testing.T) {
	k1, k2 := mustKey(t, p256Key()), mustKey(t, edKey())
	activate1, activate2 := t0.Add(hour), t0.Add(2*hour)
	retire2 := activate2.Add(hour)
	r := newRig(t, secretOf(t, testSecret, keys.Entry{Name: "k1", Key: k1, ActivateAt: activate1, RetireAt: activate2}, keys.Entry{Name: "k2", Key: k2, ActivateAt: activate2, RetireAt: retire2}))
	r.run()
	r.waitForMessage("no key is active at 2026-11-25T12:00:00Z; the first, k1, activates at 2026-11-25T13:00:00Z")

	r.w.tick() // too early: nothing
	if r.holder.Keyring() != nil {
		t.Fatal("loaded before any key is due")
	}
	r.clock.Set(activate1)
	r.w.tick()
	ring := r.holder.Keyring()
	if ring == nil || ring.Signer(activate1).ID != k1.ID {
		t.Fatal("not loaded once k1 is due")
	}

	r.clock.Set(activate2)
	r.w.tick()
	if logs := r.logs.String(); !strings.Contains(logs, `"msg":"signing key changed","secret":"auth/silentauth-keys","from":"`+k1.ID+`","to":"`+k2.ID+`"`) {
		t.Errorf("signer change not logged:\n%s", logs)
	}
	r.clock.Set(retire2)
	r.w.tick()
	if logs := r.logs.String(); !strings.Contains(logs, `"msg":"keyring degraded"`) {
		t.Errorf("degraded not logged:\n%s", logs)
	}
	if ready, msg := r.w.Status(); !ready || !strings.Contains(msg, "degraded: no key is active") || r.holder.Keyring().Signer(retire2).ID != k2.ID {
		t.Errorf("degraded status: %q", msg)
	}
	n := strings.Count(r.logs.String(), "\n")
	r.w.tick()
	if strings.Count(r.logs.String(), "\n") != n {
		t.Error("an unchanged tick logged")
	}
}

// An API server that refuses (RBAC) or fails: Status names the error while
// waiting, nothing exits, and the watch resumes when the server does.
func TestWatcherAPIErrors(t *testing.T) {
	s := secretOf(t, testSecret, keys.Entry{Name: "k1", Key: mustKey(t, p256Key())})
	r := newRig(t, s)
	var mu sync.Mutex
	failing := true
	r.client.PrependReactor("list", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		if failing {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, testSecret, errors.New("RBAC: no"))
		}
		return false, nil, nil
	})
	r.run()
	if ready, _ := r.waitForMessage("waiting for Secret auth/silentauth-keys", "last API error", "forbidden"); ready {
		t.Error("ready while forbidden")
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	r.ringChange(nil) // the reflector retried with backoff
	if ready, msg := r.w.Status(); !ready || strings.Contains(msg, "forbidden") {
		t.Errorf("after recovery: %q", msg)
	}
}

func TestWatcherRunTwice(t *testing.T) {
	r := newRig(t)
	r.run()
	r.waitForMessage("not found") // the first Run is running
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.w.Run(ctx); err == nil {
		t.Error("second Run did not fail")
	}
}

func TestNewWatcherValidates(t *testing.T) {
	client := fakeSecrets(fake.NewClientset(), "a")
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"no client", Options{Namespace: "a", Name: "b", Holder: &keys.Holder{}}, "Secrets is required"},
		{"no holder", Options{Secrets: client, Namespace: "a", Name: "b"}, "Holder is required"},
		{"no namespace", Options{Secrets: client, Name: "b", Holder: &keys.Holder{}}, `namespace ""`},
		{"bad namespace", Options{Secrets: client, Namespace: "A.b", Name: "b", Holder: &keys.Holder{}}, `namespace "A.b"`},
		{"bad name", Options{Secrets: client, Namespace: "a", Name: "B_", Holder: &keys.Holder{}}, `Secret name "B_"`},
		{"negative lifecycle", Options{Secrets: client, Namespace: "a", Name: "b", Holder: &keys.Holder{}, Lifecycle: keys.Lifecycle{Leeway: -1}}, "must not be negative"},
		{"dotted name ok", Options{Secrets: client, Namespace: "a", Name: "silentauth.keys", Holder: &keys.Holder{}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewWatcher(tt.o)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("err = %v, want %q", err, tt.want)
			}
		})
	}
	// Metrics registered twice on one registry: an error, not a panic.
	reg := prometheus.NewRegistry()
	o := Options{Secrets: client, Namespace: "a", Name: "b", Holder: &keys.Holder{}, Registerer: reg}
	if _, err := NewWatcher(o); err != nil {
		t.Fatal(err)
	}
	if _, err := NewWatcher(o); err == nil {
		t.Error("second registration succeeded")
	}
}
