package redisstore

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/internal/testenv/redistest"
)

// typicalClaims are a typical family's: two short claims.
var typicalClaims = map[string]any{"email": "ada.lovelace@example.com", "name": "Ada Lovelace"}

// richerClaims add a list of groups.
var richerClaims = map[string]any{"email": "ada.lovelace@example.com", "name": "Ada Lovelace", "groups": []any{"engineering", "admins"}}

// typicalFamily is a session after rotations rotations by session.Manager:
// an OIDC subject of 20 characters, claims, its generation and its key's
// tag (no secret hash, no sealed successor: the secrets are derivable
// MACs).
func typicalFamily(t testing.TB, st store.Store, claims map[string]any, rotations int) *store.Family {
	m := session.New(st, session.Lifetimes{}, nil)
	s, err := m.Start(t.Context(), "00u1abcd2EFGH3ijk4l5", "", claims)
	if err != nil {
		t.Fatal(err)
	}
	for range rotations {
		if s, err = m.Refresh(t.Context(), s.RefreshToken, ""); err != nil {
			t.Fatal(err)
		}
	}
	return s.Family
}

// providerSealed is the size of typical sealed provider tokens.
const providerSealed = 600

// bucketLoad is how many families share a subject index bucket at a
// million families, one subject each: 10^6 / 65536, rounded up.
const bucketLoad = 16

// TestMemoryPerFamily measures what a family costs in Redis, the chosen
// record beside the alternatives, and holds a typical one (two short
// claims, any number of rotations) to 300 bytes: MEMORY USAGE of its key
// plus its share of the subject index at a million families.
func TestMemoryPerFamily(t *testing.T) {
	ctx := t.Context()
	st, rdb, usage := measured(t)

	// The subject index: a bucket holding one entry, and bucketLoad.
	f := typicalFamily(t, st, typicalClaims, 15)
	bucket, prefix := st.subjectBucket(tagOf(f.Subject))
	oneEntry := usage(bucket)
	for i := range bucketLoad - 1 {
		if err := st.index(ctx, bucket, prefix+fmt.Sprintf("%022d", i), f.AbsoluteExpiresAt.Unix()+1, time.Now().Unix(), 1000); err != nil {
			t.Fatal(err)
		}
	}
	share := usage(bucket) / bucketLoad
	t.Logf("subject index: a bucket of one entry %d bytes; of %d entries (a million families) %d bytes, %d per family (%s)",
		oneEntry, bucketLoad, usage(bucket), share, rdb.ObjectEncoding(ctx, bucket).Val())

	var typical int64
	for _, tc := range []struct {
		name      string
		claims    map[string]any
		rotations int
	}{
		{"typical, fresh", typicalClaims, 0},
		{"typical, 15 rotations", typicalClaims, 15},
		{"typical, 100 rotations", typicalClaims, 100},
		{"three claims, 15 rotations", richerClaims, 15},
	} {
		f := typicalFamily(t, st, tc.claims, tc.rotations)
		if f.Secrets != nil || f.Successor != nil || f.Generation != uint64(tc.rotations)+1 {
			t.Fatalf("%s: generation %d, %d hashes, %d-byte successor", tc.name, f.Generation, len(f.Secrets), len(f.Successor))
		}
		rec, err := encode(f)
		if err != nil {
			t.Fatal(err)
		}
		n := usage(st.familyKey(f.ID))
		t.Logf("%s: record %d bytes (%d of claims), MEMORY USAGE %d bytes, %d with its index share", tc.name, len(rec), len(f.Claims.JSON()), n, n+share)
		if tc.claims == nil || len(tc.claims) == len(typicalClaims) {
			if typical == 0 {
				typical = n
			}
			if n != typical {
				t.Errorf("%s: %d bytes, a fresh family %d: the cost depends on the rotations", tc.name, n, typical)
			}
			// Measured: 216 + 44 (three claims: 248 + 44).
			if n+share > 300 {
				t.Errorf("%s: %d bytes with its index share: more than 300", tc.name, n+share)
			}
		}
	}

	// The same family as a hash {v, d}, and as JSON.
	rec, err := encode(f)
	if err != nil {
		t.Fatal(err)
	}
	family := usage(st.familyKey(f.ID))
	hashKey, jsonKey := st.prefix+"alt:hash:{"+f.ID+"}", st.prefix+"alt:json:{"+f.ID+"}"
	js, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, hashKey, "v", rec[1:headLen], "d", rec[headLen:])
		p.PExpireAt(ctx, hashKey, f.AbsoluteExpiresAt)
		p.Set(ctx, jsonKey, js, 0)
		p.PExpireAt(ctx, jsonKey, f.AbsoluteExpiresAt)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	hash, hashEnc := usage(hashKey), rdb.ObjectEncoding(ctx, hashKey).Val()
	asJSON := usage(jsonKey)
	rdb.Del(ctx, hashKey, jsonKey)
	t.Logf("MEMORY USAGE family key: %d bytes (as a hash {v,d}: %d bytes, encoding %s; as a JSON string: %d bytes, %d bytes of JSON)",
		family, hash, hashEnc, asJSON, len(js))
	if hash <= family || asJSON <= family {
		t.Errorf("the chosen record (%d bytes) is no smaller than a hash (%d) or JSON (%d): revisit codec.go", family, hash, asJSON)
	}

	// Everything together, allocator and key space included, at a small
	// scale: n families of n subjects, each alone in its bucket.
	const n = 2000
	before := usedMemory(t, rdb)
	for i := range n {
		g := f.Clone()
		g.ID, g.Subject, g.Version = fmt.Sprintf("%022d", i), fmt.Sprintf("%020d", i), 1
		if err := st.Create(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("used_memory per family, %d families of %d subjects (a bucket each), index included: %d bytes", n, n, (usedMemory(t, rdb)-before)/n)

	// The same family started by provider login: sealed provider tokens
	// (a refresh token and an ID token of about 500 bytes, sealed), the
	// provider's sid and the next refresh time.
	p := f.Clone()
	p.ID, p.Version = "provider-login-family0", 1
	p.Provider = make([]byte, providerSealed)
	p.ProviderSID = "08a8684b-db88-4b73-90a9-3cd1661f5466"
	p.ProviderRefreshAt = p.CreatedAt.Add(5 * time.Minute)
	if err := st.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	prec, err := encode(p)
	if err != nil {
		t.Fatal(err)
	}
	provider := usage(st.familyKey(p.ID))
	p.LeaseUntil = p.CreatedAt.Add(10 * time.Second)
	p.Version = 2
	if err := st.Swap(ctx, 1, p); err != nil {
		t.Fatal(err)
	}
	leased := usage(st.familyKey(p.ID))
	t.Logf("provider login: record %d bytes (+%d for %d bytes of sealed tokens, sid, refresh time), MEMORY USAGE %d bytes (+%d), %d while leased",
		len(prec), len(prec)-len(rec), providerSealed, provider, provider-family, leased)
	// The record grows by the tokens and about 50 bytes; MEMORY USAGE by
	// more, as the string moves up jemalloc's size classes.
	if over := provider - family; over > providerSealed+256 {
		t.Errorf("provider fields cost %d bytes for %d bytes of sealed tokens: more than budgeted", over, providerSealed)
	}
}

// measured starts a Redis for t and returns a Store on it, a client, and
// MEMORY USAGE of a key.
func measured(t *testing.T) (*Store, *redis.Client, func(key string) int64) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := &Store{c: redis.NewClient(&redis.Options{Addr: srv.Addr()}), prefix: DefaultKeyPrefix, now: time.Now}
	t.Cleanup(func() { _ = st.Close() })
	return st, rdb, func(key string) int64 {
		n, err := rdb.MemoryUsage(t.Context(), key, 0).Result()
		if err != nil {
			t.Fatalf("MEMORY USAGE %s: %v", key, err)
		}
		return n
	}
}

