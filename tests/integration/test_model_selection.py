"""`train.select_best` and `train.early_stopping_patience` through the real in-process loop."""

from pathlib import Path

import pytest

from gp_distributed.checkpoint import best_complete_checkpoint, is_complete, read_meta
from gp_distributed.commands.train import run_training
from gp_distributed.config import load_config
from gp_distributed.errors import ConfigError

from ..conftest import tiny_training_overrides

pytestmark = pytest.mark.integration


def _overrides(store: Path, storage: Path, *extra: str) -> list[str]:
    return [*tiny_training_overrides(store, storage, "select", 12), "scaling.num_workers=0",
            "train.eval_every=2", "train.ckpt_every=2", "train.keep_last_checkpoints=1",
            "train.select_best=true", "train.learning_rate=3e-2", *extra]


def test_the_shipped_model_is_the_best_validation_checkpoint_and_early_stopping_sticks(
        demo_store: Path, tmp_path: Path) -> None:
    result = run_training(load_config(None, _overrides(demo_store, tmp_path, "train.early_stopping_patience=2")))
    checkpoints = sorted(result.run_dir.glob("checkpoint_*"))
    assert all(is_complete(c) for c in checkpoints)
    scores = {c: read_meta(c).valid_fmax for c in checkpoints}
    assert all(score is not None for score in scores.values())  # every checkpoint followed an evaluation
    assert result.model_dir == best_complete_checkpoint(result.run_dir) == max(scores, key=lambda c: (scores[c], c.name))
    assert result.checkpoint_dir in checkpoints  # the last one is kept besides the best
    last_step = read_meta(result.checkpoint_dir).step
    stopped = last_step < 12
    if result.model_dir != result.checkpoint_dir:  # the shipped metrics are the best checkpoint's own
        assert result.model_metrics["valid/all/fmax"] == pytest.approx(scores[result.model_dir], abs=1e-9)
    # Running the same command again resumes at the end: an early-stopped run stays stopped.
    again = run_training(load_config(None, _overrides(demo_store, tmp_path, "train.early_stopping_patience=2")))
    assert read_meta(again.checkpoint_dir).step == last_step
    assert stopped or last_step == 12


def test_select_best_needs_a_score_at_every_checkpoint() -> None:
    with pytest.raises(ConfigError, match="train.ckpt_every"):
        load_config(None, ["train.select_best=true", "train.eval_every=3", "train.ckpt_every=4"])
