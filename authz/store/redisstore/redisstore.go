// Package redisstore is the store.Store on Redis 7.0 or later (standalone,
// Sentinel or Cluster), shared by every replica of silentauth.
//
// # Keys
//
//	<prefix>fam:{<family id>}       the family: one string, expires at AbsoluteExpiresAt
//	<prefix>subs:{<bucket>}         a subject index bucket: sorted set of entries scored by expiry (s)
//	<prefix>sid:{<sid tag>}         the provider sid index: sorted set of family ids scored by expiry (ms)
//	<prefix>once:<key>              a Claim marker: "1", expires at its until
//	<prefix>sub:{<subject tag>}     the subject index of format '1' records: read, no longer written
//
// The prefix defaults to "silentauth:". The braces are Redis Cluster hash
// tags: every key of one family hashes to the slot of its id. A subject's
// tag is the first 8 bytes of SHA-256(subject): its first 2 bytes in hex
// name its bucket (one of 65536), and an entry there is the next 4 bytes
// and the family id, so no subject (an email, say) appears in Redis; the
// sid tag likewise (see sidTag). See codec.go for the record layout.
//
// Memory (Redis 7.0, TestMemoryPerFamily): a typical family (a 20-character
// subject, two short claims, any number of rotations) is a record of about
// 116 bytes, 216 bytes by MEMORY USAGE. Its entry in its subject's bucket
// costs 44 bytes at a million families (16 per bucket, a listpack), so
// 260 bytes in all; with three claims (92 bytes of JSON), 292. Below about
// 65536 subjects most buckets hold one entry and cost 120 bytes each. A
// session started by provider login adds its sealed provider tokens and
// about 50 bytes (sid, refresh time, lease) to the record, and its sid
// index costs 136 bytes per provider session. A Claim marker is a key of
// its own.
//
// The listing fields (TestMemoryOfListingFields): last use costs a few
// bytes of record; a 117-byte user agent and an IPv4 address add about 135
// bytes of record.
//
// # Atomicity
//
// Every change of a family is one Lua script (EVALSHA, EVAL when the
// server's script cache is empty), run atomically on the node that owns the
// family's key: Create sets the record only if no live family holds the id;
// Swap compares the stored version and replaces the record and its expiry.
// Get is a plain GET. A rotation is thus two round trips: GET and EVALSHA.
//
// # Expiry
//
// The store's clock decides: a family is gone once now is past its
// AbsoluteExpiresAt (Get answers store.ErrNotFound, Create may reuse the id,
// Swap answers store.ErrNotFound). Redis drops the key itself at that
// instant by its own clock (SET … PXAT, rounded up to the millisecond), so
// no dead session stays in memory. Should Redis's clock run ahead of the
// replicas', families vanish that much early; behind, their memory lingers
// that much longer.
//
// # Subject index
//
// Subject (and so session.Manager's List and RevokeSubject) reads the
// subject's bucket (and the subject index of format '1' records, while
// families written by the previous version live; their next rotation
// moves them to the bucket). In a Cluster it lives in another slot than the families,
// so no script can change both: Create adds the id to the index after the
// family is stored. If that fails, Create deletes the family again (best
// effort) and returns the error, so a family whose token was handed out is
// always indexed; a family left behind by a failed delete was never handed
// out and expires unseen. The index is pruned as it is used (entries past
// their expiry, ids whose family is gone or belongs to another subject) and
// expires with its longest-lived family. Subject does not see a family
// whose Create is still in flight.
//
// # Provider sid index
//
// BySID (back-channel logout) reads an index of the same shape, by the
// family's ProviderSID, kept the same way: Create adds a family with a sid
// to both indexes before it answers (deleting the family if either fails),
// and Swap re-indexes when the swap script reports that the sid changed
// (the record's trailing sid tag, see codec.go) or the expiry moved. A
// provider family stored before this index existed is indexed at its next
// rotation.
//
// # Errors
//
// A missing or expired family is store.ErrNotFound, a lost compare-and-swap
// store.ErrConflict, a taken id store.ErrExists. Everything else (connection
// refused, timeouts, context deadlines, LOADING, CLUSTERDOWN, MOVED after
// MaxRedirects, sentinels that monitor no master of MasterName, a corrupt
// record) is returned wrapped with %w and matches no store sentinel: the
// caller answers 503 and keeps the cookies.
//
// go-redis retries a command after a network error or a timeout (Options.
// MaxRetries, bounded), also when Redis may already have run it. A retried
// Swap then reads its own write as store.ErrConflict, which package session
// resolves by reading again: the token it presented is now the previous
// one, within grace, and opens the successor just written. A retried Create
// reads store.ErrExists and session starts again under a new id; the first
// family was never handed out and expires unseen.
//
// The store keeps what package session gives it: never a secret, a MAC key
// or a usable token (a family upgraded from the format before keyed MACs
// keeps its secret hashes for one more rotation). It logs nothing (go-redis itself logs
// failed dials through its package-wide logger, see redis.SetLogger).
//
// Store is safe for concurrent use.
package redisstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/silentauth/silentauth/authz/store"
)

