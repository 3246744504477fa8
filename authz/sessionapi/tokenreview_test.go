package sessionapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/silentauth/silentauth/internal/testenv/fakeclock"
	"github.com/silentauth/silentauth/internal/testenv/kubetest"
)

const audience = "silentauth"

// newClock returns an injected clock the tests move by hand.
func newClock() *fakeclock.Clock {
	return fakeclock.New(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
}

// saToken returns a JWT-shaped token; only its payload (exp) is ever read
// locally, the fake API server decides the rest.
func saToken(id string, exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	payload := fmt.Sprintf(`{"sub":%q}`, id)
	if !exp.IsZero() {
		payload = fmt.Sprintf(`{"sub":%q,"exp":%d}`, id, exp.Unix())
	}
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(payload)) + "." + enc([]byte("signature-"+id))
}

// reviewer is a fake API server answering TokenReviews from a table of
// token → status, counting the calls.
type reviewer struct {
	calls   atomic.Int64
	mu      sync.Mutex
	answers map[string]authnv1.TokenReviewStatus
	fail    error // returned for every review when set
	seen    []authnv1.TokenReviewSpec
	gate    chan struct{} // when set, each review waits for it
}

func (rv *reviewer) client() Reviewer {
	c := fake.NewClientset()
	c.PrependReactor("create", "tokenreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		rv.calls.Add(1)
		if rv.gate != nil {
			<-rv.gate
		}
		tr := a.(k8stesting.CreateAction).GetObject().(*authnv1.TokenReview)
		rv.mu.Lock()
		defer rv.mu.Unlock()
		rv.seen = append(rv.seen, tr.Spec)
		if rv.fail != nil {
			return true, nil, rv.fail
		}
		out := tr.DeepCopy()
		out.Status = rv.answers[tr.Spec.Token] // zero: not authenticated
		return true, out, nil
	})
	return viaFake(c)
}

// viaFake sends TokenReviews to the fake clientset c.
func viaFake(c *fake.Clientset) Reviewer {
	return func(ctx context.Context, tr *authnv1.TokenReview) (*authnv1.TokenReview, error) {
		return c.AuthenticationV1().TokenReviews().Create(ctx, tr, metav1.CreateOptions{})
	}
}

func authenticated(user string, audiences ...string) authnv1.TokenReviewStatus {
	return authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: user}, Audiences: audiences}
}

func authenticate(a Authenticator, header string) (string, error) {
	r := httptest.NewRequest("POST", "/v1/sessions", nil)
	if header != "" {
		r.Header.Set("Authorization", header)
	}
	return a.Authenticate(r)
}

func TestTokenReviewDecisions(t *testing.T) {
	var (
		login    = saToken("login", time.Time{})
		other    = saToken("other", time.Time{})
		anon     = saToken("anon", time.Time{})
		wrongAud = saToken("wrong-aud", time.Time{})
		noAud    = saToken("no-aud", time.Time{})
		user     = saToken("user", time.Time{})
	)
	rv := &reviewer{answers: map[string]authnv1.TokenReviewStatus{
		login:    authenticated("system:serviceaccount:shop:login", audience),
		other:    authenticated("system:serviceaccount:shop:other", audience),
		anon:     {Authenticated: false, Error: "token has expired"},
		wrongAud: authenticated("system:serviceaccount:shop:login", "https://kubernetes.default.svc"),
		noAud:    authenticated("system:serviceaccount:shop:login"),
		user:     authenticated("alice", audience),
	}}
	tr := NewTokenReview(rv.client(), audience, []string{"shop/login", "ops/admin"}, newClock().Now)

	tests := []struct {
		name, header, caller string
		want                 error
		calls                int64
	}{
		{"allowed service account", "Bearer " + login, "system:serviceaccount:shop:login", nil, 1},
		{"lower-case scheme", "bearer " + login, "system:serviceaccount:shop:login", nil, 0}, // cached
		{"service account not in the list", "Bearer " + other, "", ErrUnauthenticated, 1},
		{"not authenticated", "Bearer " + anon, "", ErrUnauthenticated, 1},
		{"audience of the API server", "Bearer " + wrongAud, "", ErrUnauthenticated, 1},
		{"no audience in the status", "Bearer " + noAud, "", ErrUnauthenticated, 1},
		{"user, not a service account", "Bearer " + user, "", ErrUnauthenticated, 1},
		{"no header", "", "", ErrUnauthenticated, 0},
		{"basic scheme", "Basic " + login, "", ErrUnauthenticated, 0},
		{"not a JWT: never sent", "Bearer shared-secret", "", ErrUnauthenticated, 0},
		{"oversized: never sent", "Bearer " + strings.Repeat("a.", maxSATokenBytes), "", ErrUnauthenticated, 0},
	}
	for _, tc := range tests {
		before := rv.calls.Load()
		caller, err := authenticate(tr, tc.header)
		if caller != tc.caller || !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: got (%q, %v), want (%q, %v)", tc.name, caller, err, tc.caller, tc.want)
		}
		if errors.Is(err, ErrReviewUnavailable) {
			t.Errorf("%s: a refusal reported as unavailable: %v", tc.name, err)
		}
		if n := rv.calls.Load() - before; n != tc.calls {
			t.Errorf("%s: %d TokenReview calls, want %d", tc.name, n, tc.calls)
		}
	}
	for _, spec := range rv.seen {
		if len(spec.Audiences) != 1 || spec.Audiences[0] != audience {
			t.Errorf("review sent audiences %q, want [%q]", spec.Audiences, audience)
		}
	}
}

