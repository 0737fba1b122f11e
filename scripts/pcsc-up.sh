#!/usr/bin/env bash
# Starts pcscd with the vpcd virtual reader for the card tests and the demo.
#
# Installs the packages if they are missing, starts `pcscd --foreground` in the
# background (there is no systemd here), records its pid, and waits until the
# daemon's socket exists and vpcd listens for a card emulator on TCP 35963.
# scripts/pcsc-down.sh stops exactly the pcscd this script started.
# If a pcscd is already running, it is left alone and nothing is recorded.
set -euo pipefail

STATE_DIR=${MYKEY_PCSC_STATE_DIR:-/tmp/mykey-pcsc}
PID_FILE=$STATE_DIR/pcscd.pid
LOG_FILE=$STATE_DIR/pcscd.log
SOCKET=${PCSCLITE_CSOCK_NAME:-/run/pcscd/pcscd.comm}
VPCD_DRIVER=/usr/lib/pcsc/drivers/serial/libifdvpcd.so
WAIT_SECS=${MYKEY_PCSC_WAIT_SECS:-30}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for pkg in pcscd libpcsclite-dev vsmartcard-vpcd pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "pcsc-up: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # The package lists may be missing or stale on a fresh machine: update only then.
  if ! as_root apt-get install -y "${missing[@]}"; then
    as_root apt-get update
    as_root apt-get install -y "${missing[@]}"
  fi
fi
[ -e "$VPCD_DRIVER" ] || { echo "pcsc-up: vpcd driver missing at $VPCD_DRIVER" >&2; exit 1; }
PCSCD=$(command -v pcscd || echo /usr/sbin/pcscd)

# vpcd listening on 35963 (0x8C7B) means pcscd is up and has loaded the driver.
vpcd_listening() {
  grep -qiE '^ *[0-9]+: [0-9A-F]+:8C7B [0-9A-F]+:0000 0A' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
ready() { [ -S "$SOCKET" ] && vpcd_listening; }

mkdir -p "$STATE_DIR"
if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
  echo "pcsc-up: pcscd already started by this script (pid $(cat "$PID_FILE"))"
elif command -v pgrep >/dev/null 2>&1 && pgrep -x pcscd >/dev/null 2>&1; then
  echo "pcsc-up: a pcscd not started by this script is running; leaving it alone"
else
  rm -f "$PID_FILE"
  setsid "$PCSCD" --foreground >"$LOG_FILE" 2>&1 < /dev/null &
  echo $! >"$PID_FILE"
  echo "pcsc-up: started pcscd (pid $(cat "$PID_FILE")), log in $LOG_FILE"
fi

deadline=$((SECONDS + WAIT_SECS))
until ready; do
  if [ -f "$PID_FILE" ] && ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    echo "pcsc-up: pcscd exited during start-up; its log:" >&2
    cat "$LOG_FILE" >&2 || true
    rm -f "$PID_FILE"
    exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "pcsc-up: pcscd not ready after ${WAIT_SECS}s (socket $SOCKET, vpcd port 35963)" >&2
    cat "$LOG_FILE" >&2 || true
    exit 1
  fi
  sleep 0.1
done
echo "pcsc-up: pcscd ready (socket $SOCKET, vpcd on 127.0.0.1:35963)"
