"""`gp train`: train (or resume) a run, then, with tracking on, write the report of its final checkpoint
with plots, log it and the pyfunc model to the run, and register the model (registry policy in
`tracking.registry`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gp_distributed.checkpoint import (
    best_complete_checkpoint,
    check_resume,
    latest_complete_checkpoint,
    read_meta,
    resume_notice,
    run_directory,
)
from gp_distributed.commands.evaluate import evaluate_checkpoint
from gp_distributed.config import GPConfig, TrackingConfig, is_storage_uri
from gp_distributed.data.store import open_store
from gp_distributed.errors import GpError
from gp_distributed.evaluation.baselines import store_baseline_scores
from gp_distributed.evaluation.plots import (
    DEFAULT_CURVE_KEYS,
    plot_bin_metrics,
    plot_concept_heatmap,
    plot_precision_recall,
    plot_training_curves,
)
from gp_distributed.evaluation.scoring import flatten_results, score_split, write_report
from gp_distributed.inference.package import Predictor
from gp_distributed.model.validate import validate_training_backbone
from gp_distributed.tracking.registry import (
    CANDIDATE_ALIAS,
    CHAMPION_ALIAS,
    LoggedModel,
    Registration,
    log_model,
    register_model,
)
from gp_distributed.tracking.tracker import (
    MlflowTracker,
    metric_history,
    metric_key,
    resolve_tracking_uri,
)
from gp_distributed.train.launcher import ensure_store, launch_training, resolve_paths


@dataclass(frozen=True)
class TrainingReport:
    results: dict[str, dict[str, dict[str, float]]]  # model name ("genepheno", baselines) -> evaluate_by_bin
    files: list[Path]  # report.json and the PNGs, in `out_dir`


def write_training_report(checkpoint_dir: Path, store_path: Path, out_dir: Path, *, split: str = "test",
                          history: Sequence[Mapping[str, float]] = (), baselines: Sequence[str] = ("naive",),
                          heatmap_terms: int = 30) -> TrainingReport:
    """The end-of-training report in `out_dir`: `report.json` (per-bin metrics of the checkpoint and
    the `baselines` on `split`), `bin_metrics.png`, `precision_recall.png`, `concept_heatmap.png` (the
    `heatmap_terms` most frequent training terms) and, given a metric `history`, `training_curves.png`.
    The checkpoint is scored by `inference.package.Predictor`, as `gp evaluate` scores it."""
    store = open_store(store_path)
    predictor = Predictor.from_checkpoint(checkpoint_dir, store_path)
    target = store.split_indices(split)
    scores = {"genepheno": predictor.predict_store(store, target).probabilities}
    for name in baselines:
        scores[name] = store_baseline_scores(name, store, split)
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


@dataclass(frozen=True)
class FinishedRun:
    tracking_uri: str
    run_id: str
    model: LoggedModel
    registration: Registration
    report: TrainingReport

    def summary_lines(self) -> list[str]:
        """What to print at the end of training: the run, the registered version, the next commands."""
        r = self.registration
        return [
            f"MLflow run {self.run_id} in {self.tracking_uri}; model {self.model.run_uri}",
            f"registered {r.name} version {r.version} as @{CANDIDATE_ALIAS}; @{CHAMPION_ALIAS} is version "
            f"{r.champion_version}" + (" (promoted)" if r.promoted else ""),
            f"use it: gp predict --model models:/{r.name}@{CANDIDATE_ALIAS} --fasta genes.fasta --out predictions.tsv",
            f"look at it: mlflow ui --backend-store-uri {self.tracking_uri} --host 127.0.0.1",
        ]


def finish_training_run(tracking: TrackingConfig, run_id: str, checkpoint_dir: Path, store_path: Path,
                        report_dir: Path, *, baselines: tuple[str, ...] = ("naive",)) -> FinishedRun:
    """After training, on the driver: write the report and plots of the final checkpoint, log them under
    `report/` of run `run_id`, log the pyfunc model, and register it under `tracking.registered_model_name`."""
    uri = resolve_tracking_uri(tracking.tracking_uri, Path.cwd())
    history = metric_history(uri, run_id, [metric_key(key) for key in DEFAULT_CURVE_KEYS])
    report = write_training_report(checkpoint_dir, store_path, report_dir, history=history, baselines=baselines)
    tracker = MlflowTracker.attach(uri, run_id)
    for path in report.files:
        tracker.log_artifact(path, "report")
    for name, results in report.results.items():
        if name != "genepheno":
            tracker.log_metrics({f"baseline/{name}/{subset}/{metric}": value for subset, row in results.items()
                                 for metric, value in row.items()}, step=0)
    model = log_model(uri, run_id, checkpoint_dir, open_store(store_path))
    registration = register_model(uri, model, tracking.registered_model_name, run_id)
    return FinishedRun(uri, run_id, model, registration, report)


@dataclass(frozen=True)
class TrainingResult:
    run_dir: Path | str  # a directory, or the run's object store URI
    metrics: dict[str, Any]
    checkpoint_dir: Path | None
    finished: FinishedRun | None  # the MLflow run, logged model and registration (tracking on)
    model_dir: Path | None = None  # the checkpoint the run ships: the last, or the best (train.select_best)
    model_metrics: dict[str, Any] = field(default_factory=dict)  # its valid/test metrics


def run_training(config: GPConfig) -> TrainingResult:
    """Train (or resume) the configured run; then, with tracking on, report, log and register the model."""
    config = resolve_paths(config)
    check_resume_contract(config)
    # Before Ray starts: a backbone that cannot load, a window past its positions or LoRA targets that
    # match nothing fail here in one line, not after workers retried for minutes.
    checked = validate_training_backbone(config)
    print(checked.summary())
    for warning in checked.warnings:
        print(f"warning: {warning}")
    launched = launch_training(config)
    model_dir, model_metrics = _shipped_model(config, launched.run_dir, launched.checkpoint_dir, launched.metrics)
    finished = None
    if config.tracking.enabled and model_dir is not None:
        run_id = read_meta(model_dir).tracking_run_id
        if run_id is not None:
            finished = _finish_or_explain(config, run_id, model_dir, launched.run_dir)
    return TrainingResult(launched.run_dir, launched.metrics, launched.checkpoint_dir, finished, model_dir,
                          model_metrics)


def _shipped_model(config: GPConfig, run_dir: Path, last: Path | None,
                   metrics: dict[str, Any]) -> tuple[Path | None, dict[str, Any]]:
    """The checkpoint the run ships and its valid/test metrics: the last one (scored by the training
    loop), or with `train.select_best` the one with the best validation Fmax, scored here."""
    if not config.train.select_best or last is None or is_storage_uri(config.train.storage_path):
        return last, metrics
    best = best_complete_checkpoint(run_dir)
    if best is None or best == last:
        return last, metrics
    meta = read_meta(best)
    print(f"model: {best.name} (best validation Fmax {meta.valid_fmax:.4f}; the last checkpoint is {last.name})")
    scored = {"step": meta.step}
    for split in ("valid", "test") if config.train.test_at_end else ("valid",):
        results = evaluate_checkpoint(best, config.data.store, split, show_progress=False)
        scored.update(flatten_results(results, split))
    return best, scored


def check_resume_contract(config: GPConfig) -> None:
    """When the run directory holds a complete checkpoint, the resume contract (`checkpoint.check_resume`)
    before anything is converted, loaded or started: one-line GpError for a forbidden change, a printed
    notice for allowed ones. `config` has its paths resolved. A run in object storage is not checked here
    (its checkpoints are not on this file system; Ray Train restores them on the workers)."""
    if is_storage_uri(config.train.storage_path):
        return
    checkpoint = latest_complete_checkpoint(run_directory(config.train.storage_path, config.train.run_name))
    if checkpoint is None:
        return
    ensure_store(config)
    changes = check_resume(checkpoint, config, open_store(config.data.store).fingerprint)
    if changes:
        print(resume_notice(checkpoint, changes), flush=True)


def _finish_or_explain(config: GPConfig, run_id: str, checkpoint: Path, run_dir: Path | str) -> FinishedRun:
    """Report, log and register; when MLflow is unavailable, one line that says training itself is safe.
    The report goes to the run directory, or, for a run in object storage, beside the final checkpoint's
    local copy (its files are in the MLflow run's artifacts either way)."""
    report_dir = run_dir / "report" if isinstance(run_dir, Path) else checkpoint.parent / "report"
    try:
        return finish_training_run(config.tracking, run_id, checkpoint, config.data.store, report_dir)
    except GpError:
        raise
    except Exception as error:  # the tracking backend failing, whatever its client raises
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise GpError(f"training finished ({checkpoint}) but MLflow at "
                      f"{resolve_tracking_uri(config.tracking.tracking_uri, Path.cwd())} failed while logging and "
                      f"registering the model ({message}); run the same command again once it answers") from None