var _ store.Store = (*Store)(nil)

// Store is a store.Store on Redis. Safe for concurrent use.
type Store struct {
	c      redis.UniversalClient
	prefix string
	now    func() time.Time
}

// New fills o's defaults, validates it and returns a Store over a new go-redis
// client. It does not connect: the first command does (see Ping), so a
// replica can start while Redis is down and report it on its health check.
func New(o Options) (*Store, error) {
	o = o.withDefaults()
	if err := o.Validate("redisstore"); err != nil {
		return nil, err
	}
	return &Store{c: redis.NewUniversalClient(o.universal()), prefix: o.KeyPrefix, now: o.Now}, nil
}

// Ping checks that Redis answers (one node, for a Cluster), for health
// checks.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisstore: ping: %w", err)
	}
	return nil
}

// Close closes the client and its connections. Calls after Close fail.
func (s *Store) Close() error { return s.c.Close() }

// Create implements store.Store. f.Version must be 1.
func (s *Store) Create(ctx context.Context, f *store.Family) error {
	if f == nil || f.ID == "" {
		return errors.New("redisstore: create: family without id")
	}
	if f.Version != 1 {
		return fmt.Errorf("redisstore: create %q: version %d, want 1", f.ID, f.Version)
	}
	exp, err := expiryMillis(f.AbsoluteExpiresAt)
	if err != nil {
		return fmt.Errorf("redisstore: create %q: %w", f.ID, err)
	}
	rec, err := encode(f)
	if err != nil {
		return fmt.Errorf("redisstore: create %q: %w", f.ID, err)
	}
	now := s.now().UnixMilli()
	key := s.familyKey(f.ID)
	res, err := createScript.Run(ctx, s.c, []string{key}, rec, exp, now).Text()
	if err := answer("create", f.ID, res, err); err != nil {
		return err
	}
	if err := s.indexAll(ctx, f, exp, now); err != nil {
		// Nobody holds this family's token yet: take it back rather than
		// leave a session that RevokeSubject could not find. On a
		// cancelled ctx too, bounded by the client's timeouts.
		if derr := s.c.Del(context.WithoutCancel(ctx), key).Err(); derr != nil {
			err = errors.Join(err, fmt.Errorf("delete unindexed family: %w", derr))
		}
		return fmt.Errorf("redisstore: create %q: index: %w", f.ID, err)
	}
	return nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, id string) (*store.Family, error) {
	rec, err := s.c.Get(ctx, s.familyKey(id)).Bytes()
	if err != nil {
		return nil, wrap("get", id, err)
	}
	f, err := s.live(id, rec)
	if err != nil {
		return nil, wrap("get", id, err)
	}
	return f, nil
}

// Swap implements store.Store: compare-and-swap on Version, in one script.
func (s *Store) Swap(ctx context.Context, expected uint64, next *store.Family) error {
	if next == nil || next.ID == "" {
		return errors.New("redisstore: swap: family without id")
	}
	if next.Version != expected+1 {
		return fmt.Errorf("redisstore: swap %q: next version %d, want %d", next.ID, next.Version, expected+1)
	}
	exp, err := expiryMillis(next.AbsoluteExpiresAt)
	if err != nil {
		return fmt.Errorf("redisstore: swap %q: %w", next.ID, err)
	}
	rec, err := encode(next)
	if err != nil {
		return fmt.Errorf("redisstore: swap %q: %w", next.ID, err)
	}
	now := s.now().UnixMilli()
	var tag string
	if next.ProviderSID != "" {
		t := sidTag(next.ProviderSID)
		tag = string(t[:])
	}
	res, err := swapScript.Run(ctx, s.c, []string{s.familyKey(next.ID)}, versionHead(expected), rec, exp, now, tag,
		subjectPrefixLen(next.Subject)).Text()
	if res == "reindex" && err == nil {
		// The subject, the sid or the expiry changed (package session
		// changes none of them; a record of format '1' or from before
		// the sid tag reads as changed once). The swap is done; only an index lags
		// if this fails, and the old index entry is pruned when read.
		if err := s.indexAll(ctx, next, exp, now); err != nil {
			return fmt.Errorf("redisstore: swap %q: swapped, but index: %w", next.ID, err)
		}
		return nil
	}
	return answer("swap", next.ID, res, err)
}

