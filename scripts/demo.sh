#!/usr/bin/env bash
# The demo, as README.md gives it: a hub and three nodes on embedded
# defaults in a fresh ./demo-data, through a day with an outage, offline
# spends and reconciliation, ending with a summary. Starts no services.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for p in libpcsclite-dev pkg-config; do   # the node links the PC/SC library
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
fi
cargo run --quiet --locked -p mykey-tests --bin mykey-demo -- --data ./demo-data --fresh "$@"
