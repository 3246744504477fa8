package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protodesc"
)

// TestSmoke runs the whole harness in its smoke mode (one round, 0.5 s
// runs at c1, small data sets): the real binary and the baseline, ghz,
// probes, the server's decision counters, memory, a profile and the report. It proves the
// harness works, not how fast silentauth is. Without ghz it is skipped,
// or fails when SILENTAUTH_REQUIRE_INTEGRATION is set (CI).
func TestSmoke(t *testing.T) {
	if _, err := findTool("ghz"); err != nil {
		if os.Getenv("SILENTAUTH_REQUIRE_INTEGRATION") != "" {
			t.Fatalf("SILENTAUTH_REQUIRE_INTEGRATION is set: %v", err)
		}
		t.Skip(err)
	}
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	// One profile, so the path that fetches it from the binary's pprof
	// endpoint runs too.
	if err := run(t.Context(), []string{"-smoke", "-out", out, "-profile", "valid-hit"}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	b, err := os.ReadFile(filepath.Join(out, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res results
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) > 0 {
		t.Errorf("problems:\n%s\n%s", strings.Join(res.Problems, "\n"), stderr.String())
	}
	for _, sc := range append([]string{cfgBaseline, cfgParseES, cfgParseEd}, scenarioNamesList()...) {
		if _, ok := res.row(sc, 1); !ok && res.Skipped[sc] == "" {
			t.Errorf("%s: neither measured nor skipped", sc)
		}
	}
	passThrough := []string{cfgBaseline, cfgParseES, cfgParseEd} // no decisions to count
	for _, r := range res.Runs {
		if r.Requests == 0 || r.CPUus <= 0 || r.RPS <= 0 {
			t.Errorf("%s: empty run %+v", r.Scenario, r)
		}
		if !slices.Contains(passThrough, r.Scenario) && len(r.Decisions) == 0 {
			t.Errorf("%s: the server's decisions were not counted", r.Scenario)
		}
	}
	for _, tc := range res.Targets {
		if strings.HasPrefix(tc.What, "wrong decisions") || strings.HasPrefix(tc.What, "50 concurrent") {
			if tc.Status == "missed" {
				t.Errorf("%s: %s: %v %s", tc.Scenario, tc.What, tc.Value, tc.Detail)
			}
		}
	}
	if len(res.Profiles) != 1 || res.Profiles[0].Error != "" || res.Profiles[0].CPUus <= 0 {
		t.Errorf("profile of valid-hit: %+v", res.Profiles)
	} else {
		for _, f := range []string{res.Profiles[0].CPUProfile, res.Profiles[0].AllocProfile, res.Profiles[0].AllocBase} {
			if st, err := os.Stat(filepath.Join(out, f)); filepath.IsAbs(f) || err != nil || st.Size() == 0 {
				t.Errorf("profile file %s: %v", f, err)
			}
		}
	}
	// -live 0,300 (smoke's default): the prefilled variants ran beside
	// the empty ones, on stores that held their families throughout.
	for _, name := range []string{"refresh-memory-live300", "refresh-redis-live300", "valid-hit-live300"} {
		if res.Skipped[name] != "" {
			continue
		}
		r, ok := res.row(name, 1)
		switch {
		case !ok:
			t.Errorf("%s: neither measured nor skipped", name)
		case r.Live != 300 || r.LiveChecked != 200 || r.LiveFound != r.LiveChecked:
			t.Errorf("%s: %d live families, %d of %d sampled found live after the run", name, r.Live, r.LiveFound, r.LiveChecked)
		}
		var prefills int
		for _, p := range res.Prefills {
			if p.Scenario != name {
				continue
			}
			prefills++
			if p.Families != 300 || p.PerSecond <= 0 {
				t.Errorf("%s: prefill %+v", name, p)
			}
			if strings.Contains(name, "redis") && p.RedisKeysAfter-p.RedisKeysBefore < 300 {
				t.Errorf("%s: Redis keys %d → %d for 300 families", name, p.RedisKeysBefore, p.RedisKeysAfter)
			}
		}
		if prefills == 0 {
			t.Errorf("%s: no prefill recorded", name)
		}
		met := false
		for _, tc := range res.Targets {
			if tc.Scenario == name && strings.HasPrefix(tc.What, "prefilled families") {
				met = tc.Status == "met"
			}
		}
		if !met {
			t.Errorf("%s: the prefilled families were not judged live: %+v", name, res.Targets)
		}
	}
	if len(res.Memory.Memstore) != 2 || res.Memory.RSS == nil {
		t.Errorf("memory not measured: %+v", res.Memory)
	}
	if md, err := os.ReadFile(filepath.Join(out, "results.md")); err != nil || !strings.Contains(string(md), "| valid-hit | 1 |") {
		t.Errorf("results.md: %v\n%s", err, md)
	}
	if !strings.Contains(stdout.String(), "| valid-hit | 1 |") {
		t.Errorf("no summary table on stdout:\n%s", stdout.String())
	}
}

func scenarioNamesList() []string { return strings.Split(scenarioNames(), ",") }

func TestProtosetHasCheck(t *testing.T) {
	files, err := protodesc.NewFiles(protoset())
	if err != nil {
		t.Fatalf("the protoset does not resolve on its own: %v", err)
	}
	d, err := files.FindDescriptorByName("envoy.service.auth.v3.Authorization")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(d.FullName()), "Authorization") {
		t.Fatal(d.FullName())
	}
}

func TestParseDecisions(t *testing.T) {
	in := `# HELP silentauth_check_decisions_total Check decisions.
# TYPE silentauth_check_decisions_total counter
silentauth_check_decisions_total{decision="allow",reason="valid"} 1234
silentauth_check_decisions_total{decision="deny",reason="token_signature"} 5
silentauth_check_duration_seconds_count{decision="allow"} 1234
`
	got, err := parseDecisions(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["allow/valid"] != 1234 || got["deny/token_signature"] != 5 {
		t.Fatalf("got %v", got)
	}
}

func TestWrongDecisions(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want map[string]int64
		slack     int64
		wrong     int64
	}{
		{"exact", map[string]int64{"allow/valid": 10}, map[string]int64{"allow/valid": 10}, 0, 0},
		{"within slack", map[string]int64{"allow/valid": 11}, map[string]int64{"allow/valid": 10}, 2, 0},
		{"beyond slack", map[string]int64{"allow/valid": 7}, map[string]int64{"allow/valid": 10}, 2, 3},
		{"unwanted kind", map[string]int64{"allow/valid": 10, "deny/refresh_reuse": 1}, map[string]int64{"allow/valid": 10}, 2, 1},
		{"missing kind", map[string]int64{}, map[string]int64{"allow/refreshed": 5}, 2, 5},
	} {
		if got, detail := wrongDecisions(tc.got, tc.want, tc.slack); got != tc.wrong {
			t.Errorf("%s: %d wrong (%s), want %d", tc.name, got, detail, tc.wrong)
		}
	}
}

func TestDatasetWants(t *testing.T) {
	d := &dataset{items: []item{{want: wantValid}, {want: wantValid}, {want: wantBadSig}}}
	for _, tc := range []struct {
		n           int64
		valid, sigs int64
	}{{0, 0, 0}, {2, 2, 0}, {3, 2, 1}, {7, 5, 2}} {
		w := d.wants(tc.n)
		if w["allow/valid"] != tc.valid || w["deny/token_signature"] != tc.sigs {
			t.Errorf("wants(%d) = %v", tc.n, w)
		}
	}
}

func TestUpdateDocsKeepsTheProse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	page := "# Benchmarks\n\nprose before\n\n" + docsBegin + "\nold figures\n" + docsEnd + "\n\nprose after\n"
	if err := os.WriteFile(path, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := updateDocs(path, "new figures\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	got := string(b)
	for _, want := range []string{"prose before", "new figures", "prose after"} {
		if !strings.Contains(got, want) {
			t.Errorf("lost %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "old figures") {
		t.Errorf("kept the old figures:\n%s", got)
	}
}

func TestLiveNames(t *testing.T) {
	for n, label := range map[int]string{100_000: "1e5", 1_000_000: "1e6", 300: "300", 2500: "2500", 25_000: "25e3", 10: "10"} {
		if got := liveLabel(n); got != label {
			t.Errorf("liveLabel(%d) = %q, want %q", n, got, label)
		}
		name := liveName("refresh-memory", n)
		if base, got, ok := parseLiveName(name); !ok || base != "refresh-memory" || got != n {
			t.Errorf("parseLiveName(%q) = %q, %d, %v", name, base, got, ok)
		}
	}
	for _, bad := range []string{"refresh-memory-live", "refresh-memory-live0", "refresh-memory-live100000", "refresh-memory-livex", "-live1e5"} {
		if _, _, ok := parseLiveName(bad); ok {
			t.Errorf("parseLiveName(%q) accepted", bad)
		}
	}
	if sc := scenarioNamed("refresh-redis-live1e5"); sc == nil || sc.cfg != cfgRedis || sc.live != 100_000 || !sc.consuming {
		t.Errorf("refresh-redis-live1e5: %+v", sc)
	}
	if sc := scenarioNamed("valid-hit-live1e5"); sc == nil || sc.cfg != cfgMain+"-live1e5" || sc.base != "valid-hit" {
		t.Errorf("valid-hit-live1e5: %+v", sc)
	}
	for _, name := range []string{"malformed-live1e5", "refresh-memory-live1e5-live1e5"} {
		if scenarioNamed(name) != nil {
			t.Errorf("%s: not a scenario", name)
		}
	}
	live, err := parseLiveFlag("1e5, 0")
	if err != nil || !slices.Equal(live, []int{0, 100_000}) {
		t.Fatalf("parseLiveFlag: %v, %v", live, err)
	}
	got := expandLive([]string{"valid-hit", "malformed", "refresh-memory"}, live)
	want := []string{"valid-hit", "valid-hit-live1e5", "malformed", "refresh-memory", "refresh-memory-live1e5"}
	if !slices.Equal(got, want) {
		t.Errorf("expandLive = %v, want %v", got, want)
	}
	if got := expandLive([]string{"refresh-redis"}, []int{100_000}); !slices.Equal(got, []string{"refresh-redis-live1e5"}) {
		t.Errorf("expandLive without 0 = %v", got)
	}
}

func TestTamperKeepsTheShape(t *testing.T) {
	tok := "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.MEUCIQDx9Q3bWl5jv3s0c2lnbmF0dXJlLWJ5dGVzLWFyZS1oZXJl"
	bad := tamper(tok)
	if bad == tok || strings.Count(bad, ".") != 2 || !strings.HasPrefix(bad, "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.") {
		t.Fatalf("tamper(%q) = %q", tok, bad)
	}
}
