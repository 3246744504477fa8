package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// results is everything one invocation measured; results.json is this
// value.
type results struct {
	Started  time.Time         `json:"started"`
	Took     duration          `json:"took"`
	Machine  machine           `json:"machine"`
	Options  runOptions        `json:"options"`
	Skipped  map[string]string `json:"skipped,omitempty"` // scenario → why
	Runs     []runResult       `json:"runs"`
	Summary  []summaryRow      `json:"summary"`
	Targets  []targetCheck     `json:"targets"`
	Bursts   []burstRecord     `json:"concurrent_refresh"`
	Prefills []prefillRecord   `json:"prefills,omitempty"`
	Memory   memoryResult      `json:"memory"`
	Profiles []profileResult   `json:"profiles,omitempty"`
	Problems []string          `json:"problems,omitempty"`
}

// runResult is one measured ghz run.
type runResult struct {
	Scenario    string           `json:"scenario"`
	Round       int              `json:"round"`
	Concurrency int              `json:"concurrency"`
	DataSet     int              `json:"dataset_requests"`
	Exhausted   bool             `json:"dataset_used_up,omitempty"`
	Requests    int64            `json:"requests"`
	Seconds     float64          `json:"seconds"`
	RPS         float64          `json:"rps"`
	CPUus       float64          `json:"server_cpu_us_per_check"`
	BaseCPUus   float64          `json:"paired_baseline_cpu_us_per_check,omitempty"`
	BaseRPS     float64          `json:"paired_baseline_rps,omitempty"`
	ClientCPUus float64          `json:"ghz_cpu_us_per_check"`
	OtherCores  float64          `json:"other_processes_cores"` // busy CPU of everything else, in cores
	P50ms       float64          `json:"p50_ms"`
	P99ms       float64          `json:"p99_ms"`
	Errors      int64            `json:"errors"`
	ErrorKinds  map[string]int   `json:"error_kinds,omitempty"`
	Decisions   map[string]int64 `json:"server_decisions,omitempty"`
	Wrong       int64            `json:"wrong_decisions"`
	WrongDetail string           `json:"wrong_detail,omitempty"`
	ProbeErrors []string         `json:"probe_errors,omitempty"`
	// A prefilled variant: the live families its store held, and how many
	// of a sample of them the session API still listed live after the run.
	Live        int `json:"live_families,omitempty"`
	LiveChecked int `json:"live_sample_checked,omitempty"`
	LiveFound   int `json:"live_sample_found,omitempty"`
}

