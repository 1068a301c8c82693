#!/usr/bin/env bash
# Installs brisk's build and test dependencies from Debian packages.
# Idempotent: does nothing when everything is already installed.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libopenblas-dev zlib1g-dev
  catch2 libbenchmark-dev libcli11-dev nlohmann-json3-dev libtomlplusplus-dev
  dataset-fashion-mnist
  bible-kjv           # text:kjv, the language models' corpus (the `bible` command)
  python3             # tests/reliability/*.py (hostile inputs, crash consistency)
  clang libclang-rt-14-dev  # scripts/sanitize.sh and scripts/fuzz.sh (ASan/UBSan, libFuzzer)
  python3-matplotlib  # brisk speedup's pareto.png (tools/plot_pareto.py)
  openmpi-bin libopenmpi-dev  # data-parallel training (mpirun -np N brisk train)
  libjs-chart.js      # brisk report: Chart.js, inlined into the page
  chromium            # tests/report: the report page checked in a headless browser
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "install_deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
