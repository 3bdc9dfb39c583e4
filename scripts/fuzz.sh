#!/usr/bin/env bash
# Runs every cargo-fuzz target for FUZZ_SECONDS seconds each (default 120),
# on stable Rust (--sanitizer none). Usage: scripts/fuzz.sh [TARGET...]
# A target that finds a failing input stops the script with its status; the
# input is in fuzz/artifacts/TARGET/. Prints executions and time per target.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${FUZZ_SECONDS:-120}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(device_file settings module_args google_import code_normalisation)
fi
cargo fuzz build --sanitizer none
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  log=$(mktemp)
  start=$(date +%s.%N)
  # corpus/$t grows (not committed); seeds/$t holds hand-made inputs with
  # key-shaped strings, read only; dict/$t.dict gives the fuzzer tokens.
  dict=()
  [ -f "dict/$t.dict" ] && dict=(-dict="dict/$t.dict")
  if ! cargo fuzz run --sanitizer none "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=1024 -print_final_stats=1 "${dict[@]}" >"$log" 2>&1; then
    tail -40 "$log"
    echo "fuzz: $t FAILED (input in fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  end=$(date +%s.%N)
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
  peak=$(grep -oE 'stat::peak_rss_mb: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
  printf 'fuzz: %-20s %12s executions in %6.1f s, peak RSS %s MB, 0 crashes\n' \
    "$t" "$runs" "$(echo "$end - $start" | bc)" "$peak"
  rm -f "$log"
done
