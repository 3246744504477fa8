package sessionapi

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	authnv1 "k8s.io/api/authentication/v1"
	"k8s.io/client-go/rest"

	"github.com/silentauth/silentauth/internal/kubeclient"
)

// ErrReviewUnavailable is returned when the API server could not review a
// token (network, timeout, 5xx, missing RBAC). It is not a verdict on the
// caller: the handler answers 503 so the caller retries, never 401.
var ErrReviewUnavailable = errors.New("sessionapi: token review unavailable")

// Limits of the TokenReview authenticator.
const (
	// positiveTTL is how long an admitted token is trusted without asking
	// again, never past the token's own exp. It bounds how late a deleted
	// ServiceAccount or a removed allow-list entry takes effect.
	positiveTTL = 60 * time.Second
	// negativeTTL is how long a refused token stays refused without asking
	// again, so a misconfigured client cannot flood the API server.
	negativeTTL = 5 * time.Second
	// maxCacheEntries bounds the decision cache.
	maxCacheEntries = 4096
	// maxSATokenBytes bounds what is hashed and sent to the API server. A
	// projected token is about 1 KiB.
	maxSATokenBytes = 8192
	// reviewTimeout bounds one TokenReview call.
	reviewTimeout = 5 * time.Second
)

// serviceAccountPrefix starts the username the API server gives a
// ServiceAccount: system:serviceaccount:<namespace>:<name>.
const serviceAccountPrefix = "system:serviceaccount:"

// TokenReview authenticates callers by their projected ServiceAccount token
// (audience-bound) through the TokenReview API, and admits only the listed
// ServiceAccounts.
//
// The caller mounts a projected token whose audience is the one given to
// NewTokenReview and sends it as "Authorization: Bearer <token>". Binding
// the audience means a token minted for the API server or for another
// service is refused here, and ours is useless elsewhere.
//
// TokenReview is a cluster-scoped API: silentauth's ServiceAccount needs a
// ClusterRoleBinding to the built-in ClusterRole system:auth-delegator
// (create tokenreviews and subjectaccessreviews) and nothing else
// cluster-wide.
//
// Decisions are cached by the SHA-256 of the token, never the token: an
// admitted token for 60 s (and never past its own exp), a refused one for
// 5 s; the cache is bounded. Concurrent calls with one token share one
// review. An API server failure is not cached and is reported as
// ErrReviewUnavailable. Errors name the token only by a fingerprint.
//
// It is safe for concurrent use.
type TokenReview struct {
	reviewer Reviewer
	audience string
	allowed  map[string]bool // usernames: system:serviceaccount:ns:name
	now      func() time.Time

	flight singleflight.Group

	mu    sync.Mutex
	cache map[[sha256.Size]byte]decision
}

// decision is a cached review outcome: the caller, or the refusal.
type decision struct {
	caller  string
	err     error // ErrUnauthenticated-wrapped, or nil
	expires time.Time
}

var _ Authenticator = (*TokenReview)(nil)

// Reviewer creates a TokenReview on the API server and returns it with the
// server's status: NewReviewer.
type Reviewer func(ctx context.Context, review *authnv1.TokenReview) (*authnv1.TokenReview, error)

// NewReviewer returns a Reviewer on a client-go REST client whose scheme
// holds only TokenReviews. A client that knows one kind keeps the typed
// clients and types of every other API group out of the binary
// (kubernetes.NewForConfig links all of them).
func NewReviewer(cfg *rest.Config) (Reviewer, error) {
	client, err := kubeclient.For(cfg, authnv1.SchemeGroupVersion, &authnv1.TokenReview{})
	if err != nil {
		return nil, fmt.Errorf("sessionapi: TokenReview client: %w", err)
	}
	return func(ctx context.Context, review *authnv1.TokenReview) (*authnv1.TokenReview, error) {
		out := &authnv1.TokenReview{}
		err := client.Post().Resource("tokenreviews").Body(review).Do(ctx).Into(out)
		return out, err
	}, nil
}

// NewTokenReview returns an Authenticator that admits the ServiceAccounts
// in allowed ("namespace/name") presenting a token for audience. The
// configuration checks the entries (DNS-1123 names); one that is not
// "namespace/name" matches nothing. now defaults to time.Now.
func NewTokenReview(review Reviewer, audience string, allowed []string, now func() time.Time) *TokenReview {
	if now == nil {
		now = time.Now
	}
	t := &TokenReview{
		reviewer: review,
		audience: audience,
		allowed:  make(map[string]bool, len(allowed)),
		now:      now,
		cache:    make(map[[sha256.Size]byte]decision),
	}
	for _, a := range allowed {
		if ns, name, err := splitServiceAccount(a); err == nil {
			t.allowed[serviceAccountPrefix+ns+":"+name] = true
		}
	}
	return t
}

func splitServiceAccount(s string) (ns, name string, err error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return "", "", errors.New(`must be "namespace/name"`)
	}
	return ns, name, nil
}

