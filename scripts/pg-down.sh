#!/usr/bin/env bash
# Stops the cluster scripts/pg-up.sh started and removes its directory (a
# no-op when none runs).
set -uo pipefail
cd "$(dirname "$0")/.."
[ -f target/pg-test.dir ] || exit 0
dir=$(cat target/pg-test.dir)
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -f "$dir/data/postmaster.pid" ]; then
  runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 \
    || runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1
fi
case "$dir" in /tmp/mykey-pg.*) rm -rf "$dir" ;; esac
rm -f target/pg-test.dir
