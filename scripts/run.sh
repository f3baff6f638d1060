#!/usr/bin/env bash
# The main job: installs what is needed, builds, and runs wkvq on a model: greedy generation,
# then perplexity on a text, in full precision and quantized to W4KV4 (statistics smoothing from
# a calibration text). Default model: stories260K from ../shared (or $WKVQ_SHARED_DIR).
#   bash scripts/run.sh [--model PATH] [--text FILE] [--calib FILE] [--ctx T]
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${WKVQ_SHARED_DIR:-../shared}
model="" text="" calib="" ctx=512
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --text) text=$2; shift 2 ;;
    --calib) calib=$2; shift 2 ;;
    --ctx) ctx=$2; shift 2 ;;
    *) echo "run.sh: unknown option $1 (expected --model PATH, --text FILE, --calib FILE, --ctx T)" >&2; exit 2 ;;
  esac
done
if [ -z "$model" ]; then
  model=$shared/models/stories260K/stories260K.bin
  [ -f "$model" ] || { echo "run.sh: no default model at $model; pass --model PATH" >&2; exit 2; }
fi
[ -n "$text" ] || text=$shared/data/tinystories/test.txt
[ -n "$calib" ] || calib=$shared/data/tinystories/calib.txt
bash scripts/install_deps.sh
bash scripts/build.sh
echo "== generate (greedy, 200 steps)"
build/bin/wkvq generate --model "$model" --temperature 0 --steps 200
if [ -f "$text" ]; then
  echo "== perplexity on $text (ctx $ctx)"
  build/bin/wkvq ppl --model "$model" --text "$text" --ctx "$ctx"
  if [ -f "$calib" ]; then
    echo "== W4KV4 (RTN weights g128, KV4 with POQ and statistics smoothing from $calib):"
    echo "   perplexity in decode mode, KL divergence from the full-precision model"
    build/bin/wkvq ppl --model "$model" --text "$text" --ctx "$ctx" --wbits 4 --kvbits 4 \
      --kv-smooth stats --calib "$calib" --kld
    echo "== W4 + the KV format quantize ships (--kv-auto 4.5: the best within 4.5 bits per"
    echo "   element measured on $calib), decode mode, KL divergence from the full-precision model"
    build/bin/wkvq ppl --model "$model" --text "$text" --ctx "$ctx" --wbits 4 --kv-auto 4.5 \
      --calib "$calib" --kld
  else
    echo "run.sh: no calibration text at $calib; pass --calib FILE for the W4KV4 perplexity"
  fi
else
  echo "run.sh: no text at $text; pass --text FILE for perplexity"
fi
