package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// microBenchmarks are the Go benchmarks the harness runs beside the load:
// every Check path of package authz (allocations per Check), and in
// authz/token our verifier's cache hit and miss beside golang-jwt's own
// Parse of the same kind of token.
var microBenchmarks = []struct{ pkg, pattern string }{
	{"./authz", "^BenchmarkCheck"},
	{"./authz/token", "^(BenchmarkVerifyCacheHit|BenchmarkVerifyCacheMiss|BenchmarkJWTParse)$"},
}

// microResult is one benchmark: medians over its counts.
type microResult struct {
	Package     string  `json:"package"`
	Name        string  `json:"name"`
	Counts      int     `json:"counts"`
	NsPerOp     float64 `json:"ns_per_op"`
	BytesPerOp  float64 `json:"bytes_per_op"`
	AllocsPerOp float64 `json:"allocs_per_op"`
}

// runMicro runs the micro-benchmarks (3 counts of 100 ms each: allocations per op are exact at any length; `make bench` gives the careful timings) and returns
// their medians; the raw output, which benchstat reads, is written to raw.
func runMicro(ctx context.Context, root, raw string) ([]microResult, error) {
	var all bytes.Buffer
	var out []microResult
	for _, mb := range microBenchmarks {
		cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", mb.pattern,
			"-benchmem", "-count", "3", "-benchtime", "100ms", mb.pkg)
		cmd.Dir = root
		b, err := cmd.CombinedOutput()
		all.Write(b)
		if err != nil {
			_ = os.WriteFile(raw, all.Bytes(), 0o644)
			return out, fmt.Errorf("go test -bench %s %s: %w\n%s", mb.pattern, mb.pkg, err, b)
		}
		out = append(out, parseBench(strings.TrimPrefix(mb.pkg, "./"), b)...)
	}
	return out, os.WriteFile(raw, all.Bytes(), 0o644)
}

// parseBench reads `go test -bench -benchmem` output.
func parseBench(pkg string, b []byte) []microResult {
	type acc struct{ ns, bytes, allocs []float64 }
	byName := map[string]*acc{}
	var order []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i] // the GOMAXPROCS suffix
			}
		}
		a := byName[name]
		if a == nil {
			a = &acc{}
			byName[name] = a
			order = append(order, name)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				a.ns = append(a.ns, v)
			case "B/op":
				a.bytes = append(a.bytes, v)
			case "allocs/op":
				a.allocs = append(a.allocs, v)
			}
		}
	}
	var out []microResult
	for _, name := range order {
		a := byName[name]
		out = append(out, microResult{Package: pkg, Name: name, Counts: len(a.ns),
			NsPerOp: median(a.ns), BytesPerOp: median(a.bytes), AllocsPerOp: median(a.allocs)})
	}
	return out
}

// jwtParse measures golang-jwt's own jwt.Parse of one token of each
// cache-miss data set, with a keyfunc that just returns the server's
// public key: the floor a cache miss is judged against, in this process,
// in this run. µs of CPU per Parse, median of three.
func (h *harness) jwtParse() map[string]float64 {
	out := map[string]float64{}
	for _, alg := range slices.Sorted(maps.Keys(h.tokens)) {
		st := h.tokens[alg]
		pub := st.ts.key.Public
		keyfunc := func(*jwt.Token) (any, error) { return pub, nil }
		if _, err := jwt.Parse(st.raw, keyfunc); err != nil {
			h.problem("golang-jwt Parse of a %s load-test token: %v", alg, err)
			continue
		}
		target := 300 * time.Millisecond
		if h.o.smoke {
			target = 20 * time.Millisecond
		}
		var runs []float64
		for range 3 {
			runs = append(runs, nsPerOp(target, func() { _, _ = jwt.Parse(st.raw, keyfunc) })/1e3)
		}
		out[alg] = median(runs)
		h.logf("golang-jwt Parse of a %s load-test token: %.1f µs", alg, out[alg])
	}
	return out
}

// nsPerOp times f in batches that double until one lasts at least target,
// and returns the last batch's CPU time per call. It is the process's CPU
// time, every thread, in the same units as the server's figures it is
// compared with: the garbage collector's work on f's allocations counts,
// as it does in the server, and other processes on a shared machine do not
// inflate it (wall time where CPU time is not available). The harness is
// otherwise idle meanwhile.
func nsPerOp(target time.Duration, f func()) float64 {
	runtime.GC()
	for n := 1; ; n *= 2 {
		t0, c0 := time.Now(), processCPU()
		for range n {
			f()
		}
		el, cpu := time.Since(t0), processCPU()-c0
		if el >= target || n >= 1<<30 {
			if c0 > 0 && cpu > 0 {
				return float64(cpu) / float64(n)
			}
			return float64(el) / float64(n)
		}
	}
}
