#!/usr/bin/env bash
# Installs Debian's nginx, chromium and caddy for test/browser: the
# real-browser proof of silent refresh behind nginx auth_request, and the
# nginx and Caddy contract tests of manifests/proxies/. Idempotent: a package
# whose binary is already there is left alone, and the package lists are
# refreshed at most once, only when something is missing; a run with both
# present takes milliseconds.
#
# Browsers come from Debian only: Playwright's or Puppeteer's own browser
# downloads cannot be fetched here. The test drives chromium over the Chrome
# DevTools Protocol, headless, so no X server or fonts package is needed
# beyond what chromium depends on.
#
# nginx-light is enough: it has http_auth_request (auth_request,
# auth_request_set) and http_headers (add_header … always). The package's
# service is never used; the test runs its own nginx on loopback ports with
# a generated configuration (`nginx -p DIR -c CONF -g 'daemon off; …'`).
set -euo pipefail

apt_updated=
# need_deb PACKAGE BINARY...: install PACKAGE unless one of the BINARY paths
# is an executable.
need_deb() {
  local pkg=$1
  shift
  for bin in "$@"; do
    if [ -x "$bin" ]; then
      echo "$pkg: present ($bin)"
      return
    fi
  done
  if [ -z "$apt_updated" ]; then
    apt-get update -qq
    apt_updated=1
  fi
  # Without --no-install-recommends chromium would pull in a desktop's worth
  # of packages; what it needs to render headless are its dependencies.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
  echo "$pkg: installed"
}

need_deb nginx-light /usr/sbin/nginx
need_deb chromium /usr/bin/chromium
# Debian's caddy package also installs a systemd unit; the test runs its own
# caddy on a loopback port and never uses the service.
need_deb caddy /usr/bin/caddy
# A font, so screenshots show text rather than empty boxes.
if ! [ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
  need_deb fonts-dejavu-core /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
fi

# The auth_request module is what the test relies on: refuse a build
# without it (a custom nginx on PATH, say) here rather than in the test.
if ! /usr/sbin/nginx -V 2>&1 | grep -q -- '--with-http_auth_request_module'; then
  echo "browser.sh: /usr/sbin/nginx lacks http_auth_request_module" >&2
  exit 1
fi
