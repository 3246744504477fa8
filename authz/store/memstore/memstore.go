// Package memstore is the in-process store.Store, for a single replica
// (families are lost on restart and not shared between processes).
//
// It holds nothing the garbage collector has to trace per family, so a
// million stored sessions cost the Checks of the process no marking work:
//   - each family is one fixed-size record without pointers (times as Unix
//     nanoseconds, counters, and the links of its indexes) in one slice;
//   - its variable parts (id, subject, claims, policy, kid, provider
//     tokens…) are one encoded blob in a byte arena of 64 KiB chunks,
//     referenced from the record by chunk, offset and length;
//   - the id, subject and provider-sid indexes are maps from a 128-bit
//     hash of the string to a slot (maps whose keys and values hold no
//     pointers are not scanned); a subject's or sid's families are a list
//     linked through the records. Every lookup compares the string itself,
//     so a hash collision can cost a comparison, never a wrong family.
//
// Expiry follows the injected clock: a family whose AbsoluteExpiresAt has
// passed is reported as store.ErrNotFound and dropped the moment it is
// touched. Families nobody touches again are dropped by an incremental
// sweep, a few records per write (see Store); no background goroutine is
// needed.
package memstore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/silentauth/silentauth/authz/store"
)

var _ store.Store = (*Store)(nil)

const (
	// minSweepEvery is the fewest writes between two sweeps of the claims
	// (single-use markers), so a small store does not sweep on every write.
	minSweepEvery = 64
	// sweepStep is how many records each write examines for expiry: a full
	// pass over n records takes n/sweepStep writes, so expired families
	// kept stay within about a sweepStep-th of the records.
	sweepStep = 4
	// chunkSize is the size of an arena chunk, the most a compaction step
	// copies (see settleLocked).
	chunkSize = 64 << 10
	// minShrink: the record slice and the index maps are rebuilt at their
	// live size once fewer than a quarter of at least this many slots are
	// in use (Go maps never shrink by themselves).
	minShrink = 4096
	// blobHeader precedes each blob in a chunk: its slot and its length,
	// so a chunk can be walked when it is evacuated.
	blobHeader = 8
)

// Times of a record, by index.
const (
	tCreated = iota
	tLastUsed
	tIdle
	tAbsolute
	tPreviousUntil
	tRevoked
	tProviderRefresh
	tLease
	nTimes
)

// zeroTime stands for the zero time.Time among a record's times.
const zeroTime = math.MinInt64

// Record flags.
const (
	fInUse = 1 << iota
	fCurrentSeen
	fSID // has a ProviderSID: linked in the sid index
)

// noSlot ends a list; links hold slot+1.
const noSlot = 0

// A record is in two lists: its subject's, and its ProviderSID's if it
// has one; rec.lists holds its links in each.
const (
	bySubject = iota
	bySID
)

// links are a record's neighbours in one list (slot+1, noSlot at an end).
type links struct{ prev, next uint32 }

// rec is one family's fixed part. It holds no pointer.
type rec struct {
	times         [nTimes]int64 // Unix nanoseconds, zeroTime for none
	gen, version  uint64
	chunk, off, n uint32   // its blob: chunk, offset of the data, length
	lists         [2]links // in its subject's list and its sid's (bySubject, bySID)
	kid           uint16   // RefreshKey: index+1 in Store.kids, 0 for ""
	flags         uint8
}

// hkey is a string's 128-bit hash under the store's random seeds.
type hkey [16]byte

