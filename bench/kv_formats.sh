#!/bin/bash
# KV cache formats the runtime runs, at one context (README "KV cache formats the runtime runs"):
# decode-mode PPL and KLD from the FP model of stories260K and wkvq-ref-6m on tinystories and
# WikiText-2, W4 g128 RTN weights, statistics smoothing from the calibration text; one row per
# configuration: label | bits per element (window amortised) | PPL +- stderr | KLD +- stderr.
# Usage: bench/kv_formats.sh [WKVQ_BINARY] [SHARED_DIR]   (run from the checkout)
set -euo pipefail
W=${1:-build/bin/wkvq}
S=${2:-../shared}
row() {  # model text calib windows label args...
  local model=$1 text=$2 calib=$3 win=$4 label=$5
  shift 5
  $W ppl --model "$model" --text "$text" --calib "$calib" --wbits 4 --ctx 512 --max-windows "$win" \
    --kld --json -q "$@" | tail -1 | python3 -c '
import json, sys
j = json.loads(sys.stdin.read())
print("%s | %.3f | %.4f +- %.4f | %.6f +- %.6f" % (sys.argv[1], j.get("kv_bits_per_element", 32),
      j["ppl"], j["ppl_stderr"], j["kld"], j["kld_stderr"]))' "$label"
}
for combo in \
  "stories260K tinystories:$S/models/stories260K/stories260K.bin:$S/data/tinystories/test.txt:$S/data/tinystories/calib.txt:8" \
  "stories260K WikiText-2:$S/models/stories260K/stories260K.bin:$S/data/wikitext-2-raw/wiki.test.raw:$S/data/tinystories/calib.txt:4" \
  "wkvq-ref-6m tinystories:$S/models/wkvq-ref-6m:$S/data/tinystories/test.txt:$S/models/wkvq-ref-6m/calib.txt:4" \
  "wkvq-ref-6m WikiText-2:$S/models/wkvq-ref-6m:$S/data/wikitext-2-raw/wiki.test.raw:$S/models/wkvq-ref-6m/calib.txt:4"; do
  IFS=: read -r name model text calib win <<< "$combo"
  echo "== $name"
  row "$model" "$text" "$calib" "$win" "W4, f32 KV" --kvbits 32
  row "$model" "$text" "$calib" "$win" "KV4 g=head_dim (default)" --kvbits 4 --kv-smooth stats
  row "$model" "$text" "$calib" "$win" "KV4 g32" --kvbits 4 --kvgroup 32 --kv-smooth stats
  row "$model" "$text" "$calib" "$win" "KV3 g32 w16" --kvbits 3 --kvgroup 32 --kv-window 16 --kv-smooth stats
  row "$model" "$text" "$calib" "$win" "K4 V2 g32" --kvbits 4 --kv-vbits 2 --kvgroup 32 --kv-smooth stats
  row "$model" "$text" "$calib" "$win" "K4 V2 g32 w16" --kvbits 4 --kv-vbits 2 --kvgroup 32 --kv-window 16 --kv-smooth stats
  row "$model" "$text" "$calib" "$win" "K4 V3 g32 w16 rel8" --kvbits 4 --kv-vbits 3 --kvgroup 32 --kv-window 16 --kv-smooth stats --kv-meta rel8
  row "$model" "$text" "$calib" "$win" "K4 V2 g16 w16 rel8" --kvbits 4 --kv-vbits 2 --kvgroup 16 --kv-window 16 --kv-smooth stats --kv-meta rel8
  if [[ $name == wkvq-ref-6m* ]]; then  # 128 KV channels: groups of 64 span two heads of 32
    row "$model" "$text" "$calib" "$win" "K4 V3 g64 w16" --kvbits 4 --kv-vbits 3 --kvgroup 64 --kv-window 16 --kv-smooth stats
    row "$model" "$text" "$calib" "$win" "K4 g64 w8 rel8" --kvbits 4 --kvgroup 64 --kv-window 8 --kv-smooth stats --kv-meta rel8
    row "$model" "$text" "$calib" "$win" "K4 g128 w12 rel8" --kvbits 4 --kvgroup 128 --kv-window 12 --kv-smooth stats --kv-meta rel8
  fi
  row "$model" "$text" "$calib" "$win" "--kv-auto 4.5 (quantize's default with --calib)" --kv-auto 4.5
  row "$model" "$text" "$calib" "$win" "lab q4_0" --kv-method q4_0
done
