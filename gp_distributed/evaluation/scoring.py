"""The one scoring path: per-bin Fmax / AUC / AUPR / Smin of scores against a store's labels, as
training-time evaluation, `gp evaluate` and `gp baseline` report them; and the JSON report writer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from gp_distributed.data.store import GeneStore
from gp_distributed.evaluation.metrics import evaluate_by_bin, information_content


def score_genes(store: GeneStore, gene_indices: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """The per-bin metrics of `scores` (rows = `gene_indices`) against the store's labels; information
    content from the training split."""
    train_labels = store.multi_hot("labels", store.split_indices("train"))
    return evaluate_by_bin(
        store.multi_hot("labels", gene_indices), scores, store.label_bins, store.bin_labels,
        information_content=information_content(train_labels, store.label_parents), parents=store.label_parents,
    )


def score_split(store: GeneStore, split: str, scores: np.ndarray) -> dict[str, Any]:
    """`score_genes` for every gene of `split`, in store order."""
    return score_genes(store, store.split_indices(split), scores)


def flatten_results(results: dict[str, Any], prefix: str) -> dict[str, float]:
    """{"all": {"fmax": ..}, "11-30": {...}} -> {"valid/all/fmax": ..}: a split's metrics as the training
    loop reports and logs them."""
    return {f"{prefix}/{subset}/{name}": float(value) for subset, values in results.items() for name, value in values.items()}


def write_report(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, sort_keys=True, default=float))
