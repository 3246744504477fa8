package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/redis/go-redis/v9"
)

// harness holds one invocation's state.
type harness struct {
	o        *options
	log      io.Writer
	root     string // repository root
	tmp      string // binaries, keys, configurations, data sets, ghz reports
	ghz      string
	protoset string
	real     string // silentauth binary
	baseline string // pass-through server (../baseline)
	redisBin string
	redis    *redisServer
	cfgs     map[string]*tstate // by configuration name, baseline included
	start    time.Time
	runs     []runResult
	// rates remembers the best requests/s seen per scenario and
	// concurrency, to size single-use data sets.
	rates    map[string]float64
	bursts   []burstRecord
	prefills []prefillRecord
	errs     []string // problems that did not stop the run
	seq      int      // numbers the runs' files
}

func newHarness(ctx context.Context, o *options, log io.Writer) (*harness, error) {
	h := &harness{o: o, log: log, cfgs: map[string]*tstate{}, start: time.Now(),
		rates: map[string]float64{}}
	var err error
	if h.root, err = repoRoot(ctx); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(o.out) {
		o.out = filepath.Join(h.root, o.out)
	}
	if o.docs != "" && !filepath.IsAbs(o.docs) {
		o.docs = filepath.Join(h.root, o.docs)
	}
	if h.ghz, err = findTool("ghz"); err != nil {
		return nil, err
	}
	if h.redisBin, err = findRedis(); err != nil {
		h.redisBin = ""
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return nil, err
	}
	if h.tmp, err = os.MkdirTemp("", "silentauth-loadtest-"); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *harness) close() {
	for _, ts := range h.cfgs {
		if ts.t != nil {
			_ = ts.t.stop()
		}
	}
	if h.redis != nil {
		h.redis.stop()
	}
	if h.o.keep {
		h.logf("kept %s", h.tmp)
		return
	}
	_ = os.RemoveAll(h.tmp)
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.log, "%6.1fs  %s\n", time.Since(h.start).Seconds(), fmt.Sprintf(format, args...))
}

// problem records something that went wrong without stopping the run; it
// is reported, and fails the smoke test.
func (h *harness) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	h.errs = append(h.errs, msg)
	h.logf("PROBLEM: %s", msg)
}

// wanted reports whether a scenario was asked for.
func (h *harness) wanted(name string) bool { return slices.Contains(h.o.scenarios, name) }

// run does everything the report needs.
func (h *harness) run(ctx context.Context) (*results, error) {
	res := &results{Started: h.start.UTC(), Options: h.optionsRecord(), Skipped: map[string]string{}}
	res.Machine = machineInfo(ctx, h.root)
	h.logf("building silentauth and its pass-through baseline")
	var err error
	if h.real, h.baseline, err = buildBinaries(ctx, h.root, h.tmp); err != nil {
		return nil, err
	}
	h.protoset = filepath.Join(h.tmp, "external_auth.protoset")
	if err := writeProtoset(h.protoset); err != nil {
		return nil, err
	}
	if err := h.startTargets(ctx, res); err != nil {
		return nil, err
	}
	for round := 1; round <= h.o.rounds; round++ {
		if err := h.round(ctx, round); err != nil {
			return nil, err
		}
	}
	res.Bursts = h.bursts
	res.Prefills = h.prefills
	for _, ts := range h.cfgs {
		if ts.t != nil {
			if err := ts.t.stop(); err != nil {
				h.problem("%s: %v", ts.name, err)
			}
			ts.t = nil
		}
	}
	res.Runs = h.runs
	res.summarize(h.o)
	res.evaluate(h.o)

	h.logf("memory per session family")
	res.Memory = h.memory(ctx)
	h.profiles(ctx, res)
	res.Problems = h.errs
	res.Took = duration(time.Since(h.start))
	return res, nil
}

