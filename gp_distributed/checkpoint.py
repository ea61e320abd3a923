"""The checkpoint directory contract (format version 1). Every rank writes its own files:

    engine/latest                                   DeepSpeed tag pointer
    engine/step_<N>/mp_rank_00_model_states.pt      trainable weights (frozen backbone excluded), step, scheduler
                                                    (ZeRO-3: zero_pp_rank_<r>_mp_rank_00_model_states.pt per rank)
    engine/step_<N>/zero_pp_rank_<r>_mp_rank_00_optim_states.pt   optimizer shard of rank r (ZeRO 1-3)
    engine/zero_to_fp32.py, engine/zero_to_torch.py DeepSpeed's consolidation scripts
    trainable.safetensors                           rank 0: LoRA + GO branch + bottleneck + head, for serving
    worker_state/rank_<r>.json                      rank r: data-stream cursor and torch/numpy/python RNG states
    config.yaml                                     rank 0: the resolved config
    meta.json                                       rank 0, written last: step, world size, tracking run id, versions

The frozen backbone is never saved: it comes back from its pretrained source (a preset's fixed seed
or `backbone_path`). A checkpoint is complete when its `meta.json` (written atomically, last on rank 0)
parses and every file the contract names for its step, world size and ZeRO stage exists; resume only
ever picks complete ones (other ranks may still be writing when rank 0 finishes, and a crash can
stop any rank half-way). Nothing here is unpickled: worker state is JSON, weights are safetensors or loaded
by DeepSpeed.
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gp_distributed.errors import InputError

CHECKPOINT_FORMAT_VERSION = 1
ENGINE_DIR = "engine"
WORKER_STATE_DIR = "worker_state"
TRAINABLE_FILE = "trainable.safetensors"
CONFIG_FILE = "config.yaml"
META_FILE = "meta.json"
# What a model needs outside training (the model package copies these): weights, config, meta.
SERVING_FILES = (TRAINABLE_FILE, CONFIG_FILE, META_FILE)
_VERSIONED_LIBRARIES = ("torch", "deepspeed", "ray", "transformers", "peft", "zarr", "mlflow", "gp_distributed")


def engine_tag(step: int) -> str:
    return f"step_{step}"


def checkpoint_dir_name(step: int) -> str:
    return f"checkpoint_{step:08d}"


def expected_files(step: int, world_size: int, zero_stage: int) -> set[str]:
    """The exact relative file set of a complete checkpoint (the contract, as tests check it)."""
    tag = f"{ENGINE_DIR}/{engine_tag(step)}"
    files = {
        f"{ENGINE_DIR}/latest",
        f"{ENGINE_DIR}/zero_to_fp32.py",
        f"{ENGINE_DIR}/zero_to_torch.py",
        TRAINABLE_FILE,
        CONFIG_FILE,
        META_FILE,
    }
    files |= {f"{WORKER_STATE_DIR}/rank_{r}.json" for r in range(world_size)}
    if zero_stage == 3:  # every rank holds a share of the module, so every rank writes model states
        files |= {f"{tag}/zero_pp_rank_{r}_mp_rank_00_model_states.pt" for r in range(world_size)}
    else:
        files.add(f"{tag}/mp_rank_00_model_states.pt")
    if zero_stage > 0:
        files |= {f"{tag}/zero_pp_rank_{r}_mp_rank_00_optim_states.pt" for r in range(world_size)}
    return files


def capture_rng_state() -> dict[str, Any]:
    """torch, numpy (legacy global) and python RNG states, JSON-serialisable."""
    np_state = np.random.get_state()
    return {
        "torch": base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode("ascii"),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    torch_bytes = base64.b64decode(state["torch"])
    torch.set_rng_state(torch.from_numpy(np.frombuffer(torch_bytes, dtype=np.uint8).copy()))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version_, internal, gauss_next = state["python"]
    random.setstate((version_, tuple(internal), gauss_next))


def write_worker_state(directory: Path, rank: int, stream_state: dict[str, Any]) -> None:
    path = Path(directory) / WORKER_STATE_DIR / f"rank_{rank}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"stream": stream_state, "rng": capture_rng_state()}))


def read_worker_state(directory: Path, rank: int) -> dict[str, Any]:
    path = Path(directory) / WORKER_STATE_DIR / f"rank_{rank}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(path, f"unreadable worker state: {error}") from None


def write_trainable(directory: Path, state: dict[str, torch.Tensor]) -> None:
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(Path(directory) / TRAINABLE_FILE))


def read_trainable(directory: Path) -> dict[str, torch.Tensor]:
    path = Path(directory) / TRAINABLE_FILE
    try:
        return load_file(str(path))
    except (OSError, RuntimeError, ValueError, SafetensorError) as error:
        raise InputError(path, f"unreadable trainable weights: {error}") from None


def library_versions() -> dict[str, str]:
    return {name: version(name) for name in _VERSIONED_LIBRARIES}


@dataclass(frozen=True)
class CheckpointMeta:
    step: int
    world_size: int
    zero_stage: int
    tracking_run_id: str | None
    format_version: int = CHECKPOINT_FORMAT_VERSION


def write_meta(directory: Path, meta: CheckpointMeta, config_yaml: str) -> None:
    """Rank 0, after every other file of the checkpoint is written (marks it complete)."""
    (Path(directory) / CONFIG_FILE).write_text(config_yaml)
    payload = {**meta.__dict__, "libraries": library_versions()}
    staged = Path(directory) / ".meta.json.tmp"
    staged.write_text(json.dumps(payload, indent=1, sort_keys=True))
    staged.replace(Path(directory) / META_FILE)  # atomic: a reader sees no meta.json or a whole one


def read_meta(directory: Path) -> CheckpointMeta:
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise InputError(directory, "incomplete checkpoint (no meta.json)")
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise InputError(path, f"invalid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise InputError(path, f"expected a JSON object, found {type(payload).__name__}")
    if payload.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise InputError(path, f"checkpoint format {payload.get('format_version')!r}, expected {CHECKPOINT_FORMAT_VERSION}")
    fields = {}
    for key in ("step", "world_size", "zero_stage"):
        value = payload.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InputError(path, f"{key}: expected a non-negative integer, found {value!r}")
        fields[key] = value
    run_id = payload.get("tracking_run_id")
    if run_id is not None and not (isinstance(run_id, str) and run_id.isalnum()):
        raise InputError(path, f"tracking_run_id: expected an MLflow run id, found {run_id!r}")
    return CheckpointMeta(**fields, tracking_run_id=run_id)


def is_complete(directory: Path) -> bool:
    """Whether `directory` holds a whole checkpoint: a readable meta.json and every contract file."""
    try:
        meta = read_meta(directory)
    except InputError:
        return False
    expected = expected_files(meta.step, meta.world_size, meta.zero_stage)
    return all((Path(directory) / name).is_file() for name in expected)


def latest_complete_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete `checkpoint_*` directory under `run_dir` (see `is_complete`)."""
    candidates = sorted(Path(run_dir).glob("checkpoint_*"), reverse=True) if Path(run_dir).is_dir() else []
    return next((c for c in candidates if is_complete(c)), None)


def run_directory(storage_path: Path, run_name: str) -> Path:
    """Where a run's checkpoints, report and tracking backlog live."""
    return Path(storage_path) / run_name


def resolve_checkpoint(path: Path) -> Path:
    """The checkpoint `path` names: itself, or a run directory's latest complete checkpoint. One-line
    InputError for anything else (an unfinished checkpoint, a run without a complete one)."""
    path = Path(path)
    if (path / META_FILE).is_file():
        return path
    if not path.is_dir():
        raise InputError(path, "no such model directory (expected models:/NAME@ALIAS, runs:/RUN_ID/model, "
                               "an MLflow model, a checkpoint or a run directory)")
    if any((path / name).exists() for name in (ENGINE_DIR, WORKER_STATE_DIR, TRAINABLE_FILE, CONFIG_FILE)):
        raise InputError(path, "incomplete checkpoint (no meta.json: its writing did not finish)")
    checkpoint = latest_complete_checkpoint(path)
    if checkpoint is None:
        if any(path.glob("checkpoint_*")):
            raise InputError(path, "run directory without a complete checkpoint (none of its checkpoint_* is whole)")
        raise InputError(path, "not a models:/ or runs:/ URI, an MLflow model, a checkpoint or a run directory")
    return checkpoint
