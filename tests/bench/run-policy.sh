#!/usr/bin/env bash
# Policy benchmark: the server CPU time a Lua policy adds per request. Three
# `sluice` processes (one worker each: no policy, examples/policies/empty.lua,
# examples/policies/typical.lua) serve the same 1 KiB responses over h2c and
# TLS; h2load runs against each in turn over interleaved rounds. Prints req/s,
# CPU per request and the added CPU per request of each policy, and the
# verdict against issue 8's goal (typical: under 1 us). See tests/bench/README.md.
#
#   tests/bench/run-policy.sh [options]    # --help lists them; --quick, --rounds N
#
# Skips (exit 0) when h2load is not installed. Builds sluice (Release) in
# build-bench-policy/ (or $SLUICE_BENCH_BUILD) and runs tests/bench/policy/bench.py,
# which starts and stops every process itself. Exit 1 when a run had errors.
# 4-5 minutes (h2c and TLS, two targets, 5 rounds); --callgrind N counts
# instructions per request under valgrind instead.
set -euo pipefail
me=$(cd "$(dirname "$0")" && pwd)/$(basename "$0") # for --help, after the cd
cd "$(dirname "$0")/../.."

py=/usr/bin/python3 # Debian's own interpreter (the first python3 on PATH may differ)
build=${SLUICE_BENCH_BUILD:-build-bench-policy}

case "${1:-}" in
  -h|--help)
    sed -n '2,15p' "$me" | sed 's/^# \{0,1\}//'
    echo
    if [ -x $py ]; then
      exec $py tests/bench/policy/bench.py --help
    fi
    exit 0 ;;
esac

if ! p=$(command -v h2load) || [ ! -x "$p" ]; then
  echo "policy benchmark skipped: h2load is not installed (Debian: apt-get install nghttp2-client)"
  exit 0
fi
for tool in $py curl openssl taskset cmake; do
  command -v $tool >/dev/null || { echo "$tool not found" >&2; exit 1; }
done

# ---- sluice ---------------------------------------------------------------------
# Release, no tests: only the program. Other people may be editing the tree;
# a failed build is retried once before giving up.
build_sluice() {
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF -DSLUICE_BENCH=OFF \
    -DSLUICE_SANITIZE=OFF -DSLUICE_FUZZ=OFF >/dev/null &&
    cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" --target sluice_bin
}
echo "building sluice (Release) in $build/" >&2
mkdir -p "$build"
blog=$build/bench-policy-build.log
if ! build_sluice >"$blog" 2>&1 && ! { sleep 5; build_sluice >"$blog" 2>&1; }; then
  tail -40 "$blog" >&2
  echo "sluice build failed (full log: $blog)" >&2
  exit 1
fi

exec $py tests/bench/policy/bench.py --sluice "$build/sluice" "$@"
