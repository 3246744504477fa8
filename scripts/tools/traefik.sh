#!/usr/bin/env bash
# Builds traefik into $SILENTAUTH_TOOLS_DIR/bin (default ~/.cache/silentauth/tools/bin),
# once: a stamp beside the binary records what was built, and while it
# matches a run takes well under a second. Built from source because only the
# Go module proxy is reachable (no GitHub release downloads, and Debian has
# no Traefik package).
#
# Not `go install …@version` as for helm: Traefik's go.mod has replace
# directives, which go install refuses. The scratch module
# scripts/tools/traefik pins the version and repeats them; its go.mod says
# why it is v3.7.12 and what differs from the release build.
#
# Used by test/browser's TestTraefikContract (manifests/proxies/traefik in
# front of silentauth's /authz/traefik). A cold build (empty module and
# build caches) downloads about 360 modules and compiles for about 11
# CPU-minutes: 14 minutes on two busy cores. The binary is about 180 MB.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
TOOLS_DIR=${SILENTAUTH_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/silentauth/tools}
moddir=$repo/scripts/tools/traefik
pkg=github.com/traefik/traefik/v3/cmd/traefik

building= # the temporary binary of a build in progress, removed on any exit
trap 'rm -f "$building"' EXIT

install_traefik() {
  local version
  version=$(awk '$1 == "github.com/traefik/traefik/v3" && $2 ~ /^v/ { print $2; exit }' "$moddir/go.mod")
  if [ -z "$version" ]; then
    echo "traefik.sh: no github.com/traefik/traefik/v3 version in $moddir/go.mod" >&2
    exit 1
  fi
  local bin=$TOOLS_DIR/bin/traefik stamp=$TOOLS_DIR/bin/.traefik.stamp
  # What Traefik's own release sets by -X (Makefile, .goreleaser.yml), less
  # the build date so two builds of one version are the same binary; the
  # codename's default is already the release's.
  local ldflags="-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$version"
  # The stamp covers everything the build reads from this repository: the
  # pins, the stand-in module ./ext, the Go version and the flags.
  local want
  want="$version $(go env GOVERSION) $( (cd "$moddir" && cat go.mod go.sum ext/go.mod ext/*.go; echo "$ldflags") | sha256sum | cut -c1-16)"
  if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "traefik $version: cached"
    return
  fi
  mkdir -p "$TOOLS_DIR/bin"
  local start=$SECONDS
  # Written under a temporary name and moved into place, so an interrupted
  # build never leaves a half binary behind a valid stamp.
  building=$(mktemp "$bin.XXXXXX")
  rm -f "$stamp"
  # -mod=readonly: a build that would need to change the scratch go.mod or
  # go.sum fails instead of resolving something new on its own.
  # -buildvcs=false: the module sits in silentauth's git tree, whose commit
  # says nothing about this binary.
  (cd "$moddir" && CGO_ENABLED=0 GOWORK=off GOFLAGS='-mod=readonly -buildvcs=false' \
    go build -trimpath -ldflags "$ldflags" -o "$building" "$pkg")
  chmod 0755 "$building"
  # Refuse a binary that does not run, before it is stamped.
  "$building" version >/dev/null
  mv -f "$building" "$bin"
  building=
  echo "$want" >"$stamp"
  local took=$((SECONDS - start))
  echo "traefik $version: built in $((took / 60))m$((took % 60))s ($("$bin" version | awk '/^Version:/ { print $2 }'))"
}

install_traefik
