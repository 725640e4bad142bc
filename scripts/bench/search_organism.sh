#!/usr/bin/env bash
# The bundled NoPE organism at 4× its training length: the three searches, then held-out
# perplexity at 1×, 2×, 4× and 8× for the unpatched model and each table (docs/benchmarks.md).
#
#   scripts/bench/search_organism.sh [NOPEKIT] [WORKDIR] [TARGET] [EXTRA SEARCH FLAGS...]
#
# Calibration text and evaluation text come from `nopekit corpus` with different seeds, so no
# evaluation window was seen by a search. Perplexity = exp(mean next-token loss) over 8 windows
# per length, each BOS + (length − 1) bytes (the organism's byte vocabulary: id = byte, BOS 256).
set -euo pipefail
NOPEKIT=${1:-.build/release/nopekit}
WORK=${2:-.build/search-organism}
TARGET=${3:-1024}
shift $(( $# < 3 ? $# : 3 )) || true
MODEL=fixtures/organism
mkdir -p "$WORK"
[ -f "$WORK/calib.txt" ] || "$NOPEKIT" corpus --seed 2718 --size 3M --max-document 512 --out "$WORK/calib.txt"
[ -f "$WORK/eval.txt" ] || "$NOPEKIT" corpus --seed 9001 --size 1M --max-document 512 --out "$WORK/eval.txt"

for method in uniform entropy headscale; do
  out="$WORK/$method.temps.json"
  [ -f "$out" ] && continue
  start=$(date +%s.%N)
  "$NOPEKIT" search "$MODEL" --method "$method" --data "$WORK/calib.txt" --target-length "$TARGET" --out "$out" "$@" 2> "$WORK/$method.log"
  echo "$method: $(echo "$(date +%s.%N) - $start" | bc) s" >> "$WORK/times.txt"
done

python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
data = open(f"{work}/eval.txt", "rb").read()
for L in (256, 512, 1024, 2048):
    step = len(data) // 9
    windows = [[256] + list(data[i * step:i * step + L - 1]) for i in range(8)]
    for n, w in enumerate(windows):
        json.dump(w, open(f"{work}/eval-{L}-{n}.json", "w"))
PY

echo "| model | 256 (1×) | 512 (2×) | 1024 (4×) | 2048 (8×) | search time |"
echo "|---|---|---|---|---|---|"
for table in none uniform entropy headscale; do
  row="| $table |"
  for L in 256 512 1024 2048; do
    total=0; count=0
    for n in 0 1 2 3 4 5 6 7; do
      temps=(); [ "$table" = none ] || temps=(--temps "$WORK/$table.temps.json")
      j=$("$NOPEKIT" score "$MODEL" --tokens "$WORK/eval-$L-$n.json" "${temps[@]}" --json)
      total=$(python3 -c "import json,sys; j=json.loads(sys.argv[1]); print($total + j['total_loss'])" "$j")
      count=$(python3 -c "import json,sys; j=json.loads(sys.argv[1]); print($count + j['scored'])" "$j")
    done
    row="$row $(python3 -c "import math; print(f'{math.exp($total / $count):.3f}')") |"
  done
  t=$(grep "^$table:" "$WORK/times.txt" 2>/dev/null | awk '{printf "%.0f s", $2}' || true)
  echo "$row ${t:-–} |"
done
