#!/usr/bin/env bash
# HF → GGUF conversion of a random TinyLlama-1.1B-shaped BF16 folder (2.2 GB, 3 shards) to Q8_0:
# nopekit against llama.cpp's own convert_hf_to_gguf.py on the same folder in the same run (time,
# peak RSS), then every tensor of the two outputs compared byte for byte
# (scripts/reference/compare_gguf.py).
#
# Usage: scripts/bench/convert_gguf.sh LLAMACPP_SRC [WORKDIR] [TYPE]
#   LLAMACPP_SRC holds convert_hf_to_gguf.py, conversion/ and gguf-py/ of one llama.cpp checkout
#   (e.g. the vendor/llama.cpp of the llama-cpp-python sdist); it needs torch in .venv
#   (scripts/reference/requirements-torch.txt). WORKDIR defaults to /tmp/nopekit-bench, TYPE to q8_0.
# Run `make release venv` first. Figures go in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=${1:?usage: convert_gguf.sh LLAMACPP_SRC [WORKDIR] [TYPE]}
work=${2:-/tmp/nopekit-bench}
type=${3:-q8_0}
bin=.build/release/nopekit
py=.venv/bin/python
mkdir -p "$work"
[ -d "$work/tl-bf16" ] || $py scripts/reference/make_tinyllama_folder.py "$work/tl-bf16" --dtype bf16 --max-shard-size 1GB
# llama.cpp's converter needs a vocabulary: the same folder with a small SentencePiece-style
# tokenizer (padded to 32000 tokens by both converters).
mkdir -p "$work/tl-bf16-tok"
for f in "$work"/tl-bf16/*; do ln -sf "$(realpath "$f")" "$work/tl-bf16-tok/"; done
cp fixtures/tokenizers/spm_normalizer/tokenizer.json fixtures/tokenizers/spm_normalizer/tokenizer_config.json "$work/tl-bf16-tok/"

measure() {  # prints "seconds maxrss_kb" of the command
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" > /dev/null 2>&1
  cat "$work/time.txt"
}
bytes=$(du -sbL "$work/tl-bf16" | cut -f1)
sync
for run in 1 2; do
  rm -f "$work/ours.gguf" "$work/theirs.gguf"
  read -r t1 r1 <<< "$(measure $bin convert "$work/tl-bf16-tok" "$work/ours.gguf" --type "$type")"
  read -r t2 r2 <<< "$(measure env PYTHONPATH="$src/gguf-py" $py "$src/convert_hf_to_gguf.py" "$work/tl-bf16-tok" --outtype "$type" --outfile "$work/theirs.gguf")"
  echo "run $run: nopekit ${t1} s, peak RSS $((r1 / 1024)) MiB; convert_hf_to_gguf.py ${t2} s, peak RSS $((r2 / 1024)) MiB;" \
       "input $((bytes / 1000000)) MB; nopekit $($py -c "print(round($t2 / $t1, 2))")× faster"
done
$py scripts/reference/compare_gguf.py "$work/ours.gguf" "$work/theirs.gguf"
