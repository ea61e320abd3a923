"""`gp baseline`: the baselines fitted on a store's training split and scored on another split, in the
same per-bin table as the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gp_distributed.data.store import open_store
from gp_distributed.evaluation.baselines import store_baseline_scores
from gp_distributed.evaluation.scoring import score_split


def evaluate_baseline(name: str, store_path: Path, split: str) -> dict[str, Any]:
    store = open_store(store_path)
    return score_split(store, split, store_baseline_scores(name, store, split))
