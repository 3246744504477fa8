package redisstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/authz/store/redisstore"
	"github.com/silentauth/silentauth/internal/testenv/redistest"
)

// Short timeouts, so a fault shows quickly: every call gives up within
// (1+1 retries) × (200ms + 200ms) plus backoff.
func impatient(addr string) redisstore.Options {
	return redisstore.Options{
		Mode: redisstore.Standalone, Addrs: []string{addr},
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond,
		MaxRetries: 1,
	}
}

// giveUpWithin is how long an impatient store may take to report a fault,
// with room for a loaded machine.
const giveUpWithin = 2 * time.Second

// isSentinel reports whether err matches a store sentinel: an
// infrastructure fault must not (the caller answers 503 and keeps cookies).
func isSentinel(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrExists)
}

// ops are the store's calls on family f, each to fail alike when Redis is
// unreachable.
func ops(st *redisstore.Store, f *store.Family) []struct {
	name string
	call func(context.Context) error
} {
	next := f.Clone()
	next.Version++
	return []struct {
		name string
		call func(context.Context) error
	}{
		{"Get", func(ctx context.Context) error { _, err := st.Get(ctx, f.ID); return err }},
		{"Swap", func(ctx context.Context) error { return st.Swap(ctx, f.Version, next) }},
		{"Create", func(ctx context.Context) error { return st.Create(ctx, family("other", "bob", time.Now(), time.Hour)) }},
		{"Subject", func(ctx context.Context) error { _, err := st.Subject(ctx, f.Subject); return err }},
		{"Ping", func(ctx context.Context) error { return st.Ping(ctx) }},
	}
}

// mustFailFast checks that every call fails quickly with an error that is
// no store sentinel.
func mustFailFast(t *testing.T, st *redisstore.Store, f *store.Family, why string) {
	t.Helper()
	for _, op := range ops(st, f) {
		began := time.Now()
		err := op.call(t.Context())
		took := time.Since(began)
		switch {
		case err == nil:
			t.Errorf("%s: %s succeeded", why, op.name)
		case isSentinel(err):
			t.Errorf("%s: %s: %v matches a store sentinel", why, op.name, err)
		case took > giveUpWithin:
			t.Errorf("%s: %s took %v to fail, want under %v", why, op.name, took, giveUpWithin)
		}
		t.Logf("%s: %s failed in %v: %v", why, op.name, took.Round(time.Millisecond), err)
	}
}

// A crashed Redis is an infrastructure fault, reported within the
// timeouts; once it is back (empty: nothing was persisted), old families
// are unknown and new ones work, on the same Store (the client reconnects).
func TestServerDownAndRestarted(t *testing.T) {
	srv := redistest.Start(t)
	st := open(t, impatient(srv.Addr()))
	ctx := t.Context()
	old := family("old", "alice", time.Now(), time.Hour)
	if err := st.Create(ctx, old); err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	mustFailFast(t, st, old, "down")

	srv.Restart()
	if _, err := st.Get(ctx, "old"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of a family lost with the restart: %v, want ErrNotFound", err)
	}
	next := old.Clone()
	next.Version = 2
	if err := st.Swap(ctx, 1, next); !errors.Is(err, store.ErrNotFound) { // the script cache is empty too: EVAL fallback
		t.Fatalf("Swap of a family lost with the restart: %v, want ErrNotFound", err)
	}
	m := session.New(st, session.Lifetimes{}, nil)
	s, err := m.Start(ctx, "alice", "", nil)
	if err != nil {
		t.Fatalf("Start after the restart: %v", err)
	}
	if _, err := m.Refresh(ctx, s.RefreshToken, ""); err != nil {
		t.Fatalf("Refresh after the restart: %v", err)
	}
}

// A Redis restarted under the client's feet (no downtime seen) costs no
// failed call: dead pooled connections are noticed and replaced.
func TestRestartUnderOpenConnections(t *testing.T) {
	srv := redistest.Start(t)
	st := open(t, impatient(srv.Addr()))
	ctx := t.Context()
	var wg sync.WaitGroup
	for i := range 8 { // several pooled connections
		wg.Go(func() { _ = st.Create(ctx, family(fmt.Sprint("f", i), "alice", time.Now(), time.Hour)) })
	}
	wg.Wait()
	srv.Restart()
	for i := range 8 {
		if _, err := st.Get(ctx, fmt.Sprint("f", i)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get %d after the restart: %v, want ErrNotFound", i, err)
		}
	}
}

