// Package kubesecret keeps a keys.Holder filled from one Kubernetes Secret
// in the format of keys.ParseSecret, reloading on every change without a
// restart.
//
// It guarantees that a Secret that is missing, deleted, empty or malformed,
// and an API server that fails or refuses, never take traffic down: the
// last good keyring stays in the Holder, and the problem is logged, counted
// and reported by Watcher.Status. It reads only the one Secret it is given
// (list and watch carry the field selector metadata.name=<name>, so a Role
// with resourceNames suffices) and never writes.
//
// It is the only part of silentauth's key handling that links client-go:
// package keys stays a pure library (keyring, PEM and Secret format, JWKS)
// so that the token verifier and the Check server do not pull in the
// Kubernetes client.
package kubesecret

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/silentauth/silentauth/authz/keys"
)

// Options configures a Watcher. Secrets, Namespace, Name and Holder
// are required.
type Options struct {
	// Secrets lists and watches the Secrets of Namespace: NewListWatch.
	// It needs get, list and watch on the one Secret only: the Watcher
	// adds the field selector metadata.name=<Name> to every list and
	// watch, so a Role with resourceNames: [<Name>] is enough. The Watcher
	// never writes.
	Secrets cache.ListerWatcher
	// Namespace and Name of the Secret.
	Namespace, Name string
	// Lifecycle decides how long retired keys keep verifying.
	Lifecycle keys.Lifecycle
	// Holder receives every usable keyring.
	Holder *keys.Holder
	// Log receives one line per load, refusal, delete, API error and
	// change of signer. Default: discard.
	Log *slog.Logger
	// Registerer receives the reload metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now is the clock that decides key states. Default time.Now.
	Now func() time.Time
	// Resync is the informer's resync period. Default 10m.
	Resync time.Duration
	// CheckEvery is how often Run re-evaluates what time changes without
	// an update of the Secret: it logs a change of signer or of degraded
	// state, and retries a Secret refused only because no key had reached
	// its activate-at yet. Default 30s; negative disables. Correctness
	// does not depend on it: Signer, Lookup and JWKS follow the clock on
	// every call.
	CheckEvery time.Duration
}

// Defaults of Options.
const (
	DefaultResync     = 10 * time.Minute
	DefaultCheckEvery = 30 * time.Second
)

// Watcher keeps a Holder filled from one Kubernetes Secret (format: see
// keys.AnnotationPrefix), reloading on every change without a restart.
//
// A Secret that is missing, deleted, empty or malformed never takes traffic
// down: the last good keyring stays in the Holder, and the problem is
// logged (naming the entry, never quoting key bytes), counted
// (silentauth_keyring_reloads_total{result="error"},
// silentauth_keyring_last_reload_success 0) and reported by Status. API
// server outages are retried by client-go's reflector with backoff; nothing
// in the Watcher exits or clears the Holder on an error.
//
// One exception to keeping the last good keyring, so that an emergency
// revoke works even when done by hand: a Secret whose only problems are
// annotations left behind by keys of the last good keyring whose data
// entries were removed is loaded, revoking those keys at once, and Status
// warns about the leftovers.
//
// Status and Run are safe for concurrent use.
type Watcher struct {
	o        Options
	ref      string // namespace/name, for messages and the informer's store key
	informer cache.SharedIndexInformer
	synced   cache.InformerSynced // the handler has seen the initial list
	metrics  watchMetrics
	log      *slog.Logger

	snap    atomic.Pointer[snapshot]
	running atomic.Bool

	mu           sync.Mutex // serializes loads, deletes and ticks; guards the fields below
	lastRV       string     // resourceVersion last handled; "" after a delete
	retryAt      time.Time  // retry the cached Secret then (refused for want of an active key)
	loggedSigner string     // kid of the signer last logged
	loggedDegr   string     // Degraded message last logged
}

// snapshot is what Status reports; replaced whole.
type snapshot struct {
	good    *loaded // last good keyring; nil before the first
	problem string  // why the latest Secret is not in use; "" when it is
	warning string  // a problem that did not stop the load
	apiErr  string  // last API error, shown while not ready
}

// loaded is one keyring the Watcher stored.
type loaded struct {
	ring *keys.Keyring
	at   time.Time
	rv   string
}

type watchMetrics struct {
	reloads     *prometheus.CounterVec
	lastOK      prometheus.Gauge
	lastSuccess prometheus.Gauge
}

