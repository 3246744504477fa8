package authz

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Counters count every decision exactly when goroutines decide at once,
// for both decisions.
func TestMetricsCountEveryDecision(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, 0)
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
	if total != 8*500 {
		t.Fatalf("counted %v decisions, want %d", total, 8*500)
	}
	if series != 2 {
		t.Fatalf("%d latency series, want 2", series)
	}
}

// Every reason a Decision can carry has its series from the start, at 0
// (Prometheus: initialise known label values), including the reasons of
// allowed requests whose refresh did not complete.
func TestEveryReasonIsCountedUpFront(t *testing.T) {
	reg := prometheus.NewRegistry()
	NewMetrics(reg, 0)
	got := decisionSeries(t, reg)
	for _, want := range []string{
		"allow/valid", "allow/public", "allow/refreshed", "allow/refreshed_grace", "allow/valid_deadline",
		"allow/valid_store_unavailable", "allow/valid_session_unknown", "allow/valid_session_other_policy",
		"deny/unavailable", "deny/deadline", "deny/refresh_reuse", "deny/bad_authorization", "deny/csrf",
		"deny/endpoint_refreshed", "deny/endpoint_refreshed_grace", "deny/endpoint_logout", "deny/endpoint_logout_reuse",
	} {
		if v, ok := got[want]; !ok || v != 0 {
			t.Errorf("%s: present %v, value %v; want a series at 0", want, ok, v)
		}
	}
}

// decisionSeries returns silentauth_check_decisions_total by
// "decision/reason".
func decisionSeries(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "silentauth_check_decisions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var d, r string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "decision":
					d = l.GetValue()
				case "reason":
					r = l.GetValue()
				}
			}
			out[d+"/"+r] = m.GetCounter().GetValue()
		}
	}
	return out
}

// checkReasonsKnown fails t if a decision was counted under a reason the
// answers table does not list (its series was not created up front).
func checkReasonsKnown(t testing.TB, reg *prometheus.Registry) {
	known := map[string]bool{}
	for i, list := range reasons() {
		for _, r := range list {
			known[decisionLabel(i == 1)+"/"+r] = true
		}
	}
	for series := range decisionSeries(t, reg) {
		if !known[series] {
			t.Errorf("decision %s is not in the answers table's reasons", series)
		}
	}
}
