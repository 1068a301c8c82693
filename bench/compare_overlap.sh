#!/usr/bin/env bash
# Data parallel on this machine: the gradient average overlapped with the
# backward pass (comm-overlap = true, the default) against one blocking
# average after it (false), 2 ranks x 1 thread, interleaved rounds (the order
# alternates). Per setting: training seconds, backward and communicate phase
# seconds (telemetry.jsonl), medians over the rounds with [min, max]; and
# whether the two settings' final parameters are bit-identical (they must be
# on 2 ranks: the same sums, started earlier).
#   bench/compare_overlap.sh [build-dir] [models] [rounds] [steps]   (defaults: build, "cnn mlp", 5, 200)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
MODELS=${2:-cnn mlp}
ROUNDS=${3:-5}
STEPS=${4:-200}
for v in "$ROUNDS" "$STEPS"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "compare_overlap: rounds and steps must be positive integers, got '$v'" >&2; exit 2; }
done
[ -x "$BUILD/brisk" ] || { echo "compare_overlap: $BUILD/brisk not found (build first)" >&2; exit 2; }
command -v mpirun >/dev/null || { echo "compare_overlap: mpirun not found (apt-get install openmpi-bin)" >&2; exit 2; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; 2 ranks x 1 thread, batch 64 per rank," \
     "$STEPS steps, $ROUNDS interleaved rounds"
for m in $MODELS; do
  for ((r = 0; r < ROUNDS; r++)); do
    if ((r % 2 == 0)); then order="true false"; else order="false true"; fi
    for ov in $order; do
      run="$OUT/$m-$ov-$r"
      mpirun -np 2 --bind-to none "$BUILD/brisk" train --model "$m" --epochs 1 --batch-size 64 --threads 1 \
        --max-steps "$STEPS" --eval-every "$STEPS" --progress off --comm-overlap "$ov" --out "$run" >/dev/null
      echo "$m $ov $run" >> "$OUT/runs"
    done
  done
done
/usr/bin/python3 - "$OUT/runs" <<'PY'
import glob, json, statistics as st, sys
rows = [l.split() for l in open(sys.argv[1])]
def last(path, kind=None):
    recs = [json.loads(l) for l in open(path)]
    return [r for r in recs if kind is None or r.get("kind") == kind][-1]
def ckpt(run):
    return open(glob.glob(run + "/checkpoint-step*.safetensors")[0], "rb").read()
print("| model | overlap | train s median [min, max] | backward s | communicate s | comm MB/step |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
for m in dict.fromkeys(r[0] for r in rows):
    med = {}
    for ov in ("true", "false"):
        runs = [r[2] for r in rows if r[0] == m and r[1] == ov]
        train = [last(run + "/metrics.jsonl")["wall_s"] for run in runs]
        ph = [last(run + "/telemetry.jsonl", "phases") for run in runs]
        bwd, comm = [p["backward"] for p in ph], [p["communicate"] for p in ph]
        mb = last(runs[0] + "/metrics.jsonl")["comm_mb_per_step"]
        med[ov] = st.median(train)
        print(f"| {m} | {ov} | {st.median(train):.2f} [{min(train):.2f}, {max(train):.2f}] | "
              f"{st.median(bwd):.2f} [{min(bwd):.2f}, {max(bwd):.2f}] | "
              f"{st.median(comm):.3f} [{min(comm):.3f}, {max(comm):.3f}] | {mb:.2f} |")
    a = [r[2] for r in rows if r[0] == m and r[1] == "true"][0]
    b = [r[2] for r in rows if r[0] == m and r[1] == "false"][0]
    print(f"{m}: blocking / overlapped training time = {med['false'] / med['true']:.3f}; "
          f"final parameters {'bit-identical' if ckpt(a) == ckpt(b) else 'DIFFER'}")
PY
