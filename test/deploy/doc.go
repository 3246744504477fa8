// Package deploy tests how silentauth is deployed: the Helm chart in
// charts/silentauth and the plain manifests in manifests/install.
//
// The chart is linted and rendered with helm across value sets, and the
// rendered objects are decoded into the Kubernetes API types and checked:
// least-privilege RBAC, the memory store's single replica, the restricted Pod
// Security Standard, Istio objects. Then it is installed into and upgraded in
// a real kube-apiserver (internal/testenv/kubetest), which also validates the Istio
// objects against Istio's own CRDs.
//
// helm comes from `make tools` (scripts/tools/helm.sh), in
// the tools folder (package toolsdir); without it the tests skip, or fail
// when SILENTAUTH_REQUIRE_INTEGRATION=1.
//
// manifests/install/silentauth.yaml is the chart rendered with its defaults;
// after changing the chart, regenerate it with
//
//	go test ./test/deploy -run TestRenderedManifests -update
package deploy
