"""`gp evaluate`: score a checkpoint on a store split, or a trained model on files it has never seen
(`--new-data`, mapped onto the model's vocabularies by `inference.new_data`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gp_distributed.commands.model_source import load_predictor
from gp_distributed.data.store import open_store
from gp_distributed.evaluation.plots import plot_bin_metrics, plot_precision_recall
from gp_distributed.evaluation.scoring import score_split, write_report
from gp_distributed.inference.new_data import (
    LabelInputs,
    NewDataEvaluation,
    evaluate_new_data,
    new_data_report,
)
from gp_distributed.inference.new_genes import GeneInputs
from gp_distributed.inference.package import Predictor


def evaluate_checkpoint(checkpoint_dir: Path, store_path: Path, split: str, *, show_progress: bool = True) -> dict[str, Any]:
    """Per-bin metrics of a checkpoint on a split of `store_path` (the one prediction and scoring path)."""
    store = open_store(store_path)
    predictor = Predictor.from_checkpoint(checkpoint_dir, store_path)
    scored = predictor.predict_store(store, store.split_indices(split), show_progress=show_progress)
    return score_split(store, split, scored.probabilities)


def run_new_data_evaluation(model: str, inputs: GeneInputs, labels: LabelInputs, *, store: Path | None = None,
                            tracking_uri: str | None = None, report: Path | None = None,
                            plots_dir: Path | None = None, batch_size: int | None = None,
                            show_progress: bool = True) -> NewDataEvaluation:
    """`gp evaluate --new-data`: load `model` (any form `model_source.load_predictor` takes), evaluate, and
    write the JSON report and `bin_metrics.png` + `precision_recall.png` when asked."""
    predictor = load_predictor(model, store=store, tracking_uri=tracking_uri)
    evaluation = evaluate_new_data(predictor, inputs, labels, batch_size=batch_size, show_progress=show_progress)
    if report is not None:
        write_report(report, new_data_report(evaluation, model, inputs, labels))
    if plots_dir is not None:
        plot_bin_metrics({"model": evaluation.results}, Path(plots_dir) / "bin_metrics.png")
        plot_precision_recall({"model": (evaluation.y_true, evaluation.y_score)}, Path(plots_dir) / "precision_recall.png",
                              parents=predictor.vocabularies.label_parents)
    return evaluation
