#!/usr/bin/env bash
# Builds the libFuzzer targets (CMakePresets.json `fuzz`, build-fuzz/, clang + ASan + UBSan) and
# runs the label fuzz: the seed corpus made from ../shared and from files the Release build's
# wkvq writes (so run scripts/build.sh first), then each target for WKVQ_FUZZ_SECONDS (default
# 60) seconds. Extra arguments go to ctest. Part of .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset fuzz -DWKVQ_FUZZ_SECONDS="${WKVQ_FUZZ_SECONDS:-60}"
start=$SECONDS
cmake --build --preset fuzz -j"$(nproc)"
echo "test_fuzz: build took $((SECONDS - start)) s"
ctest --test-dir build-fuzz --output-on-failure -j"$(nproc)" -L '^fuzz$' "$@"