// Store is an in-memory store.Store. It copies families on the way in and
// on the way out, never blocks on I/O and ignores contexts. All methods are
// safe for concurrent use.
//
// Every write (Create, Swap, Claim) examines the next sweepStep records
// for expiry, so a family nobody touches again is dropped within one pass
// over the records, and what is kept stays within about live families plus
// a sweepStep-th of the records. No single write does more than bounded
// work, except the rebuild at live size once three quarters of the
// records are gone (after a mass expiry), which brings the memory back to
// that of the families left.
//
// Times are kept to the nanosecond as Unix time (years 1678 to 2261) and
// come back in UTC; Create and Swap refuse a family with a time outside.
type Store struct {
	now        func() time.Time
	seedA      maphash.Seed
	seedB      maphash.Seed
	mu         sync.Mutex
	recs       []rec
	free       []uint32        // free slots, reused last freed first
	stored     int             // records in use (live or expired not yet dropped)
	ids        map[hkey]uint32 // id → slot
	subjects   map[hkey]uint32 // subject → head slot of its list
	sids       map[hkey]uint32 // ProviderSID → head slot of its list
	chunks     [][]byte        // the arena; nil where a chunk was released
	chunkLive  []int           // live bytes (headers included) per chunk
	freeChunks []uint32
	cur        int    // the chunk written to, -1 before the first
	arenaLive  int    // bytes of live blobs, headers included
	arenaCap   int    // bytes of the chunks held
	cursor     int    // next record the incremental sweep examines
	scratch    []byte // a blob being encoded

	// kids interns the RefreshKey of families: the kids of the signing
	// keys, a handful over a process's life, 43 bytes each.
	kids    []string
	kidIdx  map[string]uint16
	claims  map[string]time.Time // Claim's key → until
	writes  int                  // writes since the claims were last swept
	sweepAt int                  // writes that trigger the next claims sweep
}

// New returns an empty store reading time from now (time.Now if nil).
func New(now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	s := &Store{
		now:     now,
		seedA:   maphash.MakeSeed(),
		seedB:   maphash.MakeSeed(),
		claims:  make(map[string]time.Time),
		kidIdx:  make(map[string]uint16),
		sweepAt: minSweepEvery,
	}
	s.reset(0)
	return s
}

// reset empties the indexes and the arena, sized for n families.
func (s *Store) reset(n int) {
	s.recs = make([]rec, 0, n)
	s.free = nil
	s.stored = 0
	s.ids = make(map[hkey]uint32, n)
	s.subjects = make(map[hkey]uint32, n)
	s.sids = make(map[hkey]uint32)
	s.chunks, s.chunkLive, s.freeChunks = nil, nil, nil
	s.cur = -1
	s.arenaLive, s.arenaCap = 0, 0
	s.cursor = 0
}

