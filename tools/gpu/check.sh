#!/usr/bin/env bash
# The GPU check (issue 16): the one command to run on the device machine, from the repository root,
#     device `run`: command "bash tools/gpu/check.sh", carry [".whl"], timeout_s 480
# after `bash tools/gpu/wheelhouse.sh` filled .whl/ here. Designed to end inside GP_CHECK_BUDGET seconds
# (default 420, about 5 minutes expected on an H100; each item's own limit is cut to what is left, later
# items are then skipped). A rerun of some items on the still-warm machine: GP_CHECK_ONLY=mfu,pytest_gpu
# (install, metadata and store always run; the others are recorded as skipped).
#
# Items, each bounded by `timeout` and recorded whatever happens (ok / failed / timeout / skipped):
#   nvidia_smi       the card, driver, clocks (read only: the card's settings are never changed)
#   install          .whl/*.whl into a fresh folder (pip --target --no-index --no-deps; the image's torch
#                    2.11 stays in use), on PYTHONPATH after the working tree
#   metadata         metadata-only stubs where importlib.metadata has none for what checkpoint.py's
#                    library_versions() asks (ray: absent; mlflow: carried as mlflow-skinny; gp_distributed:
#                    not installed, the tree is on PYTHONPATH) - listed in the summary when written
#   imports          every module the check runs imports; which distributions loaded; versions
#   store            a SYNTHETIC DNA store (make_synthetic, sequences tiled to fill the windows, gp ingest)
#   pytest_gpu       pytest -m gpu over the test files that carry the gpu mark (DS_ACCELERATOR=cuda)
#   genepheno_zero2  the full GenePheno step (GO branch, bottleneck, head) under DeepSpeed ZeRO-2, bf16:
#   genepheno_zero3  genes/s, tokens/s, peak GPU memory vs the ZeRO formula (tools/gpu/bench_gpu_step.py)
#   mfu              backbone LoRA step of generator-1.2b at 4,096 and 16,384 tokens, SDPA (auto, flash,
#                    cuDNN) and flash-attn 2 if importable, checkpointing off/on: TFLOP/s, MFU vs the
#                    measured bf16 matmul peak; one sub-item per combination (mfu_<tokens>_<attn>_ckpt-<x>)
# Writes $OUT/summary.json (rewritten after every item, `complete: true` at the end) and $OUT/check.log.
# Exit status: 0 when no item failed or timed out.
#
#     bash tools/gpu/check.sh --dry-run
# runs the same items on CPU with tiny sizes (tiny-dna preset, fp32, gloo) with .venv/bin/python (or
# $PYTHON), skipping install and nvidia-smi: what tests/unit/test_gpu_check.py runs. OUT defaults to a
# new temporary folder.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
REPO=$(pwd)
DRY=0
for arg in "$@"; do
  case $arg in
    --dry-run) DRY=1 ;;
    *) echo "usage: bash tools/gpu/check.sh [--dry-run]" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-$(mktemp -d /tmp/gp-gpu-out.XXXXXX)}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/gp-gpu-check.XXXXXX)
ITEMS=$WORK/items.jsonl
SUMMARY=$OUT/summary.json
if [ "$DRY" = 1 ]; then
  PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
  BUDGET=${GP_CHECK_BUDGET:-300}
  PRESET=tiny-dna; MFU_TOKENS=64,128; STEP_TOKENS=64; STEP_MICRO=2; STEPS=2; WARMUP=1
  GENES=24; MIN_BP=1000; export DS_ACCELERATOR=cpu
  LIMIT_SCALE=2  # a shared 2-core machine, and DeepSpeed's first CPU engine JIT-compiles a C++ op
else
  PY=${PYTHON:-python3}
  BUDGET=${GP_CHECK_BUDGET:-420}
  PRESET=generator-1.2b; MFU_TOKENS=4096,16384; STEP_TOKENS=4096; STEP_MICRO=2; STEPS=5; WARMUP=2
  GENES=64; MIN_BP=25000; export DS_ACCELERATOR=cuda
  LIMIT_SCALE=1