// A Redis slower than ReadTimeout reads as down; when it answers again, so
// does the store.
func TestSlowServer(t *testing.T) {
	srv := redistest.Start(t)
	st := open(t, impatient(srv.Addr()))
	ctx := t.Context()
	f := family("fam", "alice", time.Now(), time.Hour)
	if err := st.Create(ctx, f); err != nil {
		t.Fatal(err)
	}
	pause := 2 * giveUpWithin // longer than every call of mustFailFast together (about 1.5s)
	srv.Pause(pause)
	began := time.Now()
	mustFailFast(t, st, f, "paused")
	if time.Since(began) > pause {
		t.Fatal("the pause ended before the calls failed: lengthen it")
	}
	waitUp(t, st, pause+10*time.Second)
	if _, err := st.Get(ctx, f.ID); err != nil {
		t.Fatalf("Get after the pause: %v", err)
	}
}

// waitUp polls Ping until Redis answers, at most within.
func waitUp(t *testing.T, st *redisstore.Store, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for st.Ping(t.Context()) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Redis not answering %v later", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pauseBeforeSwap freezes Redis right before the first Swap reaches it.
type pauseBeforeSwap struct {
	store.Store
	srv  *redistest.Server
	d    time.Duration
	once sync.Once
}

func (p *pauseBeforeSwap) Swap(ctx context.Context, expected uint64, next *store.Family) error {
	p.once.Do(func() { p.srv.Pause(p.d) })
	return p.Store.Swap(ctx, expected, next)
}

// A rotation whose answer timed out may still be applied when Redis wakes
// up: the script was already in the server's socket buffer. The client keeps
// its cookie and tries again, and gets a working token: the late swap made
// its token the previous one, within grace, which opens the successor.
func TestTimedOutRotationIsNotLost(t *testing.T) {
	srv := redistest.Start(t)
	st := open(t, impatient(srv.Addr()))
	ctx := t.Context()
	plain := session.New(st, session.Lifetimes{}, nil)
	s0, err := plain.Start(ctx, "alice", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	// One rotation first, so the server knows the swap script and the
	// EVALSHA in its buffer runs (an unknown script would answer NOSCRIPT
	// and change nothing).
	s1, err := plain.Refresh(ctx, s0.RefreshToken, "")
	if err != nil {
		t.Fatal(err)
	}
	m := session.New(&pauseBeforeSwap{Store: st, srv: srv, d: giveUpWithin}, session.Lifetimes{}, nil)
	// The swap times out (an infrastructure error, never a verdict), or, on a
	// machine so loaded that go-redis's retry reaches Redis after it wakes,
	// the retry loses to the late swap and the answer is its successor.
	is, err := m.Refresh(ctx, s1.RefreshToken, "")
	for _, sentinel := range []error{session.ErrUnknown, session.ErrRevoked, session.ErrReuse, session.ErrExpired, session.ErrUnknownSecret} {
		if errors.Is(err, sentinel) || (err == nil && is.Rotated) {
			t.Fatalf("Refresh with Redis frozen: rotated %v, %v; want an infrastructure error or the late successor", is.Rotated, err)
		}
	}
	waitUp(t, st, giveUpWithin+10*time.Second)
	f, err := st.Get(ctx, s0.Family.ID)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 3 {
		t.Fatalf("after the pause: version %d, want 3 (the timed-out swap landed late)", f.Version)
	}
	s2, err := m.Refresh(ctx, s1.RefreshToken, "")
	if err != nil || s2.Rotated {
		t.Fatalf("retry with the same cookie: rotated %t, %v; want the late successor", s2.Rotated, err)
	}
	if _, err := m.Refresh(ctx, s2.RefreshToken, ""); err != nil {
		t.Fatalf("the token of the retry does not work: %v", err)
	}
}

// A dump of everything the store keeps (every key, every value) holds no
// refresh secret session.Manager handed out, in any spelling, nor their
// hashes: a family keeps only its generation and the kid of its MAC key.
func TestDumpHoldsNoSecret(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := t.Context()
	st := open(t, redisstore.Options{Mode: redisstore.Standalone, Addrs: []string{srv.Addr()}})
	m := session.New(st, session.Lifetimes{}, nil)

	var tokens []string
	for i := range 3 {
		s, err := m.Start(ctx, fmt.Sprint("user-", i), "", map[string]any{"email": fmt.Sprint("u", i, "@example.com")})
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, s.RefreshToken)
		for range 3 { // rotations store sealed successors
			if s, err = m.Refresh(ctx, s.RefreshToken, ""); err != nil {
				t.Fatal(err)
			}
			tokens = append(tokens, s.RefreshToken)
		}
		if i == 0 {
			if err := m.Logout(ctx, s.RefreshToken); err != nil {
				t.Fatal(err)
			}
		}
	}

	var dump bytes.Buffer
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		dump.WriteString(k + "\n")
		switch typ := rdb.Type(ctx, k).Val(); typ {
		case "string":
			dump.WriteString(rdb.Get(ctx, k).Val())
		case "zset":
			for _, z := range rdb.ZRangeWithScores(ctx, k, 0, -1).Val() {
				fmt.Fprintf(&dump, "%v %v\n", z.Member, z.Score)
			}
		default:
			t.Fatalf("key %s of unexpected type %s", k, typ)
		}
		dump.WriteString(rdb.Dump(ctx, k).Val()) // the serialized form too
	}

	for _, rt := range tokens {
		id, bodyB64, _ := strings.Cut(rt, ".")
		body, err := base64.RawURLEncoding.DecodeString(bodyB64)
		if err != nil || len(body) != 44 {
			t.Fatalf("not a keyed token: %v", err)
		}
		secret := body[12:] // after the generation and the key tag: the MAC
		h := sha256.Sum256(secret)
		for _, needle := range []string{string(h[:]), string(body)} {
			if bytes.Contains(dump.Bytes(), []byte(needle)) {
				t.Fatal("the dump holds a refresh secret's hash or a token body")
			}
		}
		for _, needle := range []string{rt, bodyB64, string(secret), base64.StdEncoding.EncodeToString(secret),
			base64.URLEncoding.EncodeToString(secret), base64.RawStdEncoding.EncodeToString(secret), hex.EncodeToString(secret)} {
			if bytes.Contains(dump.Bytes(), []byte(needle)) {
				t.Fatalf("the dump holds a refresh secret (spelled %q)", needle)
			}
		}
		if !bytes.Contains(dump.Bytes(), []byte(id)) {
			t.Fatalf("family %s missing from the dump: the scan is broken", id)
		}
	}
}

