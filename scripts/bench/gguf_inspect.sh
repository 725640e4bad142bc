#!/usr/bin/env bash
# `nopekit inspect` on a ~1 GB Llama-shaped Q8_0 GGUF (made by scripts/reference/make_big_gguf.py):
# wall time with a cold and a warm page cache, and peak RSS against the file size.
# Usage: scripts/bench/gguf_inspect.sh [WORKDIR]   (run `make release venv` first; dropping the
# page cache needs root, otherwise only warm figures are printed)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/nopekit-bench}
mkdir -p "$work"
file="$work/big-q8.gguf"
[ -f "$file" ] || .venv/bin/python scripts/reference/make_big_gguf.py "$file" --size-gb 1 --type Q8_0
size=$(stat -c %s "$file")
if [ -w /proc/sys/vm/drop_caches ]; then
  sync; echo 3 > /proc/sys/vm/drop_caches
  /usr/bin/time -f "%e %M" -o "$work/time.txt" .build/release/nopekit inspect "$file" > /dev/null 2>&1
  read -r t rss < "$work/time.txt"; echo "inspect, cold cache: ${t} s, peak RSS $((rss / 1024)) MiB (file $((size / 1000000)) MB)"
fi
/usr/bin/time -f "%e %M" -o "$work/time.txt" .build/release/nopekit inspect "$file" --json --tensors > /dev/null 2>&1
read -r t rss < "$work/time.txt"; echo "inspect --json --tensors, warm: ${t} s, peak RSS $((rss / 1024)) MiB (file $((size / 1000000)) MB)"
