#!/usr/bin/env bash
# brisk's GPT recipe (recipes/baseline_gpt.toml) against the same model in a
# current PyTorch from PyPI (bench/torch_gpt.py; venv from bench/torch_venv.sh).
# 1) tokens/s: STEPS training steps at 1 and 2 threads, ROUNDS interleaved
#    rounds (order alternating), median and range per framework at its best
#    thread count; 2) quality: the whole recipe (one epoch) once per framework
#    at 2 threads, validation loss per token on the whole validation split.
#   bench/compare_gpt.sh [build-dir] [steps] [rounds] [full: 1|0]   (defaults: build, 100, 3, 1)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
STEPS=${2:-100}
ROUNDS=${3:-3}
FULL=${4:-1}
[[ "$STEPS" =~ ^[1-9][0-9]*$ && "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "compare_gpt: steps and rounds must be positive integers" >&2; exit 2; }
[ -x "$BUILD/brisk" ] || { echo "compare_gpt: $BUILD/brisk not found (build first)" >&2; exit 2; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
PY=$(bench/torch_venv.sh)
brisk_run() {  # threads steps -> "tokens_per_s val_loss"
  rm -rf "$OUT/run"
  local max=(); [ "$2" -gt 0 ] && max=(--max-steps "$2" --eval-every 0)
  "$BUILD/brisk" train --config recipes/baseline_gpt.toml --threads "$1" --progress off --out "$OUT/run" "${max[@]}" |
    sed -n 's/.*val_loss \([0-9.]*\) .* \([0-9]*\) tokens\/s.*/\2 \1/p' | tail -1
}
torch_run() {
  local s=(); [ "$2" -gt 0 ] && s=(--steps "$2")
  "$PY" bench/torch_gpt.py --threads "$1" "${s[@]}" | sed -n 's/.*tokens_per_s \([0-9]*\) val_loss \([0-9.]*\).*/\1 \2/p'
}
"$BUILD/brisk" train --config recipes/baseline_gpt.toml --max-steps 1 --progress off --out "$OUT/warm" >/dev/null  # token cache
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; torch $("$PY" -c 'import torch; print(torch.__version__)');" \
     "$ROUNDS interleaved rounds of $STEPS steps"
for ((r = 0; r < ROUNDS; r++)); do
  for t in 1 2; do
    if ((r % 2 == 0)); then order="brisk torch"; else order="torch brisk"; fi
    for fw in $order; do
      read -r tps vl <<<"$(${fw}_run "$t" "$STEPS")"
      echo "$fw $t $tps" >> "$OUT/speed"
    done
  done
done
/usr/bin/python3 - "$OUT/speed" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
best = {}
print("| framework | threads | tokens/s median [min, max] |")
print("| --- | ---: | ---: |")
for fw in ("brisk", "torch"):
    by_t = {}
    for r in rows:
        if r[0] == fw:
            by_t.setdefault(r[1], []).append(float(r[2]))
    for t, v in sorted(by_t.items()):
        print(f"| {fw} | {t} | {st.median(v):.0f} [{min(v):.0f}, {max(v):.0f}] |")
    best[fw] = max(by_t.values(), key=st.median)
b, t = best["brisk"], best["torch"]
print(f"\nbrisk / torch at each one's best thread count: {st.median(b) / st.median(t):.2f}x "
      f"[{min(b) / max(t):.2f}, {max(b) / min(t):.2f}]")
PY
if [ "$FULL" = 1 ]; then
  read -r btps bvl <<<"$(brisk_run 2 0)"
  read -r ttps tvl <<<"$(torch_run 2 0)"
  echo
  echo "whole recipe (one epoch, 2 threads): val_loss brisk $bvl, torch $tvl (difference $(/usr/bin/python3 -c "print(f'{$bvl - $tvl:+.4f}')") nats)"
fi
