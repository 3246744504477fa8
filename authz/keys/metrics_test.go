package keys

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestRegisterMetrics(t *testing.T) {
	k1, k2, k3 := mustKey(t, p256Key()), mustKey(t, edKey()), mustKey(t, p256KeyB())
	var h Holder
	now := t0
	reg := prometheus.NewRegistry()
	RegisterMetrics(reg, &h, func() time.Time { return now })
	gauges := func() [6]float64 {
		return [6]float64{
			metricValue(t, reg, "silentauth_keyring_loaded"),
			metricValue(t, reg, "silentauth_keyring_keys", "state", "next"),
			metricValue(t, reg, "silentauth_keyring_keys", "state", "active"),
			metricValue(t, reg, "silentauth_keyring_keys", "state", "retiring"),
			metricValue(t, reg, "silentauth_keyring_keys", "state", "gone"),
			metricValue(t, reg, "silentauth_keyring_degraded"),
		}
	}
	if got := gauges(); got != [6]float64{} {
		t.Errorf("before a keyring: %v", got)
	}
	h.Store(must(NewSecretKeyring([]Entry{
		{Name: "k1", Key: k1, RetireAt: t0.Add(-hour)},
		{Name: "k2", Key: k2, RetireAt: t0.Add(hour)},
		{Name: "k3", Key: k3, ActivateAt: t0.Add(hour)},
	}, lc, t0)))
	tests := []struct {
		name string
		now  time.Time
		want [6]float64 // loaded, next, active, retiring, gone, degraded
	}{
		{"rotation", t0, [6]float64{1, 1, 1, 0, 1, 0}},
		{"k3 active", t0.Add(hour), [6]float64{1, 0, 1, 1, 1, 0}},
		{"k2 gone too", t0.Add(1000 * hour), [6]float64{1, 0, 1, 0, 2, 0}},
	}
	for _, tt := range tests {
		now = tt.now
		if got := gauges(); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	h.Store(must(NewSecretKeyring([]Entry{{Name: "k1", Key: k1, RetireAt: t0.Add(-hour)}}, lc, t0)))
	now = t0
	if got := gauges(); got != [6]float64{1, 0, 0, 1, 0, 1} {
		t.Errorf("degraded: %v", got)
	}
}

// metricValue returns the value of the named counter or gauge (with labels
// name=value pairs) from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if labelValue(m, labels[i]) != labels[i+1] {
					continue next
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
