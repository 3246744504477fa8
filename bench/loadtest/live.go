package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
)

// Prefilled stores (-live). A prefillable scenario also runs as
// <name>-live<n> on a store that holds n live families besides the run's
// own: after every (re)start of its server, before its data set is built,
// n sessions are started through the server's session API (the same
// client the RSS step uses, 8 requests at a time), so the records are the
// real service's, in its store's own encoding. The rotating scenarios
// restart their server (and empty Redis) before every run, so every run
// of a prefilled variant starts from exactly n families; the cache-hit
// variant has a server of its own, prefilled once when it starts and kept
// for every round (each round's pool of sessions adds to it).
// After every run a sample of the prefilled families must still be listed
// live by the session API: proof that the store held them throughout.

// livePrefix is the subject prefix of prefilled families: distinct from
// the data sets' user-<i>, so no subject holds both.
const livePrefix = "live-"

// liveSample is how many prefilled families are checked after each run.
const liveSample = 200

// liveLabel writes n as scenario names carry it: 1e5 for 100000, 300 for
// 300.
func liveLabel(n int) string {
	m, e := n, 0
	for m >= 10 && m%10 == 0 {
		m /= 10
		e++
	}
	if e >= 3 {
		return fmt.Sprintf("%de%d", m, e)
	}
	return strconv.Itoa(n)
}

func liveName(base string, n int) string { return base + "-live" + liveLabel(n) }

// parseLiveName splits base-live<n>; the label must be liveLabel's.
func parseLiveName(name string) (base string, n int, ok bool) {
	i := strings.LastIndex(name, "-live")
	if i <= 0 {
		return "", 0, false
	}
	base, label := name[:i], name[i+len("-live"):]
	f, err := strconv.ParseFloat(label, 64)
	if err != nil || f < 1 || f > 1e9 || f != float64(int(f)) {
		return "", 0, false
	}
	n = int(f)
	return base, n, liveLabel(n) == label
}

// liveVariant is the defined scenario base run on a store prefilled with n
// live families, or nil if base is not prefillable.
func liveVariant(base string, n int) *scenario {
	b := scenarioNamed(base)
	if b == nil || !b.prefillable || b.base != "" || n <= 0 {
		return nil
	}
	v := *b
	v.name, v.live, v.base, v.prefillable = liveName(base, n), n, base, false
	v.title = fmt.Sprintf("%s; the store holds %d live families", b.title, n)
	if !v.consuming {
		// A server of its own, so base's store stays empty.
		v.cfg = b.cfg + "-live" + liveLabel(n)
	}
	return &v
}

