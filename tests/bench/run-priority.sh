#!/usr/bin/env bash
# Priority and upload benchmarks (issue 7). Priority: the time to last byte
# of a 1 KiB u=0 request while 4 x 10 MiB u=7 downloads flow on the same
# HTTP/2 connection, for sluice with priorities on and off, nginx, h2o and
# nghttpd (h2c, one worker each), on plain loopback and inside a network
# namespace whose lo is rate-limited with tbf. Upload: a 64 MiB HTTP/2
# upload to sluice through a rate-limited, delaying link, for its default,
# large fixed and adaptive receive windows. See tests/bench/README.md.
#
#   tests/bench/run-priority.sh [options]     # --help lists them; about 4 minutes
#
# Needs root (namespaces, tc) and skips with a message (exit 0) otherwise.
# Installs nothing: peers that are not installed are left out. Builds sluice
# (Release) in build-bench-priority/ (or $SLUICE_BENCH_BUILD).
set -euo pipefail
cd "$(dirname "$0")/../.."

py=/usr/bin/python3 # Debian's own interpreter, with python3-h2
build=${SLUICE_BENCH_BUILD:-build-bench-priority}
parts=lo,link,upload
# tbf for the link: 100 Mbit/s, and a queue of at most ~2 ms (latency) so
# that the qdisc itself holds little (the 50 ms of TESTING.md's example is
# 625 KB at this rate: the whole urgent-request budget would wait there).
tbf="rate 100mbit burst 16kb latency 2ms"
rounds=5 trials=6 up_rounds=2 up_size=$((64 << 20)) delay_ms=20 json_dir=""
prio_port=18700 up_port=18801

usage() {
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  cat <<EOF

options:
  --parts LIST       which of lo,link,upload to run (default $parts)
  --tbf "ARGS"       tbf arguments for the link (default "$tbf")
  --rounds N         priority: interleaved rounds (default $rounds)
  --trials N         priority: trials per server and round (default $trials)
  --upload-rounds N  upload: interleaved rounds (default $up_rounds)
  --upload-size B    upload: bytes per upload (default $up_size)
  --delay-ms MS      upload: the relay's one-way delay (default $delay_ms)
  --quick            2 rounds of 3 trials, one 32 MiB upload round: a smoke test
  --json-dir DIR     write each part's raw numbers to DIR/priority-*.json, upload.json
EOF
}

