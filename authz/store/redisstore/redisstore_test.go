package redisstore_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/authz/store/redisstore"
	"github.com/silentauth/silentauth/authz/store/storetest"
	"github.com/silentauth/silentauth/internal/testenv/redistest"
)

// newStores returns a storetest.NewStore over one Redis deployment: each
// call gets a Store of its own key prefix, so each subtest starts empty.
func newStores(mode redisstore.Mode, addrs ...string) storetest.NewStore {
	return newStoresWith(redisstore.Options{Mode: mode, Addrs: addrs})
}

// newStoresWith is newStores with o's other options (TLS, MasterName, …);
// KeyPrefix and Now are set per call.
func newStoresWith(o redisstore.Options) storetest.NewStore {
	var n atomic.Int64
	return func(t *testing.T, now func() time.Time) store.Store {
		o := o
		o.KeyPrefix, o.Now = fmt.Sprintf("t%d:", n.Add(1)), now
		return open(t, o)
	}
}

// open returns a Store of o, closed when t ends.
func open(t testing.TB, o redisstore.Options) *redisstore.Store {
	t.Helper()
	st, err := redisstore.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	newStore := newStores(redisstore.Standalone, srv.Addr())
	storetest.Run(t, newStore)
	storetest.RunSession(t, newStore)
}

func TestClusterConformance(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	newStore := newStores(redisstore.Cluster, c.Addrs()...)
	storetest.Run(t, newStore)
	storetest.RunSession(t, newStore)
}

// family returns a version-1 family living life from now.
func family(id, subject string, now time.Time, life time.Duration) *store.Family {
	return &store.Family{
		ID: id, Subject: subject, CreatedAt: now, IdleExpiresAt: now.Add(life), AbsoluteExpiresAt: now.Add(life),
		Secrets: [][]byte{make([]byte, 32)}, Version: 1,
	}
}

func tag(subject string) string {
	h := sha256.Sum256([]byte(subject))
	return hex.EncodeToString(h[:8])
}

// bucket returns the subject index bucket of subject and the prefix of its
// entries there.
func bucket(subject string) (key, prefix string) {
	h := sha256.Sum256([]byte(subject))
	return "silentauth:subs:{" + hex.EncodeToString(h[:2]) + "}", string(h[2:6])
}

// The key layout is an interface to operators (and to the next version of
// this code reading the same Redis): pin it.
func TestKeyLayout(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := t.Context()
	now := time.Now().Truncate(time.Millisecond)
	st := open(t, redisstore.Options{Mode: redisstore.Standalone, Addrs: []string{srv.Addr()}})
	f := family("fam-a", "alice@example.com", now, time.Hour)
	if err := st.Create(ctx, f); err != nil {
		t.Fatal(err)
	}
	famKey := "silentauth:fam:{fam-a}"
	subKey, entry := bucket("alice@example.com")
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	if want := []string{famKey, subKey}; !slices.Equal(keys, want) {
		t.Fatalf("keys %q, want %q", keys, want)
	}
	head := func() string { return hex.EncodeToString([]byte(rdb.GetRange(ctx, famKey, 0, 8).Val())) }
	// format '2', version 1 (8 bytes, big-endian)
	if got, want := head(), "32"+"0000000000000001"; got != want {
		t.Fatalf("record header %s, want %s", got, want)
	}
	// the bucket's entry: 4 bytes of the subject's tag and the id, scored
	// by the expiry rounded up to the second
	wantScore := (f.AbsoluteExpiresAt.UnixMilli() + 999) / 1000
	if got, err := rdb.ZScore(ctx, subKey, entry+"fam-a").Result(); err != nil || int64(got) != wantScore {
		t.Fatalf("index score %v, %v; want the expiry in seconds %d", got, err, wantScore)
	}
	if got := rdb.PExpireTime(ctx, subKey).Val(); got != time.Duration(wantScore)*time.Second {
		t.Fatalf("bucket expires at %v, want %ds", got, wantScore)
	}
	n := f.Clone()
	n.Version = 2
	if err := st.Swap(ctx, 1, n); err != nil {
		t.Fatal(err)
	}
	if got := head(); got != "320000000000000002" {
		t.Fatalf("header after a swap %s, want version 2", got)
	}
}

