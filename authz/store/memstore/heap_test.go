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
// session.Manager) fresh and after 15 rotations, and pins an upper bound:
// with derivable secrets a family does not grow with its rotations.
// Measured: 1231 and 1233 bytes (1255 and 2163 while a family kept secret
// hashes and a sealed successor); most of what is left is the claims map
// and the store's own bookkeeping.
func TestHeapPerFamily(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a few thousand families")
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
	var perFamily [2]int64
	for i, rotations := range []int{0, 15} {
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
			for range rotations {
				if is, err = m.Refresh(t.Context(), is.RefreshToken, ""); err != nil {
					t.Fatal(err)
				}
			}
		}
		m.Wait()
		perFamily[i] = (int64(heap()) - int64(before)) / n
		runtime.KeepAlive(s)
	}
	t.Logf("Go heap per family: %d bytes fresh, %d after 15 rotations (%d families)", perFamily[0], perFamily[1], n)
	if perFamily[1] > perFamily[0]+64 || perFamily[1] > 1536 {
		t.Errorf("a family costs %d bytes fresh and %d after 15 rotations: it grows with rotations or exceeds the budget", perFamily[0], perFamily[1])
	}
}