// startTargets writes every configuration and starts its server. A server
// that refuses its configuration (the Redis store before it is wired)
// skips its scenarios, with the reason, instead of failing the run.
func (h *harness) startTargets(ctx context.Context, res *results) error {
	need := map[string]bool{cfgBaseline: true, cfgMain: true}
	var liveCfgs []string // the prefilled cache-hit servers
	for _, name := range h.o.scenarios {
		sc := scenarioNamed(name)
		if sc.live > 0 && !sc.consuming {
			need[scenarioNamed(sc.base).cfg] = true
			liveCfgs = append(liveCfgs, sc.cfg)
			continue
		}
		need[sc.cfg] = true
	}
	redisAddr := "127.0.0.1:1"
	if need[cfgRedis] {
		if h.redisBin == "" {
			h.cfgs[cfgRedis] = &tstate{tconfig: tconfig{name: cfgRedis}, skipped: "redis-server not found (apt-get install redis-server, or -redis-server)"}
		} else {
			dir, err := os.MkdirTemp(h.tmp, "redis-")
			if err != nil {
				return err
			}
			if h.redis, err = startRedis(ctx, h.redisBin, dir); err != nil {
				h.cfgs[cfgRedis] = &tstate{tconfig: tconfig{name: cfgRedis}, skipped: err.Error()}
			} else {
				redisAddr = h.redis.addr
			}
		}
	}
	for _, c := range tconfigs {
		if !need[c.name] || h.cfgs[c.name] != nil {
			continue
		}
		ts, err := c.write(h.tmp, redisAddr)
		if err != nil {
			return err
		}
		h.cfgs[c.name] = ts
	}
	// The baseline answers main's data sets.
	base := *h.cfgs[cfgMain]
	base.name = cfgBaseline
	h.cfgs[cfgBaseline] = &base
	// A prefilled cache-hit server runs its base's configuration.
	for _, name := range h.o.scenarios {
		if sc := scenarioNamed(name); sc.live > 0 && !sc.consuming {
			ts := *h.cfgs[scenarioNamed(sc.base).cfg]
			ts.name, ts.live = sc.cfg, sc.live
			h.cfgs[sc.cfg] = &ts
		}
	}

	for _, name := range append([]string{cfgBaseline, cfgMain, cfgRefresh, cfgMissES, cfgMissEd, cfgQuiet, cfgRedis}, liveCfgs...) {
		ts := h.cfgs[name]
		if ts == nil || ts.skipped != "" {
			continue
		}
		bin, cfgPath := h.real, ts.cfgPath
		if name == cfgBaseline {
			bin, cfgPath = h.baseline, ""
		}
		s, err := startServer(ctx, name, bin, cfgPath)
		var refused *errRefused
		switch {
		case errors.As(err, &refused) && name == cfgRedis:
			ts.skipped = "the silentauth binary refuses the Redis store configuration: " + refused.reason
		case err != nil:
			return err
		default:
			ts.t = s
		}
		if ts.live > 0 && ts.t != nil {
			if err := h.prefill(ctx, ts, ts.live, h.liveScenario(ts), 1); err != nil {
				return err
			}
		}
	}
	// The Parse baselines: the pass-through server with a cache-miss
	// server's key.
	for miss, parse := range parseTargets {
		ts := h.cfgs[scenarioNamed(miss).cfg]
		if !h.wanted(miss) || ts == nil || ts.t == nil {
			continue
		}
		s, err := startServer(ctx, parse, h.baseline, "", "SILENTAUTH_BASELINE_PARSE_KEY="+ts.keyFile)
		if err != nil {
			return err
		}
		p := *ts
		p.name, p.t = parse, s
		h.cfgs[parse] = &p
	}
	for _, name := range h.o.scenarios {
		sc := scenarioNamed(name)
		if ts := h.cfgs[sc.cfg]; ts.skipped != "" {
			res.Skipped[name] = ts.skipped
			h.logf("%s: SKIPPED: %s", name, ts.skipped)
		}
	}
	return nil
}

