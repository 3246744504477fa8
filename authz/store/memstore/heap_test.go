package memstore

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/internal/testenv/fakeclock"
)

// TestHeapPerFamily measures the Go heap a typical family holds in the
// memory store (an OIDC subject, three short claims, started through
// session.Manager) fresh and after 15 and 100 rotations, and what is left
// once they have all expired and been swept. It pins issue #18's budget:
// at most 400 bytes fresh, no growth with rotations beyond the arena's
// bounded slack (an eighth, and two 64 KiB chunks: 26 bytes a family
// here, nothing at a million), and back to the empty store after expiry.
//
// Measured with 5,000 families: 363 bytes fresh, 405 after 15 and after
// 100 rotations, 2 after expiry and a sweep; with 10,000: 339, 366, 368
// and 2 (1231 with a claims map and a pointer per family; 1255 and 2163
// while a family kept secret hashes and a sealed successor).
func TestHeapPerFamily(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates and rotates thousands of families")
	}
	const n = 5000
	clk := fakeclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	rotations := []int{0, 15, 100}
	perFamily := make([]int64, len(rotations))
	var expired int64
	for i, rot := range rotations {
		s := New(clk.Now)
		m := session.New(s, session.Lifetimes{}, clk.Now)
		before := heap()
		for j := range n {
			is, err := m.Start(t.Context(), fmt.Sprintf("00u1abcd2EFG%08d", j), "", map[string]any{
				"email": "ada.lovelace@example.com", "name": "Ada Lovelace", "groups": []any{"engineering", "admins"},
			})
			if err != nil {
				t.Fatal(err)
			}
			for range rot {
				if is, err = m.Refresh(t.Context(), is.RefreshToken, ""); err != nil {
					t.Fatal(err)
				}
			}
		}
		m.Wait()
		perFamily[i] = (int64(heap()) - int64(before)) / n
		if i == len(rotations)-1 {
			clk.Advance(session.DefaultLifetimes().Absolute + time.Second)
			if got := s.Sweep(); got != n {
				t.Fatalf("Sweep dropped %d families, want %d", got, n)
			}
			expired = (int64(heap()) - int64(before)) / n
		}
		runtime.KeepAlive(s)
	}
	t.Logf("Go heap per family (%d families): %d bytes fresh, %d after 15 rotations, %d after 100, %d after expiry and a sweep",
		n, perFamily[0], perFamily[1], perFamily[2], expired)
	if perFamily[0] > 400 {
		t.Errorf("a fresh family costs %d bytes, over the 400 budgeted", perFamily[0])
	}
	for i, rot := range rotations[1:] {
		if p := perFamily[i+1]; p > perFamily[0]+48 || p > 448 {
			t.Errorf("a family costs %d bytes after %d rotations against %d fresh: it grows with rotations", p, rot, perFamily[0])
		}
	}
	if expired > 8 {
		t.Errorf("%d bytes a family are left once every family expired and was swept", expired)
	}
}