func usedMemory(t *testing.T, rdb *redis.Client) int64 {
	info, err := rdb.Info(t.Context(), "memory").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no used_memory in INFO memory")
	return 0
}

// TestRedisMillion starts a million typical families (one subject each)
// through session.Manager on a real Redis and reports used_memory per
// family, subject index included, fresh and after each family rotated
// once: the figures of the benchmark page. It takes about a minute and
// 300 MB of Redis, so it runs only with SILENTAUTH_RSS=1.
func TestRedisMillion(t *testing.T) {
	if os.Getenv("SILENTAUTH_RSS") == "" {
		t.Skip("set SILENTAUTH_RSS=1 to store a million families in Redis and measure it")
	}
	const n, workers = 1_000_000, 64
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := &Store{c: redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: workers}), prefix: DefaultKeyPrefix, now: time.Now}
	t.Cleanup(func() { _ = st.Close() })
	m := session.New(st, session.Lifetimes{}, nil)
	before := usedMemory(t, rdb)
	tokens := make([]string, n)
	each := func(what string, do func(i int) error) time.Duration {
		start := time.Now()
		var g errgroup.Group
		g.SetLimit(workers)
		for i := range n {
			g.Go(func() error { return do(i) })
		}
		if err := g.Wait(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return time.Since(start)
	}
	took := each("start", func(i int) error {
		s, err := m.Start(t.Context(), fmt.Sprintf("00u%017d", i), "", typicalClaims)
		tokens[i] = s.RefreshToken
		return err
	})
	fresh := usedMemory(t, rdb)
	keys := rdb.DBSize(t.Context()).Val()
	t.Logf("%d families started in %v: %d keys, used_memory %+d bytes, %d per family, index included",
		n, took.Round(time.Second), keys, fresh-before, (fresh-before)/n)
	took = each("refresh", func(i int) error {
		_, err := m.Refresh(t.Context(), tokens[i], "")
		return err
	})
	rotated := usedMemory(t, rdb)
	t.Logf("each rotated once in %v: used_memory %d per family", took.Round(time.Second), (rotated-before)/n)
	// used_memory also counts what MEMORY USAGE leaves out: the expiry
	// dictionary's entry and both dictionaries' slots, about 56 bytes a
	// key. A rotation adds the grace end (a few bytes within the same
	// allocation class) and nothing else.
	if grew := (rotated - fresh) / n; grew > 16 {
		t.Errorf("a rotation added %d bytes per family", grew)
	}
}
