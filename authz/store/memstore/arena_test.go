package memstore

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/internal/testenv/fakeclock"
)

// The records and the index maps hold no pointer: the garbage collector
// has nothing to mark in them, however many families there are.
func TestRecordsHoldNoPointer(t *testing.T) {
	var noPointers func(reflect.Type) bool
	noPointers = func(ty reflect.Type) bool {
		switch ty.Kind() {
		case reflect.Array:
			return noPointers(ty.Elem())
		case reflect.Struct:
			for i := range ty.NumField() {
				if !noPointers(ty.Field(i).Type) {
					return false
				}
			}
			return true
		case reflect.Ptr, reflect.Slice, reflect.Map, reflect.String, reflect.Interface, reflect.Func, reflect.Chan, reflect.UnsafePointer:
			return false
		default:
			return true
		}
	}
	s := New(nil)
	for _, ty := range []reflect.Type{reflect.TypeFor[rec](), reflect.TypeOf(s.ids).Key(), reflect.TypeOf(s.ids).Elem()} {
		if !noPointers(ty) {
			t.Errorf("%v holds a pointer", ty)
		}
	}
}

// Families whose blobs are rewritten, grown, shrunk and dropped at random
// come back exactly as last written while the arena is compacted under
// them, and the arena stays within its bound.
func TestArenaChurn(t *testing.T) {
	clk := fakeclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := New(clk.Now)
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[string]*store.Family{}
	mk := func(id string, version uint64) *store.Family {
		f := family(id, fmt.Sprint("user-", rng.IntN(50)), clk.Now(), time.Hour)
		f.Version = version
		f.Claims = store.MustClaims(map[string]any{"pad": strings.Repeat("x", rng.IntN(300))})
		f.RefreshKey = fmt.Sprint("kid-", rng.IntN(3))
		if rng.IntN(3) == 0 {
			f.ProviderSID = fmt.Sprint("sid-", rng.IntN(20))
			f.Provider = bytes.Repeat([]byte{byte(version)}, rng.IntN(100))
		}
		if rng.IntN(50) == 0 {
			f.Provider = bytes.Repeat([]byte{7}, chunkSize+10) // a blob over a chunk
		}
		return f
	}
	for i := range 30_000 {
		id := fmt.Sprint("fam-", rng.IntN(2000))
		cur, ok := want[id]
		switch {
		case !ok:
			f := mk(id, 1)
			if err := s.Create(t.Context(), f); err != nil {
				t.Fatal(err)
			}
			want[id] = f
		case rng.IntN(10) == 0:
			s.mu.Lock()
			slot, _ := s.findLocked(id, clk.Now())
			s.dropLocked(slot)
			s.mu.Unlock()
			delete(want, id)
		default:
			f := mk(id, cur.Version+1)
			if err := s.Swap(t.Context(), cur.Version, f); err != nil {
				t.Fatal(err)
			}
			want[id] = f
		}
		if i%1000 == 0 {
			check(t, s, want)
		}
	}
	check(t, s, want)
}

func check(t *testing.T, s *Store, want map[string]*store.Family) {
	t.Helper()
	if s.Len() != len(want) {
		t.Fatalf("%d families stored, want %d", s.Len(), len(want))
	}
	for id, w := range want {
		got, err := s.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != w.Version || got.Subject != w.Subject || got.Claims != w.Claims || got.RefreshKey != w.RefreshKey ||
			got.ProviderSID != w.ProviderSID || !bytes.Equal(got.Provider, w.Provider) || !got.AbsoluteExpiresAt.Equal(w.AbsoluteExpiresAt) {
			t.Fatalf("family %s came back as %+v, want %+v", id, got, w)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.arenaCap > s.arenaLive+s.arenaLive/8+2*chunkSize+chunkSize+20 { // a chunk of a blob over chunkSize may be the one written to
		t.Fatalf("arena holds %d bytes for %d live", s.arenaCap, s.arenaLive)
	}
	live := 0
	for c := range s.chunks {
		live += s.chunkLive[c]
	}
	if live != s.arenaLive {
		t.Fatalf("chunks count %d live bytes, the arena %d", live, s.arenaLive)
	}
}

// After a mass expiry the records, indexes and arena shrink to the
// families left, which stay intact.
func TestShrinkAfterExpiry(t *testing.T) {
	clk := fakeclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := New(clk.Now)
	const n = 3 * minShrink
	for i := range n {
		life := time.Minute
		if i%10 == 0 {
			life = time.Hour
		}
		f := family(fmt.Sprint("fam-", i), fmt.Sprint("user-", i%7), clk.Now(), life)
		f.ProviderSID = fmt.Sprint("sid-", i%5)
		if err := s.Create(t.Context(), f); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(2 * time.Minute)
	const left = (n + 9) / 10
	if got := s.Sweep(); got != n-left {
		t.Fatalf("Sweep dropped %d, want %d", got, n-left)
	}
	if len(s.recs) != left || len(s.free) != 0 || s.Len() != left {
		t.Fatalf("%d records (%d free) for %d families after the sweep", len(s.recs), len(s.free), s.Len())
	}
	for i := 0; i < n; i += 10 {
		if _, err := s.Get(t.Context(), fmt.Sprint("fam-", i)); err != nil {
			t.Fatal(err)
		}
	}
	fams, err := s.Subject(t.Context(), "user-0")
	if err != nil || len(fams) != len(subjectList(s, "user-0")) || len(fams) == 0 {
		t.Fatalf("Subject(user-0) = %d families, %v", len(fams), err)
	}
	if fams, _ := s.BySID(t.Context(), "sid-0"); len(fams) != left {
		t.Fatalf("BySID(sid-0) = %d families, want %d", len(fams), left)
	}
}