func TestTokenReviewAPIErrorIsUnavailable(t *testing.T) {
	tok := saToken("login", time.Time{})
	for _, fail := range []error{
		apierrors.NewForbidden(schema.GroupResource{Group: "authentication.k8s.io", Resource: "tokenreviews"}, "", errors.New("no RBAC")),
		apierrors.NewInternalError(errors.New("etcd down")),
		apierrors.NewTimeoutError("slow", 1),
		errors.New("dial tcp 10.0.0.1:443: connect: connection refused"),
	} {
		rv := &reviewer{fail: fail}
		tr := NewTokenReview(rv.client(), audience, []string{"shop/login"}, newClock().Now)
		for range 2 {
			_, err := authenticate(tr, "Bearer "+tok)
			if !errors.Is(err, ErrReviewUnavailable) || errors.Is(err, ErrUnauthenticated) {
				t.Errorf("%v: got %v, want ErrReviewUnavailable", fail, err)
			}
		}
		if n := rv.calls.Load(); n != 2 {
			t.Errorf("%v: %d calls, want 2 (failures are not cached)", fail, n)
		}
	}
}

func TestTokenReviewCache(t *testing.T) {
	c := newClock()
	long := saToken("long", c.Now().Add(time.Hour))
	short := saToken("short", c.Now().Add(80*time.Second)) // 20 s after it is first seen below
	noExp := saToken("no-exp", time.Time{})
	refused := saToken("refused", time.Time{})
	sa := "system:serviceaccount:shop:login"
	rv := &reviewer{answers: map[string]authnv1.TokenReviewStatus{
		long: authenticated(sa, audience), short: authenticated(sa, audience), noExp: authenticated(sa, audience),
		refused: {Error: "invalid bearer token"},
	}}
	tr := NewTokenReview(rv.client(), audience, []string{"shop/login"}, c.Now)

	steps := []struct {
		advance time.Duration
		token   string
		ok      bool
		calls   int64 // total so far
	}{
		{0, long, true, 1},
		{59 * time.Second, long, true, 1}, // positive TTL 60 s
		{1 * time.Second, long, true, 2},  // expired from the cache: asked again
		{0, short, true, 3},
		{19 * time.Second, short, true, 3},
		{1 * time.Second, short, true, 4}, // the token's own exp (20 s) cut the 60 s
		{0, noExp, true, 5},
		{59 * time.Second, noExp, true, 5},
		{0, refused, false, 6},
		{4 * time.Second, refused, false, 6}, // negative TTL 5 s
		{1 * time.Second, refused, false, 7},
	}
	for i, s := range steps {
		c.Advance(s.advance)
		_, err := authenticate(tr, "Bearer "+s.token)
		if (err == nil) != s.ok {
			t.Errorf("step %d: err = %v, want ok=%v", i, err, s.ok)
		}
		if n := rv.calls.Load(); n != s.calls {
			t.Errorf("step %d: %d calls in all, want %d", i, n, s.calls)
		}
	}
}