// Swap to another subject or expiry moves the family in the index.
func TestSwapReindexes(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	st := open(t, redisstore.Options{Mode: redisstore.Standalone, Addrs: []string{srv.Addr()}})
	now := time.Now().Truncate(time.Millisecond)
	f := family("fam-a", "alice", now, time.Hour)
	if err := st.Create(ctx, f); err != nil {
		t.Fatal(err)
	}
	n := f.Clone()
	n.Subject, n.AbsoluteExpiresAt, n.Version = "bob", now.Add(2*time.Hour), 2
	if err := st.Swap(ctx, 1, n); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		subject string
		want    int
	}{{"alice", 0}, {"bob", 1}} {
		if fams, err := st.Subject(ctx, tc.subject); err != nil || len(fams) != tc.want {
			t.Errorf("Subject(%s) = %d families, %v; want %d", tc.subject, len(fams), err, tc.want)
		}
	}
	rdb := srv.Client(t)
	aliceKey, aliceEntry := bucket("alice")
	if _, err := rdb.ZScore(ctx, aliceKey, aliceEntry+"fam-a").Result(); err != redis.Nil {
		t.Errorf("alice's bucket still holds fam-a after Subject pruned it: %v", err)
	}
	bobKey, bobEntry := bucket("bob")
	if got := rdb.ZScore(ctx, bobKey, bobEntry+"fam-a").Val(); int64(got) != (n.AbsoluteExpiresAt.UnixMilli()+999)/1000 {
		t.Errorf("bob's bucket scores fam-a %v, want %d", got, n.AbsoluteExpiresAt.Unix())
	}
}

