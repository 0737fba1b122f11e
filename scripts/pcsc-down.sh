#!/usr/bin/env bash
# Stops the pcscd that scripts/pcsc-up.sh started, and nothing else.
set -euo pipefail

STATE_DIR=${MYKEY_PCSC_STATE_DIR:-/tmp/mykey-pcsc}
PID_FILE=$STATE_DIR/pcscd.pid
WAIT_SECS=${MYKEY_PCSC_WAIT_SECS:-10}

if [ ! -f "$PID_FILE" ]; then
  echo "pcsc-down: no pcscd started by pcsc-up.sh; nothing to stop"
  exit 0
fi
pid=$(cat "$PID_FILE")
# Only signal the pid if it is still the pcscd we started (pids get reused).
if [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" != pcscd ]; then
  echo "pcsc-down: pcscd (pid $pid) already gone"
  rm -f "$PID_FILE"
  exit 0
fi
kill -TERM "$pid"
deadline=$((SECONDS + WAIT_SECS))
while kill -0 "$pid" 2>/dev/null; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "pcsc-down: pcscd (pid $pid) ignored SIGTERM for ${WAIT_SECS}s; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    break
  fi
  sleep 0.1
done
rm -f "$PID_FILE"
echo "pcsc-down: stopped pcscd (pid $pid)"
