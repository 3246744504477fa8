// Command loadtest is silentauth's load-test harness. It builds the real
// server and a pass-through baseline (../baseline), starts both on
// loopback, and loads them with ghz over one HTTP/2 connection (as an
// Envoy worker holds one) in interleaved rounds: at each concurrency, the
// baseline right before every scenario (A B A B), every round. Each run is
// bounded in time
// and preceded by a warm-up and by a probe that checks a sample of its
// data set decision by decision; afterwards the server's own decision
// counters must match the data set exactly. It reports server CPU time per
// Check (from /proc, because ghz shares the machine), requests/s and
// latency, each beside the baseline; memory per session family; and pprof
// profiles of the scenarios that miss their target.
//
//	go -C bench run ./loadtest                 # results in bench/results/<UTC time>/
//	go -C bench run ./loadtest -h              # the flags
//
// Results: results.json (machine-readable), results.md (tables),
// profiles/ (pprof files and their top functions). With -docs
// docs/benchmarks.md the generated section of that page is refreshed.
// Allocations per Check and golang-jwt's Parse in a loop are `make bench`'s
// (bench/micro.sh).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// options are the harness's flags.
type options struct {
	out         string
	docs        string
	duration    time.Duration
	warmup      time.Duration
	rounds      int
	concurrency []int
	scenarios   []string
	families    int
	profile     string
	keep        bool
	smoke       bool
	sizes       sizes
	bursts      int   // 50-way concurrent refreshes per round
	live        []int // live families in the store of the prefillable scenarios (0: empty)
}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.out, "out", "", "results directory (default bench/results/<UTC time>)")
	fs.StringVar(&o.docs, "docs", "", "refresh the generated section of this Markdown page (e.g. docs/benchmarks.md)")
	fs.DurationVar(&o.duration, "duration", 2*time.Second, "measured time of each run")
	fs.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "warm-up before each run (not measured; half of it for the baseline, which is always warm)")
	fs.IntVar(&o.rounds, "rounds", 5, "rounds; every figure is the median over rounds")
	conc := fs.String("concurrency", "1,16,64", "ghz concurrencies, over one connection")
	scen := fs.String("scenarios", "all", "comma-separated scenarios, or all: "+scenarioNames())
	live := fs.String("live", "0", "live families the store of "+prefillableNames()+" holds before each run, comma-separated (0: empty, as defined); "+
		"each count > 0 adds <scenario>-live<count> (e.g. refresh-memory-live1e5 for 100000) beside the scenario (0 omitted: instead of it)")
	fs.IntVar(&o.families, "families", 100_000, "session families created through the session API to measure RSS (0: skip)")
	fs.StringVar(&o.profile, "profile", "auto", "pprof CPU and allocation profiles of the binary under load: auto (scenarios that miss a target), all, none, or a list")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (binaries, keys, data sets, ghz reports)")
	fs.BoolVar(&o.smoke, "smoke", false, "test the harness itself: 1 round, 0.5s runs at c1, small data sets, no profiles")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var errs []error
	for _, s := range strings.Split(*conc, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || c < 1 {
			errs = append(errs, fmt.Errorf("-concurrency: %q is not a positive integer", s))
			continue
		}
		o.concurrency = append(o.concurrency, c)
	}
	if *scen == "all" {
		for _, s := range scenarios {
			o.scenarios = append(o.scenarios, s.name)
		}
	} else {
		for _, s := range strings.Split(*scen, ",") {
			if s = strings.TrimSpace(s); scenarioNamed(s) == nil {
				errs = append(errs, fmt.Errorf("-scenarios: unknown %q (known: %s; and <%s>-live<n>, n written as 1e5 or 300)",
					s, scenarioNames(), strings.ReplaceAll(prefillableNames(), ",", "|")))
			} else {
				o.scenarios = append(o.scenarios, s)
			}
		}
	}
	o.sizes = sizes{pool: 1000, miss: 40 * missCacheSize, probes: 10}
	o.bursts = 10
	if o.smoke {
		// Explicit flags still win.
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("rounds", func() { o.rounds = 1 })
		def("duration", func() { o.duration = 500 * time.Millisecond })
		def("warmup", func() { o.warmup = 300 * time.Millisecond })
		def("concurrency", func() { o.concurrency = []int{1} })
		def("families", func() { o.families = 300 })
		def("profile", func() { o.profile = "none" })
		def("live", func() { *live = "0,300" })
		o.sizes = sizes{pool: 100, miss: 4 * missCacheSize, probes: 4, maxConsuming: 600}
		o.bursts = 2
	}
	if v, err := parseLiveFlag(*live); err != nil {
		errs = append(errs, err)
	} else {
		o.live = v
		o.scenarios = expandLive(o.scenarios, v)
	}
	switch {
	case o.duration < 100*time.Millisecond:
		errs = append(errs, errors.New("-duration: at least 100ms"))
	case o.warmup < 0:
		errs = append(errs, errors.New("-warmup: must not be negative"))
	case o.rounds < 1:
		errs = append(errs, errors.New("-rounds: at least 1"))
	case o.families < 0:
		errs = append(errs, errors.New("-families: must not be negative"))
	}
	if p := o.profile; p != "auto" && p != "all" && p != "none" {
		for _, s := range strings.Split(p, ",") {
			if scenarioNamed(strings.TrimSpace(s)) == nil {
				errs = append(errs, fmt.Errorf("-profile: unknown scenario %q", s))
			}
		}
	}
	if runtime.GOOS != "linux" {
		errs = append(errs, errors.New("the harness reads server CPU time and RSS from Linux's /proc"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.out == "" {
		o.out = "bench/results/" + time.Now().UTC().Format("20060102-150405")
	}
	slices.Sort(o.concurrency)
	o.concurrency = slices.Compact(o.concurrency)
	return o, nil
}

// prefillableNames are the scenarios -live applies to.
func prefillableNames() string {
	var names []string
	for _, s := range scenarios {
		if s.prefillable {
			names = append(names, s.name)
		}
	}
	return strings.Join(names, ",")
}

func scenarioNames() string {
	var names []string
	for _, s := range scenarios {
		names = append(names, s.name)
	}
	return strings.Join(names, ",")
}

// run is the whole program with its output injected, so the smoke test
// drives it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	h, err := newHarness(ctx, o, stderr)
	if err != nil {
		return err
	}
	defer h.close()
	res, err := h.run(ctx)
	if err != nil {
		return err
	}
	return h.publish(res, stdout)
}
