#!/usr/bin/env bash
# The run command: installs what sluice needs (Debian 12, as root), builds it,
# makes a self-signed certificate and starts `sluice` on examples/sluice.lua:
# TLS (h2 and HTTP/1.1) on 8443, h2c and HTTP/1.1 on 8080, metrics on 9180,
# with a second sluice on 127.0.0.1:8081 (examples/upstream.lua) as the
# upstream the /app route proxies to.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(cmake pkg-config gcc make libuv1-dev liblua5.4-dev libssl-dev openssl curl nghttp2-client)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "missing packages (run as root to install): ${missing[*]}" >&2; exit 1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q && apt-get install -y -q "${missing[@]}"
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target sluice_bin
if [ ! -f examples/certs/sluice.pem ]; then
  mkdir -p examples/certs
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout examples/certs/sluice.key -out examples/certs/sluice.pem 2>/dev/null
fi
build/sluice -t -c examples/sluice.lua
build/sluice -t -q -c examples/upstream.lua
cat <<MSG
Starting sluice (Ctrl-C stops it gracefully). Try, in another terminal:
  curl -k --http2 https://localhost:8443/
  curl --http2-prior-knowledge http://localhost:8080/
  curl --http1.1 http://localhost:8080/hello.txt
  curl --http2-prior-knowledge --data-binary @README.md http://localhost:8080/echo
  nghttp -nv https://localhost:8443/
  curl http://127.0.0.1:9180/metrics
  curl -i http://localhost:8080/app/                         (proxied to :8081)
  curl --http2-prior-knowledge --data-binary @README.md http://localhost:8080/app/echo
MSG
build/sluice -q -c examples/upstream.lua &
upstream=$!
trap 'kill "$upstream" 2>/dev/null; wait "$upstream" 2>/dev/null' EXIT
build/sluice -c examples/sluice.lua