// Families hash to their own slots: they spread over the cluster's nodes,
// which is what the {id} hash tag is for.
func TestClusterSpreadsFamilies(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	ctx := t.Context()
	st := open(t, redisstore.Options{Mode: redisstore.Cluster, Addrs: c.Addrs()[:1]}) // one seed is enough
	now := time.Now()
	for i := range 30 {
		if err := st.Create(ctx, family(fmt.Sprint("fam-", i), "alice", now, time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if fams, err := st.Subject(ctx, "alice"); err != nil || len(fams) != 30 {
		t.Fatalf("Subject = %d families, %v; want 30", len(fams), err)
	}
	for _, node := range c.Nodes {
		if n := node.Client(t).DBSize(ctx).Val(); n == 0 {
			t.Errorf("node %s holds no key", node.Addr())
		}
	}
}

// The family key expires exactly at AbsoluteExpiresAt (Redis's own clock:
// no dead session stays in memory), and the subject index forgets it.
func TestExpiryOnTheServer(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := t.Context()
	st := open(t, redisstore.Options{Mode: redisstore.Standalone, Addrs: []string{srv.Addr()}})
	now := time.Now().Truncate(time.Millisecond)
	short := family("short", "alice", now, 1500*time.Millisecond)
	short.AbsoluteExpiresAt = short.AbsoluteExpiresAt.Add(300 * time.Microsecond) // not a whole millisecond
	long := family("long", "alice", now, time.Hour)
	for _, f := range []*store.Family{short, long} {
		if err := st.Create(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	famKey := "silentauth:fam:{short}"
	subKey, entry := bucket("alice")

	wantAt := short.AbsoluteExpiresAt.Truncate(time.Millisecond).Add(time.Millisecond) // rounded up
	if at := rdb.PExpireTime(ctx, famKey).Val(); at != time.Duration(wantAt.UnixMilli())*time.Millisecond {
		t.Fatalf("PEXPIRETIME %d ms, want %d", at.Milliseconds(), wantAt.UnixMilli())
	}
	before := time.Now()
	pttl, err := rdb.PTTL(ctx, famKey).Result()
	after := time.Now()
	least, most := short.AbsoluteExpiresAt.Sub(after)-2*time.Millisecond, short.AbsoluteExpiresAt.Sub(before)+2*time.Millisecond
	if err != nil || pttl < least || pttl > most {
		t.Fatalf("PTTL %v, %v; want between %v and %v", pttl, err, least, most)
	}
	// The bucket counts seconds: it expires at the longest family's
	// expiry, rounded up to the second.
	if at, want := rdb.PExpireTime(ctx, subKey).Val(), (long.AbsoluteExpiresAt.UnixMilli()+999)/1000*1000; at.Milliseconds() != want {
		t.Fatalf("index PEXPIRETIME %d, want the longest family's %d", at.Milliseconds(), want)
	}

	deadline := time.Now().Add(time.Until(short.AbsoluteExpiresAt) + 5*time.Second)
	for rdb.Exists(ctx, famKey).Val() == 1 { // EXISTS expires the key lazily once past
		if time.Now().After(deadline) {
			t.Fatalf("family key still there %v after its expiry", time.Since(short.AbsoluteExpiresAt))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if time.Now().Before(short.AbsoluteExpiresAt) {
		t.Fatal("family key gone before its expiry")
	}
	if _, err := st.Get(ctx, "short"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after expiry: %v, want ErrNotFound", err)
	}
	fams, err := st.Subject(ctx, "alice")
	if err != nil || len(fams) != 1 || fams[0].ID != "long" {
		t.Fatalf("Subject after expiry = %v, %v; want [long]", fams, err)
	}
	if ids := rdb.ZRange(ctx, subKey, 0, -1).Val(); !slices.Equal(ids, []string{entry + "long"}) {
		t.Fatalf("index after expiry %q, want [long]", ids)
	}
}

func TestOptionsValidate(t *testing.T) {
	one := []string{"127.0.0.1:6379"}
	tests := []struct {
		name string
		o    redisstore.Options
		ok   bool
	}{
		{"standalone", redisstore.Options{Mode: redisstore.Standalone, Addrs: one}, true},
		{"sentinel", redisstore.Options{Mode: redisstore.Sentinel, Addrs: []string{"a:26379", "b:26379"}, MasterName: "m"}, true},
		{"cluster one seed", redisstore.Options{Mode: redisstore.Cluster, Addrs: one}, true},
		{"no mode", redisstore.Options{Addrs: one}, false},
		{"unknown mode", redisstore.Options{Mode: "ring", Addrs: one}, false},
		{"standalone two addrs", redisstore.Options{Mode: redisstore.Standalone, Addrs: []string{"a:1", "b:1"}}, false},
		{"no addrs", redisstore.Options{Mode: redisstore.Cluster}, false},
		{"empty addr", redisstore.Options{Mode: redisstore.Cluster, Addrs: []string{"a:1", " "}}, false},
		{"sentinel without master", redisstore.Options{Mode: redisstore.Sentinel, Addrs: one}, false},
		{"master without sentinel", redisstore.Options{Mode: redisstore.Standalone, Addrs: one, MasterName: "m"}, false},
		{"cluster db 1", redisstore.Options{Mode: redisstore.Cluster, Addrs: one, DB: 1}, false},
		{"negative db", redisstore.Options{Mode: redisstore.Standalone, Addrs: one, DB: -1}, false},
		{"prefix with tag", redisstore.Options{Mode: redisstore.Cluster, Addrs: one, KeyPrefix: "{app}:"}, false},
		{"negative timeout", redisstore.Options{Mode: redisstore.Standalone, Addrs: one, ReadTimeout: -1}, false},
		{"negative pool", redisstore.Options{Mode: redisstore.Standalone, Addrs: one, PoolSize: -1}, false},
		{"no retries", redisstore.Options{Mode: redisstore.Standalone, Addrs: one, MaxRetries: -1}, true},
		{"too many retries", redisstore.Options{Mode: redisstore.Standalone, Addrs: one, MaxRetries: 11}, false},
	}
	for _, tc := range tests {
		if err := tc.o.Validate("redis"); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok %t", tc.name, err, tc.ok)
		}
		if _, err := redisstore.New(tc.o); (err == nil) != tc.ok {
			t.Errorf("%s: New: %v, want ok %t", tc.name, err, tc.ok)
		}
	}
	// Every problem is reported at once.
	err := redisstore.Options{Mode: redisstore.Standalone, DB: -1, PoolSize: -1}.Validate("redis")
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 3 {
		t.Errorf("Validate reported %d problems (%v), want 3", n, err)
	}
}

// The password reaches Redis (AUTH) and nothing else: not the Options'
// String, GoString or slog form, not the errors of a refused login.
func TestPasswordNeverShown(t *testing.T) {
	const pw = "s3cret-Pa55word"
	srv := redistest.Start(t, "--requirepass", pw)
	o := redisstore.Options{Mode: redisstore.Standalone, Addrs: []string{srv.Addr()}, Password: pw}

	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("redis", "options", o)
	for _, s := range []string{o.String(), fmt.Sprintf("%v %+v %#v %s", o, o, o, o), logged.String()} {
		if strings.Contains(s, pw) {
			t.Fatalf("password shown: %s", s)
		}
		if !strings.Contains(s, "[redacted]") {
			t.Fatalf("no [redacted] in %s", s)
		}
	}

	if err := open(t, o).Ping(t.Context()); err != nil {
		t.Fatalf("Ping with the password: %v", err)
	}
	wrong := o
	wrong.Password = pw + "x"
	err := open(t, wrong).Ping(t.Context())
	if err == nil || strings.Contains(err.Error(), pw) {
		t.Fatalf("Ping with a wrong password: %v; want an error without the password", err)
	}
	_, err = open(t, redisstore.Options{Mode: redisstore.Standalone, Addrs: []string{srv.Addr()}}).Get(t.Context(), "x")
	if err == nil || isSentinel(err) {
		t.Fatalf("Get without the password: %v; want an infrastructure error", err)
	}
}

// A family whose subject index cannot be written is taken back: no session
// may exist that RevokeSubject cannot find.
func TestCreateUndoneWhenIndexFails(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := t.Context()
	st := open(t, redisstore.Options{Mode: redisstore.Standalone, Addrs: []string{srv.Addr()}})
	broken, _ := bucket("alice")
	rdb.Set(ctx, broken, "not a sorted set", 0) // ZADD fails: WRONGTYPE
	err := st.Create(ctx, family("fam-a", "alice", time.Now(), time.Hour))
	if err == nil || isSentinel(err) {
		t.Fatalf("Create with a broken index: %v, want an infrastructure error", err)
	}
	if n := rdb.Exists(ctx, "silentauth:fam:{fam-a}").Val(); n != 0 {
		t.Fatal("the unindexed family was left behind")
	}
}

// A record this code did not write is an infrastructure fault, never a
// sentinel that would make session answer "unknown" or retry.
func TestForeignRecord(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := t.Context()
	st := open(t, redisstore.Options{Mode: redisstore.Standalone, Addrs: []string{srv.Addr()}})
	now := time.Now()
	tests := []struct {
		record   string
		swapFail bool // a valid header at the expected version is simply replaced
	}{
		{"", true},
		{"3 a future format", true},
		{"1\x00\x00\x00\x00\x00\x00\x00\x01tagtag!!\xff", false},
		{"2\x00\x00\x00\x00\x00\x00\x00\x01\xff", false},
	}
	for _, tc := range tests {
		rdb.Set(ctx, "silentauth:fam:{fam-a}", tc.record, time.Hour)
		if _, err := st.Get(ctx, "fam-a"); err == nil || isSentinel(err) {
			t.Errorf("Get of %q: %v, want an infrastructure error", tc.record, err)
		}
		next := family("fam-a", "alice", now, time.Hour)
		next.Version = 2
		if err := st.Swap(ctx, 1, next); tc.swapFail && (err == nil || isSentinel(err)) {
			t.Errorf("Swap over %q: %v, want an infrastructure error", tc.record, err)
		}
	}
}

// A Claim marker is one small key under the prefix, apart from families,
// that Redis itself drops at its until (rounded up to the millisecond):
// 72 bytes by MEMORY USAGE for a 28-byte key (Redis 7).
func TestClaimOnTheServer(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := t.Context()
	st := open(t, redisstore.Options{Mode: redisstore.Standalone, Addrs: []string{srv.Addr()}})
	until := time.Now().Add(time.Minute).Truncate(time.Millisecond).Add(300 * time.Microsecond)
	if ok, err := st.Claim(ctx, "state:abc", until); err != nil || !ok {
		t.Fatalf("Claim = %t, %v; want true", ok, err)
	}
	key := "silentauth:once:state:abc"
	if v, err := rdb.Get(ctx, key).Result(); err != nil || v != "1" {
		t.Fatalf("GET %s = %q, %v; want \"1\"", key, v, err)
	}
	wantAt := until.Truncate(time.Millisecond).Add(time.Millisecond)
	if at := rdb.PExpireTime(ctx, key).Val(); at.Milliseconds() != wantAt.UnixMilli() {
		t.Fatalf("PEXPIRETIME %d ms, want %d", at.Milliseconds(), wantAt.UnixMilli())
	}
	n, err := rdb.MemoryUsage(ctx, key).Result()
	t.Logf("MEMORY USAGE of a marker: %d bytes", n)
	if err != nil || n > 96 {
		t.Fatalf("MEMORY USAGE %s = %d, %v; want a small key", key, n, err)
	}
	// Redis itself drops a marker at its until, whatever the store's clock
	// says: a 50 ms marker carries a 50 ms TTL (asserted, not slept on).
	short := time.Now().Add(50 * time.Millisecond)
	if ok, err := st.Claim(ctx, "jti:short", short); err != nil || !ok {
		t.Fatalf("Claim = %t, %v; want true", ok, err)
	}
	if pttl := rdb.PTTL(ctx, "silentauth:once:jti:short").Val(); pttl <= 0 || pttl > 51*time.Millisecond {
		t.Fatalf("PTTL of a 50 ms marker: %v", pttl)
	}
}
