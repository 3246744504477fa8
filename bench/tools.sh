#!/usr/bin/env bash
# Installs the load-test tools that are not product dependencies into
# ${SILENTAUTH_TOOLS_DIR:-.tools}/bin, once: ghz (the gRPC load generator)
# and benchstat (summarises `go test -bench` counts). Both come from the Go
# module proxy with `go install`; a version stamp beside each binary skips
# the build while it matches. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS_DIR=${SILENTAUTH_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/silentauth/tools}
mkdir -p "$TOOLS_DIR/bin"

# ghz is pinned: @latest resolves to an old release of the module path.
GHZ=github.com/bojand/ghz/cmd/ghz@v0.120.0
BENCHSTAT=golang.org/x/perf/cmd/benchstat@latest

# install NAME MODULE@VERSION: go install into $TOOLS_DIR/bin unless the
# stamp says this exact MODULE@VERSION is already there. @latest is
# installed once and then kept until the stamp is removed.
install() {
  local name=$1 spec=$2
  local bin=$TOOLS_DIR/bin/$name stamp=$TOOLS_DIR/bin/.$name.stamp
  if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$spec" ]; then
    echo "$name ($spec): cached"
    return
  fi
  local start=$SECONDS
  rm -f "$stamp"
  # Outside the main module, so its go.mod is neither read nor changed.
  (cd "$TOOLS_DIR" && GOBIN="$TOOLS_DIR/bin" GOFLAGS=-mod=mod CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "$spec")
  echo "$spec" >"$stamp"
  echo "$name ($spec): installed in $((SECONDS - start))s"
}

# With arguments, only the named tools: bench/tools.sh benchstat
want=${*:-ghz benchstat}
for t in $want; do
  case $t in
  ghz) install ghz "$GHZ" ;;
  benchstat) install benchstat "$BENCHSTAT" ;;
  *) echo "tools.sh: unknown tool $t (ghz, benchstat)" >&2; exit 2 ;;
  esac
done
