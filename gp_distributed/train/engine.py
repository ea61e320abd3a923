"""The DeepSpeed engine: the only module that imports deepspeed.

The engine's config dict is derived from the typed config in one function (`deepspeed_config`), never
hand-written JSON. Only trainable parameters (LoRA, GO branch, bottleneck, head) reach the optimizer,
and checkpoints exclude frozen parameters: the frozen backbone comes back from its pretrained source.

Loading never runs pickled code: DeepSpeed calls `torch.load(..., weights_only=False)`, so every load
and universal conversion here runs with `TORCH_FORCE_WEIGHTS_ONLY_LOAD=1` (torch then uses its
weights-only unpickler whatever the call site asks), allowing only the plain DeepSpeed data classes
its checkpoints hold (allow-listed in `_deepspeed`). A checkpoint carrying anything else fails to load.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch

from gp_distributed.config import GPConfig, global_batch_size, resolved_precision
from gp_distributed.console import library_output, quiet_logger
from gp_distributed.errors import InputError

if TYPE_CHECKING:
    from deepspeed import DeepSpeedEngine


def _deepspeed() -> ModuleType:
    """deepspeed, imported on first use. DeepSpeed picks its accelerator once, at import, from
    DS_ACCELERATOR: the CPU one unless a GPU is present (a user's explicit choice wins). The plain data
    classes its checkpoints pickle are allow-listed for the weights-only loader here too."""
    os.environ.setdefault("DS_ACCELERATOR", "cuda" if torch.cuda.is_available() else "cpu")
    import deepspeed
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    torch.serialization.add_safe_globals([LossScaler, ZeroStageEnum, fragment_address])  # found by loading ZeRO 0-3
    quiet_logger("DeepSpeed")  # its import set the level to WARNING: it warns about its own internals
    return deepspeed


@contextmanager
def weights_only_loads() -> Iterator[None]:
    """Every torch.load in this process (and processes it forks) uses the weights-only unpickler."""
    previous = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"]
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = previous


def deepspeed_config(config: GPConfig, world_size: int) -> dict[str, Any]:
    """DeepSpeed's config dict for `world_size` data-parallel workers, derived from the typed config."""
    train = config.train
    precision = resolved_precision(config)
    decay_steps = max(train.max_steps - train.warmup_steps, 1)
    return {
        "train_batch_size": global_batch_size(config, world_size),
        "train_micro_batch_size_per_gpu": train.micro_batch_size,
        "gradient_accumulation_steps": train.grad_accum_steps,
        # torch_adam: the PyTorch AdamW, not DeepSpeed's fused op (which would JIT-compile a second op on CPU).
        "optimizer": {
            "type": "AdamW",
            "params": {"lr": train.learning_rate, "weight_decay": train.weight_decay, "torch_adam": True},
        },
        "scheduler": {
            "type": "WarmupCosineLR",
            "params": {
                "total_num_steps": train.warmup_steps + decay_steps,
                "warmup_num_steps": max(train.warmup_steps, 1),
                "warmup_min_ratio": 0.01,
                "cos_min_ratio": train.min_lr_ratio,
                "warmup_type": "linear",
            },
        },
        "gradient_clipping": train.grad_clip,
        "zero_optimization": {"stage": train.zero_stage, **_zero3_settings(config)},
        "bf16": {"enabled": precision == "bf16"},
        "steps_per_print": 10**9,  # we log ourselves, through the tracker
        "wall_clock_breakdown": False,
    }


def _zero3_settings(config: GPConfig) -> dict[str, int]:
    if config.train.zero_stage != 3:
        return {}
    return {
        "stage3_max_live_parameters": config.train.zero3_live_parameters,
        "stage3_max_reuse_distance": config.train.zero3_live_parameters,
        "stage3_prefetch_bucket_size": config.train.zero3_prefetch_parameters,
    }


def build_engine(
    model: torch.nn.Module, config: GPConfig, world_size: int, *, load_universal: bool = False
) -> DeepSpeedEngine:
    """Wrap `model` in a DeepSpeed engine; torch.distributed must already be initialised (all ranks call).
    `load_universal`: the engine will load a universal checkpoint (resume at another world size)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    ds_config = deepspeed_config(config, world_size)
    if load_universal:
        ds_config["checkpoint"] = {"load_universal": True}
    with library_output():  # DeepSpeed prints "... shm_comm_op built successfully" on every start
        engine, _, _, _ = _deepspeed().initialize(
            model=model, model_parameters=trainable, config=ds_config, dist_init_required=False
        )
    return engine


def convert_to_universal(engine_dir: Path, tag: str, out_dir: Path) -> str:
    """DeepSpeed's universal checkpoint conversion of `engine_dir/tag` into `out_dir/<tag>_universal`;
    returns the new tag. ZeRO 1-3 shards are tied to the world size that wrote them; the universal form
    is per parameter, so any world size can load it."""
    from argparse import Namespace

    _deepspeed()
    from deepspeed.checkpoint.ds_to_universal import main as ds_to_universal

    universal_tag = f"{tag}_universal"
    with weights_only_loads():
        ds_to_universal(Namespace(
            input_folder=str(Path(engine_dir) / tag), output_folder=str(Path(out_dir) / universal_tag),
            num_extract_workers=1, num_merge_workers=1, keep_temp_folder=False, strict=True, inject_missing_state=True,
        ))
    return universal_tag


def save_engine(engine: DeepSpeedEngine, directory: Path, tag: str, client_state: dict[str, Any]) -> None:
    """Sharded engine state (every rank writes its own optimizer shard; all ranks must call)."""
    engine.save_checkpoint(str(directory), tag=tag, client_state=client_state, exclude_frozen_parameters=True)


def load_engine(engine: DeepSpeedEngine, directory: Path, tag: str) -> dict[str, Any]:
    """Restore weights, optimizer and scheduler; returns the client state. All ranks must call."""
    try:
        with weights_only_loads():
            load_path, client_state = engine.load_checkpoint(str(directory), tag=tag, load_module_strict=False)
    except pickle.UnpicklingError as error:
        detail = str(error).strip().splitlines()[0]
        raise InputError(Path(directory) / tag, f"refused to load: the checkpoint holds objects outside the "
                         f"allowed DeepSpeed classes; nothing was executed ({detail})") from None
    if load_path is None:
        raise FileNotFoundError(f"{directory}/{tag}: no DeepSpeed checkpoint to load")
    return client_state or {}


@contextmanager
def gathered_parameters(parameters: list[torch.nn.Parameter], zero_stage: int) -> Iterator[None]:
    """Inside, ZeRO-3-partitioned `parameters` hold their full values on every rank (read only); other
    stages hold them whole anyway. All ranks must enter together under ZeRO-3."""
    if zero_stage != 3:
        yield
        return
    with _deepspeed().zero.GatheredParameters(parameters, modifier_rank=None):
        yield


def current_learning_rate(engine: DeepSpeedEngine) -> float:
    return float(engine.get_lr()[0])