// Authenticate implements Authenticator. The caller is the ServiceAccount's
// username, "system:serviceaccount:<namespace>:<name>".
func (t *TokenReview) Authenticate(r *http.Request) (string, error) {
	raw, ok := bearerToken(r)
	if !ok {
		return "", ErrUnauthenticated
	}
	// A ServiceAccount token is a JWT. Anything else (such as the shared
	// secret of a Bearer authenticator tried first by AnyOf) is refused
	// here and never sent to the API server.
	if len(raw) > maxSATokenBytes || strings.Count(raw, ".") != 2 {
		return "", ErrUnauthenticated
	}
	sum := sha256.Sum256([]byte(raw))
	if d, ok := t.cached(sum); ok {
		return d.caller, d.err
	}
	v, err, _ := t.flight.Do(string(sum[:]), func() (any, error) {
		// Shared by every waiting request: one caller going away must
		// not fail the others.
		if d, ok := t.cached(sum); ok {
			return d, nil // decided by a flight that ended since we looked
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), reviewTimeout)
		defer cancel()
		d, err := t.review(ctx, raw, sum)
		if err != nil {
			return nil, err
		}
		t.store(sum, d)
		return d, nil
	})
	if err != nil {
		return "", err
	}
	d := v.(decision)
	return d.caller, d.err
}

// review asks the API server about raw and decides. Only an API failure
// is returned as an error; refusals are decisions.
func (t *TokenReview) review(ctx context.Context, raw string, sum [sha256.Size]byte) (decision, error) {
	fp := fingerprint(sum)
	tr, err := t.reviewer(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: raw, Audiences: []string{t.audience}},
	})
	if err != nil {
		// client-go errors do not quote the request body.
		return decision{}, fmt.Errorf("%w: token %s: %w", ErrReviewUnavailable, fp, err)
	}
	now := t.now()
	refuse := func(format string, args ...any) decision {
		msg := fmt.Sprintf(format, args...)
		return decision{err: fmt.Errorf("%w: service account token %s: %s", ErrUnauthenticated, fp, msg), expires: now.Add(negativeTTL)}
	}
	st := tr.Status
	switch user := st.User.Username; {
	case !st.Authenticated:
		return refuse("not authenticated by the API server: %s", redact(st.Error, raw)), nil
	case !slices.Contains(st.Audiences, t.audience):
		// The API server intersects spec.audiences with the token's; an
		// empty or different answer means the token is not for us.
		return refuse("not issued for audience %q", t.audience), nil
	case !strings.HasPrefix(user, serviceAccountPrefix):
		return refuse("user %q is not a service account", bounded(user)), nil
	case !t.allowed[user]:
		return refuse("%s is not allowed to call the session API", bounded(user)), nil
	default:
		expires := now.Add(positiveTTL)
		if exp, ok := expiry(raw); ok && exp.Before(expires) {
			expires = exp
		}
		return decision{caller: user, expires: expires}, nil
	}
}

// cached returns a live decision for sum.
func (t *TokenReview) cached(sum [sha256.Size]byte) (decision, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d, ok := t.cache[sum]
	if !ok {
		return decision{}, false
	}
	if !t.now().Before(d.expires) {
		delete(t.cache, sum)
		return decision{}, false
	}
	return d, true
}

// store caches d. When the cache is full, expired decisions go first and
// then arbitrary ones: the bound matters, the choice does not, since a
// dropped decision only costs one more review.
func (t *TokenReview) store(sum [sha256.Size]byte, d decision) {
	now := t.now()
	if !now.Before(d.expires) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.cache) >= maxCacheEntries {
		for k, old := range t.cache {
			if !now.Before(old.expires) {
				delete(t.cache, k)
			}
		}
		for k := range t.cache {
			if len(t.cache) < maxCacheEntries {
				break
			}
			delete(t.cache, k)
		}
	}
	t.cache[sum] = d
}

// expiry reads the exp claim of a JWT without verifying it: the API
// server has just verified the token, we only want to stop trusting the
// cached decision when the token itself expires.
func expiry(raw string) (time.Time, bool) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == nil {
		return time.Time{}, false
	}
	exp, err := claims.Exp.Float64()
	if err != nil || exp <= 0 || exp > 1<<40 {
		return time.Time{}, false
	}
	return time.Unix(int64(exp), 0), true
}

// bearerToken returns the credential of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", false
	}
	raw := strings.TrimSpace(h[7:])
	return raw, raw != ""
}

// fingerprint names a token in errors and logs without revealing it.
func fingerprint(sum [sha256.Size]byte) string { return "sha256:" + hex.EncodeToString(sum[:6]) }

// redact bounds a message from the API server and removes the token from
// it, should it ever be quoted.
func redact(msg, raw string) string {
	if msg == "" {
		return "no reason given"
	}
	return bounded(strings.ReplaceAll(msg, raw, "[token]"))
}

func bounded(s string) string {
	const limit = 200
	if len(s) > limit {
		return s[:limit] + "…"
	}
	return s
}

// AnyOf accepts a request any of the authenticators accepts (bearer secret
// outside Kubernetes, ServiceAccounts inside), tried in order.
//
// When none accepts and one of them could not decide (an error that is not
// ErrUnauthenticated, such as ErrReviewUnavailable), that error is
// returned, so the handler answers 503 rather than telling a possibly valid
// caller that it is unauthenticated. Otherwise the refusals are joined,
// each said once.
func AnyOf(a ...Authenticator) Authenticator { return anyOf(a) }

type anyOf []Authenticator

func (as anyOf) Authenticate(r *http.Request) (string, error) {
	var (
		undecided error
		refusals  []error
	)
	for _, a := range as {
		caller, err := a.Authenticate(r)
		switch {
		case err == nil:
			return caller, nil
		case !errors.Is(err, ErrUnauthenticated):
			if undecided == nil {
				undecided = err
			}
		case err != ErrUnauthenticated: // a refusal with details
			refusals = append(refusals, err)
		}
	}
	switch {
	case undecided != nil:
		return "", undecided
	case len(refusals) == 0:
		return "", ErrUnauthenticated
	default:
		return "", errors.Join(refusals...)
	}
}