// NewWatcher checks o and builds a Watcher; Run starts it. It registers the
// reload metrics on o.Registerer:
//
//	silentauth_keyring_reloads_total{result="ok|error"}   Secret versions loaded or refused (a delete counts as error)
//	silentauth_keyring_last_reload_success                1 if the latest Secret version is in use, else 0
//	silentauth_keyring_last_success_timestamp_seconds     when a keyring was last loaded
func NewWatcher(o Options) (*Watcher, error) {
	var errs []error
	if o.Secrets == nil {
		errs = append(errs, errors.New("keys: watcher: Secrets is required"))
	}
	for _, msg := range validation.IsDNS1123Label(o.Namespace) {
		errs = append(errs, fmt.Errorf("keys: watcher: namespace %q: %s", o.Namespace, msg))
	}
	for _, msg := range validation.IsDNS1123Subdomain(o.Name) {
		errs = append(errs, fmt.Errorf("keys: watcher: Secret name %q: %s", o.Name, msg))
	}
	if o.Holder == nil {
		errs = append(errs, errors.New("keys: watcher: Holder is required"))
	}
	if o.Lifecycle.AccessTTL < 0 || o.Lifecycle.Leeway < 0 || o.Lifecycle.RefreshTTL < 0 {
		errs = append(errs, errors.New("keys: watcher: Lifecycle durations must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Resync == 0 {
		o.Resync = DefaultResync
	}
	if o.CheckEvery == 0 {
		o.CheckEvery = DefaultCheckEvery
	}

	w := &Watcher{
		o:   o,
		ref: o.Namespace + "/" + o.Name,
		metrics: watchMetrics{
			reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "silentauth_keyring_reloads_total",
				Help: "Versions of the key Secret loaded (ok) or refused (error; a delete counts as error).",
			}, []string{"result"}),
			lastOK: prometheus.NewGauge(prometheus.GaugeOpts{
				Name: "silentauth_keyring_last_reload_success",
				Help: "1 if the latest version of the key Secret is in use, 0 if it was refused or deleted (the last good keyring is served).",
			}),
			lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
				Name: "silentauth_keyring_last_success_timestamp_seconds",
				Help: "Unix time a keyring was last loaded from the key Secret.",
			}),
		},
	}
	w.log = o.Log.With("secret", w.ref)
	w.metrics.reloads.WithLabelValues("ok")
	w.metrics.reloads.WithLabelValues("error")
	if reg := o.Registerer; reg != nil {
		for _, c := range []prometheus.Collector{w.metrics.reloads, w.metrics.lastOK, w.metrics.lastSuccess} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("keys: watcher: register metrics: %w", err)
			}
		}
	}
	w.snap.Store(&snapshot{problem: "connecting to the API server"})

	// One Secret: the field selector lets RBAC limit us to it (resourceNames
	// only authorizes list and watch when the request names the object).
	selector := fields.OneTermEqualSelector("metadata.name", o.Name).String()
	secrets := cache.ToListerWatcherWithContext(o.Secrets)
	one := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, lo metav1.ListOptions) (runtime.Object, error) {
			lo.FieldSelector = selector
			return secrets.ListWithContext(ctx, lo)
		},
		WatchFuncWithContext: func(ctx context.Context, lo metav1.ListOptions) (watch.Interface, error) {
			lo.FieldSelector = selector
			return secrets.WatchWithContext(ctx, lo)
		},
	}
	// As client-go's Secret informer does: stream the initial list (watch
	// list) unless the client says it cannot.
	w.informer = cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(one, o.Secrets), &corev1.Secret{}, o.Resync, cache.Indexers{})
	reg, err := w.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    w.upsert,
		UpdateFunc: func(_, obj any) { w.upsert(obj) },
		DeleteFunc: w.deleted,
	})
	if err != nil {
		return nil, fmt.Errorf("keys: watcher: %w", err)
	}
	w.synced = reg.HasSynced
	if err := w.informer.SetWatchErrorHandlerWithContext(w.apiError); err != nil {
		return nil, fmt.Errorf("keys: watcher: %w", err)
	}
	return w, nil
}

// Run watches the Secret until ctx is done, then returns nil once the
// informer has stopped. It never returns early: API errors are retried by
// the informer with backoff while the last good keyring is served. It
// returns an error only when called a second time.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("keys: watcher: Run called more than once")
	}
	var wg sync.WaitGroup
	wg.Go(func() { w.informer.RunWithContext(ctx) })
	wg.Go(func() {
		if cache.WaitForCacheSync(ctx.Done(), w.synced) {
			w.initialListDone()
		}
	})
	var tick <-chan time.Time
	if w.o.CheckEvery > 0 {
		t := time.NewTicker(w.o.CheckEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-tick:
			w.tick()
		}
	}
}