while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --parts) parts=$2; shift 2 ;;
    --tbf) tbf=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --trials) trials=$2; shift 2 ;;
    --upload-rounds) up_rounds=$2; shift 2 ;;
    --upload-size) up_size=$2; shift 2 ;;
    --delay-ms) delay_ms=$2; shift 2 ;;
    --quick) rounds=2 trials=3 up_rounds=1 up_size=$((32 << 20)); shift ;;
    --json-dir) # relative to where the script was started from
      case "$2" in /*) json_dir=$2 ;; *) json_dir=$OLDPWD/$2 ;; esac
      shift 2 ;;
    *) echo "unknown option $1 (--help lists them)" >&2; exit 2 ;;
  esac
done
has_part() { case ",$parts," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }

if [ "$(id -u)" != 0 ]; then
  echo "priority benchmark skipped: it needs root (network namespaces, tc)"
  exit 0
fi
export PATH=$PATH:/usr/sbin:/sbin
for tool in ip tc ss taskset cmake; do
  command -v $tool >/dev/null || { echo "priority benchmark skipped: $tool not found"; exit 0; }
done
if ! $py -c 'import h2, hpack' 2>/dev/null; then
  echo "priority benchmark skipped: $py has no h2 module (Debian: apt-get install python3-h2)"
  exit 0
fi
systems=sluice,sluice-nopri
for peer in nginx h2o nghttpd; do
  p=$(command -v $peer) && [ -x "$p" ] && systems+=",$peer" ||
    echo "not installed, left out: $peer (Debian: nginx, h2o, nghttp2-server)" >&2
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
blog=$build/bench-priority-build.log
if ! build_sluice >"$blog" 2>&1 && ! { sleep 5; build_sluice >"$blog" 2>&1; }; then
  tail -40 "$blog" >&2
  echo "sluice build failed (full log: $blog)" >&2
  exit 1
fi
sluice=$(cd "$build" && pwd)/sluice

# ---- namespaces -------------------------------------------------------------------
ns_prio=sluice-prio-$$
ns_up=sluice-upload-$$
# shellcheck disable=SC2317 # the traps call these
cleanup() {
  for ns in $ns_prio $ns_up; do
    ip netns del "$ns" 2>/dev/null || true
  done
}
# The benchmarks run in the background so that a signal reaches this
# script at once; it is passed on, and the namespaces go once they stopped
# their servers.
child=""
run_child() {
  "$@" &
  child=$!
  wait $child
}
# shellcheck disable=SC2317
on_signal() {
  if [ -n "$child" ]; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  exit "$1"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

# lo with MTU 1500 first: tbf drops packets larger than its burst.
make_ns() {
  ip netns add "$1"
  ip netns exec "$1" ip link set lo up
  ip netns exec "$1" ip link set lo mtu 1500
}
# The congestion control the namespace's sockets use (the host's default).
ns_cc() { ip netns exec "$1" sysctl -n net.ipv4.tcp_congestion_control; }

j_lo=() j_link=() j_up=()
if [ -n "$json_dir" ]; then
  mkdir -p "$json_dir"
  j_lo=(--json "$json_dir/priority-loopback.json")
  j_link=(--json "$json_dir/priority-link.json")
  j_up=(--json "$json_dir/upload.json")
fi
rc=0
common=(--sluice "$sluice" --systems "$systems" --rounds "$rounds" --trials "$trials"
        --port-base "$prio_port")

if has_part lo; then
  run_child $py tests/bench/priority/bench.py "${common[@]}" --label loopback \
    --link "plain loopback (no qdisc)" "${j_lo[@]}" || rc=1
fi

if has_part link; then
  make_ns $ns_prio
  # shellcheck disable=SC2086 # tbf's arguments are words
  ip netns exec $ns_prio tc qdisc add dev lo root tbf $tbf
  run_child ip netns exec $ns_prio $py tests/bench/priority/bench.py "${common[@]}" --label "tbf link" \
    --link "network namespace, lo mtu 1500, tc qdisc tbf $tbf (both directions), TCP $(ns_cc $ns_prio)" \
    --goal-ms 5 "${j_link[@]}" || rc=1
  ip netns exec $ns_prio tc -s qdisc show dev lo | sed 's/^/  (lo at the end) /'
fi

if has_part upload; then
  # Only the upload direction (to the server's port) goes through tbf; the
  # echoed body returns unshaped, so it does not share the link's rate.
  make_ns $ns_up
  ip netns exec $ns_up sh -e -c "
    tc qdisc add dev lo root handle 1: htb default 20
    tc class add dev lo parent 1: classid 1:10 htb rate 10gbit quantum 200000
    tc class add dev lo parent 1: classid 1:20 htb rate 10gbit quantum 200000
    tc qdisc add dev lo parent 1:10 handle 10: tbf $tbf
    tc filter add dev lo parent 1: protocol ip prio 1 u32 match ip dport $up_port 0xffff flowid 1:10"
  rate=$(echo "$tbf" | sed -n 's/.*rate \([0-9.]*\)\([kmgKMG]\?\)bit.*/\1 \2/p')
  bps=$(echo "$rate" | awk '{m = tolower($2); f = m == "k" ? 1e3 : m == "m" ? 1e6 : m == "g" ? 1e9 : 1;
                             printf "%.0f", $1 * f}')
  run_child ip netns exec $ns_up $py tests/bench/priority/upload.py --sluice "$sluice" \
    --rounds "$up_rounds" --size "$up_size" --delay-ms "$delay_ms" --port $up_port \
    --link "network namespace, lo mtu 1500, tbf $tbf towards the server only, TCP $(ns_cc $ns_up)" \
    --link-bps "${bps:-100000000}" "${j_up[@]}" || rc=1
fi
exit $rc