// Subject implements store.Store. It reads the subject's bucket and its
// index of format '1' (still read while families of the previous version
// live), then every family they name (one pipeline, split by node in a
// Cluster), and prunes them of entries that are gone or belong to another
// subject. The order of the families is unspecified.
func (s *Store) Subject(ctx context.Context, subject string) ([]*store.Family, error) {
	tag := tagOf(subject)
	hexTag := hex.EncodeToString(tag[:])
	match := func(f *store.Family) (bool, bool) {
		// Stale once moved to another index (a shared tag is not stale).
		return f.Subject == subject, tagOf(f.Subject) != tag
	}
	bucket, prefix := s.subjectBucket(tag)
	out, err := s.list(ctx, "subject", hexTag, index{key: bucket, prefix: prefix, now: nowSeconds(s.now())}, match)
	if err != nil {
		return nil, err
	}
	older, err := s.list(ctx, "subject", hexTag, index{key: s.subjectKey(hexTag), now: s.now().UnixMilli()}, match)
	if err != nil {
		return nil, err
	}
	for _, f := range older {
		if !slices.ContainsFunc(out, func(g *store.Family) bool { return g.ID == f.ID }) {
			out = append(out, f)
		}
	}
	return out, nil
}

// BySID implements store.Store like Subject, from the sid index. The order
// of the families is unspecified.
func (s *Store) BySID(ctx context.Context, sid string) ([]*store.Family, error) {
	if sid == "" {
		return nil, nil
	}
	t := sidTag(sid)
	tag := hex.EncodeToString(t[:])
	return s.list(ctx, "sid", tag, index{key: s.sidKey(tag), now: s.now().UnixMilli()}, func(f *store.Family) (bool, bool) {
		return f.ProviderSID == sid, f.ProviderSID == "" || sidTag(f.ProviderSID) != t
	})
}

// index is one index to read: its key, the prefix of the entries it holds
// for the families asked for (the rest belong to others), and now in the
// unit of its scores.
type index struct {
	key    string
	prefix string
	now    int64
}

// list reads index idx (named op and tag in errors), then every family its
// entries with idx.prefix name (one pipeline, split by node in a Cluster),
// keeping those that match reports as belonging, and prunes the index of
// entries whose family is gone or that match reports stale.
func (s *Store) list(ctx context.Context, op, tag string, idx index, match func(*store.Family) (belongs, stale bool)) ([]*store.Family, error) {
	entries, err := listScript.Run(ctx, s.c, []string{idx.key}, idx.now).StringSlice()
	if err != nil {
		return nil, wrap(op+" index", tag, err)
	}
	var ids []string
	for _, e := range entries {
		if id, ok := strings.CutPrefix(e, idx.prefix); ok {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.StringCmd, len(ids))
	_, err = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.Get(ctx, s.familyKey(id))
		}
		return nil
	})
	if err != nil && !missing(err) { // Pipelined reports the first error, a missing key too
		return nil, wrap(op, tag, err)
	}
	var (
		out   []*store.Family
		stale []any
	)
	for i, id := range ids {
		rec, err := cmds[i].Bytes()
		switch {
		case missing(err):
			stale = append(stale, idx.prefix+id)
			continue
		case err != nil:
			return nil, wrap(op, tag, err)
		}
		f, err := s.live(id, rec)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue // expired: the score prunes it
		case err != nil:
			return nil, wrap(op, tag, err)
		}
		if belongs, moved := match(f); !belongs {
			if moved {
				stale = append(stale, idx.prefix+id)
			}
			continue
		}
		out = append(out, f)
	}
	if len(stale) > 0 {
		// Housekeeping only: what is not removed now is removed on the
		// next read, or expires with the index.
		_ = s.c.ZRem(ctx, idx.key, stale...).Err()
	}
	return out, nil
}

// Claim implements store.Store: one script that sets the marker (SET … PXAT
// until) unless a live one is there. until is rounded up to the
// millisecond, so a marker never lapses early.
func (s *Store) Claim(ctx context.Context, key string, until time.Time) (bool, error) {
	now := s.now()
	if !until.After(now) {
		return false, fmt.Errorf("redisstore: claim: until %v is not after now %v", until, now)
	}
	exp, err := expiryMillis(until)
	if err != nil {
		return false, fmt.Errorf("redisstore: claim: %w", err)
	}
	res, err := claimScript.Run(ctx, s.c, []string{s.claimKey(key)}, exp, now.UnixMilli()).Text()
	switch {
	case err != nil:
		return false, fmt.Errorf("redisstore: claim: %w", err)
	case res == "ok":
		return true, nil
	case res == "taken":
		return false, nil
	default:
		return false, fmt.Errorf("redisstore: claim: unexpected script answer %q", res)
	}
}

