#!/usr/bin/env bash
# The PyTorch peer: a current torch from PyPI (MKL + oneDNN on x86) in a venv,
# created on first use; prints the venv's python. Debian's python3-torch
# (1.13) is far slower and is never the reference.
#   PY=$(bench/torch_venv.sh)      # venv in bench/.venv-torch, or $TORCH_VENV
set -euo pipefail
cd "$(dirname "$0")"
V=${TORCH_VENV:-$PWD/.venv-torch}
if ! "$V/bin/python" -c "import torch, numpy" 2>/dev/null; then
  python3 -m venv "$V" >&2 || { echo "torch_venv: python3 -m venv failed (apt-get install python3-venv)" >&2; exit 1; }
  echo "torch_venv: installing torch and numpy from PyPI into $V (once; a few minutes)" >&2
  "$V/bin/pip" install --quiet torch numpy >&2 || { echo "torch_venv: pip install torch numpy failed" >&2; exit 1; }
fi
echo "$V/bin/python"
