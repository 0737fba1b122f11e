#!/usr/bin/env bash
# Prints the path of a promtool, for the test that checks deploy/prometheus.
# Uses one on PATH if there is one; otherwise takes promtool alone out of
# Debian's prometheus package (apt-get download + dpkg-deb -x: nothing is
# installed, no prometheus service is started) into target/tools/.
set -euo pipefail
cd "$(dirname "$0")/.."
if command -v promtool >/dev/null 2>&1; then
  command -v promtool
  exit 0
fi
out=target/tools/promtool
if [ ! -x "$out" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  if ! (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); then
    apt-get update -qq >&2
    (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1)
  fi
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
  mkdir -p target/tools
  cp "$tmp/x/usr/bin/promtool" "$out"
fi
echo "$PWD/$out"