// round runs the baseline and every scenario at every concurrency, then
// the concurrent-refresh checks. Data sets that can be reused are built
// once per round, so access tokens stay well within their 15 minutes.
func (h *harness) round(ctx context.Context, round int) error {
	builders := map[string]*builder{}
	builderFor := func(cfg string) *builder {
		if builders[cfg] == nil {
			ts := h.cfgs[cfg]
			builders[cfg] = &builder{ts: ts, t: ts.t, sizes: h.o.sizes}
		}
		return builders[cfg]
	}
	// Reusable data sets, written once per round.
	static := map[string]*dataset{}
	files := map[string]string{}
	prepare := func(name string, sc *scenario, b *builder) error {
		d, err := sc.build(ctx, b, 0)
		if err != nil {
			return fmt.Errorf("%s: data set: %w", name, err)
		}
		files[name] = filepath.Join(h.tmp, fmt.Sprintf("r%d-%s.bin", round, name))
		static[name] = d
		return d.write(files[name])
	}
	// Every round's data sets create sessions. The stateless servers start
	// each round afresh, so their heaps hold only this round's sessions,
	// not every earlier round's too (the garbage collector's work grows
	// with the live heap). A prefilled cache-hit server is the exception:
	// prefilled once, it keeps its families, and each round's pool adds 1%
	// to 10^5 of them.
	if round > 1 {
		for _, name := range []string{cfgMain, cfgMissES, cfgMissEd, cfgQuiet} {
			if ts := h.cfgs[name]; ts != nil && ts.t != nil {
				if err := h.restart(ctx, ts); err != nil {
					return err
				}
			}
		}
	}
	h.logf("round %d/%d: data sets", round, h.o.rounds)
	// The baseline answers valid-hit's requests (it allows anything).
	if err := prepare(cfgBaseline, scenarioNamed("valid-hit"), builderFor(cfgMain)); err != nil {
		return err
	}
	for _, name := range h.o.scenarios {
		sc := scenarioNamed(name)
		if sc.consuming || h.cfgs[sc.cfg].t == nil {
			continue
		}
		if err := prepare(name, sc, builderFor(sc.cfg)); err != nil {
			return err
		}
	}
	// A B A B: the baseline runs right before every scenario, so each
	// figure has a baseline measured under the same conditions of a shared
	// machine.
	for _, c := range h.o.concurrency {
		var base runResult
		runBase := func() error {
			r, err := h.load(ctx, round, c, cfgBaseline, nil, static[cfgBaseline], files[cfgBaseline], nil)
			if err != nil {
				return err
			}
			h.runs = append(h.runs, r)
			base = r
			return nil
		}
		for _, name := range h.o.scenarios {
			sc := scenarioNamed(name)
			if h.cfgs[sc.cfg].t == nil || (sc.diagnostic && c != targetConcurrency(h.o)) {
				continue
			}
			if err := runBase(); err != nil {
				return err
			}
			r, err := h.load(ctx, round, c, name, sc, static[name], files[name], &base)
			if err != nil {
				return err
			}
			h.runs = append(h.runs, r)
			// A cache miss's bound: golang-jwt's Parse of the same data
			// set in the pass-through server, against the same baseline.
			if parse := parseTargets[name]; parse != "" && c == targetConcurrency(h.o) && h.cfgs[parse] != nil {
				r, err := h.load(ctx, round, c, parse, nil, static[name], files[name], &base)
				if err != nil {
					return err
				}
				h.runs = append(h.runs, r)
			}
		}
	}
	for _, cfg := range []string{cfgRefresh, cfgRedis} {
		sc := map[string]string{cfgRefresh: "refresh-memory", cfgRedis: "refresh-redis"}[cfg]
		if ts := h.cfgs[cfg]; h.wanted(sc) && ts != nil && ts.t != nil {
			if err := h.restart(ctx, ts); err != nil {
				return err
			}
			h.burstCheck(ctx, round, sc, &builder{ts: ts, t: ts.t, sizes: h.o.sizes})
		}
	}
	return nil
}

// restart gives a scenario that rotates refresh tokens a fresh server (and
// an empty Redis), so every such run starts from the same state: the
// families earlier runs left behind would otherwise grow its heap, and
// with it the garbage collector's work, from run to run.
func (h *harness) restart(ctx context.Context, ts *tstate) error {
	if err := ts.t.stop(); err != nil {
		h.problem("%s: stop: %v", ts.name, err)
	}
	if ts.name == cfgRedis && h.redis != nil {
		c := redis.NewClient(&redis.Options{Addr: h.redis.addr, DisableIdentity: true})
		err := c.FlushAll(ctx).Err()
		c.Close()
		if err != nil {
			return fmt.Errorf("redis FLUSHALL: %w", err)
		}
	}
	ts.prefilled = nil
	s, err := startServer(ctx, ts.name, h.real, ts.cfgPath)
	if err != nil {
		return err
	}
	ts.t = s
	return nil
}

