#!/usr/bin/env bash
# Fuzz smoke, as scripts/test.sh runs it: builds every fuzz target once
# (release with debug assertions, no sanitizer: this stable toolchain), then
# runs each for FUZZ_SECS seconds (default 20) from its checked-in corpus.
# New inputs go to a temporary directory, so the checked-in corpus is not
# touched; a crash fails the run and leaves its input in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${FUZZ_SECS:-20}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz
fi
cargo +stable fuzz build -s none
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in $(cargo fuzz list); do
  mkdir -p "$scratch/$t" "corpus/$t"
  printf '%-14s ' "$t"
  dict=()
  [ -f "dicts/$t.dict" ] && dict=("-dict=dicts/$t.dict")
  # Structured (arbitrary) inputs: long ones from the start.
  case "$t" in session | hub_session | node_peer | zengin_write) dict+=(-len_control=0 -max_len=4096) ;; esac
  if ! cargo +stable fuzz run -s none "$t" "$scratch/$t" "corpus/$t" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
      >"$scratch/$t.log" 2>&1; then
    echo "FAILED"
    tail -n 60 "$scratch/$t.log"
    exit 1
  fi
  grep -E '^#[0-9]+' "$scratch/$t.log" | tail -n 1
done
