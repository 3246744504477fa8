package redisstore

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/internal/testenv/redistest"
)

func sidKeyOf(st *Store, sid string) string {
	t := sidTag(sid)
	return st.sidKey(hex.EncodeToString(t[:]))
}

// TestSIDIndexOnTheServer: the sid index is a sorted set scored by each
// family's expiry that expires with its longest-lived family; a swap that
// keeps the sid leaves it alone, one that changes it moves the family.
func TestSIDIndexOnTheServer(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	rdb := srv.Client(t)
	st := &Store{c: redis.NewClient(&redis.Options{Addr: srv.Addr()}), prefix: DefaultKeyPrefix, now: time.Now}
	t.Cleanup(func() { _ = st.Close() })
	now := time.Now().Truncate(time.Millisecond)
	mk := func(id, sid string, life time.Duration) *store.Family {
		return &store.Family{ID: id, Subject: "alice", CreatedAt: now, IdleExpiresAt: now.Add(life), AbsoluteExpiresAt: now.Add(life), ProviderSID: sid, Version: 1}
	}
	short, long := mk("short", "op-sid", time.Hour), mk("long", "op-sid", 3*time.Hour)
	for _, f := range []*store.Family{short, long, mk("plain", "", time.Hour)} {
		if err := st.Create(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	key := sidKeyOf(st, "op-sid")
	if !strings.HasPrefix(key, "silentauth:sid:{") || strings.Contains(key, "op-sid") {
		t.Fatalf("sid index key %q: want silentauth:sid:{tag}, no sid in it", key)
	}
	if n := rdb.ZCard(ctx, key).Val(); n != 2 {
		t.Fatalf("sid index holds %d ids, want 2", n)
	}
	if got := rdb.ZScore(ctx, key, "short").Val(); int64(got) != short.AbsoluteExpiresAt.UnixMilli() {
		t.Errorf("score of short %v, want its expiry", got)
	}
	if got := rdb.PExpireTime(ctx, key).Val(); got != time.Duration(long.AbsoluteExpiresAt.UnixMilli())*time.Millisecond {
		t.Errorf("sid index expires at %v, want with its longest-lived family %d", got, long.AbsoluteExpiresAt.UnixMilli())
	}
	// A plain family is in no sid index.
	if keys := rdb.Keys(ctx, "silentauth:sid:*").Val(); len(keys) != 1 {
		t.Errorf("sid index keys %q, want one", keys)
	}

	// A swap that keeps sid and expiry does not touch the index (the
	// script compares the trailing tag); one that changes the sid moves
	// the family.
	rdb.ZRem(ctx, key, "short") // if Swap re-indexed, it would come back
	n := short.Clone()
	n.Version, n.LastUsedAt = 2, now.Add(time.Minute)
	if err := st.Swap(ctx, 1, n); err != nil {
		t.Fatal(err)
	}
	if rdb.ZScore(ctx, key, "short").Err() != redis.Nil {
		t.Error("a swap that kept the sid re-indexed the family")
	}
	n = n.Clone()
	n.Version, n.ProviderSID = 3, "other-sid"
	if err := st.Swap(ctx, 2, n); err != nil {
		t.Fatal(err)
	}
	if fams, err := st.BySID(ctx, "other-sid"); err != nil || len(fams) != 1 || fams[0].ID != "short" {
		t.Errorf("BySID(other-sid) = %v, %v", fams, err)
	}
}

// TestSIDIndexOfOlderRecords: a provider family stored before the sid
// index (a record without the sid tag) is not found by BySID until its
// next swap, which indexes it; the record decodes either way.
func TestSIDIndexOfOlderRecords(t *testing.T) {
	srv := redistest.Start(t)
	ctx := t.Context()
	st := &Store{c: redis.NewClient(&redis.Options{Addr: srv.Addr()}), prefix: DefaultKeyPrefix, now: time.Now}
	t.Cleanup(func() { _ = st.Close() })
	now := time.Now().Truncate(time.Millisecond)
	f := &store.Family{ID: "legacy", Subject: "alice", CreatedAt: now, IdleExpiresAt: now.Add(time.Hour),
		AbsoluteExpiresAt: now.Add(time.Hour), Provider: []byte("sealed"), ProviderSID: "op-sid", Policy: "shop", Version: 1}
	old := encodeV1(f, false)
	tagged := encodeV1(f, true)
	if len(tagged) != len(old)+sidTagLen+1 { // the tag, and a second flags byte for bit 8
		t.Errorf("tagged record %d bytes, untagged %d: want the 8-byte tag and one flags byte more", len(tagged), len(old))
	}
	if err := st.c.Set(ctx, st.familyKey(f.ID), old, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := st.index(ctx, st.subjectKey(subjectTag(f.Subject)), f.ID, f.AbsoluteExpiresAt.UnixMilli(), now.UnixMilli(), 1); err != nil {
		t.Fatal(err)
	}
	got, err := st.Get(ctx, f.ID)
	if err != nil || got.ProviderSID != "op-sid" || got.Policy != "shop" {
		t.Fatalf("older record: %+v, %v", got, err)
	}
	if fams, _ := st.BySID(ctx, "op-sid"); len(fams) != 0 {
		t.Fatalf("BySID found an unindexed family: %v", fams)
	}
	n := got.Clone()
	n.Version = 2
	if err := st.Swap(ctx, 1, n); err != nil {
		t.Fatal(err)
	}
	if fams, err := st.BySID(ctx, "op-sid"); err != nil || len(fams) != 1 {
		t.Fatalf("BySID after the swap = %v, %v; want the family", fams, err)
	}
}

// TestMemoryOfListingFields measures what the listing fields and the sid
// index add per family (logged; see the package doc).
func TestMemoryOfListingFields(t *testing.T) {
	ctx := t.Context()
	st, _, usage := measured(t)
	base := typicalFamily(t, st, richerClaims, 15)
	plain := base.Clone()
	plain.ID, plain.Subject, plain.Version, plain.LastUsedAt = "plain-family-000000000", "p", 1, time.Time{}
	described := base.Clone()
	described.ID, described.Subject, described.Version = "described-family-00000", "d", 1
	described.UserAgent = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15"
	described.ClientAddress = "203.0.113.195"
	withSID := described.Clone()
	withSID.ID, withSID.Subject = "sid-family-00000000000", "s"
	withSID.ProviderSID = "08a8684b-db88-4b73-90a9-3cd1661f5466"
	var recs [3]int
	for i, f := range []*store.Family{plain, described, withSID} {
		if err := st.Create(ctx, f); err != nil {
			t.Fatal(err)
		}
		rec, _ := encode(f)
		recs[i] = len(rec)
	}
	p, d, s := usage(st.familyKey(plain.ID)), usage(st.familyKey(described.ID)), usage(st.familyKey(withSID.ID))
	idx := usage(sidKeyOf(st, withSID.ProviderSID))
	t.Logf("record: %d bytes without listing fields, %d with last use, a %d-byte user agent and an address (+%d), %d with a sid (+%d)",
		recs[0], recs[1], len(described.UserAgent), recs[1]-recs[0], recs[2], recs[2]-recs[1])
	t.Logf("MEMORY USAGE: %d, %d (+%d), %d (+%d); sid index holding one family: %d bytes", p, d, d-p, s, s-d, idx)
	if d-p > 256 || idx > 256 {
		t.Errorf("listing fields cost %d bytes, a sid index %d: more than budgeted", d-p, idx)
	}
}

// TestDecodeRejectsBadSIDTag: a tag that is not the sid's, or a tag
// without a sid, is corrupt; so is an unknown flag bit past the first byte.
func TestDecodeRejectsBadSIDTag(t *testing.T) {
	now := time.Unix(1_900_000_000, 0).UTC()
	f := &store.Family{ID: "x", Subject: "alice", CreatedAt: now, AbsoluteExpiresAt: now.Add(time.Hour), ProviderSID: "op-sid", Version: 1}
	rec, err := encode(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decode("x", rec); err != nil {
		t.Fatalf("decode: %v", err)
	}
	bad := append([]byte(nil), rec...)
	bad[len(bad)-1] ^= 1
	if _, err := decode("x", bad); err == nil || !strings.Contains(err.Error(), "sid tag") {
		t.Errorf("flipped tag: %v", err)
	}
	noSID := f.Clone()
	noSID.ProviderSID = ""
	plain2, _ := encode(noSID)
	tg := sidTag("op-sid")
	if _, err := decode("x", append(plain2, tg[:]...)); err == nil {
		t.Error("a sid tag without a sid decoded")
	}
	// Format '1': the plain record's flags byte is the last byte (no
	// fields follow it).
	plain := encodeV1(noSID, true)
	forged := append(append([]byte(nil), plain[:len(plain)-1]...), plain[len(plain)-1]|0x80, 0x02)
	if _, err := decode("x", append(forged, tg[:]...)); err == nil {
		t.Error("a sid tag without a sid decoded")
	}
	overlong := append(append([]byte(nil), plain[:len(plain)-1]...), plain[len(plain)-1]|0x80, 0x00)
	if _, err := decode("x", overlong); err == nil || !strings.Contains(err.Error(), "flags") {
		t.Errorf("overlong flags: %v", err)
	}
	unknown := append(append([]byte(nil), plain[:len(plain)-1]...), plain[len(plain)-1]|0x80, 0x08)
	if _, err := decode("x", unknown); err == nil || !strings.Contains(err.Error(), "flags") {
		t.Errorf("unknown flag bit 10: %v", err)
	}
}
