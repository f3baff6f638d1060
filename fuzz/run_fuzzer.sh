#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time (the CTest tests fuzz.<name>, fuzz/CMakeLists.txt):
#   run_fuzzer.sh BINARY SEED_DIR WORK_DIR CRASH_DIR SECONDS RSS_MB
# Starts from the seeds (made by make_seeds.py) in a fresh WORK_DIR (inputs found this run), and
# fails when libFuzzer reports a finding, saved as CRASH_DIR/<name>-crash-<sha1> (or -leak-,
# -timeout-, -oom-). Reproduce one with `BINARY FILE`. Ends with one line: executions, exec/s,
# coverage (edges) and features.
set -euo pipefail
[ $# -eq 6 ] || { echo "usage: $0 BINARY SEED_DIR WORK_DIR CRASH_DIR SECONDS RSS_MB" >&2; exit 2; }
bin=$1 seeds=$2 work=$3 crashes=$4 seconds=$5 rss=$6
name=$(basename "$bin")
if [ ! -d "$seeds" ] || [ -z "$(ls -A "$seeds")" ]; then
  echo "$name: no seeds in $seeds; the test fuzz.seeds (make_seeds.py) makes them" >&2
  exit 1
fi
rm -rf "$work"
mkdir -p "$work" "$crashes"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
"$bin" -max_total_time="$seconds" -rss_limit_mb="$rss" -malloc_limit_mb="$rss" -timeout=30 \
  -print_final_stats=1 -artifact_prefix="$crashes/${name#fuzz_}-" "$work" "$seeds" \
  >"$log" 2>&1 || rc=$?
# libFuzzer's progress lines are many; keep the start, the findings and the end.
# On a finding, the whole log, then its cause and first stack frames again at the end: CI reports
# keep only the head and the tail of a failing test's output.
if [ $rc -ne 0 ]; then
  cat "$log"
  echo "--- $name: the finding, repeated from the log above ---"
  grep -E 'terminate called|what\(\):|ERROR:|runtime error|SUMMARY|wkvq fuzz:|invariant' "$log" | head -20 || true
  grep -E '^ +#[0-9]+ 0x' "$log" | head -28 || true
  echo "$name: FAILED (exit $rc); the input is saved under $crashes (see 'Test unit written to')"
  exit $rc
fi
grep -E '^INFO: (Seed|seed corpus|-max_len)|^stat::|DONE' "$log" || true
done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1)
execs=$(sed -n 's/^stat::number_of_executed_units: //p' "$log")
echo "$name: $execs runs in ${seconds} s, $(grep -oE 'exec/s: [0-9]+' <<<"$done_line"), $(grep -oE 'cov: [0-9]+' <<<"$done_line") edges, $(grep -oE 'ft: [0-9]+' <<<"$done_line") features, $(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' <<<"$done_line")"