func TestTokenReviewConcurrentCallsShareOneReview(t *testing.T) {
	tok := saToken("login", time.Time{})
	rv := &reviewer{
		answers: map[string]authnv1.TokenReviewStatus{tok: authenticated("system:serviceaccount:shop:login", audience)},
		gate:    make(chan struct{}),
	}
	tr := NewTokenReview(rv.client(), audience, []string{"shop/login"}, newClock().Now)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			if _, err := authenticate(tr, "Bearer "+tok); err != nil {
				errs <- err
			}
		})
	}
	close(rv.gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := rv.calls.Load(); n != 1 {
		t.Errorf("%d TokenReview calls for 50 concurrent requests, want 1", n)
	}
}

func TestTokenReviewCacheIsBounded(t *testing.T) {
	c := newClock()
	tr := NewTokenReview(viaFake(fake.NewClientset()), audience, nil, c.Now)
	for i := range maxCacheEntries + 100 {
		var sum [32]byte
		copy(sum[:], fmt.Sprintf("%032d", i))
		tr.store(sum, decision{caller: "x", expires: c.Now().Add(time.Minute)})
	}
	if n := len(tr.cache); n > maxCacheEntries {
		t.Errorf("cache holds %d decisions, bound is %d", n, maxCacheEntries)
	}
}

func TestTokenNeverInErrors(t *testing.T) {
	tok := saToken("secret-token", time.Time{})
	rv := &reviewer{answers: map[string]authnv1.TokenReviewStatus{
		tok: {Error: "cannot validate " + tok}, // an API server quoting it
	}}
	tr := NewTokenReview(rv.client(), audience, []string{"shop/login"}, newClock().Now)
	_, err := authenticate(tr, "Bearer "+tok)
	if err == nil || strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), strings.Split(tok, ".")[2]) {
		t.Errorf("error quotes the token: %v", err)
	}
	if !strings.Contains(err.Error(), "sha256:") {
		t.Errorf("error has no fingerprint: %v", err)
	}

	rv.fail = errors.New("connection refused")
	tr = NewTokenReview(rv.client(), audience, nil, newClock().Now)
	if _, err := authenticate(tr, "Bearer "+tok); err == nil || strings.Contains(err.Error(), tok) {
		t.Errorf("error quotes the token: %v", err)
	}
}

func TestAnyOf(t *testing.T) {
	sa := saToken("login", time.Time{})
	up := &reviewer{answers: map[string]authnv1.TokenReviewStatus{sa: authenticated("system:serviceaccount:shop:login", audience)}}
	down := &reviewer{fail: apierrors.NewServiceUnavailable("apiserver restarting")}
	both := func(rv *reviewer) Authenticator {
		return AnyOf(NewBearer(secret), NewTokenReview(rv.client(), audience, []string{"shop/login"}, newClock().Now))
	}
	tests := []struct {
		name   string
		a      Authenticator
		header string
		caller string
		want   error
	}{
		{"bearer secret", both(up), "Bearer " + secret, "bearer", nil},
		{"bearer secret, API server down", both(down), "Bearer " + secret, "bearer", nil},
		{"service account", both(up), "Bearer " + sa, "system:serviceaccount:shop:login", nil},
		{"service account, API server down", both(down), "Bearer " + sa, "", ErrReviewUnavailable},
		{"wrong secret", both(up), "Bearer nope", "", ErrUnauthenticated},
		{"wrong secret, API server down", both(down), "Bearer nope", "", ErrUnauthenticated}, // not a JWT: never reviewed
		{"no credential", both(down), "", "", ErrUnauthenticated},
		{"nothing to try", AnyOf(), "Bearer " + secret, "", ErrUnauthenticated},
	}
	for _, tc := range tests {
		caller, err := authenticate(tc.a, tc.header)
		if caller != tc.caller || !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: got (%q, %v), want (%q, %v)", tc.name, caller, err, tc.caller, tc.want)
		}
		if tc.want == ErrUnauthenticated && errors.Is(err, ErrReviewUnavailable) {
			t.Errorf("%s: refusal reported as unavailable: %v", tc.name, err)
		}
	}
}

