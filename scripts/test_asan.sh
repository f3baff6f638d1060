#!/usr/bin/env bash
# Builds the ASan + UBSan preset (CMakePresets.json `asan`, build-asan/, without libtorch) and
# runs the unit, kernel and golden labels under it, at -O1 -g1 (the preset: half the compile time
# of -O2 -g, line numbers kept for the reports). Extra arguments go to ctest. Part of .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset asan -DWKVQ_CALIBRATE=OFF
start=$SECONDS
# Only what the three labels run (not the CLI): the ASan build is the longest stage of CI.
cmake --build --preset asan -j"$(nproc)" --target wkvq_unit_tests wkvq_kernel_tests wkvq_golden_tests
echo "test_asan: build took $((SECONDS - start)) s"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir build-asan --output-on-failure -j"$(nproc)" -L '^(unit|kernel|golden)$' "$@"