// indexAll adds f to its subject's bucket and, if it has a ProviderSID,
// to its sid's index, with the family's expiry exp (ms) at now (ms).
func (s *Store) indexAll(ctx context.Context, f *store.Family, exp, now int64) error {
	bucket, prefix := s.subjectBucket(tagOf(f.Subject))
	if err := s.index(ctx, bucket, prefix+f.ID, (exp+999)/1000, now/1000, 1000); err != nil {
		return fmt.Errorf("subject: %w", err)
	}
	if f.ProviderSID != "" {
		t := sidTag(f.ProviderSID)
		if err := s.index(ctx, s.sidKey(hex.EncodeToString(t[:])), f.ID, exp, now, 1); err != nil {
			return fmt.Errorf("sid: %w", err)
		}
	}
	return nil
}

// index adds entry to index key idx, scored by the family's expiry exp at
// now, both in units of unit milliseconds.
func (s *Store) index(ctx context.Context, idx, entry string, exp, now, unit int64) error {
	res, err := indexScript.Run(ctx, s.c, []string{idx}, exp, entry, now, unit).Text()
	if err == nil && res != "ok" {
		err = fmt.Errorf("unexpected script answer %q", res)
	}
	return err
}

// live decodes the record of family id; store.ErrNotFound once its
// absolute lifetime has passed by the store's clock.
func (s *Store) live(id string, rec []byte) (*store.Family, error) {
	if len(rec) > maxValue {
		return nil, fmt.Errorf("%w: %d bytes", errCorrupt, len(rec))
	}
	f, err := decode(id, rec)
	if err != nil {
		return nil, err
	}
	if s.now().After(f.AbsoluteExpiresAt) {
		return nil, store.ErrNotFound
	}
	return f, nil
}

// answer maps a script's reply to the store's errors.
func answer(op, id, res string, err error) error {
	if err != nil {
		return wrap(op, id, err)
	}
	switch res {
	case "ok":
		return nil
	case "exists":
		err = store.ErrExists
	case "conflict":
		err = store.ErrConflict
	case "notfound":
		err = store.ErrNotFound
	case "format":
		err = fmt.Errorf("%w: unknown format", errCorrupt)
	default:
		err = fmt.Errorf("unexpected script answer %q", res)
	}
	return wrap(op, id, err)
}

// wrap names the operation; a missing key (redis.Nil) is store.ErrNotFound.
func wrap(op, id string, err error) error {
	if missing(err) {
		err = store.ErrNotFound
	}
	return fmt.Errorf("redisstore: %s %q: %w", op, id, err)
}

// missing reports whether err is Redis's nil reply itself: the key does not
// exist. An error that merely wraps one is a fault: go-redis's Sentinel
// client fails every command with an error wrapping the sentinel's nil
// reply when the sentinel monitors no master of that name.
func missing(err error) bool { return err == redis.Nil }

func (s *Store) familyKey(id string) string { return s.prefix + "fam:{" + id + "}" }

// subjectKey names the subject index of format '1' records: a sorted set
// per subject, still read (Subject) until its last family has expired.
func (s *Store) subjectKey(tag string) string { return s.prefix + "sub:{" + tag + "}" }

// subjectBuckets is how many buckets the subject index has.
const subjectBuckets = 1 << 16

// subjectBucket returns the key of the subject index bucket of a subject
// of tag t, and the prefix of its families' entries there (the entry is
// the prefix and the family id). The first two bytes of the tag pick one of
// subjectBuckets sorted sets; the next four prefix the entries, so a
// listing reads only the families of subjects sharing those 48 bits.
func (s *Store) subjectBucket(t [tagLen]byte) (key, prefix string) {
	return s.prefix + "subs:{" + hex.EncodeToString(t[:2]) + "}", string(t[2:6])
}

// nowSeconds is now in Unix seconds, rounded down: an entry scored by its
// expiry rounded up to the second is pruned no earlier than it expires.
func nowSeconds(now time.Time) int64 { return now.Unix() }

func (s *Store) sidKey(tag string) string { return s.prefix + "sid:{" + tag + "}" }

// claimKey names a Claim marker. No hash tag: a marker is one key, alone
// in its script, so a Cluster may put it in any slot.
func (s *Store) claimKey(key string) string { return s.prefix + "once:" + key }

// expiryMillis is t in Unix milliseconds, rounded up so Redis never drops
// a family before its AbsoluteExpiresAt.
func expiryMillis(t time.Time) (int64, error) {
	ms := t.UnixMilli()
	if t.After(time.UnixMilli(ms)) {
		ms++
	}
	if ms <= 0 {
		return 0, fmt.Errorf("absolute expiry %v not after 1970", t)
	}
	return ms, nil
}