// summaryRow is one scenario at one concurrency: medians over rounds, and
// ratios to the baseline's medians at the same concurrency.
type summaryRow struct {
	Scenario    string  `json:"scenario"`
	Concurrency int     `json:"concurrency"`
	Rounds      int     `json:"rounds"`
	RPS         float64 `json:"rps"`
	RPSMin      float64 `json:"rps_min"`
	RPSMax      float64 `json:"rps_max"`
	CPUus       float64 `json:"server_cpu_us_per_check"`
	CPUMin      float64 `json:"server_cpu_us_min"`
	CPUMax      float64 `json:"server_cpu_us_max"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	OtherCores  float64 `json:"other_processes_cores"`
	Requests    int64   `json:"requests"`
	Errors      int64   `json:"errors"`
	Wrong       int64   `json:"wrong_decisions"`
	ProbeFails  int     `json:"probe_failures"`
	// A prefilled variant: its store's live families, and the sampled
	// ones found live after its runs, over all rounds.
	Live        int `json:"live_families,omitempty"`
	LiveChecked int `json:"live_sample_checked,omitempty"`
	LiveFound   int `json:"live_sample_found,omitempty"`
	// Against the baseline runs paired with this scenario's: their
	// medians, and the medians over rounds of the per-round difference
	// and ratios.
	BaseRPS    float64 `json:"baseline_rps"`
	BaseCPUus  float64 `json:"baseline_cpu_us_per_check"`
	CPUDeltaUs float64 `json:"cpu_minus_baseline_us"`
	CPURatio   float64 `json:"cpu_ratio_to_baseline"`
	RPSRatio   float64 `json:"rps_ratio_to_baseline"`
}

// targetCheck is one target of the product issue, judged on this run.
// Value is the judged quantity (µs over the paired baseline, a ratio to
// it, or a count), Bound its limit.
type targetCheck struct {
	Scenario string  `json:"scenario"`
	What     string  `json:"what"`
	Limit    string  `json:"limit"`
	Value    float64 `json:"value"`
	Bound    float64 `json:"bound"`
	Unit     string  `json:"unit"`
	Status   string  `json:"status"` // met, missed, skipped
	Detail   string  `json:"detail,omitempty"`
}

// burstRecord is one round's 50-way concurrent refreshes.
type burstRecord struct {
	Scenario     string           `json:"scenario"`
	Round        int              `json:"round"`
	Families     int              `json:"families"`
	PerFamily    int              `json:"concurrent_per_family"`
	Allowed      int              `json:"allowed"`
	OneSuccessor int              `json:"families_with_one_successor"`
	MaxWallMs    float64          `json:"max_wall_ms"`
	Decisions    map[string]int64 `json:"server_decisions"`
	Pass         bool             `json:"pass"`
	Errors       []string         `json:"errors,omitempty"`
}

// duration marshals as a string ("1m2.5s").
type duration time.Duration

func (d duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).Round(time.Millisecond).String())
}

var _ json.Unmarshaler = (*duration)(nil)

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	*d = duration(v)
	return err
}

func (d duration) String() string {
	if time.Duration(d) >= time.Minute {
		return time.Duration(d).Round(time.Second).String()
	}
	return time.Duration(d).String()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// runOptions records how a run was made.
type runOptions struct {
	Duration      duration `json:"duration"`
	Warmup        duration `json:"warmup"`
	Rounds        int      `json:"rounds"`
	Concurrency   []int    `json:"concurrency"`
	Connections   int      `json:"connections"`
	Scenarios     []string `json:"scenarios"`
	Families      int      `json:"rss_families"`
	Profile       string   `json:"profile"`
	Smoke         bool     `json:"smoke"`
	Live          []int    `json:"live_families"`
	Ghz           string   `json:"ghz"`
	PoolSessions  int      `json:"pool_sessions"`
	MissTokens    int      `json:"miss_tokens"`
	MissCacheSize int      `json:"miss_cache_size"`
}

func (h *harness) optionsRecord() runOptions {
	o := h.o
	return runOptions{
		Duration: duration(o.duration), Warmup: duration(o.warmup), Rounds: o.rounds,
		Concurrency: o.concurrency, Connections: 1, Scenarios: o.scenarios,
		Families: o.families, Profile: o.profile, Smoke: o.smoke, Live: o.live,
		Ghz: "github.com/bojand/ghz/cmd/ghz@v0.120.0", PoolSessions: o.sizes.pool,
		MissTokens: o.sizes.miss, MissCacheSize: missCacheSize,
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summarize fills Summary from Runs.
func (res *results) summarize(o *options) {
	type key struct {
		s string
		c int
	}
	groups := map[key][]runResult{}
	var order []key
	for _, r := range res.Runs {
		k := key{r.Scenario, r.Concurrency}
		if groups[k] == nil {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	res.Summary = nil
	for _, k := range order {
		rs := groups[k]
		var rps, cpu, p50, p99, other, baseRPS, baseCPU, delta, cpuRatio, rpsRatio []float64
		row := summaryRow{Scenario: k.s, Concurrency: k.c, Rounds: len(rs)}
		for _, r := range rs {
			rps = append(rps, r.RPS)
			cpu = append(cpu, r.CPUus)
			p50 = append(p50, r.P50ms)
			p99 = append(p99, r.P99ms)
			other = append(other, r.OtherCores)
			row.Requests += r.Requests
			row.Errors += r.Errors
			row.Wrong += r.Wrong
			if len(r.ProbeErrors) > 0 {
				row.ProbeFails++
			}
			row.Live = r.Live
			row.LiveChecked += r.LiveChecked
			row.LiveFound += r.LiveFound
			if r.BaseCPUus > 0 && r.BaseRPS > 0 {
				baseRPS = append(baseRPS, r.BaseRPS)
				baseCPU = append(baseCPU, r.BaseCPUus)
				delta = append(delta, r.CPUus-r.BaseCPUus)
				cpuRatio = append(cpuRatio, r.CPUus/r.BaseCPUus)
				rpsRatio = append(rpsRatio, r.RPS/r.BaseRPS)
			}
		}
		row.RPS, row.RPSMin, row.RPSMax = median(rps), slices.Min(rps), slices.Max(rps)
		row.CPUus, row.CPUMin, row.CPUMax = median(cpu), slices.Min(cpu), slices.Max(cpu)
		row.P50ms, row.P99ms, row.OtherCores = median(p50), median(p99), median(other)
		if k.s == cfgBaseline {
			row.BaseRPS, row.BaseCPUus, row.CPURatio, row.RPSRatio = row.RPS, row.CPUus, 1, 1
		} else if len(delta) > 0 {
			row.BaseRPS, row.BaseCPUus = median(baseRPS), median(baseCPU)
			row.CPUDeltaUs, row.CPURatio, row.RPSRatio = median(delta), median(cpuRatio), median(rpsRatio)
		}
		res.Summary = append(res.Summary, row)
	}
	// Baseline first, then the scenarios in their defined order, each
	// followed by its prefilled variants (fewest families first), each by
	// concurrency.
	rank := func(s string) (int, int) {
		if s == cfgBaseline {
			return -1, 0
		}
		index := func(s string) int {
			return slices.IndexFunc(scenarios, func(sc scenario) bool { return sc.name == s })
		}
		for miss, parse := range parseTargets {
			if s == parse { // right after its cache-miss scenario
				return 2*index(miss) + 1, 0
			}
		}
		if sc := scenarioNamed(s); sc != nil && sc.base != "" {
			return 2 * index(sc.base), sc.live
		}
		return 2 * index(s), 0
	}
	slices.SortStableFunc(res.Summary, func(a, b summaryRow) int {
		ra, la := rank(a.Scenario)
		rb, lb := rank(b.Scenario)
		return cmp.Or(cmp.Compare(ra, rb), cmp.Compare(la, lb), cmp.Compare(a.Concurrency, b.Concurrency))
	})
}

func (res *results) row(scenario string, c int) (summaryRow, bool) {
	for _, r := range res.Summary {
		if r.Scenario == scenario && r.Concurrency == c {
			return r, true
		}
	}
	return summaryRow{}, false
}

// targetConcurrency is where the ratio targets are judged: 16, or the
// highest concurrency measured below it (a smoke run has only 1).
func targetConcurrency(o *options) int {
	best := o.concurrency[0]
	for _, c := range o.concurrency {
		if c <= 16 {
			best = c
		}
	}
	return best
}

// evaluate judges the product issue's targets on the medians at the
// target concurrency: CPU as the median over rounds of (scenario − its
// paired baseline), throughput as the median of their ratio.
func (res *results) evaluate(o *options) {
	tc := targetConcurrency(o)
	res.Targets = nil
	add := func(t targetCheck) { res.Targets = append(res.Targets, t) }
	// judge compares value(row) with bound(row); atMost says which side
	// passes.
	judge := func(scenario, what, limit, unit string, value, bound func(r summaryRow) (float64, string), atMost bool) {
		t := targetCheck{Scenario: scenario, What: fmt.Sprintf("%s at c%d", what, tc), Limit: limit, Unit: unit}
		if !slices.Contains(o.scenarios, scenario) {
			return
		}
		if why, skipped := res.Skipped[scenario]; skipped {
			t.Status, t.Detail = "skipped", why
			add(t)
			return
		}
		r, ok := res.row(scenario, tc)
		if !ok || r.BaseCPUus == 0 {
			t.Status, t.Detail = "skipped", "not measured in this run"
			add(t)
			return
		}
		var d1, d2 string
		t.Value, d1 = value(r)
		t.Bound, d2 = bound(r)
		t.Detail = strings.Trim(d1+"; "+d2, "; ")
		if math.IsInf(t.Bound, 0) { // the bound's own scenario did not run
			t.Status, t.Bound = "skipped", 0
			add(t)
			return
		}
		if (atMost && t.Value <= t.Bound) || (!atMost && t.Value >= t.Bound) {
			t.Status = "met"
		} else {
			t.Status = "missed"
		}
		add(t)
	}
	overBase := func(r summaryRow) (float64, string) {
		return r.CPUDeltaUs, fmt.Sprintf("%.1f µs vs baseline %.1f µs", r.CPUus, r.BaseCPUus)
	}
	rpsRatio := func(r summaryRow) (float64, string) {
		return r.RPSRatio, fmt.Sprintf("%.0f req/s vs baseline %.0f", r.RPS, r.BaseRPS)
	}
	fixed := func(v float64) func(summaryRow) (float64, string) {
		return func(summaryRow) (float64, string) { return v, "" }
	}
	// Each defined scenario's targets hold for its prefilled variants too.
	variants := func(base string) []string {
		names := []string{base}
		for _, name := range o.scenarios {
			if sc := scenarioNamed(name); sc != nil && sc.base == base {
				names = append(names, name)
			}
		}
		return names
	}
	for _, name := range variants("valid-hit") {
		judge(name, "server CPU per Check", "≤ baseline + 5 µs", "µs over baseline", overBase, fixed(5), true)
		judge(name, "requests/s", "≥ 0.9 × baseline", "× baseline", rpsRatio, fixed(0.9), false)
	}
	for _, miss := range []string{"miss-es256", "miss-eddsa"} {
		judge(miss, "server CPU per Check", "≤ baseline + golang-jwt Parse of the same token + 15 µs", "µs over baseline", overBase,
			func(summaryRow) (float64, string) {
				// Parse in the pass-through server, under the same load
				// as the scenario.
				p, ok := res.row(parseTargets[miss], tc)
				if !ok || p.BaseCPUus == 0 {
					return math.Inf(1), parseTargets[miss] + " not measured"
				}
				return p.CPUDeltaUs + 15, fmt.Sprintf("golang-jwt Parse in the pass-through server %+.1f µs", p.CPUDeltaUs)
			}, true)
	}
	for _, name := range variants("refresh-memory") {
		judge(name, "requests/s", "≥ 0.4 × baseline", "× baseline", rpsRatio, fixed(0.4), false)
	}
	for _, name := range variants("refresh-redis") {
		judge(name, "requests/s", "≥ 0.3 × baseline", "× baseline", rpsRatio, fixed(0.3), false)
	}
	judge("malformed", "server CPU per Check", "≤ baseline + 10 µs", "µs over baseline", overBase, fixed(10), true)
	judge("bad-signature", "server CPU per Check", "≤ cache miss (miss-es256), both over their baselines", "µs over baseline", overBase,
		func(summaryRow) (float64, string) {
			miss, ok := res.row("miss-es256", tc)
			if !ok {
				return math.Inf(1), "miss-es256 not measured"
			}
			return miss.CPUDeltaUs, fmt.Sprintf("miss-es256 %+.1f µs", miss.CPUDeltaUs)
		}, true)

	// Correctness, at every concurrency (the issue names c64).
	for _, name := range o.scenarios {
		t := targetCheck{Scenario: name, What: "wrong decisions + errors + failed probes, every run", Limit: "0", Unit: "count"}
		if why, skipped := res.Skipped[name]; skipped {
			t.Status, t.Detail = "skipped", why
			add(t)
			continue
		}
		var bad, checks int64
		var at []string
		for _, r := range res.Summary {
			if r.Scenario != name {
				continue
			}
			checks += r.Requests
			if r.Wrong > 0 || r.Errors > 0 || r.ProbeFails > 0 {
				bad += r.Wrong + r.Errors + int64(r.ProbeFails)
				at = append(at, fmt.Sprintf("c%d", r.Concurrency))
			}
		}
		t.Value, t.Status, t.Detail = float64(bad), "met", fmt.Sprintf("%d Checks", checks)
		if bad > 0 {
			t.Status, t.Detail = "missed", t.Detail+", at "+strings.Join(at, ", ")
		}
		add(t)
	}
	// A prefilled variant measures what it says only if its store held the
	// families throughout.
	for _, name := range o.scenarios {
		sc := scenarioNamed(name)
		if sc == nil || sc.live == 0 {
			continue
		}
		t := targetCheck{Scenario: name, What: "prefilled families still live after every run (sampled)", Limit: "all", Unit: "families missing"}
		if why, skipped := res.Skipped[name]; skipped {
			t.Status, t.Detail = "skipped", why
			add(t)
			continue
		}
		var checked, found, runs int
		for _, r := range res.Summary {
			if r.Scenario == name {
				checked, found, runs = checked+r.LiveChecked, found+r.LiveFound, runs+r.Rounds
			}
		}
		t.Value, t.Status = float64(checked-found), "met"
		t.Detail = fmt.Sprintf("%d prefilled; %d sampled after %d run(s), %d found live", sc.live, checked, runs, found)
		if checked == 0 || found < checked {
			t.Status = "missed"
		}
		add(t)
	}
	for _, name := range []string{"refresh-memory", "refresh-redis"} {
		if !slices.Contains(o.scenarios, name) {
			continue
		}
		t := targetCheck{Scenario: name, What: "50 concurrent refreshes of one family", Limit: "all allowed, one successor", Unit: "families failing"}
		if why, skipped := res.Skipped[name]; skipped {
			t.Status, t.Detail = "skipped", why
			add(t)
			continue
		}
		families, failing := 0, 0
		for _, b := range res.Bursts {
			if b.Scenario == name {
				families += b.Families
				failing += b.Families - b.OneSuccessor
				if !b.Pass && b.OneSuccessor == b.Families {
					failing++ // the server's counts were off
				}
			}
		}
		t.Value, t.Status, t.Detail = float64(failing), "met", fmt.Sprintf("%d families × 50", families)
		if failing > 0 || families == 0 {
			t.Status = "missed"
		}
		add(t)
	}
}

// missed returns the scenarios with a missed target.
func (res *results) missed() []string {
	var out []string
	for _, t := range res.Targets {
		if t.Status == "missed" && !slices.Contains(out, t.Scenario) {
			out = append(out, t.Scenario)
		}
	}
	return out
}

// machine describes where the figures come from.
type machine struct {
	CPU        string `json:"cpu"`
	CPUs       int    `json:"cpus"`
	Lscpu      string `json:"lscpu,omitempty"`
	MemTotal   string `json:"mem_total"`
	Kernel     string `json:"kernel"`
	GoVersion  string `json:"go_version"`
	Hypervisor string `json:"hypervisor,omitempty"`
}

func machineInfo(ctx context.Context, root string) machine {
	m := machine{CPUs: runtime.NumCPU()}
	if out, err := exec.CommandContext(ctx, "lscpu").Output(); err == nil {
		var keep []string
		for line := range strings.SplitSeq(string(out), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			switch k {
			case "Model name":
				m.CPU = v
				keep = append(keep, k+": "+v)
			case "Hypervisor vendor":
				m.Hypervisor = v
				keep = append(keep, k+": "+v)
			case "CPU(s)", "Thread(s) per core", "Core(s) per socket", "Socket(s)", "CPU max MHz",
				"L1d cache", "L2 cache", "L3 cache", "Virtualization type", "BogoMIPS":
				keep = append(keep, k+": "+v)
			}
		}
		m.Lscpu = strings.Join(keep, "; ")
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		first, _, _ := strings.Cut(string(b), "\n")
		if f := strings.Fields(strings.TrimPrefix(first, "MemTotal:")); len(f) == 2 && f[1] == "kB" {
			if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
				m.MemTotal = fmt.Sprintf("%.1f GiB RAM", kb/(1<<20))
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	cmd := exec.CommandContext(ctx, "go", "version")
	cmd.Dir = root
	if out, err := cmd.Output(); err == nil {
		m.GoVersion = strings.TrimSpace(string(out))
	}
	return m
}
