package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// profileResult names one scenario's pprof profiles.
type profileResult struct {
	Scenario     string   `json:"scenario"`
	Concurrency  int      `json:"concurrency"`
	RPS          float64  `json:"rps"`
	CPUus        float64  `json:"process_cpu_us_per_check"`
	CPUProfile   string   `json:"cpu_profile"`
	AllocProfile string   `json:"alloc_profile"`
	AllocBase    string   `json:"alloc_profile_base"`
	CPUTop       []string `json:"cpu_top"`
	AllocTop     []string `json:"alloc_space_top"`
	Error        string   `json:"error,omitempty"`
}

// profiles takes the profiles asked for (-profile) from the real binary.
func (h *harness) profiles(ctx context.Context, res *results) {
	for _, name := range h.profileList(res) {
		p := h.profile(ctx, scenarioNamed(name), res)
		if p.Error != "" {
			h.problem("%s: profile: %s", name, p.Error)
		}
		res.Profiles = append(res.Profiles, p)
	}
}

func (h *harness) profileList(res *results) []string {
	var names []string
	switch h.o.profile {
	case "none":
	case "auto":
		names = res.missed()
	case "all":
		names = h.o.scenarios
	default:
		names = strings.Split(h.o.profile, ",")
	}
	var out []string
	for _, n := range names {
		n = strings.TrimSpace(n)
		sc := scenarioNamed(n)
		if sc == nil || h.cfgs[sc.cfg] == nil || h.cfgs[sc.cfg].skipped != "" {
			continue
		}
		out = append(out, n)
	}
	return out
}

// profile loads the real binary, started with the scenario's
// configuration and profiling on, with ghz at the target concurrency, and
// fetches from its admin listener a CPU profile of the measured run and
// its allocations (alloc_space, against a snapshot taken before).
func (h *harness) profile(ctx context.Context, sc *scenario, res *results) profileResult {
	c := targetConcurrency(h.o)
	dir := filepath.Join(h.o.out, "profiles")
	p := profileResult{Scenario: sc.name, Concurrency: c,
		CPUProfile:   filepath.Join(dir, sc.name+".cpu.pprof"),
		AllocProfile: filepath.Join(dir, sc.name+".allocs.pprof"),
		AllocBase:    filepath.Join(dir, sc.name+".allocs-before.pprof"),
	}
	fail := func(err error) profileResult { p.Error = err.Error(); return p }
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	h.logf("%s: profiling the binary at c%d", sc.name, c)
	ts := h.cfgs[sc.cfg]
	cfg, err := os.ReadFile(ts.cfgPath)
	if err != nil {
		return fail(err)
	}
	cfgPath := filepath.Join(h.tmp, "profile-"+sc.name+".yaml")
	if err := os.WriteFile(cfgPath, append(cfg, "profiling: true\n"...), 0o600); err != nil {
		return fail(err)
	}
	s, err := startServer(ctx, "profile-"+sc.name, h.real, cfgPath)
	if err != nil {
		return fail(err)
	}
	defer s.stop()
	pts := *ts
	pts.t = s
	if sc.live > 0 {
		if err := h.prefill(ctx, &pts, sc.live, sc.name, 0); err != nil {
			return fail(err)
		}
	}
	b := &builder{ts: &pts, t: s, sizes: h.o.sizes}
	rate := 5000.0
	if r, ok := res.row(sc.name, c); ok && r.RPS > 0 {
		rate = r.RPS
	}
	need := int(math.Ceil(rate*1.25*1.5*h.o.duration.Seconds())) + 100
	needWarm := int(math.Ceil(rate * 1.25 * h.o.warmup.Seconds()))
	all, err := sc.build(ctx, b, need+needWarm)
	if err != nil {
		return fail(err)
	}
	d, warm := all, all
	if all.consuming {
		warm = &dataset{items: all.items[:needWarm], consuming: true}
		d = &dataset{items: all.items[needWarm:], consuming: true}
	}
	file, warmFile := filepath.Join(h.tmp, "profile-"+sc.name+".bin"), filepath.Join(h.tmp, "profile-"+sc.name+"-warm.bin")
	if err := d.write(file); err != nil {
		return fail(err)
	}
	if err := warm.write(warmFile); err != nil {
		return fail(err)
	}
	g := ghzRun{ghz: h.ghz, protoset: h.protoset, addr: s.addr("grpc"), concurrency: c}
	if h.o.warmup > 0 && len(warm.items) > 0 {
		w := g
		w.dataFile, w.duration, w.report = warmFile, h.o.warmup, filepath.Join(h.tmp, "profile-"+sc.name+"-warm.json")
		if warm.consuming {
			w.total = len(warm.items)
		}
		if _, err := w.run(ctx); err != nil {
			return fail(err)
		}
	}
	pprofURL := "http://" + s.addr("admin") + "/debug/pprof/"
	if err := fetch(ctx, pprofURL+"allocs?gc=1", p.AllocBase); err != nil {
		return fail(err)
	}
	// Longer than a measured run: a profile needs samples. The CPU
	// profile covers the load but for its first and last moments.
	g.dataFile, g.duration, g.report = file, h.o.duration*3/2, filepath.Join(h.tmp, "profile-"+sc.name+".json")
	if d.consuming {
		g.total = len(d.items)
	}
	seconds := max(1, int(g.duration.Seconds()))
	cpuDone := make(chan error, 1)
	go func() { cpuDone <- fetch(ctx, fmt.Sprintf("%sprofile?seconds=%d", pprofURL, seconds), p.CPUProfile) }()
	cpu0, _ := s.cpu()
	rep, err := g.run(ctx)
	if err != nil {
		return fail(err)
	}
	cpu1, _ := s.cpu()
	if err := <-cpuDone; err != nil {
		return fail(err)
	}
	if err := fetch(ctx, pprofURL+"allocs?gc=1", p.AllocProfile); err != nil {
		return fail(err)
	}
	p.RPS = rep.Rps
	if rep.Count > 0 {
		p.CPUus = float64(cpu1-cpu0) / float64(time.Microsecond) / float64(rep.Count)
	}
	p.CPUTop = h.pprofTop(ctx, dir, sc.name+".cpu-top.txt", "-top", p.CPUProfile)
	p.AllocTop = h.pprofTop(ctx, dir, sc.name+".alloc-top.txt", "-top", "-sample_index=alloc_space", "-base", p.AllocBase, p.AllocProfile)
	// The results name the files relative to the results directory, so a
	// published run reads the same wherever it was made.
	for _, f := range []*string{&p.CPUProfile, &p.AllocProfile, &p.AllocBase} {
		if rel, err := filepath.Rel(h.o.out, *f); err == nil {
			*f = rel
		}
	}
	return p
}

// fetch saves what url answers as path.
func fetch(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// pprofTop runs `go tool pprof` with args, saves its output as dir/name
// and returns the first lines.
func (h *harness) pprofTop(ctx context.Context, dir, name string, args ...string) []string {
	cmd := exec.CommandContext(ctx, "go", append([]string{"tool", "pprof", "-nodecount=30"}, args...)...)
	cmd.Dir = h.root
	out, err := cmd.CombinedOutput()
	_ = os.WriteFile(filepath.Join(dir, name), out, 0o644)
	if err != nil {
		return []string{fmt.Sprintf("go tool pprof: %v", err)}
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return slices.Clip(lines[:min(len(lines), 25)])
}