func (s *Store) key(str string) hkey {
	var k hkey
	binary.LittleEndian.PutUint64(k[:8], maphash.String(s.seedA, str))
	binary.LittleEndian.PutUint64(k[8:], maphash.String(s.seedB, str))
	return k
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
	times, err := recTimes(f)
	if err != nil {
		return fmt.Errorf("memstore: create %q: %w", f.ID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	k := s.key(f.ID)
	if slot, ok := s.ids[k]; ok {
		if s.idOf(slot) != f.ID {
			// Two ids with one 128-bit hash under random seeds: never seen
			// in practice; refusing keeps the index one slot per key.
			return fmt.Errorf("memstore: create %q: id hash taken", f.ID)
		}
		if s.liveLocked(slot, now) {
			return fmt.Errorf("memstore: create %q: %w", f.ID, store.ErrExists)
		}
	}
	kid, err := s.internLocked(f.RefreshKey)
	if err != nil {
		return fmt.Errorf("memstore: create %q: %w", f.ID, err)
	}
	slot := s.allocLocked()
	r := &s.recs[slot]
	s.fillLocked(slot, r, f, times, kid)
	s.settleLocked()
	s.ids[k] = slot
	s.linkLocked(slot, f)
	s.wroteLocked(now)
	return nil
}

// Get implements store.Store.
func (s *Store) Get(_ context.Context, id string) (*store.Family, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	slot, ok := s.findLocked(id, s.now())
	if !ok {
		return nil, fmt.Errorf("memstore: get %q: %w", id, store.ErrNotFound)
	}
	return s.familyLocked(slot), nil
}

// Swap implements store.Store: compare-and-swap on Version.
func (s *Store) Swap(_ context.Context, expected uint64, next *store.Family) error {
	if next == nil || next.ID == "" {
		return errors.New("memstore: swap: family without id")
	}
	if next.Version != expected+1 {
		return fmt.Errorf("memstore: swap %q: next version %d, want %d", next.ID, next.Version, expected+1)
	}
	times, err := recTimes(next)
	if err != nil {
		return fmt.Errorf("memstore: swap %q: %w", next.ID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	slot, ok := s.findLocked(next.ID, now)
	if !ok {
		return fmt.Errorf("memstore: swap %q: %w", next.ID, store.ErrNotFound)
	}
	r := &s.recs[slot]
	if r.version != expected {
		return fmt.Errorf("memstore: swap %q: version %d, expected %d: %w", next.ID, r.version, expected, store.ErrConflict)
	}
	kid, err := s.internLocked(next.RefreshKey)
	if err != nil {
		return fmt.Errorf("memstore: swap %q: %w", next.ID, err)
	}
	s.unlinkLocked(slot) // the subject or the sid may have changed: re-index
	oldChunk, oldN := r.chunk, r.n
	s.fillLocked(slot, r, next, times, kid)
	s.releaseLocked(oldChunk, oldN) // after the record points at its new blob
	s.settleLocked()
	s.linkLocked(slot, next)
	s.wroteLocked(now)
	return nil
}

// Subject implements store.Store. Families come oldest first (CreatedAt,
// then ID).
func (s *Store) Subject(_ context.Context, subject string) ([]*store.Family, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listLocked(s.subjects, subject, bySubject), nil
}

// BySID implements store.Store. Families come oldest first (CreatedAt,
// then ID).
func (s *Store) BySID(_ context.Context, sid string) ([]*store.Family, error) {
	if sid == "" {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listLocked(s.sids, sid, bySID), nil
}

// listLocked returns copies of the live families in the list of name in
// index, list which of the records (bySubject or bySID), oldest first.
func (s *Store) listLocked(index map[hkey]uint32, name string, which int) []*store.Family {
	now := s.now()
	head, ok := index[s.key(name)]
	if !ok {
		return nil
	}
	var out []*store.Family
	for slot, ok := head, true; ok; {
		r := &s.recs[slot]
		link := r.lists[which].next
		// Read before a drop below unlinks slot.
		nextSlot, more := link-1, link != noSlot
		b := s.blob(r)
		v := decodeView(b)
		same := v.subject == name
		if which == bySID {
			same = v.sid == name
		}
		if same && s.liveLocked(slot, now) {
			out = append(out, s.familyLocked(slot))
		}
		slot, ok = nextSlot, more
	}
	slices.SortFunc(out, func(a, b *store.Family) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// Claim implements store.Store. A claim counts as a write for the
// amortised sweep, which drops claims past their until.
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
// claim past its until, and returns how many families it dropped; it then
// rebuilds the records and indexes at their live size if three quarters
// are free. It is O(number of families and claims) under the lock.
func (s *Store) Sweep() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	n := 0
	for slot := range s.recs {
		if s.recs[slot].flags&fInUse != 0 && !s.liveLocked(uint32(slot), now) {
			n++
		}
	}
	s.sweepClaimsLocked(now)
	s.maybeShrinkLocked()
	return n
}

// Len returns how many families the store holds, counting the expired
// ones not dropped yet.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stored
}

func (s *Store) sweepClaimsLocked(now time.Time) {
	for k, u := range s.claims {
		if now.After(u) {
			delete(s.claims, k)
		}
	}
	s.writes = 0
	s.sweepAt = max(len(s.claims), minSweepEvery)
}

// wroteLocked counts a write: it examines the next sweepStep records, and
// sweeps the claims when enough writes have passed.
func (s *Store) wroteLocked(now time.Time) {
	ns := now.UnixNano()
	for range sweepStep {
		if s.cursor >= len(s.recs) {
			s.cursor = 0
			s.maybeShrinkLocked()
			break
		}
		slot := uint32(s.cursor)
		s.cursor++
		if r := &s.recs[slot]; r.flags&fInUse != 0 && ns > r.times[tAbsolute] {
			s.dropLocked(slot)
		}
	}
	s.writes++
	if s.writes >= s.sweepAt {
		s.sweepClaimsLocked(now)
	}
}

// findLocked returns the slot of the live family id, dropping it if it
// has expired.
func (s *Store) findLocked(id string, now time.Time) (uint32, bool) {
	slot, ok := s.ids[s.key(id)]
	if !ok || s.idOf(slot) != id {
		return 0, false
	}
	return slot, s.liveLocked(slot, now)
}

// liveLocked reports whether the family in slot is live, dropping it if
// its absolute lifetime has passed: a family is still kept at the instant
// AbsoluteExpiresAt itself (see store.Store).
func (s *Store) liveLocked(slot uint32, now time.Time) bool {
	if now.UnixNano() > s.recs[slot].times[tAbsolute] {
		s.dropLocked(slot)
		return false
	}
	return true
}

// allocLocked returns a free slot.
func (s *Store) allocLocked() uint32 {
	s.stored++
	if n := len(s.free); n > 0 {
		slot := s.free[n-1]
		s.free = s.free[:n-1]
		return slot
	}
	s.recs = append(s.recs, rec{})
	return uint32(len(s.recs) - 1)
}

// fillLocked writes f into the record in slot (r), its blob included. The
// caller settles the arena (settleLocked) once the blob it replaces, if
// any, is released.
func (s *Store) fillLocked(slot uint32, r *rec, f *store.Family, times [nTimes]int64, kid uint16) {
	s.scratch = appendBlob(s.scratch[:0], f)
	chunk, off := s.writeLocked(slot, s.scratch)
	var flags uint8 = fInUse
	if f.CurrentSeen {
		flags |= fCurrentSeen
	}
	if f.ProviderSID != "" {
		flags |= fSID
	}
	*r = rec{times: times, gen: f.Generation, version: f.Version, chunk: chunk, off: off, n: uint32(len(s.scratch)), kid: kid, flags: flags}
	if cap(s.scratch) > 64<<10 {
		s.scratch = nil // a huge family: do not keep its buffer
	}
}

// dropLocked removes the family in slot: its index entries, its blob and
// its record.
func (s *Store) dropLocked(slot uint32) {
	r := &s.recs[slot]
	delete(s.ids, s.key(s.idOf(slot)))
	s.unlinkLocked(slot)
	chunk, n := r.chunk, r.n
	*r = rec{}
	s.releaseLocked(chunk, n)
	s.free = append(s.free, slot)
	s.stored--
	s.settleLocked()
}

// linkLocked puts slot at the head of its subject's list and, if f has a
// ProviderSID, of its sid's.
func (s *Store) linkLocked(slot uint32, f *store.Family) {
	s.pushLocked(slot, bySubject, s.subjects, s.key(f.Subject))
	if f.ProviderSID != "" {
		s.pushLocked(slot, bySID, s.sids, s.key(f.ProviderSID))
	}
}

// pushLocked puts slot at the head of list which of key k in index.
func (s *Store) pushLocked(slot uint32, which int, index map[hkey]uint32, k hkey) {
	if head, ok := index[k]; ok {
		s.recs[slot].lists[which].next = head + 1
		s.recs[head].lists[which].prev = slot + 1
	}
	index[k] = slot
}

// unlinkLocked takes slot out of its subject's and sid's lists.
func (s *Store) unlinkLocked(slot uint32) {
	v := decodeView(s.blob(&s.recs[slot]))
	s.popLocked(slot, bySubject, s.subjects, s.key(v.subject))
	if s.recs[slot].flags&fSID != 0 {
		s.popLocked(slot, bySID, s.sids, s.key(v.sid))
	}
}

// popLocked takes slot out of list which of key k in index.
func (s *Store) popLocked(slot uint32, which int, index map[hkey]uint32, k hkey) {
	l := &s.recs[slot].lists[which]
	switch {
	case l.prev != noSlot:
		s.recs[l.prev-1].lists[which].next = l.next
	case l.next != noSlot:
		index[k] = l.next - 1
	default:
		delete(index, k)
	}
	if l.next != noSlot {
		s.recs[l.next-1].lists[which].prev = l.prev
	}
	*l = links{}
}

// maybeShrinkLocked rebuilds the records, the indexes and the arena at
// their live size once fewer than a quarter of the slots are in use: after
// a mass expiry the memory goes back to that of the families left.
func (s *Store) maybeShrinkLocked() {
	if len(s.recs) < minShrink || s.stored*4 >= len(s.recs) {
		return
	}
	oldRecs, oldChunks := s.recs, s.chunks
	s.reset(s.stored)
	for slot := range oldRecs {
		r := &oldRecs[slot]
		if r.flags&fInUse == 0 {
			continue
		}
		b := oldChunks[r.chunk][r.off : r.off+r.n]
		v := decodeView(b)
		nslot := s.allocLocked()
		chunk, off := s.writeLocked(nslot, b)
		nr := &s.recs[nslot]
		*nr = rec{times: r.times, gen: r.gen, version: r.version, chunk: chunk, off: off, n: r.n, kid: r.kid, flags: r.flags}
		s.ids[s.key(v.id)] = nslot
		s.linkLocked(nslot, &store.Family{Subject: v.subject, ProviderSID: v.sid})
	}
}

// blob returns the encoded variable part of r (in the arena: read only).
func (s *Store) blob(r *rec) []byte {
	return s.chunks[r.chunk][r.off : r.off+r.n : r.off+r.n]
}

func (s *Store) idOf(slot uint32) string {
	return decodeView(s.blob(&s.recs[slot])).id
}

// writeLocked appends data, the blob of slot, to the arena and returns
// where it is.
func (s *Store) writeLocked(slot uint32, data []byte) (chunk, off uint32) {
	need := blobHeader + len(data)
	if s.cur < 0 || cap(s.chunks[s.cur])-len(s.chunks[s.cur]) < need {
		if s.cur >= 0 && s.chunkLive[s.cur] == 0 {
			s.freeChunkLocked(s.cur)
		}
		s.cur = s.newChunkLocked(max(chunkSize, need))
	}
	c := s.chunks[s.cur]
	c = binary.LittleEndian.AppendUint32(c, slot)
	c = binary.LittleEndian.AppendUint32(c, uint32(len(data)))
	off = uint32(len(c))
	c = append(c, data...)
	s.chunks[s.cur] = c
	s.chunkLive[s.cur] += need
	s.arenaLive += need
	return uint32(s.cur), off
}

func (s *Store) newChunkLocked(size int) int {
	b := make([]byte, 0, size)
	s.arenaCap += size
	if n := len(s.freeChunks); n > 0 {
		c := s.freeChunks[n-1]
		s.freeChunks = s.freeChunks[:n-1]
		s.chunks[c], s.chunkLive[c] = b, 0
		return int(c)
	}
	s.chunks = append(s.chunks, b)
	s.chunkLive = append(s.chunkLive, 0)
	return len(s.chunks) - 1
}

// releaseLocked counts a blob of n bytes in chunk as dead. An empty chunk
// is released, or written from its start again if it is the one written
// to.
func (s *Store) releaseLocked(chunk, n uint32) {
	c := int(chunk)
	s.chunkLive[c] -= blobHeader + int(n)
	s.arenaLive -= blobHeader + int(n)
	if s.chunkLive[c] > 0 {
		return
	}
	if c == s.cur {
		s.chunks[c] = s.chunks[c][:0]
		return
	}
	s.freeChunkLocked(c)
}

func (s *Store) freeChunkLocked(c int) {
	s.arenaCap -= cap(s.chunks[c])
	s.chunks[c], s.chunkLive[c] = nil, 0
	s.freeChunks = append(s.freeChunks, uint32(c))
}

// settleLocked compacts the arena, once every record points at its blob:
// while the chunks hold more than an eighth above the live blobs (and two
// chunks of slack: the one written to is never evacuated), the sparsest
// other chunk is evacuated, its live blobs moved to the chunk written to.
// The sparsest is at most eight-ninths live then, so a byte reclaimed
// costs at most eight bytes copied, and one call copies about a chunk per evacuation it needs
// (one, in the steady state of a write).
func (s *Store) settleLocked() {
	for s.arenaCap > s.arenaLive+s.arenaLive/8+2*chunkSize {
		c, best := -1, 1.0
		for i, b := range s.chunks {
			if i == s.cur || b == nil {
				continue
			}
			if p := float64(s.chunkLive[i]) / float64(cap(b)); p < best {
				c, best = i, p
			}
		}
		if c < 0 {
			return
		}
		s.evacuateLocked(c)
	}
}

// evacuateLocked moves the live blobs of chunk c to the chunk written to,
// and releases c.
func (s *Store) evacuateLocked(c int) {
	b := s.chunks[c]
	for pos := 0; pos+blobHeader <= len(b) && s.chunkLive[c] > 0; {
		slot := binary.LittleEndian.Uint32(b[pos:])
		size := binary.LittleEndian.Uint32(b[pos+4:])
		data := uint32(pos + blobHeader)
		if int(slot) < len(s.recs) {
			if r := &s.recs[slot]; r.flags&fInUse != 0 && r.chunk == uint32(c) && r.off == data {
				r.chunk, r.off = s.writeLocked(slot, b[data:data+size])
				s.chunkLive[c] -= blobHeader + int(size)
				s.arenaLive -= blobHeader + int(size)
			}
		}
		pos = int(data + size)
	}
	s.freeChunkLocked(c)
}

// familyLocked returns a new store.Family holding the family in slot.
func (s *Store) familyLocked(slot uint32) *store.Family {
	r := &s.recs[slot]
	f := decodeBlob(s.blob(r))
	f.CreatedAt = fromNanos(r.times[tCreated])
	f.LastUsedAt = fromNanos(r.times[tLastUsed])
	f.IdleExpiresAt = fromNanos(r.times[tIdle])
	f.AbsoluteExpiresAt = fromNanos(r.times[tAbsolute])
	f.PreviousUntil = fromNanos(r.times[tPreviousUntil])
	f.RevokedAt = fromNanos(r.times[tRevoked])
	f.ProviderRefreshAt = fromNanos(r.times[tProviderRefresh])
	f.LeaseUntil = fromNanos(r.times[tLease])
	if r.kid != 0 {
		f.RefreshKey = s.kids[r.kid-1]
	}
	f.Generation = r.gen
	f.Version = r.version
	f.CurrentSeen = r.flags&fCurrentSeen != 0
	return f
}

// internLocked returns the index+1 of kid in s.kids, adding it if new (0
// for "").
func (s *Store) internLocked(kid string) (uint16, error) {
	if kid == "" {
		return 0, nil
	}
	if i, ok := s.kidIdx[kid]; ok {
		return i, nil
	}
	if len(s.kids) >= math.MaxUint16 {
		return 0, errors.New("too many refresh key ids")
	}
	s.kids = append(s.kids, kid)
	i := uint16(len(s.kids))
	s.kidIdx[kid] = i
	return i, nil
}

// recTimes returns f's times as a record keeps them.
func recTimes(f *store.Family) ([nTimes]int64, error) {
	var out [nTimes]int64
	for i, t := range [nTimes]time.Time{
		tCreated: f.CreatedAt, tLastUsed: f.LastUsedAt, tIdle: f.IdleExpiresAt, tAbsolute: f.AbsoluteExpiresAt,
		tPreviousUntil: f.PreviousUntil, tRevoked: f.RevokedAt, tProviderRefresh: f.ProviderRefreshAt, tLease: f.LeaseUntil,
	} {
		if t.IsZero() {
			out[i] = zeroTime
			continue
		}
		if y := t.Year(); y < 1678 || y > 2261 {
			return out, fmt.Errorf("time %v out of the range kept (years 1678 to 2261)", t)
		}
		out[i] = t.UnixNano()
	}
	return out, nil
}

func fromNanos(ns int64) time.Time {
	if ns == zeroTime {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// A blob holds, in order: the id, subject and provider sid (read by the
// indexes without decoding the rest), then policy, claims, revoke reason, user agent and client address, each a uvarint length and
// its bytes; then the provider tokens and the successor, each a uvarint of
// length+1 (0 for nil) and its bytes; then the count of legacy secret
// hashes and each one as length+1 and bytes.

// view is the start of a blob.
type view struct {
	id, subject, sid string
}

// decodeView reads the id, subject and sid of b without copying them: the
// strings alias the arena and must not outlive the call that made them.
func decodeView(b []byte) view {
	var v view
	var rest []byte
	v.id, rest = readAlias(b)
	v.subject, rest = readAlias(rest)
	v.sid, _ = readAlias(rest)
	return v
}

func readAlias(b []byte) (string, []byte) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return "", nil
	}
	b = b[k:]
	return unsafeString(b[:n]), b[n:]
}

func appendBlob(b []byte, f *store.Family) []byte {
	for _, str := range []string{f.ID, f.Subject, f.ProviderSID, f.Policy, f.Claims.JSON(), f.RevokeReason, f.UserAgent, f.ClientAddress} {
		b = binary.AppendUvarint(b, uint64(len(str)))
		b = append(b, str...)
	}
	b = appendNillable(b, f.Provider)
	b = appendNillable(b, f.Successor)
	b = binary.AppendUvarint(b, uint64(len(f.Secrets)))
	for _, h := range f.Secrets {
		b = appendNillable(b, h)
	}
	return b
}

func appendNillable(b, v []byte) []byte {
	if v == nil {
		return binary.AppendUvarint(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(v))+1)
	return append(b, v...)
}

// blobReader reads a blob this package wrote.
type blobReader struct{ b []byte }

func (r *blobReader) next() []byte {
	n, k := binary.Uvarint(r.b)
	v := r.b[k : k+int(n)]
	r.b = r.b[k+int(n):]
	return v
}

func (r *blobReader) nillable() []byte {
	n, k := binary.Uvarint(r.b)
	r.b = r.b[k:]
	if n == 0 {
		return nil
	}
	v := bytes.Clone(r.b[:n-1])
	r.b = r.b[n-1:]
	return v
}

// decodeBlob returns a new family with the variable fields of b, copied
// out of the arena.
func decodeBlob(b []byte) *store.Family {
	r := blobReader{b}
	f := &store.Family{}
	f.ID = string(r.next())
	f.Subject = string(r.next())
	f.ProviderSID = string(r.next())
	f.Policy = string(r.next())
	f.Claims = store.RawClaims(r.next())
	f.RevokeReason = string(r.next())
	f.UserAgent = string(r.next())
	f.ClientAddress = string(r.next())
	f.Provider = r.nillable()
	f.Successor = r.nillable()
	n, k := binary.Uvarint(r.b)
	r.b = r.b[k:]
	if n > 0 {
		f.Secrets = make([][]byte, n)
		for i := range f.Secrets {
			f.Secrets[i] = r.nillable()
		}
	}
	return f
}

// unsafeString returns b as a string without copying: only for
// comparisons and hashing within one locked call.
func unsafeString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
