#!/usr/bin/env bash
# Installs or builds the parts the integration tests run for real into
# $SILENTAUTH_TOOLS_DIR (default ~/.cache/silentauth/tools, outside the work
# tree so fresh clones reuse it), once; later runs reuse the cache.
# Go must be installed; everything else comes from the Go module proxy or
# Debian's packages. Safe to run again: a cached run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS_DIR=${SILENTAUTH_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/silentauth/tools}
mkdir -p "$TOOLS_DIR/bin"

# The product's own modules, so tests never stall on the network mid-run.
go mod download

# need_deb PKG BINARY installs Debian's PKG unless BINARY is already on PATH.
# The package lists are refreshed at most once per run, and only when
# something is missing.
apt_updated=
need_deb() {
  local pkg=$1 bin=$2
  if command -v "$bin" >/dev/null 2>&1; then
    return
  fi
  if [ -z "$apt_updated" ]; then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
  echo "$pkg: installed"
}

# module_version MODDIR MODULE prints the version MODDIR/go.mod requires of
# MODULE, so the pin lives in one reviewable place.
module_version() {
  awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$1/go.mod"
}

# go_tool NAME VERSION MODDIR PACKAGE [LDFLAGS] builds PACKAGE from the scratch
# module MODDIR into $TOOLS_DIR/bin/NAME. A stamp beside the binary records the
# version and a hash of the scratch module's go.mod, go.sum and the flags;
# while it matches, the build is skipped. The binary is written under a
# temporary name and moved into place, so an interrupted build never leaves a
# half binary behind a valid stamp.
building= # the temporary binary of a build in progress, removed on any exit
trap 'rm -f "$building"' EXIT
go_tool() {
  local name=$1 version=$2 moddir=$3 pkg=$4 ldflags="-s -w ${5-}"
  if [ -z "$version" ]; then
    echo "tools.sh: no version for $name in $moddir/go.mod" >&2
    exit 1
  fi
  local bin=$TOOLS_DIR/bin/$name stamp=$TOOLS_DIR/bin/.$name.stamp
  local want
  want="$version $( (cat "$moddir/go.mod" "$moddir/go.sum"; echo "$ldflags") | sha256sum | cut -c1-16)"
  if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "$name $version: cached"
    return
  fi
  local start=$SECONDS
  building=$(mktemp "$bin.XXXXXX")
  rm -f "$stamp"
  (cd "$moddir" && CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "$ldflags" -o "$building" "$pkg")
  chmod 0755 "$building"
  mv -f "$building" "$bin"
  building=
  echo "$want" >"$stamp"
  local took=$((SECONDS - start))
  echo "$name $version: built in $((took / 60))m$((took % 60))s"
}

# kube-apiserver and etcd for internal/testenv/kubetest, built from source because
# only the Go module proxy is reachable (no release downloads, no
# setup-envtest). A cold build takes about ten minutes on two cores.
kube=scripts/tools/kube
kube_version=$(module_version "$kube" k8s.io/kubernetes)
kube_minor=$(echo "$kube_version" | cut -d. -f2)
# The -X flags Kubernetes' own build sets (hack/lib/version.sh), so /version
# reports the real release instead of v0.0.0-master: clients read it, and Helm
# checks a chart's kubeVersion constraint against it.
kube_ldflags=
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$kube_minor -X $pkg.gitTreeState=clean"
done
go_tool kube-apiserver "$kube_version" "$kube" k8s.io/kubernetes/cmd/kube-apiserver "$kube_ldflags"

# kubectl, the operators' tool, at the same release: the README's
# plain-kubectl rotation recipe is run by a test. Its own scratch module
# shares the build cache with kube-apiserver (about a minute more).
if [ "$(module_version scripts/tools/kubectl k8s.io/kubernetes)" != "$kube_version" ]; then
  echo "tools.sh: scripts/tools/kubectl/go.mod must pin k8s.io/kubernetes $kube_version, as $kube/go.mod does" >&2
  exit 1
fi
go_tool kubectl "$kube_version" scripts/tools/kubectl k8s.io/kubernetes/cmd/kubectl "$kube_ldflags"

etcd=scripts/tools/etcd
etcd_version=$(module_version "$etcd" go.etcd.io/etcd/server/v3)
go_tool etcd "$etcd_version" "$etcd" go.etcd.io/etcd/server/v3

# Dex v2.45.1, the OpenID Connect provider the login tests sign in to
# (internal/testenv/dextest), built from its module at the release's commit
# (Dex tags no Go module versions). No cgo: the tests use Dex's memory
# storage, and without cgo only its SQLite storage is left out. Its login
# pages and themes are embedded (package web), so the binary runs without a
# source checkout. A cold build (empty Go build cache) took 1m45s on two cores;
# a cached run skips it in well under a second. The -X flag is Dex's own
# release stamp (its Makefile's), so `dex version` and its startup log name
# the release; keep it in step with the pin in scripts/tools/dex/go.mod.
go_tool dex "$(module_version scripts/tools/dex github.com/dexidp/dex)" scripts/tools/dex github.com/dexidp/dex/cmd/dex "-X main.version=v2.45.1"

# Debian packages, one line each: need_deb PACKAGE BINARY.
# redis-server (and redis-cli) for the Redis store's tests and the
# multi-replica end-to-end tests.
need_deb redis-server redis-server
# openssl and jq, which the README's plain-kubectl recipe uses.
need_deb openssl openssl
need_deb jq jq

# helm for test/deploy (chart lint, template, install, upgrade), and the
# istio.io/api module whose CRDs the Istio objects are validated against.
SILENTAUTH_TOOLS_DIR=$TOOLS_DIR scripts/tools/helm.sh

# The daemonless image builder's own module (test/image runs it), and the
# release tool's (make release; its tests run with make test).
go -C scripts/tools/image mod download
go -C scripts/release mod download

# krew and its manifest validator, which the release tests install the
# kubectl plugin with, from their own scratch module (krew's old Kubernetes
# modules stay out of every other graph). About a minute cold.
krew_version=$(module_version scripts/tools/krew sigs.k8s.io/krew)
go_tool krew "$krew_version" scripts/tools/krew sigs.k8s.io/krew/cmd/krew
go_tool validate-krew-manifest "$krew_version" scripts/tools/krew sigs.k8s.io/krew/cmd/validate-krew-manifest

# nginx, Caddy and Chromium for the HTTP-mode proxies and the browser test.
scripts/tools/browser.sh

# ghz (the load generator of make loadtest; its harness has a smoke test).
bench/tools.sh ghz
