#!/usr/bin/env bash
# The whole test suite, as README.md gives it and CI runs it (.ci/run):
# formatting, lints, unit / property / end-to-end tests (with a real pcscd, the
# vpcd virtual reader and our virtual JPKI card), then simulation seeds.
# Installs what it needs with apt-get and stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "system packages"
need=()
for p in pcscd libpcsclite-dev vsmartcard-vpcd pkg-config chromium fonts-noto-cjk iproute2; do
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
trap 'bash scripts/pcsc-down.sh' EXIT
export MYKEY_PCSC=1

step "browser test dependencies (playwright-core drives Debian's chromium)"
npm ci --prefix tests/dashboard --no-audit --no-fund

step "SIP2 peers from PyPI for the bridge's end-to-end test (pysip2, Sip2)"
bash scripts/sip2-py.sh

step "cargo test (the process tests run the real binaries: build them first)"
cargo build --locked -p mykey-node -p mykey-hub --bins
cargo test --workspace --locked

step "simulation seeds"
cargo run --release --locked -p mykey-simulations -- all --seed 1 --seeds 40   # 200 runs: 40 seeds × 5 scenarios
