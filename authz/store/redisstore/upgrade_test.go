package redisstore

import (
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/internal/testenv/fakeclock"
	"github.com/silentauth/silentauth/internal/testenv/redistest"
)

// Tokens of the family in testdata/record-before-keyed-mac.hex, written by
// the version that kept hashes: generations 1 to 3 of family
// "bGVnYWN5LWZhbWlseS0wMQ", 3 current and not yet presented (its previous
// one was rotated at 03:06:05 with a 30s grace).
var legacyTokens = []string{
	"bGVnYWN5LWZhbWlseS0wMQ.QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE",
	"bGVnYWN5LWZhbWlseS0wMQ.QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI",
	"bGVnYWN5LWZhbWlseS0wMQ.Q0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0NDQ0M",
}

// TestRecordBeforeKeyedMAC: a family written by the version that kept
// secret hashes and a sealed successor decodes, its tokens keep their
// standing, and its next rotation rewrites it in the keyed form; one
// rotation later no hash is left.
func TestRecordBeforeKeyedMAC(t *testing.T) {
	old := olderRecord(t, "record-before-keyed-mac.hex")
	const id = "bGVnYWN5LWZhbWlseS0wMQ"
	f, err := decode(id, old)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if f.RefreshKey != "" || len(f.Secrets) != 3 || f.Successor == nil || f.Generation != 3 || f.CurrentSeen {
		t.Fatalf("decoded: key %q, %d hashes, generation %d, seen %t", f.RefreshKey, len(f.Secrets), f.Generation, f.CurrentSeen)
	}
	if rec := encodeV1(f, true); string(rec) != string(old) {
		t.Fatalf("re-encoded differs:\n got %x\nwant %x", rec, old)
	}

	srv := redistest.Start(t)
	k, err := keys.Generate(keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keys.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	src := new(keys.Holder)
	src.Store(ring)
	lt := session.Lifetimes{Idle: time.Hour, Absolute: 4 * time.Hour, Grace: 30 * time.Second}

	// load puts the old record in a store of its own, at the clock's
	// time, indexed as the version that wrote it did: in a subject index
	// of its own.
	var st *Store
	load := func(t *testing.T, prefix string, clk *fakeclock.Clock) *session.Manager {
		st = &Store{c: redis.NewClient(&redis.Options{Addr: srv.Addr()}), prefix: prefix, now: clk.Now}
		t.Cleanup(func() { _ = st.Close() })
		if err := st.c.SetArgs(t.Context(), st.familyKey(id), old, redis.SetArgs{ExpireAt: f.AbsoluteExpiresAt}).Err(); err != nil {
			t.Fatal(err)
		}
		exp := f.AbsoluteExpiresAt.UnixMilli()
		if err := st.index(t.Context(), st.subjectKey(subjectTag(f.Subject)), id, exp, clk.Now().UnixMilli(), 1); err != nil {
			t.Fatal(err)
		}
		return session.New(st, lt, clk.Now, session.RefreshKeys(src))
	}
	keyTag := sha256.Sum256([]byte(k.ID))
	at := f.LastUsedAt.Add(10 * time.Minute) // past the grace, the current token never presented

	t.Run("rotates into the keyed form", func(t *testing.T) {
		clk := fakeclock.New(at)
		m := load(t, "a:", clk)
		if fams, err := m.List(t.Context(), f.Subject); err != nil || len(fams) != 1 {
			t.Fatalf("the family in its subject index of format '1': %v, %v", fams, err)
		}
		// The previous token, its successor never presented: the sealed
		// successor, still of the old format.
		if is, err := m.Refresh(t.Context(), legacyTokens[1], ""); err != nil || is.Rotated || is.RefreshToken != legacyTokens[2] {
			t.Fatalf("replay of the previous legacy token: rotated %v, %v", is.Rotated, err)
		}
		s4, err := m.Refresh(t.Context(), legacyTokens[2], "")
		if err != nil || !s4.Rotated || len(s4.RefreshToken) != session.TokenLength {
			t.Fatalf("rotating the legacy current token: %+v, %v", s4, err)
		}
		g := s4.Family
		if g.Generation != 4 || g.RefreshKey != string(keyTag[:4]) || len(g.Secrets) != 3 || g.Successor != nil {
			t.Fatalf("after the upgrade: generation %d, key %q, %d hashes, successor %d bytes", g.Generation, g.RefreshKey, len(g.Secrets), len(g.Successor))
		}
		// A lost answer: the old token again yields the same keyed successor.
		clk.Advance(time.Minute)
		if again, err := m.Refresh(t.Context(), legacyTokens[2], ""); err != nil || again.Rotated || again.RefreshToken != s4.RefreshToken {
			t.Fatalf("replay of the upgraded token: rotated %v, same %v, %v", again.Rotated, again.RefreshToken == s4.RefreshToken, err)
		}
		s5, err := m.Refresh(t.Context(), s4.RefreshToken, "")
		if err != nil || !s5.Rotated {
			t.Fatalf("rotating the first keyed token: %v", err)
		}
		if g := s5.Family; g.Generation != 5 || g.Secrets != nil || g.Successor != nil {
			t.Fatalf("one rotation later: generation %d, %d hashes", g.Generation, len(g.Secrets))
		}
		rec, err := st.c.Get(t.Context(), st.familyKey(id)).Bytes()
		if err != nil || rec[0] != formatV2 {
			t.Fatalf("the record after the upgrade: format %q, %v; want '2'", rec[:1], err)
		}
		t.Logf("record: %d bytes before the upgrade, %d after", len(old), len(rec))
		// Rewritten, it is in its subject's bucket too: found once.
		bucket, prefix := st.subjectBucket(tagOf(f.Subject))
		if _, err := st.c.ZScore(t.Context(), bucket, prefix+id).Result(); err != nil {
			t.Fatalf("the upgraded family is not in its bucket: %v", err)
		}
		if fams, err := m.List(t.Context(), f.Subject); err != nil || len(fams) != 1 || fams[0].Generation != 5 {
			t.Fatalf("the upgraded family listed: %v, %v", fams, err)
		}
		if len(rec) >= len(old)-100 {
			t.Errorf("the keyed record (%d bytes) is not smaller than the hashed one (%d)", len(rec), len(old))
		}
		// Hashes gone: an old token is no longer recognised, and never revokes.
		if _, err := m.Refresh(t.Context(), legacyTokens[0], ""); !errors.Is(err, session.ErrUnknownSecret) {
			t.Fatalf("oldest legacy token after the hashes went: %v, want ErrUnknownSecret", err)
		}
		if _, err := m.Refresh(t.Context(), s5.RefreshToken, ""); err != nil {
			t.Fatalf("the rightful holder after all that: %v", err)
		}
	})

	t.Run("an old token after the upgrade is reuse", func(t *testing.T) {
		clk := fakeclock.New(at)
		m := load(t, "b:", clk)
		s4, err := m.Refresh(t.Context(), legacyTokens[2], "")
		if err != nil {
			t.Fatal(err)
		}
		var re *session.ReuseError
		if _, err := m.Refresh(t.Context(), legacyTokens[0], ""); !errors.As(err, &re) || re.Presented != 1 || re.Current != 4 {
			t.Fatalf("generation 1 after the upgrade: %v, want reuse of generation 1 of 4", err)
		}
		if _, err := m.Refresh(t.Context(), s4.RefreshToken, ""); !errors.Is(err, session.ErrRevoked) {
			t.Fatalf("after reuse: %v, want ErrRevoked", err)
		}
	})

	t.Run("a legacy token older than the previous is reuse", func(t *testing.T) {
		clk := fakeclock.New(at)
		m := load(t, "c:", clk)
		if _, err := m.Refresh(t.Context(), legacyTokens[0], ""); !errors.Is(err, session.ErrReuse) {
			t.Fatalf("generation 1 of 3: %v, want ErrReuse", err)
		}
		fam, err := m.List(t.Context(), f.Subject)
		if err != nil || len(fam) != 1 || fam[0].RevokeReason != session.CauseReuse {
			t.Fatalf("after reuse: %v, %v", fam, err)
		}
	})
}
