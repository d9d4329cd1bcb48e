#!/usr/bin/env bash
# Installs the build into a temporary prefix, then builds a three-line program
# with `pkg-config --cflags --libs sluice` and one with find_package(sluice); both must run.
set -euo pipefail
build=$1 cc=$2 san=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(dirname "$(find "$tmp/prefix" -name sluice.pc | head -n1)")/..
export PKG_CONFIG_PATH=$libdir/pkgconfig
cat > "$tmp/v.c" <<'C'
#include <stdio.h>
#include <sluice.h>
int main(void) { return puts(sluice_version()) < 0; }
C
# shellcheck disable=SC2046,SC2086
"$cc" $san -o "$tmp/v" "$tmp/v.c" $(pkg-config --cflags --libs sluice)
out=$(LD_LIBRARY_PATH=$libdir "$tmp/v")
want=$(pkg-config --modversion sluice)
[ "$out" = "$want" ] || { echo "pkg-config program printed '$out', want '$want'"; exit 1; }
# the shared library is what got linked, with its soname
# (ldd's output is captured first: with pipefail, grep -q closing the pipe
# early would fail the pipeline through ldd's SIGPIPE.)
deps=$(ldd "$tmp/v" 2>/dev/null || true)
case "$deps" in *libsluice.so.0*) ;; *) echo "not linked to libsluice.so.0"; exit 1 ;; esac

mkdir -p "$tmp/cm"
cp "$tmp/v.c" "$tmp/cm/v.c"
cat > "$tmp/cm/CMakeLists.txt" <<CM
cmake_minimum_required(VERSION 3.20)
project(v C)
find_package(sluice 0 REQUIRED)
add_executable(v v.c)
target_compile_options(v PRIVATE $san)
target_link_options(v PRIVATE $san)
target_link_libraries(v PRIVATE sluice::sluice_static)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/b" -DCMAKE_C_COMPILER="$cc" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm/b" >/dev/null
out=$("$tmp/cm/b/v")
[ "$out" = "$want" ] || { echo "find_package program printed '$out'"; exit 1; }
echo "ok: sluice $out via pkg-config and find_package"