// Status reports whether a usable keyring has been loaded (readiness) and
// a message for the verbose health view: what is being waited for, or the
// keyring in use, the problem with the latest Secret version if any, and
// Keyring.Degraded.
func (w *Watcher) Status() (ready bool, message string) {
	s := w.snap.Load()
	if s.good == nil {
		msg := "waiting for Secret " + w.ref + ": " + s.problem
		if s.apiErr != "" {
			msg += "; last API error: " + s.apiErr
		}
		return false, msg
	}
	now := w.o.Now()
	r := s.good.ring
	states := r.States(now)
	signer := states[slices.IndexFunc(states, func(k keys.KeyStatus) bool { return k.Signing })]
	n := fmt.Sprintf("%d keys", len(states))
	if len(states) == 1 {
		n = "1 key"
	}
	inUse := fmt.Sprintf("%s, signing with %s (kid %s), loaded %s", n, signer.Name, signer.KID,
		s.good.at.UTC().Truncate(time.Second).Format(time.RFC3339))
	var msg string
	if s.problem != "" {
		msg = "Secret " + w.ref + ": " + s.problem + "; serving the last good keyring (" + inUse + ")"
	} else {
		msg = "Secret " + w.ref + ": " + inUse
	}
	if s.warning != "" {
		msg += "; warning: " + s.warning
	}
	if d := r.Degraded(now); d != "" {
		msg += "; degraded: " + d
	}
	return true, msg
}

// upsert handles an added or updated Secret.
func (w *Watcher) upsert(obj any) {
	s, ok := obj.(*corev1.Secret)
	if !ok || s.Namespace != w.o.Namespace || s.Name != w.o.Name {
		return // the field selector rules this out, unless a client ignores it
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if s.ResourceVersion != "" && s.ResourceVersion == w.lastRV {
		return // a resync or relist: nothing changed
	}
	w.load(s)
}

// load turns s into a keyring and stores it, or reports why not and keeps
// the last good one. w.mu is held.
func (w *Watcher) load(s *corev1.Secret) {
	now := w.o.Now()
	w.lastRV, w.retryAt = s.ResourceVersion, time.Time{}
	prev := w.snap.Load()

	entries, err := keys.ParseSecret(s.Data, s.Annotations)
	var warning string
	if err != nil {
		leftovers, ok := revokeLeftovers(err, prev.good, now)
		if !ok {
			w.refuse(prev, s.ResourceVersion, err)
			return
		}
		warning = leftovers
	}
	if prev.good != nil {
		// published-at defaults to when the key was first seen.
		seen := make(map[string]time.Time)
		for _, k := range prev.good.ring.States(now) {
			seen[k.KID] = k.PublishedAt
		}
		for i := range entries {
			if at, ok := seen[entries[i].Key.ID]; ok && entries[i].PublishedAt.IsZero() {
				entries[i].PublishedAt = at
			}
		}
	}
	ring, err := keys.NewSecretKeyring(entries, w.o.Lifecycle, now)
	if err != nil {
		if errors.Is(err, keys.ErrNoActiveKey) && len(entries) > 0 {
			// Only time can cure this one: retry when the first key is due.
			w.retryAt = slices.MinFunc(entries, func(a, b keys.Entry) int { return a.ActivateAt.Compare(b.ActivateAt) }).ActivateAt
		}
		w.refuse(prev, s.ResourceVersion, err)
		return
	}

	// Metrics and logs first, the swap last: whoever sees the new keyring
	// or status also finds them.
	w.metrics.reloads.WithLabelValues("ok").Inc()
	w.metrics.lastOK.Set(1)
	w.metrics.lastSuccess.Set(float64(now.UnixMilli()) / 1e3)
	signer := ring.Signer(now)
	w.loggedSigner, w.loggedDegr = signer.ID, ring.Degraded(now)
	w.log.Info("keyring loaded", "resourceVersion", s.ResourceVersion, "keys", describeKeys(ring.States(now)),
		"signer", signer.ID, "degraded", w.loggedDegr)
	if warning != "" {
		w.log.Warn("key Secret has leftover annotations; the keys they name are revoked", "resourceVersion", s.ResourceVersion, "problems", warning)
	}
	w.o.Holder.Store(ring)
	w.snap.Store(&snapshot{good: &loaded{ring: ring, at: now, rv: s.ResourceVersion}, warning: warning})
}

// refuse records that the Secret version rv cannot be used. w.mu is held.
func (w *Watcher) refuse(prev *snapshot, rv string, err error) {
	problems := problemList(err)
	next := *prev
	next.problem, next.warning, next.apiErr = strings.Join(problems, "; "), "", ""
	w.metrics.reloads.WithLabelValues("error").Inc()
	w.metrics.lastOK.Set(0)
	if prev.good != nil {
		w.log.Error("key Secret refused; serving the last good keyring", "resourceVersion", rv, "problems", problems,
			"servingResourceVersion", prev.good.rv, "servingSince", prev.good.at)
	} else {
		w.log.Error("key Secret refused; not ready until it is fixed", "resourceVersion", rv, "problems", problems)
	}
	w.snap.Store(&next)
}

// deleted handles a deleted Secret: the last good keyring stays.
func (w *Watcher) deleted(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if s, ok := obj.(*corev1.Secret); !ok || s.Namespace != w.o.Namespace || s.Name != w.o.Name {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lastRV, w.retryAt = "", time.Time{}
	prev := w.snap.Load()
	next := *prev
	next.problem, next.warning = "deleted", ""
	w.metrics.reloads.WithLabelValues("error").Inc()
	w.metrics.lastOK.Set(0)
	if prev.good != nil {
		w.log.Error("key Secret deleted; serving the last good keyring until it is recreated", "servingResourceVersion", prev.good.rv)
	} else {
		w.log.Error("key Secret deleted; not ready until it is recreated")
	}
	w.snap.Store(&next)
}

// initialListDone runs once the handler has seen the first list: without
// an object by then, the Secret does not exist (or is not visible to us).
func (w *Watcher) initialListDone() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, exists, _ := w.informer.GetStore().GetByKey(w.ref); exists {
		return
	}
	prev := w.snap.Load()
	if prev.good != nil {
		return
	}
	next := *prev
	next.problem, next.apiErr = "not found", ""
	w.log.Warn("key Secret not found; not ready until it is created")
	w.snap.Store(&next)
}

// apiError is the informer's watch error handler: it records the error for
// Status while not ready and logs it through our logger; client-go then
// retries with backoff. It replaces cache.DefaultWatchErrorHandler, which
// only logs the same error again through klog.
func (w *Watcher) apiError(_ context.Context, _ *cache.Reflector, err error) {
	// A watch that ends normally (io.EOF) or whose resource version expired
	// (410 Gone: the reflector relists) is routine, not a problem.
	if !errors.Is(err, io.EOF) && !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
		msg := err.Error()
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		w.mu.Lock()
		prev := w.snap.Load()
		if prev.good != nil {
			w.log.Warn("Kubernetes API error; serving the last good keyring while client-go retries", "error", msg)
		} else {
			w.log.Warn("Kubernetes API error while waiting for the key Secret; client-go retries", "error", msg)
		}
		next := *prev
		next.apiErr = msg
		w.snap.Store(&next)
		w.mu.Unlock()
	}
}

