#!/usr/bin/env bash
# The test command: installs build dependencies (Debian), configures, builds
# and runs every test. `--sanitize` does the same in an ASan+UBSan build.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=plain
case "${1:-}" in
  --sanitize) mode=sanitize ;;
  "") ;;
  *) echo "usage: $0 [--sanitize]" >&2; exit 2 ;;
esac

pkgs=(cmake pkg-config gcc clang libclang-rt-14-dev make libnghttp2-dev
      nghttp2-client curl python3-h2 libuv1-dev liblua5.4-dev libssl-dev
      openssl iproute2 procps python3-grpcio python3-grpc-tools)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q "${missing[@]}"
  else
    echo "missing packages (run as root to install): ${missing[*]}" >&2; exit 1
  fi
fi

jobs=$(nproc 2>/dev/null || echo 2)
if [ $mode = sanitize ]; then
  dir=build-asan
  cmake -S . -B $dir -DSLUICE_WERROR=ON -DSLUICE_SANITIZE=ON -DSLUICE_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=Debug >/dev/null
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
else
  dir=build
  cmake -S . -B $dir -DSLUICE_WERROR=ON >/dev/null
fi
cmake --build $dir -j"$jobs"
ctest --test-dir $dir --output-on-failure -j"$jobs"
