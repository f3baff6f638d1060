#!/usr/bin/env bash
# Installs the Debian 12 packages wkvq needs to build and test (skips what is already there).
set -euo pipefail
packages=(build-essential cmake g++ pkg-config libgtest-dev libgmock-dev libbenchmark-dev
          nlohmann-json3-dev libcli11-dev libsentencepiece-dev libpcre2-dev libicu-dev libxxhash-dev libcpp-httplib-dev
          python3 python3-numpy python3-torch python3-sentencepiece libtorch-dev clang-format clang libfuzzer-14-dev)
# npm (with Node.js) for the tokenizer references, unless some Node.js is there already (a
# nodesource nodejs carries its own npm and conflicts with Debian's npm package).
command -v npm >/dev/null || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#packages[@]} packages present"
else
  echo "install_deps: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The npm reference packages of the tests (pinned, into build/npm/).
bash "$(dirname "$0")/install_npm.sh"
