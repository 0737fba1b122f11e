#!/usr/bin/env bash
# Builds a throwaway PostgreSQL primary with one synchronous standby (made
# with pg_basebackup) on 127.0.0.1 and shows what the hub relies on at
# failover: a commit is acknowledged only once the standby has applied it,
# and while the standby is down a commit waits (it is not acknowledged)
# until the standby is back. Then stops both and removes them.
# Needs PostgreSQL (scripts/pg-up.sh installs it from Debian's packages).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "PostgreSQL is not installed: run scripts/pg-up.sh once (it installs it), then this again" >&2
  exit 1
fi
dir=$(mktemp -d /tmp/mykey-pg-standby.XXXXXX)
chown postgres: "$dir"
as_postgres() { runuser -u postgres -- "$@"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
p1=$(free_port)
p2=$(free_port)
waiter=""
cleanup() {
  [ -n "$waiter" ] && kill "$waiter" 2>/dev/null || true
  as_postgres "$bin/pg_ctl" -D "$dir/standby" -m immediate stop >/dev/null 2>&1 || true
  as_postgres "$bin/pg_ctl" -D "$dir/primary" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
sql() { # port, statement
  as_postgres "$bin/psql" -X -q -At -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2"
}
# Polls `$@` (a command) every 0.1 s, at most $1 seconds.
wait_for() {
  local limit=$1; shift
  for _ in $(seq 1 $((limit * 10))); do
    if "$@"; then return 0; fi
    sleep 0.1
  done
  echo "timed out after ${limit}s waiting for: $*" >&2
  exit 1
}

echo "primary on 127.0.0.1:$p1"
as_postgres "$bin/initdb" -D "$dir/primary" -A trust -U postgres --no-sync >/dev/null
cat >> "$dir/primary/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $p1
unix_socket_directories = '$dir'
wal_level = replica
max_wal_senders = 5
synchronous_standby_names = 'FIRST 1 (standby1)'
synchronous_commit = remote_apply
EOF
as_postgres "$bin/pg_ctl" -D "$dir/primary" -l "$dir/primary.log" -w start >/dev/null

echo "standby on 127.0.0.1:$p2 (pg_basebackup -R -X stream)"
as_postgres "$bin/pg_basebackup" -D "$dir/standby" -R -X stream \
  -d "host=127.0.0.1 port=$p1 user=postgres application_name=standby1"
cat >> "$dir/standby/postgresql.conf" <<EOF
port = $p2
primary_conninfo = 'host=127.0.0.1 port=$p1 user=postgres application_name=standby1'
EOF
as_postgres "$bin/pg_ctl" -D "$dir/standby" -l "$dir/standby.log" -w start >/dev/null
is_sync() { [ "$(sql "$p1" "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'")" = sync ]; }
wait_for 30 is_sync
echo "pg_stat_replication: $(sql "$p1" "SELECT application_name || ' ' || state || ' ' || sync_state FROM pg_stat_replication")"

sql "$p1" "CREATE TABLE receipts (n int)"
sql "$p1" "INSERT INTO receipts VALUES (1)"
echo "committed on the primary; the standby already shows $(sql "$p2" "SELECT count(*) FROM receipts") row (remote_apply)"

echo "standby stopped: the next commit waits"
as_postgres "$bin/pg_ctl" -D "$dir/standby" -m fast -w stop >/dev/null
sql "$p1" "INSERT INTO receipts VALUES (2)" &
waiter=$!
waiting() { [ "$(sql "$p1" "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'")" = 1 ]; }
wait_for 30 waiting
if ! kill -0 "$waiter" 2>/dev/null; then
  echo "FAIL: the commit returned without the standby" >&2
  exit 1
fi
echo "the commit is waiting for the standby (wait_event SyncRep): no acknowledgement, so no receipt"

echo "standby started again: the commit completes"
as_postgres "$bin/pg_ctl" -D "$dir/standby" -l "$dir/standby.log" -w start >/dev/null
wait_for 60 bash -c "! kill -0 $waiter 2>/dev/null"
wait "$waiter"
waiter=""
echo "both rows on the standby: $(sql "$p2" "SELECT count(*) FROM receipts")"
echo "ok: commits wait for the synchronous standby"
