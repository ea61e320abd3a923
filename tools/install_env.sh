#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv for a CPU machine with Python 3.11.
# torch is installed first and pinned to the CPU build (deepspeed's setup imports torch, and an
# unpinned torch pulls a multi-GB CUDA build). GPU machines: see README "GPU install".
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import torch, deepspeed, ray, transformers, peft, zarr, mlflow, gp_distributed" 2>/dev/null \
  || { echo "install_env: the environment is incomplete (see pip output above)" >&2; exit 1; }
echo "install_env: .venv ready (torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'))"
