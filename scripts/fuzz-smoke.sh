#!/usr/bin/env bash
# Fuzz smoke, as scripts/test.sh runs it: builds every fuzz target once
# (no sanitizer: this stable toolchain; debug assertions and overflow checks
# on), then runs each for FUZZ_SECS seconds (default 20) from its checked-in
# corpus, FUZZ_JOBS targets at a time (default 2, one per core).
# FUZZ_BUILD picks the build: "smoke" (default: the dev profile of
# fuzz/Cargo.toml, opt-level 1, quick to build from cold) or "release" (what
# fuzz/run-long.sh runs: slower to build, faster to fuzz).
# New inputs go to a temporary directory, so the checked-in corpus is not
# touched; a crash fails the run and leaves its input in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${FUZZ_SECS:-20}"
jobs="${FUZZ_JOBS:-2}"
case "${FUZZ_BUILD:-smoke}" in
  smoke) build=(-s none --dev) ;;
  release) build=(-s none) ;;
  *) echo "FUZZ_BUILD is smoke or release" >&2; exit 2 ;;
esac
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi
start=$SECONDS
cargo +stable fuzz build "${build[@]}"
echo "fuzz build: $((SECONDS - start)) s"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

run_one() {
  local t="$1" dict=()
  mkdir -p "$scratch/$t" "corpus/$t"
  [ -f "dicts/$t.dict" ] && dict=("-dict=dicts/$t.dict")
  # Structured (arbitrary) inputs: long ones from the start.
  case "$t" in session | hub_session | node_peer | zengin_write | sip2_bridge) dict+=(-len_control=0 -max_len=4096) ;; esac
  if cargo +stable fuzz run "${build[@]}" "$t" "$scratch/$t" "corpus/$t" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
      >"$scratch/$t.log" 2>&1; then
    printf '%-14s %s\n' "$t" "$(grep -E '^#[0-9]+' "$scratch/$t.log" | tail -n 1)"
  else
    printf '%-14s FAILED\n' "$t"
    tail -n 60 "$scratch/$t.log"
    return 1
  fi
}

start=$SECONDS
failed=0
running=0
for t in $(cargo fuzz list); do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
echo "fuzz runs: $((SECONDS - start)) s"
exit "$failed"
