// Package memstore is the in-process store.Store: one map behind a mutex,
// for a single replica (families are lost on restart and not shared between
// processes).
//
// Expiry follows the injected clock: a family whose AbsoluteExpiresAt has
// passed is reported as store.ErrNotFound and dropped the moment it is
// touched. Families nobody touches again are dropped by Sweep, which the
// store also runs by itself, amortised over writes (see Store); no
// background goroutine is needed.
package memstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/silentauth/silentauth/authz/store"
)

var _ store.Store = (*Store)(nil)

// minSweepEvery is the fewest writes between two amortised sweeps, so a
// small store does not sweep on every write.
const minSweepEvery = 64

// Store is an in-memory store.Store. It copies families on the way in and
// on the way out, never blocks on I/O and ignores contexts. All methods are
// safe for concurrent use.
//
// After as many writes (Create, Swap) as there were families left by the
// previous sweep (at least minSweepEvery), a write runs Sweep: the cost is
// amortised O(1) per write, and what is kept stays within about twice the
// live families plus minSweepEvery.
type Store struct {
	now func() time.Time

	mu       sync.Mutex
	families map[string]*store.Family       // id → family
	claims   map[string]time.Time           // Claim's key → until
	subjects map[string]map[string]struct{} // subject → ids
	sids     map[string]map[string]struct{} // ProviderSID → ids (families with one)
	writes   int                            // writes since the last sweep
	sweepAt  int                            // writes that trigger the next sweep
}

// New returns an empty store reading time from now (time.Now if nil).
func New(now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{
		now:      now,
		families: make(map[string]*store.Family),
		claims:   make(map[string]time.Time),
		subjects: make(map[string]map[string]struct{}),
		sids:     make(map[string]map[string]struct{}),
		sweepAt:  minSweepEvery,
	}
}

// Create implements store.Store. f.Version must be 1. An expired family
// with the same id counts as absent.
func (s *Store) Create(_ context.Context, f *store.Family) error {
	if f == nil || f.ID == "" {
		return errors.New("memstore: create: family without id")
	}
	if f.Version != 1 {
		return fmt.Errorf("memstore: create %q: version %d, want 1", f.ID, f.Version)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if _, ok := s.liveLocked(f.ID, now); ok {
		return fmt.Errorf("memstore: create %q: %w", f.ID, store.ErrExists)
	}
	s.putLocked(f.Clone())
	s.wroteLocked(now)
	return nil
}

// Get implements store.Store.
func (s *Store) Get(_ context.Context, id string) (*store.Family, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.liveLocked(id, s.now())
	if !ok {
		return nil, fmt.Errorf("memstore: get %q: %w", id, store.ErrNotFound)
	}
	return f.Clone(), nil
}

// Swap implements store.Store: compare-and-swap on Version.
func (s *Store) Swap(_ context.Context, expected uint64, next *store.Family) error {
	if next == nil || next.ID == "" {
		return errors.New("memstore: swap: family without id")
	}
	if next.Version != expected+1 {
		return fmt.Errorf("memstore: swap %q: next version %d, want %d", next.ID, next.Version, expected+1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	cur, ok := s.liveLocked(next.ID, now)
	if !ok {
		return fmt.Errorf("memstore: swap %q: %w", next.ID, store.ErrNotFound)
	}
	if cur.Version != expected {
		return fmt.Errorf("memstore: swap %q: version %d, expected %d: %w", next.ID, cur.Version, expected, store.ErrConflict)
	}
	s.dropLocked(cur) // the subject or the sid may have changed: re-index
	s.putLocked(next.Clone())
	s.wroteLocked(now)
	return nil
}

// Subject implements store.Store. Families come oldest first (CreatedAt,
// then ID).
func (s *Store) Subject(_ context.Context, subject string) ([]*store.Family, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listLocked(s.subjects[subject]), nil
}

// BySID implements store.Store. Families come oldest first (CreatedAt,
// then ID).
func (s *Store) BySID(_ context.Context, sid string) ([]*store.Family, error) {
	if sid == "" {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listLocked(s.sids[sid]), nil
}

// listLocked returns copies of the live families among ids, oldest first.
func (s *Store) listLocked(ids map[string]struct{}) []*store.Family {
	now := s.now()
	var out []*store.Family
	for id := range ids {
		if f, ok := s.liveLocked(id, now); ok {
			out = append(out, f.Clone())
		}
	}
	slices.SortFunc(out, func(a, b *store.Family) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// Claim implements store.Store. A claim counts as a write for the
// amortised sweep, which drops claims past their until with the families.
func (s *Store) Claim(_ context.Context, key string, until time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if !until.After(now) {
		return false, fmt.Errorf("memstore: claim: until %v is not after now %v", until, now)
	}
	if u, ok := s.claims[key]; ok && !now.After(u) {
		return false, nil
	}
	s.claims[key] = until
	s.wroteLocked(now)
	return true, nil
}

// Sweep drops every family whose AbsoluteExpiresAt has passed, and every
// claim past its until, and returns how many families it dropped. It is
// O(number of families and claims) under the lock.
func (s *Store) Sweep() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sweepLocked(s.now())
}

func (s *Store) sweepLocked(now time.Time) int {
	n := 0
	for _, f := range s.families {
		if expired(f, now) {
			s.dropLocked(f)
			n++
		}
	}
	for k, u := range s.claims {
		if now.After(u) {
			delete(s.claims, k)
		}
	}
	s.writes = 0
	s.sweepAt = max(len(s.families)+len(s.claims), minSweepEvery)
	return n
}

// expired reports whether f's absolute lifetime has passed: a family is
// still kept at the instant AbsoluteExpiresAt itself (see store.Store).
func expired(f *store.Family, now time.Time) bool {
	return now.After(f.AbsoluteExpiresAt)
}

// liveLocked returns the stored (internal) family id, dropping it if it has
// expired.
func (s *Store) liveLocked(id string, now time.Time) (*store.Family, bool) {
	f, ok := s.families[id]
	if !ok {
		return nil, false
	}
	if expired(f, now) {
		s.dropLocked(f)
		return nil, false
	}
	return f, true
}

func (s *Store) putLocked(f *store.Family) {
	s.families[f.ID] = f
	addIndex(s.subjects, f.Subject, f.ID)
	if f.ProviderSID != "" {
		addIndex(s.sids, f.ProviderSID, f.ID)
	}
}

// dropLocked removes f and prunes the subject and sid indexes.
func (s *Store) dropLocked(f *store.Family) {
	delete(s.families, f.ID)
	dropIndex(s.subjects, f.Subject, f.ID)
	dropIndex(s.sids, f.ProviderSID, f.ID)
}

func addIndex(index map[string]map[string]struct{}, key, id string) {
	ids := index[key]
	if ids == nil {
		ids = make(map[string]struct{})
		index[key] = ids
	}
	ids[id] = struct{}{}
}

func dropIndex(index map[string]map[string]struct{}, key, id string) {
	if ids := index[key]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(index, key)
		}
	}
}

// wroteLocked counts a write and sweeps when enough writes have passed.
func (s *Store) wroteLocked(now time.Time) {
	s.writes++
	if s.writes >= s.sweepAt {
		s.sweepLocked(now)
	}
}
