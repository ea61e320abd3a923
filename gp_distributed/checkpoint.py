"""The checkpoint directory contract (format version 1). Every rank writes its own files:

    engine/latest                                   DeepSpeed tag pointer
    engine/step_<N>/mp_rank_00_model_states.pt      trainable weights (frozen backbone excluded), step, scheduler
                                                    (ZeRO-3: zero_pp_rank_<r>_mp_rank_00_model_states.pt per rank)
    engine/step_<N>/zero_pp_rank_<r>_mp_rank_00_optim_states.pt   optimizer shard of rank r (ZeRO 1-3)
    engine/zero_to_fp32.py, engine/zero_to_torch.py DeepSpeed's consolidation scripts
    trainable.safetensors                           rank 0: LoRA + GO branch + bottleneck + head, for serving
    worker_state/rank_<r>.json                      rank r: data-stream cursor and torch/numpy/python RNG states
    config.yaml                                     rank 0: the resolved config
    meta.json                                       rank 0, written last: step, world size, tracking run id,
                                                    the training store's fingerprint, versions

The frozen backbone is never saved: it comes back from its pretrained source (a preset's fixed seed
or `backbone_path`). A checkpoint is complete when its `meta.json` (written atomically, last on rank 0)
parses and every file the contract names for its step, world size and ZeRO stage exists; resume only
ever picks complete ones (other ranks may still be writing when rank 0 finishes, and a crash can
stop any rank half-way). Nothing here is unpickled: worker state is JSON, weights are safetensors or loaded
by DeepSpeed.

The resume contract. Running a run name again resumes its latest complete checkpoint only with a
compatible configuration and store. `check_resume` compares them with the checkpoint's `config.yaml`
and `store_fingerprint` on the driver, before anything is converted, loaded or started. A config key may
change on resume only if `RESUME_MAY_CHANGE` lists it (an exact dotted key, or a section ending in "."),
with the reason given there: more steps, early stopping, evaluation and checkpoint cadence, retention
and checkpoint selection, where the run and the store live, the worker count and how a global batch is
split over it (elastic resume), memory tuning and attention kernels, tracking, fault drills. No other
key may, nor any key added to config.py later until it is listed, because each defines what the
checkpoint's state means:
- the data a model reads (`data.*` but `data.store`): the tokenizer's k-mer size, window length and
  strategy, GO inputs per gene, and the shuffle buffer the saved stream cursor indexes into;
- the network (`model.*` but `gradient_checkpointing` and `attn_implementation`): backbone preset or
  path and how it loads, LoRA rank, alpha, dropout and targets, GO branch shape, pooling, MLP width,
  dropout. The saved weights have these shapes and meanings; a frozen backbone is rebuilt from them;
- the objective (`loss.*`): another loss kind, temperature or weight is another experiment;
- the optimizer recipe (`train.learning_rate`, `weight_decay`, `warmup_steps`, `min_lr_ratio`,
  `grad_clip`): part of it is restored from the saved optimizer state, so a new value would be half applied;
- the saved engine state's layout and dtype (`train.zero_stage`, `train.precision`, `scaling.use_gpu`,
  which decides the precision `auto` means);
- `train.seed`: the data order, windows and dropout streams the resumed run continues.
The store must be the same dataset: every part of its fingerprint (data/fingerprint.py: alphabet,
vocabularies, genes with their splits, annotations) must match, wherever `data.store` now points. A
forbidden change stops with one line naming the run directory, each changed key old -> new, and the two
ways out (the old settings, or a new `train.run_name`); allowed changes are printed as one notice, and a
resumed MLflow run keeps each as tag `param_changed.<key>`. A model loaded from a checkpoint for
`gp evaluate --checkpoint` or `gp predict/explain --model` needs a store with the training store's
vocabulary parts (`PREDICTION_STORE_PARTS`); other genes are allowed there (a store of new genes over the
same vocabularies; whether they overlap the training genes is the user's to know). Checkpoints written
before fingerprints existed have none: their store is not checked, their config is.
"""

