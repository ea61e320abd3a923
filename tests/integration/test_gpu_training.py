"""The GPU path: bf16 compute, NCCL, ZeRO-3, on the tiny preset. Runs only where CUDA is visible."""

from pathlib import Path

import pytest

from gp_distributed.checkpoint import expected_files
from gp_distributed.commands.train import run_training
from gp_distributed.config import load_config

from ..conftest import tiny_training_overrides

pytestmark = [pytest.mark.gpu, pytest.mark.integration]


@pytest.mark.parametrize("zero_stage", [2, 3])
def test_bf16_training_on_one_gpu(zero_stage: int, demo_store: Path, tmp_path: Path) -> None:
    overrides = [*tiny_training_overrides(demo_store, tmp_path, f"gpu-z{zero_stage}", 4), "scaling.num_workers=0",
                 "scaling.use_gpu=true", "train.precision=bf16", f"train.zero_stage={zero_stage}"]
    result = run_training(load_config(None, overrides))
    files = {str(p.relative_to(result.checkpoint_dir)) for p in result.checkpoint_dir.rglob("*") if p.is_file()}
    assert files == expected_files(step=4, world_size=1, zero_stage=zero_stage)
    assert result.metrics["loss"] == result.metrics["loss"]  # finite, not NaN
    assert 0.0 <= result.metrics["test/all/auc"] <= 1.0
