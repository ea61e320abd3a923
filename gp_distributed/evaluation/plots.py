"""Report plots as PNG files (matplotlib, headless Agg backend). Each function writes one figure to `path`
and returns `path`; none keeps a figure open or touches global pyplot state beyond its own figure.

- `plot_bin_metrics`: Fmax and AUC per frequency bin, one bar per model (GenePheno against baselines);
- `plot_precision_recall`: micro-averaged precision-recall curves over (gene, term) pairs, the curve
  behind the AUPR metric, one per model;
- `plot_concept_heatmap`: concept -> phenotype head weights for chosen terms and their strongest concepts;
- `plot_training_curves`: one panel per logged metric against the optimizer step.

Figures are built with matplotlib's object API (`Figure`, rendered by Agg on save): no pyplot, no
backend switch, no global state, so importing this module changes nothing for the caller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, precision_recall_curve

from gp_distributed.evaluation.metrics import propagate_max

BinResults = Mapping[str, Mapping[str, float]]  # evaluate_by_bin output: subset -> metric -> value
DEFAULT_CURVE_KEYS = ("loss", "loss_mlc", "loss_exclusive", "loss_concept", "learning_rate", "genes_per_second",
                      "tokens_per_second", "valid/all/fmax", "valid/all/auc")
_DPI = 120


def _save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=_DPI, bbox_inches="tight")
    return path


def plot_bin_metrics(results_by_model: Mapping[str, BinResults], path: Path,
                     metrics: Sequence[str] = ("fmax", "auc")) -> Path:
    """Grouped bars: for each metric a panel, x = subsets ("all" then the bins, in the first model's
    order), one bar per model, values in percent."""
    if not results_by_model:
        raise ValueError("no results to plot")
    models = list(results_by_model)
    subsets = list(next(iter(results_by_model.values())))
    figure = Figure(figsize=(5 * len(metrics), 3.6))
    axes = figure.subplots(1, len(metrics), squeeze=False)
    width = 0.8 / len(models)
    positions = np.arange(len(subsets))
    for axis, metric in zip(axes[0], metrics):
        for k, model in enumerate(models):
            values = [100 * float(results_by_model[model].get(s, {}).get(metric, np.nan)) for s in subsets]
            axis.bar(positions + (k - (len(models) - 1) / 2) * width, values, width, label=model)
        axis.set_xticks(positions, subsets)
        axis.set_xlabel("terms (genes per term)")
        axis.set_ylabel(f"{metric} %")
        axis.set_title(metric)
    axes[0][0].legend(fontsize="small")
    return _save(figure, path)


def plot_precision_recall(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path,
                          parents: Sequence[Sequence[int]] | None = None) -> Path:
    """One micro-averaged PR curve per model from (y_true (N, C) binary, y_score (N, C)); with `parents`
    both are first propagated to ancestors by max, as `metrics.evaluate_by_bin` does, so the legend's
    AUPR (average precision) is the reported "all" AUPR."""
    figure = Figure(figsize=(4.8, 4.2))
    axis = figure.subplots()
    for model, (y_true, y_score) in curves.items():
        if parents is not None:
            y_true, y_score = propagate_max(np.asarray(y_true), parents), propagate_max(np.asarray(y_score), parents)
        labels, scores = np.asarray(y_true).astype(bool).ravel(), np.asarray(y_score, dtype=np.float64).ravel()
        if not labels.any():
            continue
        precision, recall, _ = precision_recall_curve(labels, scores)
        axis.plot(recall, precision, label=f"{model} (AUPR {100 * average_precision_score(labels, scores):.1f}%)")
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.02)
    axis.legend(fontsize="small")
    return _save(figure, path)


def strongest_concepts(association: np.ndarray, term_indices: Sequence[int], top_concepts: int) -> np.ndarray:
    """Indices of the `top_concepts` concepts with the largest |weight| over the columns `term_indices`
    of the head weights (n, C), strongest first (ties: lower index first)."""
    block = np.asarray(association)[:, np.asarray(term_indices, dtype=np.int64)]  # (n, T)
    return np.argsort(-np.abs(block).max(axis=1), kind="stable")[:top_concepts]


def plot_concept_heatmap(association: np.ndarray, concept_ids: Sequence[str], concept_names: Sequence[str],
                         term_names: Sequence[str], term_indices: Sequence[int], path: Path,
                         top_concepts: int = 20) -> Path:
    """Head weights w (n, C) restricted to `term_indices` (columns) and the `top_concepts` concepts with
    the largest absolute weight over them (rows); a diverging colour scale centred at 0."""
    terms = np.asarray(term_indices, dtype=np.int64)
    if terms.size == 0:
        raise ValueError("no terms to plot")
    rows = strongest_concepts(association, terms, top_concepts)
    block = np.asarray(association)[np.ix_(rows, terms)]  # (rows, T)
    limit = float(np.abs(block).max()) or 1.0
    figure = Figure(figsize=(1.2 + 0.28 * len(terms), 1.5 + 0.28 * len(rows)))
    axis = figure.subplots()
    image = axis.imshow(block, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    labels = [f"{concept_ids[i]} {concept_names[i] if concept_names else ''}".strip()[:50] for i in rows]
    axis.set_yticks(range(len(rows)), labels, fontsize=7)
    axis.set_xticks(range(len(terms)), [term_names[j][:40] for j in terms], rotation=90, fontsize=7)
    figure.colorbar(image, ax=axis, label="head weight (concept -> phenotype)")
    return _save(figure, path)


def plot_training_curves(history: Sequence[Mapping[str, float]], path: Path,
                         keys: Sequence[str] = DEFAULT_CURVE_KEYS) -> Path:
    """One panel per key present in `history` (dicts with "step" and metric values), value vs step."""
    present = [key for key in keys if any(key in row for row in history)]
    if not present:
        raise ValueError(f"none of {list(keys)} in the history")
    columns = min(3, len(present))
    n_rows = -(-len(present) // columns)
    figure = Figure(figsize=(4 * columns, 2.8 * n_rows))
    axes = figure.subplots(n_rows, columns, squeeze=False)
    for axis, key in zip(axes.ravel(), present):
        points = [(row["step"], row[key]) for row in history if key in row]
        axis.plot(*zip(*points), marker="." if len(points) < 50 else None)
        axis.set_title(key, fontsize="small")
        axis.set_xlabel("step")
    for axis in axes.ravel()[len(present):]:
        axis.set_visible(False)
    figure.tight_layout()
    return _save(figure, path)
