#!/usr/bin/env bash
# One training epoch of mlp and cnn on Fashion-MNIST (batch 128, SGD momentum
# 0.9), brisk vs a current PyTorch from PyPI (bench/torch_venv.sh makes its
# venv on first use; TORCH_VENV picks another) on this machine. Each round
# runs both frameworks at 1 and 2 threads, interleaved (the order alternates
# between rounds), so both see the same machine state; the table gives each
# framework's median epoch over the rounds at its best thread count, the
# range, the test accuracy, the ratio of medians with its range (torch's
# fastest / brisk's slowest .. torch's slowest / brisk's fastest), and the
# median and range of the rounds' own ratios (torch / brisk in one round).
# Precision bf16 runs both under their bf16 autocast (brisk: --method
# precision:dtype=bf16; torch: torch.autocast on the CPU, bench/torch_epoch.py
# --bf16), f32 master weights in both.
#   bench/compare_epoch.sh [build-dir] [models] [rounds] [f32|bf16]   (defaults: build, "mlp cnn", 3, f32)
# brisk's GEMM backend follows BRISK_GEMM (native by default).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
MODELS=${2:-mlp cnn}
ROUNDS=${3:-3}
PRECISION=${4:-f32}
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "compare_epoch: rounds must be a positive integer, got '$ROUNDS'" >&2; exit 2; }
case "$PRECISION" in
  f32) BRISK_EXTRA=(); TORCH_EXTRA=() ;;
  bf16) BRISK_EXTRA=(--method precision:dtype=bf16); TORCH_EXTRA=(--bf16) ;;
  *) echo "compare_epoch: precision must be f32 or bf16, got '$PRECISION'" >&2; exit 2 ;;
esac
[ -x "$BUILD/brisk" ] || { echo "compare_epoch: $BUILD/brisk not found (build first)" >&2; exit 2; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
PY=$(bench/torch_venv.sh)
brisk_epoch() {  # model threads -> "seconds acc"
  rm -rf "$OUT/run"
  "$BUILD/brisk" train --model "$1" --epochs 1 --threads "$2" --progress off --out "$OUT/run" "${BRISK_EXTRA[@]}" |
    sed -n 's/^final: test_acc \([0-9.]*\).*train_seconds \([0-9.]*\).*/\2 \1/p'
}
torch_epoch() {
  "$PY" bench/torch_epoch.py --model "$1" --threads "$2" "${TORCH_EXTRA[@]}" |
    sed -n 's/.*epoch_s \([0-9.]*\) test_acc \([0-9.]*\).*/\1 \2/p'
}
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; brisk GEMM: ${BRISK_GEMM:-native};" \
     "torch $("$PY" -c 'import torch; print(torch.__version__)'); precision $PRECISION; $ROUNDS interleaved rounds"
for m in $MODELS; do
  for ((r = 0; r < ROUNDS; r++)); do
    for t in 1 2; do
      if ((r % 2 == 0)); then order="brisk torch"; else order="torch brisk"; fi
      for fw in $order; do
        read -r s a <<<"$(${fw}_epoch "$m" "$t")"
        echo "$m $fw $t $s $a $r" >> "$OUT/times"
      done
    done
  done
done
/usr/bin/python3 - "$OUT/times" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
print("| model | framework | threads | epoch s median [min, max] | ms/step | test acc | torch / brisk [range] | per round: median [range] |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for m in dict.fromkeys(r[0] for r in rows):
    best = {}
    for fw in ("brisk", "torch"):
        by_t = {}
        for r in rows:
            if r[0] == m and r[1] == fw:
                by_t.setdefault(r[2], []).append((float(r[3]), float(r[4])))
        t, v = min(by_t.items(), key=lambda kv: st.median(x[0] for x in kv[1]))
        secs = [x[0] for x in v]
        best[fw] = (t, st.median(secs), min(secs), max(secs), st.median(x[1] for x in v))
    b, tq = best["brisk"], best["torch"]
    # Each round's own ratio, both at their best thread count: the two ran
    # minutes apart at most, so a slow hour of the host cancels out.
    sec = {(r[1], r[2], r[5]): float(r[3]) for r in rows if r[0] == m}
    rounds = sorted({r[5] for r in rows if r[0] == m}, key=int)
    paired = sorted(sec[("torch", tq[0], k)] / sec[("brisk", b[0], k)] for k in rounds)
    for fw, (t, med, lo, hi, acc) in best.items():
        ratio = f"{tq[1] / b[1]:.2f}x [{tq[2] / b[3]:.2f}, {tq[3] / b[2]:.2f}]" if fw == "brisk" else ""
        per = f"{st.median(paired):.2f}x [{paired[0]:.2f}, {paired[-1]:.2f}]" if fw == "brisk" else ""
        print(f"| {m} | {fw} | {t} | {med:.2f} [{lo:.2f}, {hi:.2f}] | {1000 * med / 468:.1f} | {acc:.4f} | {ratio} | {per} |")
PY