// liveScenario names the scenario a prefilled server of its own serves.
func (h *harness) liveScenario(ts *tstate) string {
	for _, name := range h.o.scenarios {
		if sc := scenarioNamed(name); sc.cfg == ts.name {
			return name
		}
	}
	return ts.name
}

// load does one run: build (for single-use data) and probe the data set,
// warm up, then load for the duration while measuring the server.
func (h *harness) load(ctx context.Context, round, c int, name string, sc *scenario, d *dataset, file string, base *runResult) (runResult, error) {
	for attempt := 1; ; attempt++ {
		r, err := h.loadOnce(ctx, round, c, name, sc, d, file, base)
		if errors.Is(err, errGhzPanic) && attempt < 3 {
			h.logf("round %d c%d %s: ghz panicked when stopped; running again", round, c, name)
			continue
		}
		return r, err
	}
}

func (h *harness) loadOnce(ctx context.Context, round, c int, name string, sc *scenario, d *dataset, file string, base *runResult) (runResult, error) {
	// name is the baseline, a Parse baseline (sc nil: pass-through
	// servers, probed as such), or a scenario.
	cfg := name
	if sc != nil {
		cfg = sc.cfg
	}
	ts := h.cfgs[cfg]
	r := runResult{Scenario: name, Round: round, Concurrency: c}
	if base != nil {
		r.BaseCPUus, r.BaseRPS = base.CPUus, base.RPS
	}
	if err := ts.t.alive(); err != nil {
		return r, err
	}
	h.seq++
	tag := fmt.Sprintf("%03d-r%d-c%d-%s", h.seq, round, c, name)
	var warm *dataset
	warmFile := file
	if sc != nil && sc.consuming {
		if err := h.restart(ctx, ts); err != nil {
			return r, err
		}
		if sc.live > 0 {
			if err := h.prefill(ctx, ts, sc.live, name, round); err != nil {
				return r, err
			}
		}
		// Single-use tokens: enough for the best rate seen so far, plus a
		// quarter; before the first run, the scenario's guess as a share
		// of the baseline's rate. A run that uses its set up stops early
		// (and says so) rather than send a token twice.
		rate := h.rates[fmt.Sprint(name, c)] * 1.25
		if rate == 0 {
			rate = h.rates[fmt.Sprint(cfgBaseline, c)] * sc.rateGuess
		}
		if rate == 0 {
			rate = 5000
		}
		need := int(math.Ceil(rate*h.o.duration.Seconds())) + 100
		needWarm := int(math.Ceil(rate * h.o.warmup.Seconds()))
		if m := h.o.sizes.maxConsuming; m > 0 {
			need, needWarm = min(need, m), min(needWarm, m/4)
		}
		b := &builder{ts: ts, t: ts.t, sizes: h.o.sizes}
		all, err := sc.build(ctx, b, need+needWarm)
		if err != nil {
			return r, fmt.Errorf("%s: data set: %w", tag, err)
		}
		warm = &dataset{items: all.items[:needWarm], consuming: true}
		d = &dataset{items: all.items[needWarm:], probe: all.probe, consuming: true}
		file = filepath.Join(h.tmp, tag+".bin")
		warmFile = filepath.Join(h.tmp, tag+"-warm.bin")
		if err := errors.Join(d.write(file), warm.write(warmFile)); err != nil {
			return r, err
		}
	}
	r.DataSet = len(d.items)

	// The probe: a sample checked decision by decision before the load.
	probeItems := d.probe
	if !d.consuming {
		probeItems = sample(d.items, 20)
	}
	if err := probe(ctx, ts.t.addr("grpc"), probeItems, sc == nil); err != nil {
		r.ProbeErrors = strings.Split(err.Error(), "\n")
		h.problem("%s: probe: %v", tag, err)
	}

	g := ghzRun{ghz: h.ghz, protoset: h.protoset, addr: ts.t.addr("grpc"), concurrency: c}
	if warmup := h.o.warmup; warmup > 0 {
		if name == cfgBaseline {
			// The baseline server runs every other time, so it is warm:
			// its warm-up only opens the connection.
			warmup /= 2
		}
		w := g
		w.dataFile, w.duration, w.report = warmFile, warmup, filepath.Join(h.tmp, tag+"-warm.json")
		if warm != nil {
			w.total = len(warm.items)
		}
		if warm == nil || len(warm.items) > 0 {
			if _, err := w.run(ctx); err != nil {
				return r, fmt.Errorf("%s: warm-up: %w", tag, err)
			}
		}
	}

	var before map[string]int64
	var err error
	if sc != nil {
		if before, err = ts.t.decisions(ctx); err != nil {
			return r, err
		}
	}
	cpu0, err := ts.t.cpu()
	if err != nil {
		return r, err
	}
	busy0, err := machineCPU()
	if err != nil {
		return r, err
	}
	t0 := time.Now()
	g.dataFile, g.duration, g.report = file, h.o.duration, filepath.Join(h.tmp, tag+".json")
	if name == cfgBaseline && c != targetConcurrency(h.o) {
		// The baseline runs before every scenario: half the time is
		// plenty for a figure that only anchors the next one, except
		// where the targets are judged: there every difference carries
		// the baseline's noise too.
		g.duration = max(h.o.duration/2, 100*time.Millisecond)
	}
	if d.consuming {
		g.total = len(d.items)
	}
	rep, err := g.run(ctx)
	if err != nil {
		return r, fmt.Errorf("%s: %w", tag, err)
	}
	cpu1, err := ts.t.cpu()
	if err != nil {
		return r, err
	}
	busy1, err := machineCPU()
	if err != nil {
		return r, err
	}
	// What the rest of the machine used meanwhile (this harness included):
	// the noise indicator of a shared machine.
	other := busy1 - busy0 - (cpu1 - cpu0) - rep.clientCPU
	r.OtherCores = max(0, other.Seconds()/time.Since(t0).Seconds())
	r.ClientCPUus = float64(rep.clientCPU) / float64(time.Microsecond) / float64(max(rep.Count, 1))
	r.Requests = rep.Count
	r.Seconds = rep.Total.Seconds()
	r.RPS = rep.Rps
	r.P50ms = ms(rep.percentile(50))
	r.P99ms = ms(rep.percentile(99))
	if rep.Count > 0 {
		r.CPUus = float64(cpu1-cpu0) / float64(time.Microsecond) / float64(rep.Count)
	}
	for status, n := range rep.Status {
		if status != "OK" {
			r.Errors += n
		}
	}
	r.ErrorKinds = rep.Errors
	r.Exhausted = d.consuming && rep.Count >= int64(len(d.items))

	if sc != nil {
		after, err := ts.t.decisions(ctx)
		if err != nil {
			return r, err
		}
		r.Decisions = delta(before, after)
		// ghz may number a request it never sends: the sent prefix of the
		// data set is known to ±1.
		r.Wrong, r.WrongDetail = wrongDecisions(r.Decisions, d.wants(rep.Count), 2)
		if r.Wrong > 0 {
			h.problem("%s: %d wrong decisions: %s", tag, r.Wrong, r.WrongDetail)
		}
	}
	if r.Errors > 0 {
		h.problem("%s: %d errors: %v", tag, r.Errors, r.ErrorKinds)
	}
	if sc != nil && sc.live > 0 {
		// The store must still hold the prefilled families.
		r.Live = sc.live
		if ts.prefilled == nil || ts.prefilled.n != sc.live {
			h.problem("%s: the server was not prefilled with %d families", tag, sc.live)
		} else if r.LiveChecked, r.LiveFound, err = checkLive(ctx, ts); err != nil || r.LiveFound < r.LiveChecked {
			h.problem("%s: %d of %d sampled prefilled families still live (%v)", tag, r.LiveFound, r.LiveChecked, err)
		}
	}
	if key := fmt.Sprint(name, c); r.RPS > h.rates[key] {
		h.rates[key] = r.RPS
	}
	note := ""
	if r.Exhausted {
		note = fmt.Sprintf(" (data set of %d used up after %.1fs)", len(d.items), r.Seconds)
	}
	vs := ""
	if base != nil && base.CPUus > 0 && base.RPS > 0 {
		vs = fmt.Sprintf(" [%+.1f µs, ×%.2f req/s vs baseline]", r.CPUus-base.CPUus, r.RPS/base.RPS)
	}
	h.logf("round %d c%-3d %-15s %6.0f req/s %6.1f µs CPU/Check%s  p50 %.2f ms  p99 %.2f ms  %d errors  %d wrong  (ghz %.0f µs/Check, others %.2f cores)%s",
		round, c, name, r.RPS, r.CPUus, vs, r.P50ms, r.P99ms, r.Errors, r.Wrong, r.ClientCPUus, r.OtherCores, note)
	return r, nil
}

