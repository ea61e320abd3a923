"""Report plots as PNG files (matplotlib, headless Agg backend). Each function writes one figure to `path`
and returns `path`; none keeps a figure open or touches global pyplot state beyond its own figure.

- `plot_bin_metrics`: Fmax and AUC per frequency bin, one bar per model (GenePheno against baselines);
- `plot_precision_recall`: micro-averaged precision-recall curves over (gene, term) pairs, the curve
  behind the AUPR metric, one per model;
- `plot_concept_heatmap`: concept -> phenotype head weights for chosen terms and their strongest concepts;
- `plot_training_curves`: one panel per logged metric against the optimizer step;
- `write_training_report`: all of them for a checkpoint, with its per-bin metrics against baselines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # headless: workers and CI have no display

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve

from gp_distributed.metrics import propagate_max

if TYPE_CHECKING:
    from gp_distributed.data.store import GeneStore

BinResults = Mapping[str, Mapping[str, float]]  # evaluate_by_bin output: subset -> metric -> value
DEFAULT_CURVE_KEYS = ("loss", "loss_mlc", "loss_exclusive", "loss_concept", "learning_rate", "genes_per_second",
                      "tokens_per_second", "valid/all/fmax", "valid/all/auc")
_DPI = 120


def _save(figure: plt.Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=_DPI, bbox_inches="tight")
    plt.close(figure)
    return path


def plot_bin_metrics(results_by_model: Mapping[str, BinResults], path: Path,
                     metrics: Sequence[str] = ("fmax", "auc")) -> Path:
    """Grouped bars: for each metric a panel, x = subsets ("all" then the bins, in the first model's
    order), one bar per model, values in percent."""
    if not results_by_model:
        raise ValueError("no results to plot")
    models = list(results_by_model)
    subsets = list(next(iter(results_by_model.values())))
    figure, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
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
    figure, axis = plt.subplots(figsize=(4.8, 4.2))
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
    figure, axis = plt.subplots(figsize=(1.2 + 0.28 * len(terms), 1.5 + 0.28 * len(rows)))
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
    figure, axes = plt.subplots(n_rows, columns, figsize=(4 * columns, 2.8 * n_rows), squeeze=False)
    for axis, key in zip(axes.ravel(), present):
        points = [(row["step"], row[key]) for row in history if key in row]
        axis.plot(*zip(*points), marker="." if len(points) < 50 else None)
        axis.set_title(key, fontsize="small")
        axis.set_xlabel("step")
    for axis in axes.ravel()[len(present):]:
        axis.set_visible(False)
    figure.tight_layout()
    return _save(figure, path)


@dataclass(frozen=True)
class TrainingReport:
    results: dict[str, dict[str, dict[str, float]]]  # model name ("genepheno", baselines) -> evaluate_by_bin
    files: list[Path]  # report.json and the PNGs, in `out_dir`


def _split_sequences(store: GeneStore, indices: np.ndarray) -> list[bytes]:
    return [r.sequence for r in store.read_block(int(indices[0]), int(indices[-1]) + 1)] if len(indices) else []


def write_training_report(checkpoint_dir: Path, store_path: Path, out_dir: Path, *, split: str = "test",
                          history: Sequence[Mapping[str, float]] = (), baselines: Sequence[str] = ("naive",),
                          heatmap_terms: int = 30) -> TrainingReport:
    """The end-of-training report in `out_dir`: `report.json` (per-bin metrics of the checkpoint and
    the `baselines` on `split`), `bin_metrics.png`, `precision_recall.png`, `concept_heatmap.png` (the
    `heatmap_terms` most frequent training terms) and, given a metric `history`, `training_curves.png`.
    The checkpoint is scored by `model_package.Predictor` (no DeepSpeed), as `gp evaluate` scores it."""
    from gp_distributed.baselines import run_baseline
    from gp_distributed.data.store import open_store
    from gp_distributed.evaluation import score_split, write_report
    from gp_distributed.model_package import Predictor

    store = open_store(store_path)
    predictor = Predictor.from_checkpoint(checkpoint_dir, store_path)
    target, train = store.split_indices(split), store.split_indices("train")
    scores = {"genepheno": predictor.predict_store(store, target)[0]}
    train_labels = store.multi_hot("labels", train)
    for name in baselines:
        params = {} if name == "naive" else {"alphabet": store.alphabet}
        scores[name] = run_baseline(name, _split_sequences(store, train), train_labels,
                                    _split_sequences(store, target), **params)
    results = {name: score_split(store, split, model_scores) for name, model_scores in scores.items()}
    out_dir = Path(out_dir)
    y_true = store.multi_hot("labels", target)
    vocab = predictor.vocabularies
    frequent = np.argsort(-np.asarray(vocab.label_n_genes), kind="stable")[:heatmap_terms]
    files = [
        plot_bin_metrics(results, out_dir / "bin_metrics.png"),
        plot_precision_recall({name: (y_true, s) for name, s in scores.items()}, out_dir / "precision_recall.png",
                              parents=vocab.label_parents),
        plot_concept_heatmap(predictor.association_matrix(), vocab.concept_ids, vocab.concept_names,
                             vocab.label_names, frequent, out_dir / "concept_heatmap.png"),
    ]
    if any(len(row) > 1 for row in history):
        files.append(plot_training_curves(history, out_dir / "training_curves.png"))
    write_report(out_dir / "report.json", {"checkpoint": str(checkpoint_dir), "split": split, "results": results})
    return TrainingReport(results, [out_dir / "report.json", *files])
