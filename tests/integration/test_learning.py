"""Learning for real: the tiny protein preset with the GO branch, trained on the real demo genes,
beats the naive (training-frequency) baseline's macro AUC on held-out (validation) genes."""

from pathlib import Path

import pytest

from gp_distributed.commands.baseline import evaluate_baseline
from gp_distributed.commands.train import run_training
from gp_distributed.config import load_config

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_demo_model_beats_the_naive_baseline(demo_store: Path, tmp_path: Path) -> None:
    # The demo experiment as shipped, in-process (world size 1) instead of 2 Ray workers.
    config = load_config(REPO / "configs" / "demo.yaml", [
        f"data.store={demo_store}", f"train.storage_path={tmp_path}", "scaling.num_workers=0",
        "train.eval_every=300", "train.ckpt_every=300", "tracking.enabled=false",
    ])
    result = run_training(config)
    naive = evaluate_baseline("naive", demo_store, "valid")
    assert naive["all"]["auc"] == pytest.approx(0.5)  # constant scores rank nothing
    assert result.metrics["valid/all/auc"] >= naive["all"]["auc"] + 0.03, result.metrics["valid/all/auc"]
