#!/usr/bin/env bash
# Installs or builds the parts the integration tests run for real into
# $SILENTAUTH_TOOLS_DIR (default .tools), once; later runs reuse the cache.
# Go must be installed; everything else comes from the Go module proxy or
# Debian's packages.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS_DIR=${SILENTAUTH_TOOLS_DIR:-$PWD/.tools}
mkdir -p "$TOOLS_DIR/bin"

# The product's own modules, so tests never stall on the network mid-run.
go mod download
