#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for the hub's tests and prints its URL:
# initdb and pg_ctl as the postgres user (initdb refuses root), a temp data
# directory, a free port on 127.0.0.1 only, trust login on loopback, fsync off
# (the tests check the hub's logic, not the disk). Installs PostgreSQL 15 from
# Debian's packages if missing. scripts/pg-down.sh stops it and removes it.
set -euo pipefail
cd "$(dirname "$0")/.."

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
if [ -z "$(bindir)" ] || [ ! -x "$(bindir)/initdb" ]; then
  export DEBIAN_FRONTEND=noninteractive
  # Debian's package starts a cluster of its own on port 5432 when it can:
  # forbid service starts for the install (policy-rc.d exit 101), and stop
  # any cluster it started anyway, so this script leaves running only the
  # throwaway cluster pg-down.sh stops.
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy=/usr/sbin/policy-rc.d
  fi
  apt-get update -qq >&2
  apt-get install -y -qq postgresql-15 >&2 || apt-get install -y -qq postgresql >&2
  [ -n "$policy" ] && rm -f "$policy"
  if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters --no-header 2>/dev/null | awk '$4 == "online" { print $1, $2 }' |
      while read -r version name; do pg_ctlcluster "$version" "$name" stop >&2 || true; done
  fi
fi
bin=$(bindir)

mkdir -p target
dir=$(mktemp -d /tmp/mykey-pg.XXXXXX)
echo "$dir" > target/pg-test.dir
chown postgres: "$dir"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_postgres() { runuser -u postgres -- "$@"; }
as_postgres "$bin/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
  start >/dev/null
echo "postgres://postgres@127.0.0.1:$port/postgres"
