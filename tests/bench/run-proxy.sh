#!/usr/bin/env bash
# Proxy benchmark: the `sluice` program as a reverse proxy against nginx and
# h2o (Debian packages), each with one worker, in front of the same fast
# HTTP/1.1 upstream (a second sluice answering from `ret` routes). h2load over
# h2c and TLS, 1 KiB and 64 KiB responses: req/s and the proxy's CPU time per
# request, interleaved rounds, medians, ratios. See tests/bench/README.md.
#
#   tests/bench/run-proxy.sh [options]     # --help lists them; --quick, --rounds N
#
# Skips (exit 0) when nginx, h2o or h2load is not installed. Builds sluice
# (Release) in build-bench-proxy/ (or $SLUICE_BENCH_BUILD) and runs
# tests/bench/proxy/bench.py, which starts and stops every process itself.
# Exit 1 when a proxy did not start or a run had errors. About 2 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."

py=/usr/bin/python3 # Debian's own interpreter (the first python3 on PATH may differ)
build=${SLUICE_BENCH_BUILD:-build-bench-proxy}

case "${1:-}" in
  -h|--help)
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
    echo
    if [ -x $py ]; then
      exec $py tests/bench/proxy/bench.py --help
    fi
    exit 0 ;;
esac

export PATH=$PATH:/usr/sbin
missing=()
for tool in nginx h2o h2load; do
  # command -v also names a file that is not executable: check that too.
  p=$(command -v $tool) && [ -x "$p" ] || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "proxy benchmark skipped: not installed: ${missing[*]}" \
    "(Debian: apt-get install nginx h2o nghttp2-client)"
  exit 0
fi
for tool in $py openssl taskset cmake; do
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
blog=$build/bench-proxy-build.log
if ! build_sluice >"$blog" 2>&1 && ! { sleep 5; build_sluice >"$blog" 2>&1; }; then
  tail -40 "$blog" >&2
  echo "sluice build failed (full log: $blog)" >&2
  exit 1
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec $py tests/bench/proxy/bench.py --sluice "$build/sluice" "$@"
