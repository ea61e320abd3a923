"""Ray Train over DeepSpeed workers on a private loopback Ray: resume by run name, recovery from a
worker killed mid-epoch (bit-identical result), and elastic resume across world sizes (ZeRO-2)."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gp_distributed.checkpoint import expected_files, read_meta
from gp_distributed.commands.train import TrainingResult, run_training
from gp_distributed.config import load_config
from gp_distributed.errors import GpError
from gp_distributed.train.launcher import start_local_ray

from ..conftest import corrupted_store_copy, tiny_training_overrides

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def private_ray(tmp_path_factory: pytest.TempPathFactory):
    import ray

    start_local_ray(num_cpus=3, temp_dir=tmp_path_factory.mktemp("ray"))
    yield
    ray.shutdown()


def _train(store: Path, storage: Path, run: str, max_steps: int, workers: int, *extra: str) -> TrainingResult:
    overrides = [*tiny_training_overrides(store, storage, run, max_steps), f"scaling.num_workers={workers}",
                 "train.zero_stage=2", "train.micro_batch_size=4", *extra]
    return run_training(load_config(None, overrides))


def _weights(result: TrainingResult) -> dict[str, torch.Tensor]:
    return load_file(str(result.checkpoint_dir / "trainable.safetensors"))


def test_two_workers_write_the_contract_and_resume_by_run_name(demo_store: Path, tmp_path: Path) -> None:
    first = _train(demo_store, tmp_path, "by-name", 2, 2)
    files = {str(p.relative_to(first.checkpoint_dir)) for p in first.checkpoint_dir.rglob("*") if p.is_file()}
    assert files == expected_files(step=2, world_size=2, zero_stage=2)
    again = _train(demo_store, tmp_path, "by-name", 4, 2)
    assert read_meta(again.checkpoint_dir).step == 4
    # Continued from step 2: the first run's checkpoints are still the ones at steps 1 and 2.
    kept = {p.name for p in again.run_dir.glob("checkpoint_*") if p.is_dir()}
    assert kept == {"checkpoint_00000002", "checkpoint_00000004"}
    assert again.metrics["step"] == 4


@pytest.fixture(scope="module")
def uninterrupted(demo_store: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainingResult:
    return _train(demo_store, tmp_path_factory.mktemp("ref"), "run", 6, 2, "train.ckpt_every=2")


@pytest.mark.parametrize("during, step", [("step", 3), ("checkpoint", 4)])
def test_worker_killed_recovers_bit_identically(during: str, step: int, uninterrupted: TrainingResult,
                                                demo_store: Path, tmp_path: Path) -> None:
    """SIGKILL of rank 1 mid-epoch (after step 3, between checkpoints 2 and 4), or while it writes
    checkpoint 4 (rank 0 may have finished its files): Ray retries from checkpoint 2, never from 4."""
    reference = uninterrupted
    marker = tmp_path / "killed-once"
    faulty = _train(demo_store, tmp_path / "faulty", "run", 6, 2, "train.ckpt_every=2", f"faults.kill_at_step={step}",
                    f"faults.kill_during={during}", "faults.kill_rank=1", f"faults.once_marker={marker}")
    assert marker.exists()  # the kill happened
    want, have = _weights(reference), _weights(faulty)
    assert all(torch.equal(want[k], have[k]) for k in want)
    assert faulty.metrics["loss"] == reference.metrics["loss"]
    assert faulty.metrics["test/all/auc"] == reference.metrics["test/all/auc"]


@pytest.mark.parametrize("before, after", [(2, 1), (1, 2)])
def test_elastic_resume_continues_the_loss_trajectory(before: int, after: int, demo_store: Path, tmp_path: Path) -> None:
    # The same global batch at both world sizes (micro 4 x accumulation x workers = 8 genes).
    accumulation = {1: 2, 2: 1}
    reference = _train(demo_store, tmp_path / "ref", "run", 8, before, f"train.grad_accum_steps={accumulation[before]}")
    _train(demo_store, tmp_path / "elastic", "run", 4, before, f"train.grad_accum_steps={accumulation[before]}")
    resumed = _train(demo_store, tmp_path / "elastic", "run", 8, after, f"train.grad_accum_steps={accumulation[after]}")
    meta = read_meta(resumed.checkpoint_dir)
    assert (meta.step, meta.world_size) == (8, after)
    # The schedule continued (not restarted) and the loss follows the uninterrupted run's trajectory.
    assert resumed.metrics["learning_rate"] == pytest.approx(reference.metrics["learning_rate"], rel=1e-9)
    assert resumed.metrics["loss"] == pytest.approx(reference.metrics["loss"], rel=0.15)


def test_bad_input_found_on_a_worker_is_one_error_line(demo_store: Path, tmp_path: Path) -> None:
    """A worker's InputError (here a corrupted store shard) comes out of `trainer.fit()` as itself."""
    store = corrupted_store_copy(demo_store, tmp_path / "corrupt.zarr")
    with pytest.raises(GpError, match=r"corrupted residue data in seq/residues/c/") as raised:
        _train(store, tmp_path, "corrupt", 2, 2, "scaling.max_failures=0")
    assert "\n" not in str(raised.value)


def test_zero3_two_workers_write_the_contract_and_evaluate(demo_store: Path, tmp_path: Path) -> None:
    """ZeRO-3: every forward is collective, so evaluation must run as many forwards on every rank even
    when the split does not divide evenly; every rank writes its own model states."""
    result = _train(demo_store, tmp_path, "zero3", 2, 2, "train.zero_stage=3")
    files = {str(p.relative_to(result.checkpoint_dir)) for p in result.checkpoint_dir.rglob("*") if p.is_file()}
    assert files == expected_files(step=2, world_size=2, zero_stage=3)
    assert "test/all/auc" in result.metrics and "valid/all/fmax" in result.metrics
    assert _weights(result)["head.linear.weight"].numel() > 100_000  # gathered, not a rank's empty shard
