"""GO-annotation baselines: the kNN vote and the DeepPheno-style MLP, and their validation selection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from gp_distributed.data.store import open_store
from gp_distributed.evaluation.baselines import BASELINE_NAMES, store_baseline_scores
from gp_distributed.evaluation.go_baselines import (
    KNN_NEIGHBOURS,
    KNN_PRIOR_WEIGHTS,
    GoMlpBaseline,
    GoNearestNeighbourBaseline,
    MlpSettings,
)
from gp_distributed.evaluation.scoring import score_split

# 4 training genes over GO terms {0, 1, 2, 3}; labels: term A follows GO 0, term B follows GO 2.
TRAIN_GO = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 0]], dtype=np.float32))
TRAIN_LABELS = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.uint8)


def test_knn_vote_is_the_similarity_weighted_label_mean_of_the_nearest_genes() -> None:
    model = GoNearestNeighbourBaseline(n_neighbours=2).fit(TRAIN_GO, TRAIN_LABELS)
    scores = model.predict_proba(sp.csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 1, 0]], dtype=np.float32)))
    np.testing.assert_allclose(scores, [[1, 0], [0, 1]], atol=1e-6)
    # Rare terms weigh more (IDF): terms 1 and 3 are in one gene each, 0 and 2 in two.
    assert model.idf_[1] > model.idf_[0] > 0


def test_knn_mixes_the_prior_and_scores_genes_without_go_with_it() -> None:
    model = GoNearestNeighbourBaseline(n_neighbours=1, prior_weight=0.5).fit(TRAIN_GO, TRAIN_LABELS)
    scores = model.predict_proba(sp.csr_matrix(np.array([[0, 1, 0, 0], [0, 0, 0, 0]], dtype=np.float32)))
    np.testing.assert_allclose(scores[0], [0.75, 0.25], atol=1e-6)
    np.testing.assert_allclose(scores[1], TRAIN_LABELS.mean(axis=0), atol=1e-6)


def test_knn_selection_takes_the_grid_point_the_objective_prefers() -> None:
    seen: list[np.ndarray] = []

    def objective(scores: np.ndarray) -> float:  # prefers the most prior-mixed, hence flattest, scores
        seen.append(scores)
        return -float(np.ptp(scores))

    valid = sp.csr_matrix(np.array([[1, 0, 0, 0]], dtype=np.float32))
    model = GoNearestNeighbourBaseline().fit_selected(TRAIN_GO, TRAIN_LABELS, valid, objective)
    assert len(seen) == len(KNN_NEIGHBOURS) * len(KNN_PRIOR_WEIGHTS)
    assert model.prior_weight == max(KNN_PRIOR_WEIGHTS)


def test_mlp_learns_the_go_to_label_rule_and_keeps_the_best_epoch() -> None:
    rng = np.random.default_rng(0)
    go = (rng.random((200, 6)) < 0.3).astype(np.float32)
    labels = np.stack([go[:, 0], go[:, 3]], axis=1).astype(np.uint8)
    values: list[float] = []

    def objective(scores: np.ndarray) -> float:
        value = -float(np.abs(scores - labels[150:]).mean())
        values.append(value)
        return value

    settings = MlpSettings(hidden_units=16, dropout=0.0, learning_rate=1e-2, batch_size=32, max_epochs=30,
                           patience=3, min_term_genes=1)
    model = GoMlpBaseline(settings).fit_selected(sp.csr_matrix(go[:150]), labels[:150], sp.csr_matrix(go[150:]),
                                                 objective)
    final = -float(np.abs(model.predict_proba(sp.csr_matrix(go[150:])) - labels[150:]).mean())
    assert final == pytest.approx(max(values), abs=1e-6)  # the kept weights are the best epoch's
    assert final > -0.15  # it learned the rule (chance is about -0.4)


@pytest.mark.parametrize("name", ["go-knn", "go-mlp"])
def test_go_baselines_beat_the_naive_prior_on_real_demo_genes(name: str, demo_store: Path) -> None:
    store = open_store(demo_store)
    assert name in BASELINE_NAMES
    scores = store_baseline_scores(name, store, "valid")
    naive = score_split(store, "valid", store_baseline_scores("naive", store, "valid"))
    assert score_split(store, "valid", scores)["all"]["auc"] > naive["all"]["auc"] + 0.05
