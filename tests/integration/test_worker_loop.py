"""The DeepSpeed worker loop in-process (world size 1, gloo on loopback): the checkpoint contract,
frozen backbone, exact resume, and `gp evaluate` on the result."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gp_distributed.checkpoint import expected_files, latest_complete_checkpoint
from gp_distributed.cli import main
from gp_distributed.commands.train import run_training
from gp_distributed.config import load_config
from gp_distributed.data.store import open_store
from gp_distributed.inference.package import read_checkpoint_config
from gp_distributed.train.worker import build_training_model

from ..conftest import tiny_training_overrides

pytestmark = pytest.mark.integration


def _train(store: Path, storage: Path, run_name: str, max_steps: int, *extra: str):
    overrides = [*tiny_training_overrides(store, storage, run_name, max_steps), "scaling.num_workers=0", *extra]
    return run_training(load_config(None, overrides))


def test_checkpoint_has_exactly_the_contract_files(demo_store: Path, tmp_path: Path) -> None:
    result = _train(demo_store, tmp_path, "contract", 2, "train.zero_stage=2")
    assert result.checkpoint_dir is not None and result.checkpoint_dir.name == "checkpoint_00000002"
    files = {str(p.relative_to(result.checkpoint_dir)) for p in result.checkpoint_dir.rglob("*") if p.is_file()}
    assert files == expected_files(step=2, world_size=1, zero_stage=2)
    assert sorted(p.name for p in result.run_dir.iterdir()) == ["checkpoint_00000001", "checkpoint_00000002"]
    trainable = load_file(str(result.checkpoint_dir / "trainable.safetensors"))
    assert any("lora_A" in k for k in trainable) and any(k.startswith("head.") for k in trainable)
    assert not any("lora" not in k and k.startswith("backbone.") for k in trainable)  # frozen base excluded
    assert "test/all/auc" in result.metrics and "valid/all/fmax" in result.metrics


def test_resume_is_bit_identical_to_an_uninterrupted_run(demo_store: Path, tmp_path: Path) -> None:
    uninterrupted = _train(demo_store, tmp_path / "a", "run", 4)
    _train(demo_store, tmp_path / "b", "run", 2)
    resumed = _train(demo_store, tmp_path / "b", "run", 4)  # same run name: continues from step 2
    want = load_file(str(uninterrupted.checkpoint_dir / "trainable.safetensors"))
    have = load_file(str(resumed.checkpoint_dir / "trainable.safetensors"))
    assert want.keys() == have.keys()
    for key in want:
        assert torch.equal(want[key], have[key]), key
    assert resumed.metrics["loss"] == uninterrupted.metrics["loss"]
    assert resumed.metrics["test/all/auc"] == uninterrupted.metrics["test/all/auc"]


def test_gp_evaluate_scores_a_checkpoint(demo_store: Path, tmp_path: Path, capsys) -> None:
    result = _train(demo_store, tmp_path, "evaluate", 2)
    report = tmp_path / "report.json"
    code = main(["evaluate", "--quiet", "--checkpoint", str(result.checkpoint_dir), "--store", str(demo_store),
                 "--split", "test", "--report", str(report)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Fmax %" in printed and ">=301" in printed
    import json

    results = json.loads(report.read_text())["results"]
    # The same model and genes give the same AUC as the training loop's own final test evaluation.
    assert results["all"]["auc"] == pytest.approx(result.metrics["test/all/auc"], abs=1e-9)


def test_zero3_checkpoint_holds_whole_trainable_tensors(demo_store: Path, tmp_path: Path) -> None:
    """ZeRO-3 partitions large parameters (the demo head's label x concept weight is one): the saved
    trainable weights must be the gathered, full tensors, which `gp evaluate` then loads."""
    # In a child process: ZeRO-3 replaces torch.nn.functional.linear process-wide (DeepSpeed's
    # partition_parameters), which would change what autograd saves in every later test here.
    overrides = [*tiny_training_overrides(demo_store, tmp_path, "zero3", 2), "scaling.num_workers=0", "train.zero_stage=3"]
    done = subprocess.run([sys.executable, "-m", "gp_distributed.cli", "train", *overrides], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoint = latest_complete_checkpoint(tmp_path / "zero3")
    assert checkpoint is not None and checkpoint.name == "checkpoint_00000002"
    files = {str(p.relative_to(checkpoint)) for p in checkpoint.rglob("*") if p.is_file()}
    assert files == expected_files(step=2, world_size=1, zero_stage=3)
    saved = load_file(str(checkpoint / "trainable.safetensors"))
    assert saved["head.linear.weight"].numel() > 100_000  # above DeepSpeed's persistence threshold
    fresh, _, _ = build_training_model(read_checkpoint_config(checkpoint), open_store(demo_store))
    expected = fresh.trainable_state_dict()
    assert saved.keys() == expected.keys()
    for key, tensor in saved.items():
        assert tensor.shape == expected[key].shape, key
    # Trained, not the initial values: the head moved in 2 steps.
    assert not torch.equal(saved["head.linear.weight"], expected["head.linear.weight"])
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--store", str(demo_store),
                 "--split", "valid"]) == 0