from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gp_distributed.config import GPConfig, redact_credentials
from gp_distributed.config_yaml import flatten_dotted
from gp_distributed.errors import GpError, InputError

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


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries a checkpoint depends on; None for one not installed (an
    in-process run needs neither Ray nor the full MLflow, e.g. on the GPU check's minimal image)."""
    versions: dict[str, str | None] = {}
    for name in _VERSIONED_LIBRARIES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


@dataclass(frozen=True)
class CheckpointMeta:
    step: int
    world_size: int
    zero_stage: int
    tracking_run_id: str | None
    format_version: int = CHECKPOINT_FORMAT_VERSION
    # `data.fingerprint` of the training store; None in checkpoints written before fingerprints existed.
    store_fingerprint: dict[str, str] | None = None
    # Validation Fmax of the evaluation at this step (model selection); None where none ran at this step.
    valid_fmax: float | None = None


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
    fingerprint = payload.get("store_fingerprint")
    if fingerprint is not None and not (isinstance(fingerprint, dict)
                                        and all(isinstance(v, str) for v in fingerprint.values())):
        raise InputError(path, f"store_fingerprint: expected an object of strings, found {fingerprint!r}")
    valid_fmax = payload.get("valid_fmax")
    if valid_fmax is not None and (not isinstance(valid_fmax, (int, float)) or isinstance(valid_fmax, bool)):
        raise InputError(path, f"valid_fmax: expected a number, found {valid_fmax!r}")
    return CheckpointMeta(**fields, tracking_run_id=run_id, store_fingerprint=fingerprint,
                          valid_fmax=None if valid_fmax is None else float(valid_fmax))


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


def best_complete_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint with the highest recorded validation Fmax (the later one on a tie); the
    latest complete one when none recorded a score."""
    candidates = sorted(Path(run_dir).glob("checkpoint_*")) if Path(run_dir).is_dir() else []
    scored = []
    for candidate in candidates:
        if is_complete(candidate):
            score = read_meta(candidate).valid_fmax
            if score is not None and score == score:  # NaN never wins
                scored.append((score, candidate.name, candidate))
    return max(scored)[2] if scored else latest_complete_checkpoint(run_dir)


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


# The resume contract as data (module docstring): what may change when a run resumes, and why. An entry
# ending in "." covers a whole section; any key not covered here must keep its trained value.
RESUME_MAY_CHANGE: tuple[tuple[str, str], ...] = (
    ("train.max_steps", "train further (the cosine decay is re-stretched to the new end)"),
    ("train.eval_every", "evaluation cadence"),
    ("train.ckpt_every", "checkpoint cadence"),
    ("train.keep_last_checkpoints", "retention"),
    ("train.select_best", "which checkpoints are kept"),
    ("train.early_stopping_patience", "when to stop early"),
    ("train.test_at_end", "whether the end also scores the test split"),
    ("train.run_name", "the run directory's name (a copied run)"),
    ("train.storage_path", "where run directories live (a moved run)"),
    ("train.micro_batch_size", "how a global batch is split over workers (elastic resume)"),
    ("train.grad_accum_steps", "how a global batch is split over workers (elastic resume)"),
    ("train.zero3_live_parameters", "ZeRO-3 memory tuning: the same math"),
    ("train.zero3_prefetch_parameters", "ZeRO-3 memory tuning: the same math"),
    ("model.gradient_checkpointing", "recomputes activations: the same math, less memory"),
    ("model.attn_implementation", "the same attention through another kernel"),
    ("scaling.num_workers", "elastic resume (DeepSpeed's universal checkpoint conversion)"),
    ("scaling.cpus_per_worker", "placement"),
    ("scaling.address", "which Ray cluster"),
    ("scaling.max_failures", "restart budget"),
    ("scaling.placement_strategy", "placement"),
    ("data.store", "the store's location (its identity is checked by fingerprint)"),
    ("ingest.", "how a store is built (the store itself is checked by fingerprint)"),
    ("tracking.", "where the run is logged"),
    ("faults.", "fault drills"),
)
# Fingerprint parts (data/fingerprint.py) in words; a model's index spaces depend on the first four.
_STORE_PARTS = {"alphabet": "alphabet", "label_vocab": "phenotype terms", "go_input_vocab": "GO input terms",
                "concept_vocab": "GO concepts", "genes": "genes or splits", "annotations": "annotations"}
PREDICTION_STORE_PARTS = ("alphabet", "label_vocab", "go_input_vocab", "concept_vocab")
_UNSET = "(unset)"  # a key the other config does not have (added to or removed from config.py since)


def may_change_on_resume(key: str) -> bool:
    """Whether the dotted config key `key` may differ from the checkpoint's when a run resumes."""
    return any(key == entry or (entry.endswith(".") and key.startswith(entry)) for entry, _ in RESUME_MAY_CHANGE)


@dataclass(frozen=True)
class ConfigChange:
    """One dotted config key whose value differs from the checkpoint's (JSON values, as config.yaml holds)."""

    key: str
    old: Any
    new: Any

    def __str__(self) -> str:
        def show(value: Any) -> str:
            return value if isinstance(value, str) else json.dumps(value)

        return f"{self.key} {show(self.old)} -> {show(self.new)}"


def config_changes(saved_tree: dict[str, Any], config: GPConfig) -> list[ConfigChange]:
    """The keys whose value differs between a checkpoint's saved config (as parsed from config.yaml)
    and `config` (paths resolved, as training resolves them). A key the saved config lacks counts as its
    default: a key added to config.py since the checkpoint was written defaults to the old behaviour."""
    current = {key: redact_credentials(value) if isinstance(value, str) else value  # config.yaml is redacted
               for key, value in flatten_dotted(config.model_dump(mode="json")).items()}
    saved = {**flatten_dotted(GPConfig().model_dump(mode="json")), **flatten_dotted(saved_tree)}
    keys = [*current, *(key for key in saved if key not in current)]
    return [ConfigChange(key, saved.get(key, _UNSET), current.get(key, _UNSET)) for key in keys
            if saved.get(key, _UNSET) != current.get(key, _UNSET)]


def store_differences(trained: dict[str, str] | None, given: dict[str, str],
                      parts: tuple[str, ...] = tuple(_STORE_PARTS)) -> list[str]:
    """The `parts` in which store fingerprint `given` differs from `trained` (a checkpoint's), in words;
    [] when they match or the checkpoint has no fingerprint (written before fingerprints existed)."""
    if trained is None:
        return []
    differences = [part for part in parts if trained.get(part) != given.get(part)]
    return [f"alphabet {trained.get(part)} -> {given.get(part)}" if part == "alphabet" else _STORE_PARTS.get(part, part)
            for part in differences]


def _saved_config_tree(checkpoint_dir: Path) -> dict[str, Any]:
    path = Path(checkpoint_dir) / CONFIG_FILE
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise InputError(path, f"unreadable saved config: {error}") from None
    if not isinstance(tree, dict):
        raise InputError(path, "saved config is not a mapping of sections")
    return tree


def _unused_run_name(run_dir: Path) -> str:
    return next(f"{run_dir.name}-{k}" for k in range(2, 10_000) if not (run_dir.parent / f"{run_dir.name}-{k}").exists())


def check_resume(checkpoint_dir: Path, config: GPConfig, store_fingerprint: dict[str, str]) -> list[ConfigChange]:
    """The resume contract (module docstring) for resuming `checkpoint_dir` with `config` on a store of
    fingerprint `store_fingerprint`: the allowed changes (to announce), or one-line GpError naming the
    run directory, each forbidden change old -> new and the two ways out. Reads only; writes nothing."""
    checkpoint_dir = Path(checkpoint_dir)
    meta = read_meta(checkpoint_dir)
    saved = _saved_config_tree(checkpoint_dir)
    changes = config_changes(saved, config)
    problems = [str(change) for change in changes if not may_change_on_resume(change.key)]
    store = store_differences(meta.store_fingerprint, store_fingerprint)
    if store:
        trained_on = saved.get("data", {}).get("store") if isinstance(saved.get("data"), dict) else None
        problems.append(f"store {config.data.store} is not the dataset it was trained on ({trained_on}): "
                        f"other {', '.join(store)}")
    if problems:
        run_dir = checkpoint_dir.parent
        raise GpError(f"{run_dir}: cannot resume {checkpoint_dir.name} (step {meta.step}) with other settings "
                      f"than it was trained with: {'; '.join(problems)}. Either resume with its settings, or start "
                      f"a new run: train.run_name={_unused_run_name(run_dir)}")
    return changes


def resume_notice(checkpoint_dir: Path, changes: list[ConfigChange]) -> str:
    """The one line announcing a resume's allowed changes."""
    return (f"resuming {Path(checkpoint_dir).parent} from {Path(checkpoint_dir).name} with changed settings "
            f"(allowed on resume): {'; '.join(str(change) for change in changes)}")
