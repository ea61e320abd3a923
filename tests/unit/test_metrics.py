"""Metrics: hand-computed values, plain reference implementations, scikit-learn, and cafaeval itself."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from gp_distributed.errors import InputError
from gp_distributed.evaluation.cafa_format import (
    read_cafa_ground_truth,
    read_cafa_predictions,
    write_cafa_ground_truth,
    write_cafa_information_accretion,
    write_cafa_ontology,
    write_cafa_predictions,
)
from gp_distributed.evaluation.metrics import (
    CAFAEVAL_THRESHOLDS,
    DEFAULT_THRESHOLDS,
    aupr_micro,
    evaluate_by_bin,
    fmax,
    format_table,
    information_content,
    macro_auc,
    per_term_auc,
    propagate_max,
    smin,
)

# 0 is the root; 1 and 2 are its children; 3 has both 1 and 2 as parents.
DIAMOND = [[], [0], [0], [1, 2]]


def _random_dag(rng: np.random.Generator, n_terms: int) -> list[list[int]]:
    """Term 0 is the root; every other term gets one or two parents among the earlier terms."""
    parents: list[list[int]] = [[]]
    for term in range(1, n_terms):
        count = min(term, int(rng.integers(1, 3)))
        parents.append(sorted(rng.choice(term, size=count, replace=False).tolist()))
    return parents


def _reference_fmax(y_true: np.ndarray, y_score: np.ndarray, thresholds: np.ndarray) -> tuple[float, float]:
    """CAFA Fmax written the slow, obvious way: loops over thresholds and genes."""
    best = (-1.0, math.nan)
    for t in thresholds:
        precisions, recalls = [], []
        for truth, score in zip(y_true.astype(bool), y_score):
            if not truth.any():
                continue
            predicted = score >= t
            correct = (predicted & truth).sum()
            if predicted.any():
                precisions.append(correct / predicted.sum())
            recalls.append(correct / truth.sum())
        if not precisions:
            continue
        p, r = float(np.mean(precisions)), float(np.mean(recalls))
        f = 2 * p * r / (p + r) if p + r > 0 else 0.0
        if f > best[0]:  # strict: ties keep the lowest threshold, as cafaeval's idxmax does
            best = (f, float(t))
    return best


def test_fmax_hand_computed() -> None:
    y_true = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 0]])
    y_score = np.array([[0.9, 0.4, 0.6], [0.2, 0.8, 0.1], [0.95, 0.95, 0.95]])  # gene 2: no truth, ignored
    # For 0.2 < t <= 0.4: gene 0 predicts all three (p 2/3, r 1), gene 1 predicts {1} (p 1, r 1).
    result = fmax(y_true, y_score)
    assert result.fmax == pytest.approx(10 / 11)
    assert result.threshold == 0.21  # the lowest threshold of the best interval (0.20 still takes 0.2)
    assert result.precision == pytest.approx(5 / 6)
    assert result.recall == 1.0
    # Precision averages over genes with a prediction only; recall over every evaluated gene.
    partial = fmax(np.array([[1, 0], [0, 1]]), np.array([[0.9, 0.1], [0.2, 0.3]]), thresholds=np.array([0.5]))
    assert (partial.precision, partial.recall, partial.fmax) == pytest.approx((1.0, 0.5, 2 / 3))


def test_fmax_matches_reference_on_random_data() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.random((40, 25)) < 0.2
    y_true[:3] = False  # unevaluated genes
    y_score = np.round(rng.random((40, 25)) ** 2, 2)  # ties exactly on grid points
    for grid in (DEFAULT_THRESHOLDS, CAFAEVAL_THRESHOLDS, np.array([0.3, 0.5, 0.7])):
        expected_f, expected_t = _reference_fmax(y_true, y_score, grid)
        result = fmax(y_true, y_score, thresholds=grid)
        assert result.fmax == pytest.approx(expected_f, abs=1e-12)
        assert result.threshold == expected_t


def test_fmax_without_truth_or_predictions() -> None:
    assert all(math.isnan(value) for value in fmax(np.zeros((2, 3)), np.full((2, 3), 0.5)))
    no_prediction = fmax(np.eye(3), np.zeros((3, 3)), thresholds=CAFAEVAL_THRESHOLDS)
    assert no_prediction.fmax == 0.0 and math.isnan(no_prediction.threshold)


def test_propagate_max_takes_descendant_maxima() -> None:
    scores = np.array([[0.1, 0.2, 0.7, 0.5], [0.0, 0.9, 0.0, 0.3]])
    assert propagate_max(scores, DIAMOND).tolist() == [[0.7, 0.5, 0.7, 0.5], [0.9, 0.9, 0.3, 0.3]]
    labels = np.array([[False, False, False, True]])
    assert propagate_max(labels, DIAMOND).tolist() == [[True, True, True, True]]
    with pytest.raises(ValueError, match="cycle"):
        propagate_max(scores, [[3], [0], [0], [1, 2]])
    with pytest.raises(ValueError, match="outside"):
        propagate_max(scores, [[], [0], [0], [1, 7]])


def test_fmax_with_parents_propagates_labels_and_scores() -> None:
    y_true = np.array([[0, 0, 0, 1]])  # true-path rule: all four terms are true
    y_score = np.array([[0.0, 0.0, 0.0, 0.8]])  # propagated: all four score 0.8
    assert fmax(y_true, y_score, parents=DIAMOND).fmax == 1.0
    assert fmax(y_true, y_score).fmax == 1.0  # unpropagated, only term 3 is true and predicted
    # Without propagation only term 3 reaches any t in (0, 0.8]: p = 1, r = 1/4. (At t = 0.00 of the
    # default grid every term is predicted, so the default grid would give 1 here.)
    everything_true = np.array([[1, 1, 1, 1]])
    assert fmax(everything_true, y_score, thresholds=CAFAEVAL_THRESHOLDS).fmax == pytest.approx(2 * 0.25 / 1.25)
    assert fmax(everything_true, y_score).fmax == 1.0


def test_information_content_hand_computed() -> None:
    train = np.zeros((8, 4), dtype=bool)
    for gene, terms in enumerate([[0], [0, 1], [0, 1], [0, 2], [3], [0, 1, 2], [], [0, 1, 2, 3]]):
        train[gene, terms] = True  # gene 4 is given unpropagated: {3} implies {0, 1, 2}
    ic = information_content(train, DIAMOND)
    expected = [-math.log2(7 / 8), -math.log2(5 / 7), -math.log2(4 / 7), -math.log2(2 / 3)]
    assert ic.tolist() == pytest.approx(expected, rel=1e-12)
    assert information_content(np.zeros((3, 4)), DIAMOND).tolist() == [0.0, 0.0, 0.0, 0.0]


def test_smin_hand_computed() -> None:
    ic = np.array([1.0, 2.0, 4.0])
    y_true = np.array([[1, 1, 0], [1, 0, 0]])
    y_score = np.array([[0.9, 0.3, 0.6], [0.8, 0.1, 0.2]])
    # t in (0.3, 0.6]: gene 0 misses term 1 (ru 2) and wrongly predicts term 2 (mi 4); gene 1 is exact.
    # t in (0.6, 0.8]: ru 2, mi 0 -> S = sqrt((2/2)^2) = 1, the minimum (t in (0.2, 0.3]: mi 2, ru 0 too).
    result = smin(y_true, y_score, ic, thresholds=np.array([0.25, 0.5, 0.7, 0.85, 0.95]))
    assert result.smin == pytest.approx(1.0)
    assert result.threshold == 0.7
    assert (result.remaining_uncertainty, result.misinformation) == pytest.approx((1.0, 0.0))
    # Predicting nothing (t = 0.95 here, S = 1) is not a candidate, as in cafaeval: S = sqrt(2) at 0.5.
    wrong = smin(np.array([[1, 0]]), np.array([[0.0, 0.9]]), np.ones(2), thresholds=np.array([0.5, 0.95]))
    assert (wrong.smin, wrong.threshold) == pytest.approx((math.sqrt(2), 0.5))


def test_per_term_auc_equals_sklearn_and_skips_one_class_terms() -> None:
    rng = np.random.default_rng(1)
    y_true = rng.random((30, 12)) < 0.3
    y_true[:, 0], y_true[:, 1] = False, True  # one class only
    y_score = np.round(rng.random((30, 12)), 1)  # many ties
    aucs = per_term_auc(y_true, y_score)
    assert np.isnan(aucs[:2]).all()
    expected = [roc_auc_score(y_true[:, j], y_score[:, j]) for j in range(2, 12)]
    assert aucs[2:] == pytest.approx(expected, rel=1e-12)
    assert macro_auc(y_true, y_score) == pytest.approx(np.mean(expected), rel=1e-12)
    assert math.isnan(macro_auc(np.zeros((4, 2)), np.ones((4, 2))))


def test_aupr_micro_equals_sklearn() -> None:
    rng = np.random.default_rng(2)
    y_true = rng.random((20, 9)) < 0.25
    y_score = rng.random((20, 9))
    expected = average_precision_score(y_true, y_score, average="micro")
    assert aupr_micro(y_true, y_score) == pytest.approx(expected, rel=1e-12)
    assert math.isnan(aupr_micro(np.zeros((2, 2)), np.ones((2, 2))))


def test_evaluate_by_bin_restricts_columns_and_counts() -> None:
    rng = np.random.default_rng(3)
    parents = _random_dag(rng, 10)
    y_true = propagate_max(rng.random((25, 10)) < 0.2, parents)
    y_score = rng.random((25, 10))
    bins = np.array([-1, 0, 0, 1, 1, 1, 0, 1, 0, 1])
    ic = rng.random(10)
    results = evaluate_by_bin(y_true, y_score, bins, ["rare", "common"], information_content=ic, parents=parents)
    propagated = propagate_max(y_score, parents)
    assert list(results) == ["all", "rare", "common"]
    assert results["all"]["fmax"] == fmax(y_true, y_score, parents=parents).fmax
    assert results["all"]["terms"] == 10 and results["rare"]["terms"] == 4 and results["common"]["terms"] == 5
    common = bins == 1
    assert results["common"]["fmax"] == fmax(y_true[:, common], propagated[:, common]).fmax
    assert results["common"]["genes"] == int(y_true[:, common].any(axis=1).sum())
    assert results["common"]["auc"] == pytest.approx(macro_auc(y_true[:, common], propagated[:, common]))
    assert results["rare"]["smin"] == smin(y_true[:, bins == 0], propagated[:, bins == 0], ic[bins == 0]).smin
    table = format_table(results).splitlines()
    assert len(table) == 4 and table[0].split()[-1] == "Smin"
    assert table[1].split()[:3] == ["all", str(results["all"]["genes"]), "10"]
    assert f"{100 * results['common']['fmax']:.2f}" in table[3]
    with pytest.raises(ValueError, match="term_bins"):
        evaluate_by_bin(y_true, y_score, np.full(10, 2), ["rare", "common"])


def _cafaeval_case(tmp_path: Path, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    n_genes, n_terms = 20, 15
    parents = _random_dag(rng, n_terms)
    y_true = propagate_max(rng.random((n_genes, n_terms)) < 0.15, parents)
    y_true[:2] = False  # not in the ground-truth file, not evaluated by either side
    y_score = rng.random((n_genes, n_terms)) ** 2  # unpropagated: both sides propagate by max
    y_score[:, 3] = np.round(y_score[:, 3], 2)  # scores exactly on grid points
    term_ids = [f"HP:{index:07d}" for index in range(n_terms)]
    gene_ids = [f"gene{index}" for index in range(n_genes)]
    ic = information_content(rng.random((60, n_terms)) < 0.3, parents)
    (tmp_path / "predictions").mkdir()
    write_cafa_ontology(tmp_path / "labels.obo", term_ids, parents, term_names=[f"term {t}" for t in term_ids])
    write_cafa_ground_truth(tmp_path / "truth.tsv", gene_ids, term_ids, y_true)
    write_cafa_predictions(tmp_path / "predictions" / "model.tsv", gene_ids, term_ids, y_score, min_score=0.005)
    write_cafa_information_accretion(tmp_path / "ia.tsv", term_ids, ic)
    return {"parents": parents, "y_true": y_true, "y_score": y_score, "ic": ic}


@pytest.mark.filterwarnings("ignore:The inplace keyword in DataFrame.set_index")  # inside cafaeval 1.3.0
@pytest.mark.parametrize("seed", [0, 1])
def test_fmax_and_smin_equal_cafaeval(tmp_path: Path, seed: int) -> None:
    from cafaeval.evaluation import cafa_eval

    case = _cafaeval_case(tmp_path, seed)
    table, best = cafa_eval(
        str(tmp_path / "labels.obo"),
        str(tmp_path / "predictions"),
        str(tmp_path / "truth.tsv"),
        ia=str(tmp_path / "ia.tsv"),
        norm="cafa",
        prop="max",
        th_step=0.01,
        n_cpu=1,
    )
    theirs = best["f"].iloc[0]
    ours = fmax(case["y_true"], case["y_score"], thresholds=CAFAEVAL_THRESHOLDS, parents=case["parents"])
    assert ours.fmax == pytest.approx(theirs["f"], abs=1e-12)
    assert (ours.precision, ours.recall) == pytest.approx((theirs["pr"], theirs["rc"]), abs=1e-12)
    assert ours.threshold == best["f"].index.get_level_values("tau")[0]
    # cafaeval reports Smin weighted by the IA file per threshold as s_w (its "best s" is unweighted).
    ours_s = smin(case["y_true"], case["y_score"], case["ic"], thresholds=CAFAEVAL_THRESHOLDS, parents=case["parents"])
    assert ours_s.smin == pytest.approx(table["s_w"].min(), abs=1e-12)
    # Our default grid adds 0.00 and 1.00; on scores like these it finds the same optimum.
    assert fmax(case["y_true"], case["y_score"], parents=case["parents"]).fmax == pytest.approx(theirs["f"], abs=1e-2)


def test_cafa_files_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    y_score = rng.random((4, 3)).astype(np.float32)  # float32 outputs survive exactly as float64
    gene_ids, term_ids = ["a", "b", "c", "d"], ["T:1", "T:2", "T:3"]
    assert write_cafa_predictions(tmp_path / "p.tsv", gene_ids, term_ids, y_score) == 12
    read = read_cafa_predictions(tmp_path / "p.tsv", gene_ids, term_ids)
    assert np.array_equal(read.values, y_score.astype(np.float64)) and read.skipped_lines == 0
    y_true = rng.random((4, 3)) < 0.5
    assert write_cafa_ground_truth(tmp_path / "t.tsv", gene_ids, term_ids, y_true) == int(y_true.sum())
    assert np.array_equal(read_cafa_ground_truth(tmp_path / "t.tsv", gene_ids, term_ids).values, y_true)


def test_cafa_reader_headers_duplicates_unknown_ids_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    header = "AUTHOR team\nMODEL 1\nKEYWORDS sequence, ontology.\n"
    path.write_text(header + "a T:1 0.3\na T:1 0.7\nz T:1 0.9\na T:9 1\nEND\n")
    read = read_cafa_predictions(path, ["a"], ["T:1"])
    assert read.values.tolist() == [[0.7]] and read.skipped_lines == 2
    path.write_text("a T:1 0.5\na T:1 high\n")
    with pytest.raises(InputError, match=r"p\.tsv:2: score 'high' is not a number"):
        read_cafa_predictions(path, ["a"], ["T:1"])
    path.write_text("a T:1 1.5\n")
    with pytest.raises(InputError, match=r"p\.tsv:1: score 1\.5 is outside \[0, 1\]"):
        read_cafa_predictions(path, ["a"], ["T:1"])
    path.write_text("a\n")
    with pytest.raises(InputError, match=r"p\.tsv:1: expected at least 2"):
        read_cafa_ground_truth(path, ["a"], ["T:1"])
    with pytest.raises(InputError, match="cannot read"):
        read_cafa_ground_truth(tmp_path / "missing.tsv", ["a"], ["T:1"])
    with pytest.raises(ValueError, match="whitespace"):
        write_cafa_ground_truth(path, ["a b"], ["T:1"], np.ones((1, 1)))
