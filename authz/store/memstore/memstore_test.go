package memstore

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/authz/store/storetest"
	"github.com/silentauth/silentauth/internal/testenv/fakeclock"
)

func newStore(_ *testing.T, now func() time.Time) store.Store { return New(now) }

func TestConformance(t *testing.T) { storetest.Run(t, newStore) }

func TestSessionConformance(t *testing.T) { storetest.RunSession(t, newStore) }

func family(id, subject string, now time.Time, life time.Duration) *store.Family {
	return &store.Family{ID: id, Subject: subject, CreatedAt: now, IdleExpiresAt: now.Add(life), AbsoluteExpiresAt: now.Add(life), Version: 1}
}

func TestSweepPrunesFamiliesAndSubjectIndex(t *testing.T) {
	clk := fakeclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := New(clk.Now)
	for _, f := range []*store.Family{
		family("a1", "alice", clk.Now(), time.Hour), family("a2", "alice", clk.Now(), 3*time.Hour),
		family("b1", "bob", clk.Now(), time.Hour), family("c1", "carol", clk.Now(), 3*time.Hour),
	} {
		if err := s.Create(t.Context(), f); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(2 * time.Hour)
	if n := s.Sweep(); n != 2 {
		t.Fatalf("Sweep dropped %d, want 2", n)
	}
	if s.Len() != 2 || len(s.ids) != 2 {
		t.Fatalf("%d families left (%d indexed), want 2", s.Len(), len(s.ids))
	}
	if _, ok := s.subjects[s.key("bob")]; ok {
		t.Fatalf("subject index still holds bob: %v", s.subjects)
	}
	if got := subjectList(s, "alice"); !slices.Equal(got, []string{"a2"}) {
		t.Fatalf("subject index for alice = %v, want [a2]", got)
	}
	if n := s.Sweep(); n != 0 {
		t.Fatalf("second Sweep dropped %d, want 0", n)
	}
}

func TestLazyExpiryPrunesIndex(t *testing.T) {
	clk := fakeclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := New(clk.Now)
	if err := s.Create(t.Context(), family("a1", "alice", clk.Now(), time.Hour)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour + time.Nanosecond)
	if _, err := s.Get(t.Context(), "a1"); err == nil {
		t.Fatal("Get of an expired family succeeded")
	}
	if s.Len() != 0 || len(s.ids) != 0 || len(s.subjects) != 0 {
		t.Fatalf("expired family not dropped on access: %d %v %v", s.Len(), s.ids, s.subjects)
	}
}

// Families nobody touches again are still dropped: writes sweep, amortised.
func TestAmortisedSweepBoundsGarbage(t *testing.T) {
	clk := fakeclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := New(clk.Now)
	const n = 10_000
	for i := range n {
		if err := s.Create(t.Context(), family(fmt.Sprint(i), fmt.Sprint("u", i), clk.Now(), time.Minute)); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second) // each lives 60 writes
	}
	if live := 60; s.Len() > 2*live+minSweepEvery {
		t.Fatalf("%d families kept, want at most %d (about 60 live)", s.Len(), 2*live+minSweepEvery)
	}
	if len(s.subjects) != s.Len() || len(s.ids) != s.Len() {
		t.Fatalf("indexes have %d subjects and %d ids for %d families", len(s.subjects), len(s.ids), s.Len())
	}
}

func TestSwapMovesSubjectIndex(t *testing.T) {
	clk := fakeclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := New(clk.Now)
	f := family("a1", "alice", clk.Now(), time.Hour)
	if err := s.Create(t.Context(), f); err != nil {
		t.Fatal(err)
	}
	n := f.Clone()
	n.Subject, n.Version = "bob", 2
	if err := s.Swap(t.Context(), 1, n); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.subjects[s.key("alice")]; ok {
		t.Fatalf("alice still indexed: %v", s.subjects)
	}
	if got, _ := s.Subject(t.Context(), "bob"); len(got) != 1 {
		t.Fatalf("Subject(bob) = %d families, want 1", len(got))
	}
}

func TestCreateRejectsBadInput(t *testing.T) {
	s := New(nil)
	now := time.Now()
	tests := []struct {
		name string
		f    *store.Family
	}{
		{"nil", nil},
		{"no id", family("", "alice", now, time.Hour)},
		{"version 0", &store.Family{ID: "a", Subject: "alice", AbsoluteExpiresAt: now.Add(time.Hour)}},
		{"version 2", &store.Family{ID: "a", Subject: "alice", AbsoluteExpiresAt: now.Add(time.Hour), Version: 2}},
	}
	for _, tc := range tests {
		if err := s.Create(t.Context(), tc.f); err == nil {
			t.Errorf("%s: Create succeeded", tc.name)
		}
	}
}

// Claims nobody asks about again are dropped by Sweep, like families.
func TestSweepDropsClaims(t *testing.T) {
	clk := fakeclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := New(clk.Now)
	for i := range 10 {
		if ok, err := s.Claim(t.Context(), fmt.Sprint("k", i), clk.Now().Add(time.Duration(i+1)*time.Minute)); err != nil || !ok {
			t.Fatalf("Claim = %t, %v", ok, err)
		}
	}
	clk.Advance(5*time.Minute + time.Second)
	s.Sweep()
	if len(s.claims) != 5 {
		t.Fatalf("%d claims kept, want the 5 not yet past", len(s.claims))
	}
}

// subjectList returns the ids in subject's list, as linked in the records.
func subjectList(s *Store, subject string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	head, ok := s.subjects[s.key(subject)]
	for slot := head; ok; {
		r := &s.recs[slot]
		ids = append(ids, s.idOf(slot))
		slot, ok = r.lists[bySubject].next-1, r.lists[bySubject].next != noSlot
	}
	return ids
}
