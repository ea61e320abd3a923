"""Evaluation metrics of GenePheno (DESIGN.md section 1): gene-centric Fmax and Smin (CAFA), micro AUPR,
phenotype-centric macro ROC-AUC, overall and per term-frequency bin.

Conventions: N genes, C terms; `y_true` is binary (N, C); `y_score` holds probabilities in [0, 1]
(sigmoid of the logits), (N, C). The ontology is given as `parents`: for each term index, the indices of
its direct parents within the same vocabulary (the store's `label_parents`). All functions are pure
numpy, vectorised over genes and thresholds (the only Python loops run over terms or ontology edges).

Fmax and Smin follow the CAFA rules as implemented by `cafaeval` 1.3.0, which the tests check exactly
through `gp_distributed.evaluation.cafa_format`: a term is predicted at threshold t when its score is >= t;
with `parents`, labels and scores are first propagated to ancestors by max; genes without any true
term are not evaluated; precision is averaged over evaluated genes with >= 1 predicted term, recall,
remaining uncertainty and misinformation over all evaluated genes; thresholds at which no evaluated
gene has a predicted term are skipped (cafaeval drops them as "no coverage"). One difference remains on
purpose: our default grid is 0.00, 0.01, ..., 1.00 (DESIGN.md, as in the CAFA papers), cafaeval's is
`np.arange(0.01, 1, 0.01)`; pass `thresholds=CAFAEVAL_THRESHOLDS` to reproduce cafaeval to the last bit.
"""

from __future__ import annotations

import graphlib
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score

DEFAULT_THRESHOLDS = np.round(np.arange(0.0, 1.01, 0.01), 2)  # 0.00, 0.01, ..., 1.00
CAFAEVAL_THRESHOLDS = np.arange(0.01, 1, 0.01)  # cafaeval 1.3.0 with th_step=0.01, float steps as it has them

Parents = Sequence[Sequence[int]]


class FmaxResult(NamedTuple):
    fmax: float
    threshold: float  # the lowest threshold reaching fmax; NaN when no threshold has a prediction
    precision: float
    recall: float


class SminResult(NamedTuple):
    smin: float  # bits, like the information content
    threshold: float
    remaining_uncertainty: float
    misinformation: float


