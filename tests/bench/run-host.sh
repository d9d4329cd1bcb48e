#!/usr/bin/env bash
# Host benchmark: the `sluice` program against nghttpd, h2o and nginx (Debian
# packages), each with one worker, serving the same static 1 KiB, 100 KiB and
# 10 MiB files over TLS on 127.0.0.1. Prints req/s and the server's CPU time
# per request (h2load, interleaved rounds, medians, ratios), then RSS per idle
# HTTP/2 connection over TLS and h2c. See tests/bench/README.md.
#
#   tests/bench/run-host.sh [options]      # --help lists them
#
# As root on Debian 12 it installs what is missing (the peers, h2load, the
# build dependencies) without leaving any daemon running, builds sluice
# (Release) in build-bench-host/ and runs tests/bench/host/bench.py, which
# starts and stops every server itself. The default run takes 3-4 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."

py=/usr/bin/python3 # Debian's own interpreter (the first python3 on PATH may differ)
build=${SLUICE_BENCH_BUILD:-build-bench-host}

case "${1:-}" in
  -h|--help)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    echo
    if [ -x $py ]; then
      exec $py tests/bench/host/bench.py --help
    fi
    exit 0 ;;
esac

# ---- packages -----------------------------------------------------------------
pkgs=(nghttp2-server nghttp2-client h2o nginx openssl python3 util-linux procps iproute2
      cmake make gcc pkg-config libuv1-dev liblua5.4-dev libssl-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing packages (run as root to install them): ${missing[*]}" >&2
    exit 1
  fi
  echo "installing: ${missing[*]}" >&2
  # The nginx and h2o packages start their daemons on installation. Keep them
  # from starting (policy-rc.d, if none is set up), and stop any that did.
  pids_before=" "
  for f in /run/nginx.pid /run/h2o.pid; do
    [ -s $f ] && pids_before+="$(cat $f) "
  done
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e $policy ]; then
    printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy && own_policy=1
  fi
  trap 'if [ $own_policy = 1 ]; then rm -f $policy; fi' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
  if [ $own_policy = 1 ]; then rm -f $policy; own_policy=0; fi
  for svc in nginx h2o; do
    pidfile=/run/$svc.pid
    [ -s $pidfile ] || continue
    pid=$(cat $pidfile)
    case "$pids_before" in *" $pid "*) continue ;; esac # running before: not ours
    kill -0 "$pid" 2>/dev/null || continue
    echo "stopping $svc ($pid), started by its package" >&2
    if command -v service >/dev/null 2>&1; then service $svc stop >/dev/null 2>&1 || true; fi
    kill "$pid" 2>/dev/null || true
  done
fi
for tool in nghttpd h2o nginx h2load openssl taskset; do
  PATH=$PATH:/usr/sbin command -v $tool >/dev/null || { echo "$tool not found" >&2; exit 1; }
done
export PATH=$PATH:/usr/sbin

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
blog=$build/bench-host-build.log
if ! build_sluice >"$blog" 2>&1 && ! { sleep 5; build_sluice >"$blog" 2>&1; }; then
  tail -40 "$blog" >&2
  echo "sluice build failed (full log: $blog)" >&2
  exit 1
fi

# Descriptors for the idle-connection test (bench.py raises the soft limit to
# this hard limit; servers inherit it).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

exec $py tests/bench/host/bench.py --sluice "$build/sluice" "$@"
