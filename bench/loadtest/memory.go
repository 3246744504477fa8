package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/authz/store/memstore"
	"github.com/silentauth/silentauth/authz/store/redisstore"
)

// memoryResult is what a session family costs.
type memoryResult struct {
	// Memory store, in this process: Go heap after GC, per family.
	Memstore []heapPerFamily `json:"memstore"`
	// Redis: MEMORY USAGE of the keys of one family, and used_memory per
	// family over many.
	Redis *redisMemory `json:"redis,omitempty"`
	// The silentauth process: RSS before and after families are created
	// through its session API, extrapolated linearly to a million.
	RSS     *rssResult        `json:"rss,omitempty"`
	Skipped map[string]string `json:"skipped,omitempty"`
}

type heapPerFamily struct {
	State     string  `json:"state"`
	Families  int     `json:"families"`
	Rotations int     `json:"rotations_each"`
	Bytes     float64 `json:"heap_bytes_per_family"`
}

type redisMemory struct {
	FamilyKeyFresh   int64   `json:"family_key_fresh_bytes"`
	FamilyKeyRotated int64   `json:"family_key_after_15_rotations_bytes"`
	IndexKey         int64   `json:"subject_index_key_bytes"`
	Families         int     `json:"families"`
	UsedPerFamily    float64 `json:"used_memory_per_family_bytes"`
}

type rssResult struct {
	Families         int     `json:"families"`
	Before           int64   `json:"rss_before_bytes"`
	Half             int64   `json:"rss_half_bytes"`
	After            int64   `json:"rss_after_bytes"`
	PerFamily        float64 `json:"rss_per_family_bytes"`
	Extrapolated1M   int64   `json:"rss_1m_families_extrapolated_bytes"`
	HeapInuseBefore  int64   `json:"heap_inuse_before_bytes"`
	HeapInuseAfter   int64   `json:"heap_inuse_after_bytes"`
	CreatePerSecond  float64 `json:"sessions_created_per_second"`
	HeapPerFamilyGo  float64 `json:"heap_inuse_per_family_bytes"`
	ExtrapolatedNote string  `json:"note"`
}

// memory measures the three, each skipped with a reason when it cannot run.
func (h *harness) memory(ctx context.Context) memoryResult {
	m := memoryResult{Skipped: map[string]string{}}
	fresh, rotated := 100_000, 20_000
	if h.o.smoke {
		fresh, rotated = 2000, 200
	}
	for _, c := range []struct {
		state     string
		n, rotate int
	}{{"fresh (1 secret hash)", fresh, 0}, {"after 15 rotations (16 hashes + sealed successor)", rotated, 15}} {
		b, err := memstorePerFamily(ctx, c.n, c.rotate)
		if err != nil {
			h.problem("memstore per family: %v", err)
			continue
		}
		m.Memstore = append(m.Memstore, heapPerFamily{State: c.state, Families: c.n, Rotations: c.rotate, Bytes: b})
		h.logf("memory store, %s: %.0f bytes of Go heap per family (%d families)", c.state, b, c.n)
	}

	if h.redisBin == "" {
		m.Skipped["redis"] = "redis-server not found"
	} else if r, err := h.redisMemory(ctx, fresh/5); err != nil {
		m.Skipped["redis"] = err.Error()
		h.problem("redis memory: %v", err)
	} else {
		m.Redis = r
		h.logf("redis: family key %d bytes fresh, %d after 15 rotations; subject index %d; used_memory %.0f bytes per family",
			r.FamilyKeyFresh, r.FamilyKeyRotated, r.IndexKey, r.UsedPerFamily)
	}

	if h.o.families == 0 {
		m.Skipped["rss"] = "-families 0"
	} else if r, err := h.rss(ctx, h.o.families); err != nil {
		m.Skipped["rss"] = err.Error()
		h.problem("rss: %v", err)
	} else {
		m.RSS = r
		h.logf("silentauth RSS %.1f MiB → %.1f MiB with %d families (%.0f bytes each); 1M extrapolated: %.0f MiB",
			mib(r.Before), mib(r.After), r.Families, r.PerFamily, mib(r.Extrapolated1M))
	}
	return m
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// memstorePerFamily creates n families through session.Manager on a memory
// store, rotates each rotate times, and returns the Go heap they hold,
// measured after garbage collection, per family.
func memstorePerFamily(ctx context.Context, n, rotate int) (float64, error) {
	before := liveHeap()
	st := memstore.New(time.Now)
	m := session.New(st, session.Lifetimes{}, time.Now)
	for i := range n {
		is, err := m.Start(ctx, "user-"+strconv.Itoa(i), "", sessionClaims)
		if err != nil {
			return 0, err
		}
		for range rotate {
			if is, err = m.Refresh(ctx, is.RefreshToken, ""); err != nil {
				return 0, err
			}
		}
	}
	after := liveHeap()
	runtime.KeepAlive(st)
	return float64(after-before) / float64(n), nil
}

func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// redisMemory starts its own redis-server, creates families through
// session.Manager on the redisstore package, and asks Redis what they
// cost.
func (h *harness) redisMemory(ctx context.Context, n int) (*redisMemory, error) {
	dir, err := os.MkdirTemp(h.tmp, "redis-mem-")
	if err != nil {
		return nil, err
	}
	srv, err := startRedis(ctx, h.redisBin, dir)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	st, err := redisstore.New(redisstore.Options{Addrs: []string{srv.addr}, Mode: redisstore.Standalone})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	rdb := redis.NewClient(&redis.Options{Addr: srv.addr, DisableIdentity: true})
	defer rdb.Close()
	m := session.New(st, session.Lifetimes{}, time.Now)
	r := &redisMemory{Families: n}

	// One family alone: its own key and its subject's index key.
	is, err := m.Start(ctx, "00u1abcd2EFGH3ijk4l5", "", sessionClaims)
	if err != nil {
		return nil, err
	}
	keys, err := rdb.Keys(ctx, "*").Result()
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		u, err := rdb.MemoryUsage(ctx, k, 0).Result()
		if err != nil {
			return nil, err
		}
		if strings.Contains(k, is.Family.ID) {
			r.FamilyKeyFresh = u
		} else {
			r.IndexKey += u
		}
	}
	for range 15 {
		if is, err = m.Refresh(ctx, is.RefreshToken, ""); err != nil {
			return nil, err
		}
	}
	for _, k := range keys {
		if strings.Contains(k, is.Family.ID) {
			if r.FamilyKeyRotated, err = rdb.MemoryUsage(ctx, k, 0).Result(); err != nil {
				return nil, err
			}
		}
	}
	if err := rdb.FlushAll(ctx).Err(); err != nil {
		return nil, err
	}

	// Many families, each its own subject: key space, index and allocator
	// overhead included.
	before, err := usedMemory(ctx, rdb)
	if err != nil {
		return nil, err
	}
	if err := createFamilies(ctx, m, n); err != nil {
		return nil, err
	}
	after, err := usedMemory(ctx, rdb)
	if err != nil {
		return nil, err
	}
	r.UsedPerFamily = float64(after-before) / float64(n)
	return r, nil
}

