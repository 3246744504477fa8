package token

import (
	"sync"
	"time"

	"github.com/silentauth/silentauth/authz/keys"
)

// cache remembers verified tokens by the SHA-256 of their text. It is split
// into shards, each behind its own RWMutex, so concurrent hits rarely wait
// on one another. Safe for concurrent use.
type cache struct {
	shards []shard
}

type shard struct {
	mu   sync.RWMutex
	ring *keys.Keyring // the keyring every entry in m was verified under
	m    map[[32]byte]entry
	max  int
}

type entry struct {
	claims *Claims
	ring   *keys.Keyring
	until  time.Time // exp + leeway: the entry answers only while now < until
}

// maxShards spreads lock contention; a small cache uses one shard so that
// the bound is exact.
const maxShards = 16

// evictScan is how many entries put looks at for an expired one before
// evicting an arbitrary entry.
const evictScan = 4

// newCache returns a cache holding at most size entries (size ≥ 1).
func newCache(size int) *cache {
	n := maxShards
	if size < n {
		n = 1
	}
	c := &cache{shards: make([]shard, n)}
	for i := range c.shards {
		c.shards[i].max = size / n
		c.shards[i].m = make(map[[32]byte]entry)
	}
	return c
}

func (c *cache) shard(sum [32]byte) *shard {
	return &c.shards[int(sum[0])%len(c.shards)]
}

// get returns the claims cached for sum if they were verified under ring
// and now is before exp + leeway. A stale entry is dropped; so is the whole
// shard when the keyring has changed, since none of its entries can answer
// again (a removed key must not keep its tokens alive).
func (c *cache) get(sum [32]byte, ring *keys.Keyring, now time.Time) (*Claims, bool) {
	s := c.shard(sum)
	s.mu.RLock()
	sameRing := s.ring == ring
	e, ok := s.m[sum]
	s.mu.RUnlock()
	if sameRing && !ok {
		return nil, false
	}
	if ok && e.ring == ring && now.Before(e.until) {
		return e.claims, true
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ring != ring {
		clear(s.m)
		s.ring = ring
	} else if cur, ok := s.m[sum]; ok && !now.Before(cur.until) {
		delete(s.m, sum)
	}
	return nil, false
}

// put caches claims verified under ring until the given instant. When the
// shard is full it evicts one entry: of the first few the map yields (from a
// random start), the one that expires first, so an expired entry goes before
// a live one.
func (c *cache) put(sum [32]byte, ring *keys.Keyring, claims *Claims, until time.Time) {
	s := c.shard(sum)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ring != ring {
		clear(s.m)
		s.ring = ring
	}
	if _, ok := s.m[sum]; !ok && len(s.m) >= s.max {
		s.evictOne()
	}
	s.m[sum] = entry{claims: claims, ring: ring, until: until}
}

// evictOne removes the soonest-expiring of the first evictScan entries.
// The caller holds s.mu.
func (s *shard) evictOne() {
	var (
		victim [32]byte
		first  time.Time
		i      int
	)
	for k, e := range s.m {
		if i == 0 || e.until.Before(first) {
			victim, first = k, e.until
		}
		if i++; i == evictScan {
			break
		}
	}
	delete(s.m, victim)
}
