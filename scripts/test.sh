#!/usr/bin/env bash
# Installs what is needed, builds, and runs the whole test suite (CTest: unit, kernel, golden,
# python). Extra arguments go to ctest, e.g. `bash scripts/test.sh -L unit` or `-LE slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