def _checked_pair(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(y_true).astype(bool)
    scores = np.asarray(y_score, dtype=np.float64)
    if labels.ndim != 2 or labels.shape != scores.shape:
        raise ValueError(f"y_true {labels.shape} and y_score {scores.shape} must be the same (N, C) shape")
    if np.isnan(scores).any():
        raise ValueError("y_score contains NaN")
    return labels, scores


def _checked_thresholds(thresholds: np.ndarray) -> np.ndarray:
    grid = np.asarray(thresholds, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or (np.diff(grid) <= 0).any():
        raise ValueError("thresholds must be a non-empty, strictly increasing 1-D array")
    return grid


def children_first_order(parents: Parents) -> list[int]:
    """Term indices ordered so that every term comes after all of its descendants.

    Raises ValueError on an out-of-range parent index or a cycle.
    """
    n_terms = len(parents)
    for term, term_parents in enumerate(parents):
        if any(not 0 <= parent < n_terms for parent in term_parents):
            raise ValueError(f"term {term} has a parent index outside [0, {n_terms})")
    sorter = graphlib.TopologicalSorter({term: tuple(term_parents) for term, term_parents in enumerate(parents)})
    try:
        parents_first = list(sorter.static_order())
    except graphlib.CycleError as error:
        raise ValueError(f"the parent lists contain a cycle through terms {error.args[1]}") from None
    return parents_first[::-1]


def propagate_max(matrix: np.ndarray, parents: Parents) -> np.ndarray:
    """(N, C) -> (N, C) copy where each term holds the max over itself and all its descendants.

    For binary labels this is the true-path rule; for scores it is CAFA's "max" propagation. Idempotent.
    """
    values = np.asarray(matrix)
    if values.ndim != 2 or values.shape[1] != len(parents):
        raise ValueError(f"matrix {values.shape} must have one column per term ({len(parents)})")
    by_term = values.T.copy()  # (C, N): each term's genes contiguous
    for term in children_first_order(parents):
        for parent in parents[term]:
            np.maximum(by_term[parent], by_term[term], out=by_term[parent])
    return by_term.T


def _threshold_levels(scores: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """(N, C) int: how many thresholds each score reaches; score >= grid[m] <=> level > m."""
    return np.searchsorted(grid, scores, side="right")


def _per_gene_counts(levels: np.ndarray, weights: np.ndarray | None, n_thresholds: int) -> np.ndarray:
    """(N, T): per gene, sum of `weights` (default 1) over terms with score >= each threshold."""
    n_genes = levels.shape[0]
    flat = (levels + (n_thresholds + 1) * np.arange(n_genes)[:, None]).ravel()
    flat_weights = None if weights is None else np.broadcast_to(weights, levels.shape).ravel().astype(np.float64)
    histogram = np.bincount(flat, weights=flat_weights, minlength=n_genes * (n_thresholds + 1))
    at_least = histogram.reshape(n_genes, n_thresholds + 1)[:, ::-1].cumsum(axis=1)[:, ::-1]
    return at_least[:, 1:]


def _evaluated(
    y_true: np.ndarray, y_score: np.ndarray, parents: Parents | None
) -> tuple[np.ndarray, np.ndarray]:
    labels, scores = _checked_pair(y_true, y_score)
    if parents is not None:
        labels, scores = propagate_max(labels, parents), propagate_max(scores, parents)
    has_truth = labels.any(axis=1)  # CAFA: genes without any true term are not evaluated
    return labels[has_truth], scores[has_truth]


def fmax(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    thresholds: np.ndarray = DEFAULT_THRESHOLDS,
    parents: Parents | None = None,
) -> FmaxResult:
    """CAFA protein-centric Fmax = max_t 2 p(t) r(t) / (p(t) + r(t)).

    p(t): mean over evaluated genes with >= 1 term scored >= t of |predicted & true| / |predicted|;
    r(t): mean over evaluated genes (>= 1 true term) of |predicted & true| / |true|. All NaN when no gene
    has a true term.
    """
    labels, scores = _evaluated(y_true, y_score, parents)
    grid = _checked_thresholds(thresholds)
    if labels.shape[0] == 0:
        return FmaxResult(float("nan"), float("nan"), float("nan"), float("nan"))
    levels = _threshold_levels(scores, grid)
    n_predicted = _per_gene_counts(levels, None, grid.size)  # (G, T)
    n_correct = _per_gene_counts(levels, labels, grid.size)
    n_true = labels.sum(axis=1, keepdims=True)  # (G, 1), >= 1
    covered = n_predicted > 0
    gene_precision = np.divide(n_correct, n_predicted, out=np.zeros_like(n_correct), where=covered)
    precision = gene_precision.sum(axis=0) / np.maximum(covered.sum(axis=0), 1)  # (T,)
    recall = (n_correct / n_true).mean(axis=0)
    denominator = precision + recall
    f = np.divide(2 * precision * recall, denominator, out=np.zeros_like(precision), where=denominator > 0)
    f[~covered.any(axis=0)] = -np.inf  # thresholds without any prediction are not candidates
    best = int(np.argmax(f))
    if not np.isfinite(f[best]):
        return FmaxResult(0.0, float("nan"), 0.0, 0.0)
    return FmaxResult(float(f[best]), float(grid[best]), float(precision[best]), float(recall[best]))


def smin(
    y_true: np.ndarray,
    y_score: np.ndarray,
    information_content: np.ndarray,
    *,
    thresholds: np.ndarray = DEFAULT_THRESHOLDS,
    parents: Parents | None = None,
) -> SminResult:
    """CAFA Smin = min_t sqrt(ru(t)^2 + mi(t)^2), in bits.

    ru(t) (remaining uncertainty): mean over evaluated genes of the summed information content of true
    terms scored < t; mi(t) (misinformation): of predicted terms (score >= t) that are not true.
    information_content: (C,) bits, e.g. from `information_content(train_labels, parents)`.
    """
    labels, scores = _evaluated(y_true, y_score, parents)
    grid = _checked_thresholds(thresholds)
    ic = np.asarray(information_content, dtype=np.float64)
    if ic.shape != (labels.shape[1],):
        raise ValueError(f"information_content {ic.shape} must have one value per term ({labels.shape[1]})")
    if labels.shape[0] == 0:
        return SminResult(float("nan"), float("nan"), float("nan"), float("nan"))
    levels = _threshold_levels(scores, grid)
    weights = np.broadcast_to(ic, levels.shape)
    # Totals over all genes suffice here: ru and mi are plain means over the evaluated genes.
    predicted_ic = np.bincount(levels.ravel(), weights=weights.ravel(), minlength=grid.size + 1)
    correct_ic = np.bincount(levels[labels], weights=weights[labels], minlength=grid.size + 1)
    predicted_ic = predicted_ic[::-1].cumsum()[::-1][1:]  # (T,): IC of terms scored >= grid[m]
    correct_ic = correct_ic[::-1].cumsum()[::-1][1:]
    n_genes = labels.shape[0]
    remaining = (weights[labels].sum() - correct_ic) / n_genes
    misinformation = (predicted_ic - correct_ic) / n_genes
    s = np.sqrt(remaining**2 + misinformation**2)
    s[np.arange(grid.size) >= levels.max()] = np.inf  # no evaluated gene has a prediction there
    best = int(np.argmin(s))
    if not np.isfinite(s[best]):
        return SminResult(float("nan"), float("nan"), float("nan"), float("nan"))
    return SminResult(float(s[best]), float(grid[best]), float(remaining[best]), float(misinformation[best]))


def information_content(train_labels: np.ndarray, parents: Parents) -> np.ndarray:
    """(N, C) training labels -> (C,) IC(t) = -log2 P(t | all parents of t), in bits (CAFA's IA).

    Labels are propagated first, so P(t | parents) = #genes with t / #genes with all parents of t;
    terms without parents use #genes with t / N. A term never annotated in training gets 0, as
    cafaeval does for infinite values (it then weighs nothing in Smin).
    """
    labels = propagate_max(np.asarray(train_labels).astype(bool), parents)
    term_counts = labels.sum(axis=0)
    ic = np.zeros(labels.shape[1])
    for term, term_parents in enumerate(parents):
        if term_counts[term] == 0:
            continue
        with_parents = labels[:, list(term_parents)].all(axis=1).sum() if term_parents else labels.shape[0]
        ic[term] = -np.log2(term_counts[term] / with_parents)
    return ic


def per_term_auc(y_true: np.ndarray, y_score: np.ndarray) -> np.ndarray:
    """(C,) ROC-AUC of each term over all N genes; NaN where the term has one class only.

    Computed as the Mann-Whitney U statistic with average ranks for ties, which equals scikit-learn's
    roc_auc_score (tested) while being one vectorised sort instead of C calls (~10 ms each).
    """
    labels, scores = _checked_pair(y_true, y_score)
    n_positive = labels.sum(axis=0).astype(np.float64)
    n_negative = labels.shape[0] - n_positive
    ranks = rankdata(scores, method="average", axis=0)  # (N, C)
    positive_rank_sum = np.where(labels, ranks, 0.0).sum(axis=0)
    u_statistic = positive_rank_sum - n_positive * (n_positive + 1) / 2
    evaluable = (n_positive > 0) & (n_negative > 0)
    return np.divide(u_statistic, n_positive * n_negative, out=np.full(labels.shape[1], np.nan), where=evaluable)


def _mean_over_evaluable(aucs: np.ndarray) -> float:
    evaluable = ~np.isnan(aucs)
    return float(aucs[evaluable].mean()) if evaluable.any() else float("nan")


def macro_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Mean per-term ROC-AUC over terms with both classes among the N genes; NaN if there is none."""
    return _mean_over_evaluable(per_term_auc(y_true, y_score))


def aupr_micro(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Micro-averaged average precision over all (gene, term) pairs; NaN without any positive."""
    labels, scores = _checked_pair(y_true, y_score)
    if not labels.any():
        return float("nan")
    return float(average_precision_score(labels.ravel(), scores.ravel()))


def evaluate_by_bin(
    y_true: np.ndarray,
    y_score: np.ndarray,
    term_bins: np.ndarray,
    bin_labels: Sequence[str],
    *,
    information_content: np.ndarray | None = None,
    parents: Parents | None = None,
    thresholds: np.ndarray = DEFAULT_THRESHOLDS,
) -> dict[str, dict[str, float | int]]:
    """All metrics over all terms ("all") and over the terms of each frequency bin.

    term_bins: (C,) int, index into `bin_labels`, or -1 for a term in no bin (it counts in "all" only).
    With `parents`, labels and scores are propagated once over the whole vocabulary, then each subset
    keeps its term columns. Every subset's dict has: genes (evaluated by Fmax: >= 1 true term in the
    subset), terms, auc_terms (terms with both classes), fmax, fmax_threshold, precision, recall,
    auc, aupr, and smin, smin_threshold when `information_content` is given. AUC and AUPR use all N genes.
    """
    labels, scores = _checked_pair(y_true, y_score)
    bins = np.asarray(term_bins)
    if bins.shape != (labels.shape[1],) or bins.min(initial=0) < -1 or bins.max(initial=-1) >= len(bin_labels):
        raise ValueError(f"term_bins must be (C,) = ({labels.shape[1]},) with values in [-1, {len(bin_labels)})")
    if parents is not None:
        labels, scores = propagate_max(labels, parents), propagate_max(scores, parents)
    subsets = {"all": np.ones(labels.shape[1], dtype=bool)}
    subsets.update({label: bins == index for index, label in enumerate(bin_labels)})
    results: dict[str, dict[str, float | int]] = {}
    for name, columns in subsets.items():
        sub_labels, sub_scores = labels[:, columns], scores[:, columns]
        best_f = fmax(sub_labels, sub_scores, thresholds=thresholds)
        aucs = per_term_auc(sub_labels, sub_scores)
        row: dict[str, float | int] = {
            "genes": int(sub_labels.any(axis=1).sum()),
            "terms": int(columns.sum()),
            "auc_terms": int((~np.isnan(aucs)).sum()),
            "fmax": best_f.fmax,
            "fmax_threshold": best_f.threshold,
            "precision": best_f.precision,
            "recall": best_f.recall,
            "auc": _mean_over_evaluable(aucs),
            "aupr": aupr_micro(sub_labels, sub_scores),
        }
        if information_content is not None:
            sub_ic = np.asarray(information_content, dtype=np.float64)[columns]
            best_s = smin(sub_labels, sub_scores, sub_ic, thresholds=thresholds)
            row.update(smin=best_s.smin, smin_threshold=best_s.threshold)
        results[name] = row
    return results


def format_table(results: dict[str, dict[str, float | int]], *, label: str = "terms") -> str:
    """A fixed-width table of `evaluate_by_bin` results: one row per subset, Fmax/AUC/AUPR in percent;
    `label` heads the subset column."""
    with_smin = all("smin" in row for row in results.values())
    header = f"{label:>12} {'#genes':>7} {'#terms':>7} {'Fmax %':>7} {'AUC %':>7} {'AUPR %':>7}"
    lines = [header + (f" {'Smin':>7}" if with_smin else "")]
    for name, row in results.items():
        line = (
            f"{name:>12} {int(row['genes']):>7d} {int(row['terms']):>7d} {100 * row['fmax']:>7.2f}"
            f" {100 * row['auc']:>7.2f} {100 * row['aupr']:>7.2f}"
        )
        lines.append(line + (f" {row['smin']:>7.2f}" if with_smin else ""))
    return "\n".join(lines)
