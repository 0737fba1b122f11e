#!/usr/bin/env bash
# Long fuzzing: cycles every target (or those named) for MINUTES each
# (default 60), one at a time, under nice -n 19, building them first (release
# with debug assertions, no sanitizer).
#   fuzz/run-long.sh [MINUTES] [TARGET...]
# Each run's log goes to $FUZZ_LOG_DIR (default /work/fuzz-logs)/<target>-<time>.log;
# its final libFuzzer stats line (#execs, cov, ft, corp) and any crash file go to
# $FUZZ_LOG_DIR/summary.txt. New inputs go to $FUZZ_LOG_DIR/corpus/<target>
# (the checked-in fuzz/corpus/<target> is read, never written): to keep them,
#   cargo fuzz cmin -s none <target> fuzz/corpus/<target> $FUZZ_LOG_DIR/corpus/<target>
# Crash inputs land in fuzz/artifacts/<target>/. Each summary line gives the
# run's CPU seconds: run it as `chrt --idle 0 fuzz/run-long.sh …` to fuzz only
# on otherwise idle cores.
set -uo pipefail
cd "$(dirname "$0")"
mins="${1:-60}"
shift || true
logs="${FUZZ_LOG_DIR:-/work/fuzz-logs}"
mkdir -p "$logs"
if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo fuzz list); fi
nice -n 19 cargo +stable fuzz build -s none || { echo "$(date -Is) build failed" >>"$logs/summary.txt"; exit 1; }
for t in "${targets[@]}"; do
  mkdir -p "$logs/corpus/$t" "corpus/$t"
  log="$logs/$t-$(date +%Y%m%dT%H%M%S).log"
  dict=()
  [ -f "dicts/$t.dict" ] && dict=("-dict=dicts/$t.dict")
  # Structured (arbitrary) inputs: long ones from the start.
  case "$t" in session | hub_session | node_peer | zengin_write | sip2_bridge) dict+=(-len_control=0 -max_len=4096) ;; esac
  # CPU seconds (user + system) of the run, since a run at idle priority
  # on a busy machine gets less CPU than its wall time.
  TIMEFORMAT='%U %S'
  cpu_times="$( { time nice -n 19 cargo +stable fuzz run -s none "$t" "$logs/corpus/$t" "corpus/$t" -- \
    -max_total_time=$((mins * 60)) -timeout=20 -rss_limit_mb=3072 -print_final_stats=1 "${dict[@]}" \
    >"$log" 2>&1; } 2>&1 )"
  rc=$?
  cpu="$(awk '{ printf "%d", $1 + $2 }' <<<"$cpu_times")"
  stats="$(grep -E '^#[0-9]+' "$log" | tail -n 1 | tr -s '\t ' ' ')"
  crash="$(grep -oE 'Test unit written to [^ ]+' "$log" | sed 's/Test unit written to //' | tr '\n' ' ')"
  echo "$(date -Is) $t ${mins}min cpu=${cpu}s rc=$rc ${stats:-no stats} ${crash:+crash: $crash}(log $log)" >>"$logs/summary.txt"
done
