package redisstore

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/internal/testenv/redistest"
)

// typicalFamily is a session after 15 rotations by session.Manager: an
// OIDC subject, a few claims, generation 16 and its key's kid (no secret
// hash, no sealed successor: the secrets are derivable MACs).
func typicalFamily(t testing.TB, st store.Store) *store.Family {
	m := session.New(st, session.Lifetimes{}, nil)
	s, err := m.Start(t.Context(), "00u1abcd2EFGH3ijk4l5", "", map[string]any{
		"email": "ada.lovelace@example.com", "name": "Ada Lovelace", "groups": []any{"engineering", "admins"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 15 {
		if s, err = m.Refresh(t.Context(), s.RefreshToken, ""); err != nil {
			t.Fatal(err)
		}
	}
	return s.Family
}

// providerSealed is the size of typical sealed provider tokens.
const providerSealed = 600

// TestMemoryPerFamily measures what a typical family costs in Redis, the
// chosen record beside the alternatives, and pins an upper bound.
func TestMemoryPerFamily(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	rdb := srv.Client(t)
	st := &Store{c: redis.NewClient(&redis.Options{Addr: srv.Addr()}), prefix: DefaultKeyPrefix, now: time.Now}
	t.Cleanup(func() { _ = st.Close() })

	f := typicalFamily(t, st)
	if f.Secrets != nil || f.Successor != nil || f.Generation != 16 {
		t.Fatalf("typical family: generation %d, %d hashes, %d-byte successor; want 16, none, none", f.Generation, len(f.Secrets), len(f.Successor))
	}
	rec, err := encode(f)
	if err != nil {
		t.Fatal(err)
	}
	usage := func(key string) int64 {
		n, err := rdb.MemoryUsage(ctx, key, 0).Result()
		if err != nil {
			t.Fatalf("MEMORY USAGE %s: %v", key, err)
		}
		return n
	}
	family := usage(st.familyKey(f.ID))
	index := usage(st.subjectKey(subjectTag(f.Subject)))

	// The same family as a hash {v, s, d}, and as JSON.
	hashKey, jsonKey := st.prefix+"alt:hash:{"+f.ID+"}", st.prefix+"alt:json:{"+f.ID+"}"
	js, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, hashKey, "v", rec[1:headLen], "s", rec[headLen:headerLen], "d", rec[headerLen:])
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

	// An index entry beside others of the same subject.
	for i := range 9 {
		g := f.Clone()
		g.ID, g.Version = fmt.Sprint("same-subject-", i), 1
		if err := st.Create(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	indexEntry := (usage(st.subjectKey(subjectTag(f.Subject))) - index) / 9

	// Everything together, allocator and key space included: many copies
	// of the family, each its own subject (one session per user).
	const n = 2000
	before := usedMemory(t, rdb)
	for i := range n {
		g := f.Clone()
		g.ID, g.Subject, g.Version = fmt.Sprintf("%022d", i), fmt.Sprintf("%020d", i), 1
		if err := st.Create(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	perFamily := (usedMemory(t, rdb) - before) / n

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

	claims := f.Claims.JSON()
	t.Logf("record %d bytes: claims %d as JSON, kid %d, the rest header, subject, times, generation",
		len(rec), len(claims), len(f.RefreshKey))
	t.Logf("MEMORY USAGE family key: %d bytes (as a hash {v,s,d}: %d bytes, encoding %s; as a JSON string: %d bytes, %d bytes of JSON)",
		family, hash, hashEnc, asJSON, len(js))
	t.Logf("MEMORY USAGE subject index: %d bytes holding one family, %d bytes more per further family", index, indexEntry)
	t.Logf("used_memory per family, %d families of %d subjects, index included: %d bytes", n, n, perFamily)
	t.Logf("provider login: record %d bytes (+%d for %d bytes of sealed tokens, sid, refresh time), MEMORY USAGE %d bytes (+%d), %d while leased",
		len(prec), len(prec)-len(rec), providerSealed, provider, provider-family, leased)
	// The record grows by the tokens and about 50 bytes; MEMORY USAGE by
	// more, as the string moves up jemalloc's size classes.
	if over := provider - family; over > providerSealed+256 {
		t.Errorf("provider fields cost %d bytes for %d bytes of sealed tokens: more than budgeted", over, providerSealed)
	}
	// Measured: 344 and 589 bytes (856 and 1101 while a family kept 16
	// hashes and a sealed successor).
	if family > 512 || perFamily > 768 {
		t.Errorf("a typical family costs %d bytes (%d with its index and overhead): more than budgeted", family, perFamily)
	}
	if hash <= family || asJSON <= family {
		t.Errorf("the chosen record (%d bytes) is no smaller than a hash (%d) or JSON (%d): revisit codec.go", family, hash, asJSON)
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