fi
ATTENTION=sdpa,sdpa-flash,sdpa-cudnn,flash_attention_2
CHECKPOINTING=off,on
SITE=$WORK/site  # the carried wheels, installed (real runs only)
META=$WORK/meta  # metadata stubs (item metadata)
if [ "$DRY" = 1 ]; then
  export PYTHONPATH=$REPO:$META${PYTHONPATH:+:$PYTHONPATH}
else
  export PYTHONPATH=$REPO:$SITE:$META${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PIP_ROOT_USER_ACTION=ignore
export MLFLOW_DISABLE_TELEMETRY=true MLFLOW_TRACKING_URI=sqlite:///$WORK/mlflow.db GP_CACHE_DIR=$WORK/cache
START=$(date +%s)

remaining() { echo $(( BUDGET - ($(date +%s) - START) )); }

record() {  # NAME STATUS RC SECONDS [extra checklib args...]
  local name=$1 status=$2 rc=$3 seconds=$4; shift 4
  "$PY" tools/gpu/checklib.py record --items "$ITEMS" --summary "$SUMMARY" --name "$name" --status "$status" \
    --rc "$rc" --seconds "$seconds" "$@" \
    || python3 tools/gpu/checklib.py record --items "$ITEMS" --summary "$SUMMARY" --name "$name" \
      --status "$status" --rc "$rc" --seconds "$seconds" "$@"
}

run_item() {  # NAME LIMIT_S [--result F] [--jsonl F --expect a,b] -- COMMAND...
  local name=$1 limit=$2; shift 2
  local extra=()
  while [ "$1" != "--" ]; do extra+=("$1"); shift; done; shift
  if [ -n "${GP_CHECK_ONLY:-}" ] && [[ ",$GP_CHECK_ONLY,install,metadata,store," != *",$name,"* ]]; then
    echo "=== $name: skipped (not in GP_CHECK_ONLY)"
    record "$name" skipped 0 0 --error "not selected (GP_CHECK_ONLY=$GP_CHECK_ONLY)" "${extra[@]}"
    return
  fi
  local left; left=$(remaining)
  if [ "$left" -lt 20 ]; then
    echo "=== $name: skipped (check budget of ${BUDGET}s spent)"
    record "$name" skipped 0 0 --error "check budget of ${BUDGET}s spent" "${extra[@]}"
    return
  fi
  limit=$((limit * LIMIT_SCALE))
  [ "$limit" -gt $((left - 10)) ] && limit=$((left - 10))
  echo "=== $name (limit ${limit}s, $(date -u +%H:%M:%S)): $*"
  local began; began=$(date +%s%N)
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$WORK/$name.log"
  local rc=${PIPESTATUS[0]}
  local seconds; seconds=$(awk -v b="$began" -v e="$(date +%s%N)" 'BEGIN { printf "%.1f", (e - b) / 1e9 }')
  local status=ok
  case $rc in 0) ;; 124|137) status=timeout ;; *) status=failed ;; esac
  echo "=== $name: $status (rc $rc, ${seconds}s)"
  record "$name" "$status" "$rc" "$seconds" --log "$WORK/$name.log" "${extra[@]}"
}

skip_item() {  # NAME REASON
  echo "=== $1: skipped ($2)"
  record "$1" skipped 0 0 --error "$2"
}

