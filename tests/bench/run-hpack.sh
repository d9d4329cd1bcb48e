#!/usr/bin/env bash
# Builds the HPACK benchmark in build-bench (Release, no sanitizers) and runs
# it, pinned to one CPU when taskset is there. Arguments go to bench_hpack
# ([rounds] [ms per measurement]).
set -euo pipefail
cd "$(dirname "$0")/../.."

cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DSLUICE_BENCH=ON \
  -DSLUICE_SANITIZE=OFF -DSLUICE_FUZZ=OFF >/dev/null
cmake --build build-bench --target bench_hpack -j2 >/dev/null

bin=build-bench/tests/bench/bench_hpack
if command -v taskset >/dev/null 2>&1 && taskset -c 1 true 2>/dev/null; then
  exec taskset -c 1 "$bin" "$@"
fi
exec "$bin" "$@"
