#!/usr/bin/env bash
# Installs the Debian 12 packages wkvq needs to build and test (skips what is already there).
set -euo pipefail
packages=(build-essential cmake g++ pkg-config libgtest-dev libgmock-dev libbenchmark-dev
          libomp-dev nlohmann-json3-dev libcli11-dev libsentencepiece-dev libxxhash-dev
          python3 python3-numpy python3-torch libtorch-dev clang-format)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install_deps: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
"${sudo_cmd[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