func TestExpiry(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	tests := []struct {
		token string
		exp   int64 // 0: none
	}{
		{saToken("a", time.Unix(1795000000, 0)), 1795000000},
		{saToken("a", time.Time{}), 0},
		{"a." + enc([]byte(`{"exp":1795000000.5}`)) + ".c", 1795000000},
		{"a." + enc([]byte(`{"exp":"soon"}`)) + ".c", 0},
		{"a." + enc([]byte(`{"exp":-1}`)) + ".c", 0},
		{"a." + enc([]byte(`{"exp":1e300}`)) + ".c", 0},
		{"a.%%%.c", 0},
		{"a." + enc([]byte(`not json`)) + ".c", 0},
		{"a.b", 0},
	}
	for _, tc := range tests {
		got, ok := expiry(tc.token)
		if ok != (tc.exp != 0) || ok && got.Unix() != tc.exp {
			t.Errorf("expiry(%q) = %v, %v; want %d", tc.token, got, ok, tc.exp)
		}
	}
}

// Against a real kube-apiserver: silentauth's ServiceAccount, bound to
// system:auth-delegator and to nothing else, reviews projected tokens.
func TestTokenReviewAgainstAPIServer(t *testing.T) {
	env := kubetest.Start(t)
	ctx := t.Context()
	admin := clientFor(t, env.AdminConfig())

	// silentauth's own identity: one ClusterRoleBinding, nothing else.
	reviewer := reviewerFor(t, env.ServiceAccountConfig(t, "silentauth", "silentauth"))
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "silentauth:auth-delegator"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "silentauth", Name: "silentauth"}},
	}
	if _, err := admin.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var (
		login    = env.ServiceAccountToken(t, "shop", "login", audience)
		other    = env.ServiceAccountToken(t, "shop", "other", audience)
		wrongAud = env.ServiceAccountToken(t, "shop", "login", "elsewhere")
		apiAud   = env.ServiceAccountToken(t, "shop", "login") // for the API server itself
	)
	tr := NewTokenReview(reviewer, audience, []string{"shop/login"}, nil)

	// RBAC reaches the authorizer through an informer: until then the
	// review is forbidden, which is "unavailable", never "unauthenticated".
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := authenticate(tr, "Bearer "+login)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrReviewUnavailable) || time.Now().After(deadline) {
			t.Fatalf("allowed service account: %v", err)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}

	tests := []struct {
		name, token, caller string
		want                error
	}{
		{"allowed service account", login, "system:serviceaccount:shop:login", nil},
		{"service account not in the list", other, "", ErrUnauthenticated},
		{"token for another audience", wrongAud, "", ErrUnauthenticated},
		{"token for the API server", apiAud, "", ErrUnauthenticated},
		{"forged token", strings.Join(strings.Split(login, ".")[:2], ".") + ".c2lnbmF0dXJl", "", ErrUnauthenticated},
	}
	for _, tc := range tests {
		// A fresh authenticator each time: the API server decides, not the cache.
		tr := NewTokenReview(reviewer, audience, []string{"shop/login"}, nil)
		caller, err := authenticate(tr, "Bearer "+tc.token)
		if caller != tc.caller || !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: got (%q, %v), want (%q, %v)", tc.name, caller, err, tc.caller, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), tc.token) {
			t.Errorf("%s: the error quotes the token", tc.name)
		}
	}

	// Without system:auth-delegator the review is refused by RBAC: 503, not 401.
	bystander := NewTokenReview(reviewerFor(t, env.ServiceAccountConfig(t, "silentauth", "bystander")), audience, []string{"shop/login"}, nil)
	if _, err := authenticate(bystander, "Bearer "+login); !errors.Is(err, ErrReviewUnavailable) || errors.Is(err, ErrUnauthenticated) {
		t.Errorf("review without RBAC: %v, want ErrReviewUnavailable", err)
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

// reviewerFor reviews tokens as cfg's user, through NewReviewer as
// silentauth does.
func reviewerFor(t *testing.T, cfg *rest.Config) Reviewer {
	t.Helper()
	r, err := NewReviewer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
