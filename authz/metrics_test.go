package authz

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Counters resolved once per reason still count every decision exactly,
// when goroutines meet the same new reason at once, for both decisions.
func TestMetricsCountEveryDecision(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 500 {
				m.observe((g+i)%2 == 0, []string{"valid", "token_signature", "csrf"}[i%3], time.Microsecond)
			}
		})
	}
	wg.Wait()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts, series := map[string]float64{}, 0
	for _, mf := range mfs {
		for _, metric := range mf.GetMetric() {
			labels := ""
			for _, l := range metric.GetLabel() {
				labels += l.GetValue() + "/"
			}
			switch mf.GetName() {
			case "silentauth_check_decisions_total":
				counts[labels] = metric.GetCounter().GetValue()
			case "silentauth_check_duration_seconds":
				series++
			}
		}
	}
	total := 0.0
	for _, decision := range []string{"allow", "deny"} {
		for _, reason := range []string{"valid", "token_signature", "csrf"} {
			n := counts[decision+"/"+reason+"/"]
			if n == 0 {
				t.Errorf("%s/%s never counted", decision, reason)
			}
			total += n
		}
	}
	if total != 8*500 || len(counts) != 6 {
		t.Fatalf("counted %v decisions in %d series, want %d in 6", total, len(counts), 8*500)
	}
	if series != 2 {
		t.Fatalf("%d latency series, want 2", series)
	}
}
