#!/usr/bin/env bash
# The whole test suite, as README.md gives it and CI runs it (.ci/run):
# formatting, lints, unit / property / end-to-end tests (with a real pcscd, the
# vpcd virtual reader and our virtual JPKI card), the hub's tests again on a
# throwaway PostgreSQL cluster, then simulation seeds and a fuzz smoke (each
# cargo-fuzz target for 20 s).
# Installs what it needs with apt-get and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }
# One cold build, never rebuilt incrementally: incremental caches only cost
# disk here (they roughly double target/debug).
export CARGO_INCREMENTAL=0
disk() { printf 'disk: %s free, target %s\n' "$(df -h --output=avail . | tail -n 1 | tr -d ' ')" "$(du -sh target 2>/dev/null | cut -f1)"; }

step "system packages"
need=()
for p in pcscd libpcsclite-dev vsmartcard-vpcd pkg-config chromium fonts-noto-cjk iproute2 systemd; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
else
  echo "all present"
fi
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
done

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "pcscd with the vpcd virtual reader"
bash scripts/pcsc-up.sh
# Stops what this script started, on every exit path.
trap 'bash scripts/pg-down.sh; bash scripts/pcsc-down.sh' EXIT
export MYKEY_PCSC=1

step "browser test dependencies (playwright-core drives Debian's chromium)"
npm ci --prefix tests/dashboard --no-audit --no-fund

step "SIP2 peers from PyPI for the bridge's end-to-end test (pysip2, Sip2)"
bash scripts/sip2-py.sh

step "promtool for deploy/prometheus (taken out of Debian's package, not installed as a service)"
MYKEY_PROMTOOL=$(bash scripts/promtool.sh)
export MYKEY_PROMTOOL
echo "$MYKEY_PROMTOOL"

step "cargo test (the process tests run the real binaries: build them first)"
cargo build --locked -p mykey-node -p mykey-hub --bins
cargo test --workspace --locked
disk

step "the hub suite again on PostgreSQL 15 (a throwaway cluster on 127.0.0.1)"
MYKEY_PG_URL=$(bash scripts/pg-up.sh)
echo "$MYKEY_PG_URL"
MYKEY_PG_URL="$MYKEY_PG_URL" cargo test --locked -p mykey-hub
# Two hub processes on that database, one killed mid-push; two sharing the
# towns' timed jobs by lease, one killed; the demo's hub copied in (the
# binaries were built by the workspace run above).
MYKEY_PG_URL="$MYKEY_PG_URL" cargo test --locked -p mykey-tests --test pg_failover --test pg_ticks --test pg_copy_demo
# One synchronous standby: a commit waits for it (README, "Several hub processes and a standby").
bash scripts/pg-standby.sh
bash scripts/pg-down.sh
disk
# Nothing below runs a debug build: give its space to the release build and
# the fuzz build, so the peak is the larger of the two, not their sum.
rm -rf target/debug
disk

step "simulation seeds"
cargo run --release --locked -p mykey-simulations -- all --seed 1 --seeds 40   # 200 runs: 40 seeds × 5 scenarios
disk

step "fuzz smoke (each target 20 s)"
bash scripts/fuzz-smoke.sh
