#!/usr/bin/env bash
# Ablation of the CRR loss and k (docs/design.md §2.3): quantizes a model with `wkvq quantize --method
# wkvquant` once per (loss, k), then prints one line per model with its decode-mode PPL and KLD.
#   bash scripts/crr_sweep.sh MODEL CALIB TEXT [--max-windows N] [--ks "0 1 2 5"]
#        [--losses "mae mse"] [--out DIR] [-- extra quantize options]
# Needs a built tree (bash scripts/build.sh; $WKVQ_BIN overrides build/bin/wkvq). Calibrated models go to DIR (default
# /tmp/wkvq-crr-sweep); an existing one with the same name is reused, so a sweep can be resumed.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { sed -n 2,7p "$0" >&2; exit 2; }
model=$1 calib=$2 text=$3
shift 3
windows=40 ks="0 1 2 5" losses="mae mse" out=/tmp/wkvq-crr-sweep extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --max-windows) windows=$2; shift 2 ;;
    --ks) ks=$2; shift 2 ;;
    --losses) losses=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "crr_sweep.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
wkvq=${WKVQ_BIN:-build/bin/wkvq}
mkdir -p "$out"
printf "%-6s %-3s %-22s %-20s %s\n" loss k "decode PPL" "decode KLD" "calibration"
for loss in $losses; do
  for k in $ks; do
    dir=$out/${loss}_k$k
    if [ ! -f "$dir/model.safetensors" ]; then
      start=$(date +%s)
      "$wkvq" quantize --method wkvquant --model "$model" --calib "$calib" --out "$dir" \
        --loss "$loss" --k "$k" "${extra[@]}" >"$dir.log" 2>&1
      echo $(($(date +%s) - start)) >"$dir.seconds"
    fi
    "$wkvq" ppl --model "$dir" --kld --kld-model "$model" --text "$text" \
      --max-windows "$windows" --json 2>/dev/null |
      python3 -c 'import json, sys
d = json.load(sys.stdin)
print("%-6s %-3s %-22s %-20s %s s" % (sys.argv[1], sys.argv[2],
      "%.4f +/- %.4f" % (d["ppl"], d["ppl_stderr"]),
      "%.5f +/- %.5f" % (d["kld"], d["kld_stderr"]), sys.argv[3]))' "$loss" "$k" "$(cat "$dir.seconds")"
  done
done
