package memstore

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/internal/testenv/fakeclock"
)

// TestRSSMillion starts a million typical families through
// session.Manager, reports the process's resident memory (VmRSS) and Go
// heap before, with them, and once they have expired, been swept and the
// heap returned to the system: the figures of the benchmark page (issue
// #18). It takes seconds and half a gigabyte, so it runs only with
// SILENTAUTH_RSS=1 (Linux).
func TestRSSMillion(t *testing.T) {
	if os.Getenv("SILENTAUTH_RSS") == "" {
		t.Skip("set SILENTAUTH_RSS=1 to start a million families and measure the process")
	}
	const n = 1_000_000
	clk := fakeclock.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	s := New(clk.Now)
	m := session.New(s, session.Lifetimes{}, clk.Now)
	measure := func() (rss, heap uint64) {
		runtime.GC()
		debug.FreeOSMemory()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return vmRSS(t), ms.HeapAlloc
	}
	rss0, heap0 := measure()
	claims := map[string]any{"email": "ada.lovelace@example.com", "name": "Ada Lovelace", "groups": []any{"engineering", "admins"}}
	for i := range n {
		if _, err := m.Start(t.Context(), fmt.Sprintf("00u1abcd2EFG%08d", i), "", claims); err != nil {
			t.Fatal(err)
		}
	}
	m.Wait()
	rss1, heap1 := measure()
	clk.Advance(session.DefaultLifetimes().Absolute + time.Second)
	if got := s.Sweep(); got != n {
		t.Fatalf("Sweep dropped %d, want %d", got, n)
	}
	rss2, heap2 := measure()
	runtime.KeepAlive(s)
	mb := func(b uint64) float64 { return float64(b) / (1 << 20) }
	t.Logf("before: VmRSS %.1f MiB, heap %.1f MiB", mb(rss0), mb(heap0))
	t.Logf("%d families: VmRSS %.1f MiB (%d bytes a family), heap %.1f MiB (%d bytes a family)",
		n, mb(rss1), (int64(rss1)-int64(rss0))/n, mb(heap1), (int64(heap1)-int64(heap0))/n)
	t.Logf("expired and swept: VmRSS %.1f MiB, heap %.1f MiB", mb(rss2), mb(heap2))
}

// vmRSS reads the resident set size of the process from /proc.
func vmRSS(t *testing.T) uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status:", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
