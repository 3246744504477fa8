package keys

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics registers on reg the gauges that describe src's current
// keyring, computed at scrape time with now (time.Now when nil):
//
//	silentauth_keyring_loaded                1 once a keyring is loaded, else 0
//	silentauth_keyring_keys{state}           keys by state: next, active, retiring, gone
//	silentauth_keyring_degraded              1 while Keyring.Degraded is not "", else 0
//
// Every state is always exported, 0 when no key is in it, so alerts need no
// absent(). It panics, like prometheus.MustRegister, if one of these is
// already registered. The Secret watcher (package kubesecret) registers its
// reload counters itself.
func RegisterMetrics(reg prometheus.Registerer, src Source, now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	reg.MustRegister(&keyringCollector{src: src, now: now})
}

var (
	loadedDesc = prometheus.NewDesc("silentauth_keyring_loaded",
		"1 once a usable keyring is loaded, else 0.", nil, nil)
	keysDesc = prometheus.NewDesc("silentauth_keyring_keys",
		"Keys in the keyring by lifecycle state: next (published, not signing yet), active, retiring (verification only) or gone (in the Secret, no longer published).",
		[]string{"state"}, nil)
	degradedDesc = prometheus.NewDesc("silentauth_keyring_degraded",
		"1 while no key is active and the most recently active key keeps signing, else 0.", nil, nil)
)

// keyringCollector computes every gauge from one call to States per scrape.
type keyringCollector struct {
	src Source
	now func() time.Time
}

func (c *keyringCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- loadedDesc
	ch <- keysDesc
	ch <- degradedDesc
}

func (c *keyringCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.src.Keyring()
	counts := make(map[State]int, len(AllStates))
	loaded, degraded := 0.0, 0.0
	if r != nil {
		now := c.now()
		loaded = 1
		for _, s := range r.States(now) {
			counts[s.State]++
		}
		if r.Degraded(now) != "" {
			degraded = 1
		}
	}
	ch <- prometheus.MustNewConstMetric(loadedDesc, prometheus.GaugeValue, loaded)
	for _, s := range AllStates {
		ch <- prometheus.MustNewConstMetric(keysDesc, prometheus.GaugeValue, float64(counts[s]), string(s))
	}
	ch <- prometheus.MustNewConstMetric(degradedDesc, prometheus.GaugeValue, degraded)
}
