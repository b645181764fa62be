#!/usr/bin/env bash
# Installs jemalloc (Debian/Ubuntu package libjemalloc2) if it is missing. `python -m hgjax.main`
# and `python -m hgjax.bench` preload it (hgjax/allocator.py): XLA:CPU trains ~1.3x faster with
# it (docs/benchmarks.md). Best effort: without it hgjax runs on the default allocator.
set -uo pipefail
for lib in /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 /usr/lib/aarch64-linux-gnu/libjemalloc.so.2 \
           /usr/lib64/libjemalloc.so.2 /usr/local/lib/libjemalloc.so.2; do
  if [ -e "$lib" ]; then
    echo "jemalloc: $lib"
    exit 0
  fi
done
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
if command -v apt-get >/dev/null 2>&1 && $sudo apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libjemalloc2; then
  echo "jemalloc: installed libjemalloc2"
else
  echo "warning: could not install libjemalloc2 (no apt-get or no permission); hgjax will" \
       "run on the default allocator, slower (see docs/benchmarks.md)" >&2
fi
exit 0