// After a burst of 200 concurrent refreshes, Close leaves no goroutine and
// no connection behind.
func TestNoLeakAfterBurst(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := t.Context()
	if err := rdb.Ping(ctx).Err(); err != nil { // its connection and goroutines belong to the baseline
		t.Fatal(err)
	}
	baseline := runtime.NumGoroutine()

	st, err := redisstore.New(redisstore.Options{Mode: redisstore.Standalone, Addrs: []string{srv.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	m := session.New(st, session.Lifetimes{}, nil)
	const n = 200
	var issued [n]session.Issued
	for i := range n {
		if issued[i], err = m.Start(ctx, fmt.Sprint("user-", i%20), "", nil); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if _, err := m.Refresh(ctx, issued[i].RefreshToken, ""); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Refresh: %v", err)
	}
	ours := func() int { return strings.Count(rdb.ClientList(ctx).Val(), "name=silentauth ") }
	if c := ours(); c == 0 {
		t.Fatal("CLIENT LIST shows no connection named silentauth: the check below would prove nothing")
	} else {
		t.Logf("%d connections after the burst, %d goroutines over the baseline", c, runtime.NumGoroutine()-baseline)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline || ours() > 0 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("after Close: %d goroutines (baseline %d), %d connections left\n%s",
				runtime.NumGoroutine(), baseline, ours(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
