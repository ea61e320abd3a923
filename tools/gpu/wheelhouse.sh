#!/usr/bin/env bash
# Fill the ignored .whl/ folder with the wheels the GPU check needs on the device machine (cp312 manylinux
# x86_64, no registry there): exactly tools/gpu/wheels.txt, one version each, pinned to the project venv's.
# Idempotent: wheels already there are kept, stale ones removed, missing ones fetched (or, for DeepSpeed,
# built from its sdist as a pure-Python wheel). Prints name, version and size of each, and the total;
# exits 1 naming the overflow when over LIMIT_MIB (default 55).
#
#     bash tools/gpu/wheelhouse.sh                 # WITH_MLFLOW=auto: the MLflow client only while the
#     WITH_MLFLOW=0 bash tools/gpu/wheelhouse.sh   #   training path imports mlflow (1: always, 0: never)
#
# Needs the project venv (.venv, or PYTHON=...): its pip downloads and builds (DeepSpeed's setup imports
# torch), its python runs the imports probe. Then, with the device tool: `run` command
# "bash tools/gpu/check.sh", carry [".whl"] (see tools/gpu/check.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || { echo "wheelhouse: $PY not found (run tools/install_env.sh, or set PYTHON)" >&2; exit 2; }
grep -qxF '/.whl/' .gitignore 2>/dev/null || grep -qxF '/.whl/' .git/info/exclude 2>/dev/null \
  || { echo "wheelhouse: .whl/ is not ignored by git (add /.whl/ to .gitignore)" >&2; exit 2; }
exec "$PY" tools/gpu/wheelhouse.py --probe-python "$PY" "$@"