var _ store.Store = (*redisstore.Store)(nil)

// createFamilies starts n families with 16 callers at once (a store behind
// a round trip needs more callers than cores).
func createFamilies(ctx context.Context, m *session.Manager, n int) error {
	var next atomic.Int64
	errc := make(chan error, 16)
	for range 16 {
		go func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					errc <- nil
					return
				}
				if _, err := m.Start(ctx, fmt.Sprintf("%020d", i), "", sessionClaims); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	var first error
	for range 16 {
		if err := <-errc; err != nil && first == nil {
			first = err
			next.Store(int64(n)) // stop the others
		}
	}
	return first
}

func usedMemory(ctx context.Context, rdb *redis.Client) (int64, error) {
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no used_memory in INFO memory")
}

// rss starts a fresh silentauth on main's configuration, creates n families
// through its session API in two halves, and reads its RSS before, between
// and after. One million families through HTTP would take minutes, so the
// million is extrapolated linearly from the per-family growth (the two
// halves show whether growth is linear).
func (h *harness) rss(ctx context.Context, n int) (*rssResult, error) {
	s, err := startServer(ctx, "rss", h.real, h.cfgs[cfgMain].cfgPath)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	api := s.addr("sessionAPI")
	if err := postSessions(ctx, api, 100, func(int, issued) {}); err != nil {
		return nil, err
	}
	time.Sleep(200 * time.Millisecond)
	r := &rssResult{Families: n}
	if r.Before, err = s.rss(); err != nil {
		return nil, err
	}
	r.HeapInuseBefore, _ = scrapeGauge(ctx, s.addr("admin"), "go_memstats_heap_inuse_bytes")
	t0 := time.Now()
	if err := postSessions(ctx, api, n/2, func(int, issued) {}); err != nil {
		return nil, err
	}
	if r.Half, err = s.rss(); err != nil {
		return nil, err
	}
	if err := postSessions(ctx, api, n-n/2, func(int, issued) {}); err != nil {
		return nil, err
	}
	r.CreatePerSecond = float64(n) / time.Since(t0).Seconds()
	if r.After, err = s.rss(); err != nil {
		return nil, err
	}
	r.HeapInuseAfter, _ = scrapeGauge(ctx, s.addr("admin"), "go_memstats_heap_inuse_bytes")
	r.PerFamily = float64(r.After-r.Before) / float64(n)
	r.HeapPerFamilyGo = float64(r.HeapInuseAfter-r.HeapInuseBefore) / float64(n)
	r.Extrapolated1M = r.Before + int64(r.PerFamily*1e6)
	r.ExtrapolatedNote = fmt.Sprintf("RSS measured at 0, %d and %d families created through POST /v1/sessions; "+
		"1M = RSS before + 1M × (growth per family), a linear extrapolation. RSS includes garbage the Go "+
		"runtime has not returned yet (GOGC=100 lets the heap reach twice its live size).", n/2, n)
	return r, nil
}

// scrapeGauge reads one unlabelled sample from an admin /metrics.
func scrapeGauge(ctx context.Context, admin, name string) (int64, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+admin+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int64(f), err
		}
	}
	return 0, fmt.Errorf("%s not in /metrics", name)
}
