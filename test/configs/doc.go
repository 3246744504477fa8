// Package configs holds the tests that keep the example deployments under
// manifests/ honest: every Envoy bootstrap must load into go-control-plane's
// Bootstrap and pass every validation Envoy would apply, and the Istio
// examples must match the fields Istio defines and the choices silentauth
// depends on. The package has no code of its own; everything is in tests.
package configs
