#!/usr/bin/env bash
# Configures and builds wkvq (Release) into build/: build/bin/wkvq and the test binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j"$(nproc)"