// burstCheck sends 50 concurrent Checks carrying the same expired access
// token and refresh cookie, for several families: each must be allowed 50
// times with one successor, and the server must count one rotation and 49
// grace replays per family.
func (h *harness) burstCheck(ctx context.Context, round int, name string, b *builder) {
	const n = 50
	rec := burstRecord{Scenario: name, Round: round, Families: h.o.bursts, PerFamily: n}
	defer func() {
		h.bursts = append(h.bursts, rec)
		h.logf("round %d %s: %d families × %d concurrent refreshes: %d allowed, %d with one successor, max %.1f ms",
			round, name, rec.Families, n, rec.Allowed, rec.OneSuccessor, rec.MaxWallMs)
	}()
	items, err := b.refresh(ctx, h.o.bursts)
	if err != nil {
		rec.Errors = append(rec.Errors, err.Error())
		h.problem("%s burst: %v", name, err)
		return
	}
	conn, client, err := dial(b.t.addr("grpc"))
	if err != nil {
		rec.Errors = append(rec.Errors, err.Error())
		return
	}
	defer conn.Close()
	before, err := b.t.decisions(ctx)
	if err != nil {
		rec.Errors = append(rec.Errors, err.Error())
		return
	}
	for _, it := range items {
		presented := refreshOf(it.req)
		br := burst(ctx, client, it, presented, n)
		rec.Allowed += br.Allowed
		if br.Successors == 1 && br.Allowed == n {
			rec.OneSuccessor++
		}
		rec.MaxWallMs = max(rec.MaxWallMs, ms(br.Wall))
		rec.Errors = append(rec.Errors, br.Errors...)
	}
	after, err := b.t.decisions(ctx)
	if err != nil {
		rec.Errors = append(rec.Errors, err.Error())
		return
	}
	rec.Decisions = delta(before, after)
	want := map[string]int64{wantRefreshed.key(): int64(len(items)), wantGrace.key(): int64(len(items) * (n - 1))}
	if w, detail := wrongDecisions(rec.Decisions, want, 0); w > 0 {
		rec.Errors = append(rec.Errors, "server counted: "+detail)
	}
	rec.Pass = len(rec.Errors) == 0 && rec.OneSuccessor == len(items)
	if !rec.Pass {
		h.problem("%s burst round %d: %v", name, round, rec.Errors)
	}
}

// delta returns after − before per key, dropping zeros.
func delta(before, after map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// wrongDecisions compares the server's decision counts with the wanted
// ones: every decision of a kind not wanted is wrong, and so is every count
// off by more than slack.
func wrongDecisions(got, want map[string]int64, slack int64) (int64, string) {
	var wrong int64
	var detail []string
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		g, w := got[k], want[k]
		diff := g - w
		if diff < 0 {
			diff = -diff
		}
		switch {
		case w == 0 && g > 0:
			wrong += g
		case diff > slack:
			wrong += diff
		default:
			continue
		}
		detail = append(detail, fmt.Sprintf("%s: %d, want %d", k, g, w))
	}
	return wrong, strings.Join(detail, "; ")
}

// refreshOf returns the refresh-cookie value of a request.
func refreshOf(req *authv3.CheckRequest) string {
	for c := range strings.SplitSeq(req.GetAttributes().GetRequest().GetHttp().GetHeaders()["cookie"], ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(c), refreshCookie+"="); ok {
			return v
		}
	}
	return ""
}
