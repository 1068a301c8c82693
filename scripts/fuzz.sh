#!/usr/bin/env bash
# Runs every libFuzzer harness (fuzz/) for SECONDS each (default 60), one per
# core side by side, from its seed corpus, and fails on any finding (crash,
# sanitizer report, an exception other than brisk::Error, a time-out). Builds
# them first into build-fuzz (clang, ASan+UBSan). New inputs go to a scratch
# corpus, not the repo's.
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
[[ "$secs" =~ ^[1-9][0-9]{0,5}$ ]] || { echo "fuzz.sh: SECONDS must be a whole number from 1 to 999999, got '$secs'" >&2; exit 2; }
seed="${BRISK_FUZZ_SEED:-1}"
[[ "$seed" =~ ^[1-9][0-9]{0,8}$ ]] || { echo "fuzz.sh: BRISK_FUZZ_SEED must be a whole number from 1 to 999999999, got '$seed'" >&2; exit 2; }
scripts/sanitize.sh build-only
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export TMPDIR="$work"  # the harnesses' scratch files go away with it
# One harness: its log and its result ("ok" or a finding) into $work.
fuzz_one() {
  local name=$1 log="$work/$1.log"
  mkdir -p "$work/$name"
  cp -r "fuzz/corpus/$name/." "$work/$name/"
  # max_len: checkpoint.json and TOML recipes are a few KiB.
  # A fixed seed (BRISK_FUZZ_SEED, default 1) makes a run repeatable: the same
  # mutations in the same order, only their count depends on the machine.
  if (cd "$work" && "$OLDPWD/build-fuzz/fuzz/fuzz_$name" -seed="$seed" -max_total_time="$secs" \
        -max_len=8192 -timeout=20 \
        -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$work/$name-" "$work/$name" >"$log" 2>&1); then
    echo ok >"$work/$name.result"
  else
    echo "FINDING (see below)" >"$work/$name.result"
  fi
}
# The harnesses run side by side, one per core (each is single-threaded).
harnesses=(idx safetensors checkpoint config method_spec)
jobs_max=$(nproc)
for name in "${harnesses[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
  fuzz_one "$name" &
done
wait
status=0
printf '%-12s %10s %10s %8s  %s\n' harness inputs inputs/s corpus result
for name in "${harnesses[@]}"; do
  log="$work/$name.log"
  result=$(cat "$work/$name.result" 2>/dev/null || echo "FINDING (no result: the harness did not finish)")
  [ "$result" = ok ] || status=1
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  size=$(ls "$work/$name" | wc -l)
  printf '%-12s %10s %10s %8s  %s\n' "$name" "$runs" "$((runs / secs))" "$size" "$result"
  if [ "$result" != ok ]; then
    grep -E 'ERROR|SUMMARY|terminate|what\(\)|==[0-9]+==' "$log" | head -20 || tail -30 "$log"
    ls "$work"/"$name"-* 2>/dev/null | while read -r f; do echo "input: $f"; head -c 300 "$f" | od -c | head -8; done
  fi
done
exit $status
