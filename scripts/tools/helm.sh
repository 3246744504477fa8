#!/usr/bin/env bash
# Installs helm into $SILENTAUTH_TOOLS_DIR/bin (default ~/.cache/silentauth/tools/bin),
# once: a stamp beside the binary records what was built, and while it
# matches a run takes well under a second. Built from source with
# `go install` because only the Go module proxy is reachable (no
# get.helm.sh). Also fetches the Istio CRDs the chart tests validate against.
#
# Helm 4, not 3: Helm 3 takes the Kubernetes version it assumes for
# `helm template` (.Capabilities.KubeVersion) from -X ldflags of its own
# release build and would report v1.20 when built this way; Helm 4 reads it
# from the client-go module in the binary's build info.
#
# Used by test/deploy (chart lint, template, install and upgrade against the
# kubetest API server) and to regenerate manifests/install/silentauth.yaml.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
TOOLS_DIR=${SILENTAUTH_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/silentauth/tools}
HELM_VERSION=v4.3.1

scratch= # temporary folders, removed on any exit
trap 'rm -rf $scratch' EXIT

install_helm() {
  local bin=$TOOLS_DIR/bin/helm stamp=$TOOLS_DIR/bin/.helm.stamp
  # helm's own release sets its version by -X; without it `helm version`
  # reports only "v4.3".
  local ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
  local want
  want="$HELM_VERSION $(go env GOVERSION) $(echo "$ldflags" | sha256sum | cut -c1-16)"
  if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "helm $HELM_VERSION: cached"
    return
  fi
  mkdir -p "$TOOLS_DIR/bin"
  local start=$SECONDS
  # go install writes into GOBIN under the command's name; a private folder,
  # moved into place at the end, means an interrupted build never leaves a
  # half binary behind a valid stamp.
  local gobin
  gobin=$(mktemp -d "$TOOLS_DIR/bin/.helm-build.XXXXXX")
  scratch+=" $gobin"
  rm -f "$stamp"
  GOBIN=$gobin CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
    go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  # Refuse a binary that does not run, before it is stamped.
  "$gobin/helm" version --short >/dev/null
  mv -f "$gobin/helm" "$bin"
  echo "$want" >"$stamp"
  local took=$((SECONDS - start))
  echo "helm $HELM_VERSION: built in $((took / 60))m$((took % 60))s ($("$bin" version --short))"
}

# fetch_istio_crds downloads the istio.io/api module that test/deploy reads
# Istio's CRDs from into the module cache, so the tests never wait on the
# network. It is not a dependency: the download runs outside any module, and
# go.mod and go.sum stay as they are. A cached module takes milliseconds.
fetch_istio_crds() {
  local version dir
  version=$(tr -d '[:space:]' <"$repo/test/deploy/testdata/istio-api-version")
  dir=$(mktemp -d)
  scratch+=" $dir"
  (cd "$dir" && GOWORK=off GOFLAGS= go mod download "istio.io/api@$version")
  echo "istio.io/api $version: in the module cache"
}

install_helm
fetch_istio_crds
