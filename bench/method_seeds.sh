#!/usr/bin/env bash
# Final test accuracy (and training seconds, sparsity, params) of a recipe
# with several --method settings over seeds: the accuracy targets in
# docs/methods/. Finished runs (a result line in OUT/<name>-s<seed>.log) are
# not redone. The table prints mean [min, max] over seeds per method.
#   bench/method_seeds.sh OUT EPOCHS THREADS SEEDS 'label=method spec' ...
# e.g.
#   bench/method_seeds.sh runs/prune_targets 5 1 "0 1 2" dense= \
#     gradual90=prune:target=0.9,schedule=gradual rigl90=prune:target=0.9,schedule=rigl
# ("dense=" runs the recipe with no method.) Recipe: recipes/baseline_cnn.toml
# unless RECIPE is set; BUILD defaults to build.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$1 EPOCHS=$2 THREADS=$3 SEEDS=$4
shift 4
BUILD=${BUILD:-build}
RECIPE=${RECIPE:-recipes/baseline_cnn.toml}
mkdir -p "$OUT"
for spec in "$@"; do
  name=${spec%%=*} method=${spec#*=}
  for s in $SEEDS; do
    log="$OUT/$name-s$s.log"
    if grep -q '^final:' "$log" 2>/dev/null; then continue; fi
    args=(train --config "$RECIPE" --epochs "$EPOCHS" --threads "$THREADS" --seed "$s" --progress off
          --out "$OUT/$name-s$s")
    [ -n "$method" ] && args+=(--method "$method")
    echo "[$name seed $s] ${BRISK:-$BUILD/brisk} ${args[*]}" >&2
    "${BRISK:-$BUILD/brisk}" "${args[@]}" > "$log" 2>&1 || { echo "FAILED: see $log" >&2; exit 1; }
  done
done
/usr/bin/python3 - "$OUT" "$@" <<'PY'
import json, sys, os, statistics as st
out, specs = sys.argv[1], sys.argv[2:]
print(f"| method | seeds | test acc mean [min, max] | train s mean | sparsity | params or nonzeros |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for spec in specs:
    name = spec.split("=", 1)[0]
    rows = []
    for f in sorted(os.listdir(out)):
        d = os.path.join(out, f)
        if f.startswith(name + "-s") and os.path.isdir(d) and os.path.exists(os.path.join(d, "metrics.jsonl")):
            last = [json.loads(l) for l in open(os.path.join(d, "metrics.jsonl"))][-1]
            rows.append(last)
    if not rows:
        continue
    acc = [r["test_acc"] for r in rows]
    print(f"| {name} | {len(rows)} | {st.mean(acc):.4f} [{min(acc):.4f}, {max(acc):.4f}] | "
          f"{st.mean(r['wall_s'] for r in rows):.1f} | {rows[0].get('sparsity', 0):.3f} | {rows[0].get('params', rows[0].get('nonzeros', '-'))} |")
PY
