#!/usr/bin/env bash
# libsluice.so must export only the public sluice_* API (plus the version
# node the linker script defines): internal sl_* symbols stay hidden.
set -euo pipefail
lib=$1
syms=$(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//')
[ -n "$syms" ] || { echo "no exported symbols in $lib"; exit 1; }
bad=$(printf '%s\n' "$syms" | grep -v -E '^(sluice_[A-Za-z0-9_]+|SLUICE_[0-9_]+)$' || true)
if [ -n "$bad" ]; then
  echo "unexpected exports in $lib:"; printf '  %s\n' $bad; exit 1
fi
# Whole outputs are matched, not piped to grep -q (pipefail + SIGPIPE).
case $'\n'"$syms"$'\n' in *$'\n'sluice_version$'\n'*) ;; *) echo "sluice_version not exported"; exit 1 ;; esac
dyn=$(readelf -d "$lib")
case "$dyn" in *"Library soname: [libsluice.so.0]"*) ;; *) echo "soname is not libsluice.so.0"; exit 1 ;; esac
echo "ok: $(printf '%s\n' "$syms" | grep -c '^sluice_') sluice_* symbols, nothing else"
