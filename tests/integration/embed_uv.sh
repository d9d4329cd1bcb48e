#!/usr/bin/env bash
# libsluice-uv embedded in examples/embed/uv_server.c: its own handler answers
# /hello over h2c and HTTP/1.1, the configured routes the rest; SIGTERM stops
# it gracefully through the embedder's loop and it exits 0.
set -euo pipefail
bin=$1
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$tmp/c.lua" <<LUA
listen { "127.0.0.1:$port" }
route { path = "/", ret = { status = 200, body = "from the routes\n" } }
LUA
"$bin" "$tmp/c.lua" > "$tmp/out" 2> "$tmp/err" &
pid=$!
for _ in $(seq 50); do grep -q ready "$tmp/out" 2>/dev/null && break; sleep 0.1; done
out=$(curl -sS --http2-prior-knowledge -A t1 "http://127.0.0.1:$port/hello")
[ "$out" = "hello from the embedder, GET /hello (t1)" ] || { echo "h2c /hello: '$out'"; exit 1; }
out=$(curl -sS --http1.1 -A t2 "http://127.0.0.1:$port/hello")
[ "$out" = "hello from the embedder, GET /hello (t2)" ] || { echo "h1 /hello: '$out'"; exit 1; }
out=$(curl -sS --http2-prior-knowledge "http://127.0.0.1:$port/other")
[ "$out" = "from the routes" ] || { echo "route: '$out'"; exit 1; }
kill -TERM "$pid"
rc=0; wait "$pid" || rc=$?
pid=
[ "$rc" = 0 ] || { echo "exit $rc"; cat "$tmp/err"; exit 1; }
if grep -qE 'AddressSanitizer|runtime error|LeakSanitizer' "$tmp/err"; then cat "$tmp/err"; exit 1; fi
echo "ok: embedded server answered h2c and HTTP/1.1 and stopped cleanly"
