#!/usr/bin/env bash
# The main job: installs what is needed, builds, and runs wkvq on a model: greedy generation,
# then perplexity on a text. Default model: stories260K from ../shared (or $WKVQ_SHARED_DIR).
#   bash scripts/run.sh [--model PATH] [--text FILE] [--ctx T]
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${WKVQ_SHARED_DIR:-../shared}
model="" text="" ctx=512
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --text) text=$2; shift 2 ;;
    --ctx) ctx=$2; shift 2 ;;
    *) echo "run.sh: unknown option $1 (expected --model PATH, --text FILE, --ctx T)" >&2; exit 2 ;;
  esac
done
if [ -z "$model" ]; then
  model=$shared/models/stories260K/stories260K.bin
  [ -f "$model" ] || { echo "run.sh: no default model at $model; pass --model PATH" >&2; exit 2; }
fi
[ -n "$text" ] || text=$shared/data/tinystories/test.txt
bash scripts/install_deps.sh
bash scripts/build.sh
echo "== generate (greedy, 200 steps)"
build/bin/wkvq generate --model "$model" --temperature 0 --steps 200
if [ -f "$text" ]; then
  echo "== perplexity on $text (ctx $ctx)"
  build/bin/wkvq ppl --model "$model" --text "$text" --ctx "$ctx"
else
  echo "run.sh: no text at $text; pass --text FILE for perplexity"
fi