// parseLiveFlag reads -live: comma-separated family counts, 0 being the
// empty store (the defined scenarios themselves).
func parseLiveFlag(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		v, err := strconv.ParseFloat(f, 64) // 1e5 is accepted
		if err != nil || v < 0 || v > 1e9 || v != float64(int(v)) {
			return nil, fmt.Errorf("-live: %q is not a family count", f)
		}
		out = append(out, int(v))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// expandLive replaces every prefillable scenario of names by its variants
// for live (0: itself); others are kept as they are.
func expandLive(names []string, live []int) []string {
	var out []string
	for _, name := range names {
		sc := scenarioNamed(name)
		if sc == nil || !sc.prefillable {
			out = append(out, name)
			continue
		}
		for _, n := range live {
			if n == 0 {
				out = append(out, name)
			} else {
				out = append(out, liveName(name, n))
			}
		}
	}
	var uniq []string
	for _, name := range out {
		if !slices.Contains(uniq, name) {
			uniq = append(uniq, name)
		}
	}
	return uniq
}

// prefilled is what a server's store was prefilled with since its last
// start: the count, and a sample of the families to look for later.
type prefilled struct {
	n      int
	sample []liveFamily
}

type liveFamily struct{ subject, id string }

// prefillRecord is one prefill, as results.json reports it.
type prefillRecord struct {
	Server    string  `json:"server"`
	Scenario  string  `json:"scenario"`
	Round     int     `json:"round"` // 0: the profile's server
	Families  int     `json:"families"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"families_per_second"`
	// Memory store: the process's Go heap in use before and after.
	HeapInuseBefore int64 `json:"heap_inuse_before_bytes,omitempty"`
	HeapInuseAfter  int64 `json:"heap_inuse_after_bytes,omitempty"`
	// Redis: its key count before and after.
	RedisKeysBefore int64 `json:"redis_keys_before,omitempty"`
	RedisKeysAfter  int64 `json:"redis_keys_after,omitempty"`
}

// prefill starts n live families on ts's running server through its
// session API and records them on ts.
func (h *harness) prefill(ctx context.Context, ts *tstate, n int, scenario string, round int) error {
	rec := prefillRecord{Server: ts.name, Scenario: scenario, Round: round, Families: n}
	var rdb *redis.Client
	if ts.name == cfgRedis && h.redis != nil {
		rdb = redis.NewClient(&redis.Options{Addr: h.redis.addr, DisableIdentity: true})
		defer rdb.Close()
	}
	admin := ts.t.addr("admin")
	if rdb != nil {
		rec.RedisKeysBefore, _ = rdb.DBSize(ctx).Result()
	} else {
		rec.HeapInuseBefore, _ = scrapeGauge(ctx, admin, "go_memstats_heap_inuse_bytes")
	}
	// The sample: liveSample families spread evenly over the n.
	k := min(n, liveSample)
	at := make(map[int]int, k)
	for j := range k {
		at[j*n/k] = j
	}
	p := &prefilled{n: n, sample: make([]liveFamily, k)}
	t0 := time.Now()
	err := postSessionsAs(ctx, ts.t.addr("sessionAPI"), livePrefix, n, func(i int, s issued) {
		if j, ok := at[i]; ok {
			p.sample[j] = liveFamily{livePrefix + strconv.Itoa(i), s.ID}
		}
	})
	if err != nil {
		return fmt.Errorf("%s: prefilling %d families: %w", scenario, n, err)
	}
	rec.Seconds = time.Since(t0).Seconds()
	rec.PerSecond = float64(n) / rec.Seconds
	if rdb != nil {
		rec.RedisKeysAfter, _ = rdb.DBSize(ctx).Result()
	} else {
		rec.HeapInuseAfter, _ = scrapeGauge(ctx, admin, "go_memstats_heap_inuse_bytes")
	}
	ts.prefilled = p
	h.prefills = append(h.prefills, rec)
	store := fmt.Sprintf("Go heap in use %.1f → %.1f MiB", mib(rec.HeapInuseBefore), mib(rec.HeapInuseAfter))
	if rdb != nil {
		store = fmt.Sprintf("Redis keys %d → %d", rec.RedisKeysBefore, rec.RedisKeysAfter)
	}
	h.logf("%s: prefilled %s with %d live families in %.1fs (%.0f/s); %s", scenario, ts.name, n, rec.Seconds, rec.PerSecond, store)
	return nil
}

// checkLive asks ts's server's session API for the subjects of the
// sampled prefilled families: each must list its family, neither revoked
// nor idle-expired. It returns how many were checked and found.
func checkLive(ctx context.Context, ts *tstate) (checked, found int, err error) {
	p := ts.prefilled
	if p == nil {
		return 0, 0, nil
	}
	api := ts.t.addr("sessionAPI")
	var ok atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, f := range p.sample {
		g.Go(func() error {
			live, err := listsLive(ctx, api, f)
			if live {
				ok.Add(1)
			}
			return err
		})
	}
	err = g.Wait()
	return len(p.sample), int(ok.Load()), err
}

func listsLive(ctx context.Context, api string, f liveFamily) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+api+"/v1/subjects/"+url.PathEscape(f.subject)+"/sessions", nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := httpClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return false, err
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("GET sessions of %s: %s: %.200s", f.subject, resp.Status, b)
	}
	var list struct {
		Sessions []struct {
			ID            string     `json:"id"`
			IdleExpiresAt time.Time  `json:"idle_expires_at"`
			RevokedAt     *time.Time `json:"revoked_at"`
		} `json:"sessions"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return false, fmt.Errorf("GET sessions of %s: %w", f.subject, err)
	}
	for _, s := range list.Sessions {
		if s.ID == f.id && s.RevokedAt == nil && s.IdleExpiresAt.After(time.Now()) {
			return true, nil
		}
	}
	return false, nil
}
