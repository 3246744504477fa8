package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/silentauth/silentauth/authz/keys"
)

// registerKeyringMetrics exposes the state of the keyring: whether one is
// loaded and how many keys it holds, by what they may do.
func registerKeyringMetrics(reg prometheus.Registerer, src keys.Source) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "silentauth_keyring_loaded",
			Help: "1 once a usable keyring is loaded, else 0.",
		}, func() float64 {
			if src.Keyring() != nil {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "silentauth_keyring_keys",
			Help:        "Keys in the keyring by state: signing (signs new tokens) or verifying (verification only).",
			ConstLabels: prometheus.Labels{"state": "signing"},
		}, func() float64 {
			if r := src.Keyring(); r != nil && r.Signer(time.Now()) != nil {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "silentauth_keyring_keys",
			Help:        "Keys in the keyring by state: signing (signs new tokens) or verifying (verification only).",
			ConstLabels: prometheus.Labels{"state": "verifying"},
		}, func() float64 {
			if r := src.Keyring(); r != nil {
				return float64(len(r.Keys()) - 1)
			}
			return 0
		}),
	)
}