// tick re-evaluates what time alone changes: it retries a Secret refused
// for want of an active key once one is due, and logs a change of signer
// or of degraded state (not on the hot path: Signer stays a lookup).
func (w *Watcher) tick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.o.Now()
	if !w.retryAt.IsZero() && !now.Before(w.retryAt) {
		if obj, exists, _ := w.informer.GetStore().GetByKey(w.ref); exists {
			if s, ok := obj.(*corev1.Secret); ok {
				w.load(s)
			}
		}
	}
	s := w.snap.Load()
	if s.good == nil {
		return
	}
	r := s.good.ring
	if signer := r.Signer(now); signer.ID != w.loggedSigner {
		w.log.Info("signing key changed", "from", w.loggedSigner, "to", signer.ID, "keys", describeKeys(r.States(now)))
		w.loggedSigner = signer.ID
	}
	if d := r.Degraded(now); d != w.loggedDegr {
		if d != "" {
			w.log.Warn("keyring degraded", "reason", d)
		} else {
			w.log.Info("keyring no longer degraded")
		}
		w.loggedDegr = d
	}
}

// revokeLeftovers reports whether every problem in err is an annotation
// of a key that the last good keyring holds and the Secret no longer does
// (a revoke that left annotations behind), and describes them.
func revokeLeftovers(err error, good *loaded, now time.Time) (string, bool) {
	if good == nil {
		return "", false
	}
	held := good.ring.States(now) // every key of the ring, whatever its state
	var names []string
	for _, e := range flatten(err) {
		var ee *keys.EntryError
		if !errors.As(e, &ee) || !errors.Is(ee, keys.ErrOrphanAnnotation) || !slices.ContainsFunc(held, func(k keys.KeyStatus) bool { return k.Name == ee.Name }) {
			return "", false
		}
		names = append(names, ee.Error())
	}
	return strings.Join(names, "; "), len(names) > 0
}

// flatten lists the errors joined in err, or err alone.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		if _, entry := err.(*keys.EntryError); !entry {
			return j.Unwrap()
		}
	}
	return []error{err}
}

// problemList renders err as one line per problem, without the package
// prefix.
func problemList(err error) []string {
	var out []string
	for _, e := range flatten(err) {
		out = append(out, strings.TrimPrefix(e.Error(), "keys: "))
	}
	return out
}

// describeKeys renders states for a log line: names, kids (the RFC 7638
// thumbprint is the key's fingerprint), algorithms and states; never key
// material.
func describeKeys(states []keys.KeyStatus) []string {
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = fmt.Sprintf("%s kid=%s alg=%s state=%s", s.Name, s.KID, s.Alg, s.State)
		if s.Signing {
			out[i] += " signing"
		}
	}
	return out
}