main() {
  echo "gp GPU check: dry_run=$DRY python=$PY budget=${BUDGET}s out=$OUT work=$WORK $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  "$PY" - "$WORK/meta.json" "$DRY" "$BUDGET" <<'EOF' || echo '{}' > "$WORK/meta.json"
import json, os, platform, subprocess, sys, time
path, dry, budget = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
def git(*args):
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return None
json.dump({"schema": 1, "dry_run": dry, "budget_s": budget, "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
           "host": platform.node(), "machine": platform.machine(), "python": sys.version.split()[0],
           "git_head": git("rev-parse", "--short", "HEAD"), "git_dirty_files": len((git("status", "--short") or "").splitlines())},
          open(path, "w"))
EOF

  if [ "$DRY" = 1 ]; then
    skip_item nvidia_smi "dry run (CPU)"
    skip_item install "dry run: the environment is $PY's"
  else
    run_item nvidia_smi 30 -- bash -c 'nvidia-smi && nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm,power.draw,power.limit,temperature.gpu --format=csv'
    if ls .whl/*.whl >/dev/null 2>&1; then
      run_item install 180 -- "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" .whl/*.whl
    else
      skip_item install "no wheels in .whl/ (run tools/gpu/wheelhouse.sh here and carry .whl)"
    fi
  fi
  run_item metadata 60 --result "$WORK/metadata.json" -- bash -c \
    "\"$PY\" tools/gpu/checklib.py metadata-stubs --dir \"$META\" | tee \"$WORK/metadata.json\""
  run_item imports 120 --result "$WORK/imports.json" -- "$PY" tools/gpu/bench_gpu_step.py imports --json "$WORK/imports.json"
  run_item store 150 -- "$PY" tools/gpu/bench_gpu_step.py store --out "$WORK/store" --genes "$GENES" --min-bp "$MIN_BP"
  STORE=$WORK/store/synthetic_dna.zarr

  local gpu_tests
  gpu_tests=$(grep -rlE --include='test_*.py' 'pytest\.mark\.gpu' tests | sort | tr '\n' ' ')
  if [ -n "$gpu_tests" ]; then
    # shellcheck disable=SC2086  # one word per file
    run_item pytest_gpu 240 -- "$PY" -m pytest -p no:cacheprovider -m gpu -q -rA $gpu_tests
  else
    skip_item pytest_gpu "no test file carries the gpu mark"
  fi

  for stage in 2 3; do
    if [ -d "$STORE" ]; then
      run_item "genepheno_zero$stage" 180 --result "$WORK/genepheno_zero$stage.json" -- "$PY" tools/gpu/bench_gpu_step.py \
        genepheno --store "$STORE" --zero-stage "$stage" --preset "$PRESET" --tokens "$STEP_TOKENS" \
        --micro-batch "$STEP_MICRO" --steps "$STEPS" --warmup "$WARMUP" --json "$WORK/genepheno_zero$stage.json"
    else
      skip_item "genepheno_zero$stage" "no store (the store item made none)"
    fi
  done

  local expect
  expect=$("$PY" -c "
import sys; sys.path.insert(0, 'tools/gpu')
from bench_gpu_step import mfu_name
print(','.join(['mfu_peak_matmul'] + [mfu_name(int(t), a, c) for t in '$MFU_TOKENS'.split(',')
                                       for c in '$CHECKPOINTING'.split(',') for a in '$ATTENTION'.split(',')]))")
  local left; left=$(remaining)
  run_item mfu 300 --jsonl "$WORK/mfu.jsonl" --expect "$expect" -- "$PY" tools/gpu/bench_gpu_step.py mfu \
    --preset "$PRESET" --tokens "$MFU_TOKENS" --attention "$ATTENTION" --checkpointing "$CHECKPOINTING" \
    --steps "$STEPS" --warmup "$WARMUP" --item-timeout 60 --budget $((left > 60 ? left - 40 : 20)) --jsonl "$WORK/mfu.jsonl"

  "$PY" tools/gpu/checklib.py finish --items "$ITEMS" --summary "$SUMMARY"
  local rc=$?
  if [ "$rc" -gt 1 ]; then  # not the check's verdict: that python could not run the summary
    python3 tools/gpu/checklib.py finish --items "$ITEMS" --summary "$SUMMARY"
    rc=$?
  fi
  return "$rc"
}

main 2>&1 | tee "$OUT/check.log"
status=${PIPESTATUS[0]}
[ "${GP_CHECK_KEEP:-0}" = 1 ] || rm -rf "$WORK"  # GP_CHECK_KEEP=1 keeps the store, per-item logs and results
exit "$status"
