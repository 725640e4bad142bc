#!/usr/bin/env bash
# Checkpoint I/O on a random TinyLlama-1.1B-shaped model (22 layers, hidden 2048, 32 heads,
# 4 KV heads, vocab 32000): `nopekit inspect` of a sharded BF16 folder (time, peak RSS against
# the folder size) and `nopekit convert` F32 → BF16 (time, peak RSS against the largest tensor),
# with the output checked bit for bit by PyPI safetensors + ml_dtypes.
#
# Usage: scripts/bench/tinyllama_io.sh [WORKDIR]   (needs ~7 GB of disk; default /tmp/nopekit-bench)
# Run `make release venv` first. Figures go in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=${1:-/tmp/nopekit-bench}
bin=.build/release/nopekit
py=.venv/bin/python
mkdir -p "$work"
[ -d "$work/tl-bf16" ] || $py scripts/reference/make_tinyllama_folder.py "$work/tl-bf16" --dtype bf16 --max-shard-size 1GB
[ -d "$work/tl-f32" ] || $py scripts/reference/make_tinyllama_folder.py "$work/tl-f32" --dtype f32 --max-shard-size 2GB

measure() {  # prints "seconds maxrss_kb" of the command
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" > /dev/null
  cat "$work/time.txt"
}

folder_bytes=$(du -sb "$work/tl-bf16" | cut -f1)
read -r t rss <<< "$(measure $bin inspect "$work/tl-bf16")"
echo "inspect (sharded BF16, $((folder_bytes / 1000000)) MB): ${t} s, peak RSS $((rss / 1024)) MiB"
read -r t rss <<< "$(measure $bin inspect "$work/tl-bf16" --json --tensors)"
echo "inspect --json --tensors: ${t} s, peak RSS $((rss / 1024)) MiB"

largest=$($bin inspect "$work/tl-f32" --json --tensors | $py -c 'import json,sys; print(max(t["bytes"] for t in json.load(sys.stdin)["tensors"]))')
rm -rf "$work/out-bf16"
read -r t rss <<< "$(measure $bin convert "$work/tl-f32" "$work/out-bf16" --dtype bf16 --max-shard-size 1GB)"
src_bytes=$(du -sb "$work/tl-f32" | cut -f1)
echo "convert F32 → BF16 ($((src_bytes / 1000000)) MB in): ${t} s, peak RSS $((rss / 1024)) MiB;" \
     "bound = largest tensor $((largest / 1048576)) MiB + 64 MiB = $(((largest / 1048576) + 64)) MiB"
[ $((rss * 1024)) -lt $((largest + 64 * 1048576)) ] && echo "PASS peak RSS below the bound" || { echo "FAIL peak RSS above the bound"; exit 1; }
$py scripts/bench/check_convert_bf16.py "$work/tl-f32" "$work/out-bf16"
