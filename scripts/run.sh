#!/usr/bin/env bash
# README command 1: install dependencies, build, and run the main job: train
# the cnn baseline on Fashion-MNIST (about 3.5 minutes on 2 cores). Extra
# arguments go to `brisk train`, e.g. scripts/run.sh --epochs 1 --out runs/quick
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
# A fresh run folder per invocation, unless the caller chose one with --out.
args=("$@")
case " $* " in
  *" --out "*|*" --out="*) ;;
  *) args=(--out "runs/baseline_cnn-$(date +%Y%m%d-%H%M%S)" "$@") ;;
esac
./build/brisk train --config recipes/baseline_cnn.toml "${args[@]}"
