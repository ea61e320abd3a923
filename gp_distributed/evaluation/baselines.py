"""Baselines of GenePheno, scored in the same harness as the model: the sequence-only ones here, the
GO-annotation ones in go_baselines.py, all reached through `store_baseline_scores`.

Every baseline maps sequences to an (M, C) float32 score matrix in [0, 1], one column per
phenotype term in the label matrix's column order:

- "naive": each term's training frequency for every gene (the CAFA naive baseline);
- "kmer-lr": k-mer composition -> TF-IDF -> truncated SVD (an LSA embedding, our stand-in for the
  paper's kmer2Vec) -> standardised -> one L2 logistic regression per term;
- "kmer-knn": similarity-weighted vote of the nearest training genes by cosine similarity of
  k-mer profiles (the w-BLAST baseline with k-mers in place of alignments).

Hyper-parameter defaults are fixed a priori (scikit-learn's C = 1 and max_iter = 100, 256 SVD
components, 10 neighbours); none was tuned on evaluation data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from scipy.special import expit
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.preprocessing import StandardScaler, normalize

from gp_distributed.config import Alphabet
from gp_distributed.data.store import GeneStore
from gp_distributed.evaluation.go_baselines import GoMlpBaseline, GoNearestNeighbourBaseline
from gp_distributed.evaluation.kmer_features import kmer_composition
from gp_distributed.evaluation.metrics import fmax, macro_auc, propagate_max

# Evaluation genes per similarity block in kNN: bounds the dense (block, n_train) float32 matrix.
_KNN_BLOCK_ROWS = 2048


class Baseline(Protocol):
    """What every baseline offers: fit on (sequences, labels), score new sequences."""

    def fit(self, train_sequences: Sequence[bytes], train_labels: np.ndarray) -> Baseline: ...

    def predict_proba(self, sequences: Sequence[bytes]) -> np.ndarray: ...


def _checked_labels(train_sequences: Sequence[bytes], train_labels: np.ndarray) -> np.ndarray:
    """The (N, C) label matrix as float32 0/1, after checking it matches N sequences."""
    labels = np.asarray(train_labels)
    if labels.ndim != 2 or labels.shape[0] != len(train_sequences):
        raise ValueError(f"train_labels must be (N={len(train_sequences)}, C), got shape {labels.shape}")
    if labels.shape[0] == 0:
        raise ValueError("cannot fit a baseline on zero training genes")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("train_labels must hold only 0/1 (or bool) values")
    return labels.astype(np.float32)


class NaiveFrequencyBaseline:
    """Scores every gene with each term's frequency among the training genes."""

    def fit(self, train_sequences: Sequence[bytes], train_labels: np.ndarray) -> NaiveFrequencyBaseline:
        """Store the column means of `train_labels` (N, C)."""
        labels = _checked_labels(train_sequences, train_labels)
        self.term_frequency_ = labels.mean(axis=0, dtype=np.float64).astype(np.float32)  # (C,)
        return self

    def predict_proba(self, sequences: Sequence[bytes]) -> np.ndarray:
        """(M, C) float32: the training frequency of each term, the same for every sequence."""
        return np.tile(self.term_frequency_, (len(sequences), 1))


class KmerLogisticBaseline:
    """k-mer LSA embedding + one L2-regularised logistic regression per term.

    A one-vs-rest of 4,438 scikit-learn solvers over 8,000 sparse 3-mer features would take far
    beyond our 5-minute budget on 2 cores, so: (1) the TF-IDF k-mer matrix is reduced by truncated SVD to `n_components` dimensions and
    standardised; (2) the per-term objectives, 0.5*||w_j||^2 + C * sum_i logloss(y_ij, x_i.w_j + b_j)
    with unpenalised intercept b_j (scikit-learn's LogisticRegression objective), are summed and
    minimised together by one L-BFGS run: they share no parameters, so the minimiser is the
    one-vs-rest solution, computed with dense matrix products over all terms at once. Terms with a
    single class in training are not fitted and score their training frequency (0 or 1).
    `max_iter` caps L-BFGS like scikit-learn's default (100): on the HPO bundle (3,807 genes x 4,438
    terms) the fit takes ~2-3 min on 2 shared cores and is not fully converged at the cap.
    """

    def __init__(
        self,
        kmer_size: int | None = None,
        alphabet: Alphabet = "protein",
        C: float = 1.0,
        n_components: int = 256,
        max_iter: int = 100,
        seed: int = 0,
    ):
        """Args: kmer_size (None: 3 for protein, 6 for DNA); alphabet; C, the inverse L2 strength
        as in scikit-learn; n_components, the SVD dimension (capped at min(N, |A|^k) - 1);
        max_iter, the L-BFGS iteration cap; seed of the randomized SVD."""
        if C <= 0 or n_components < 1 or max_iter < 1:
            raise ValueError("C must be > 0, n_components and max_iter >= 1")
        self.kmer_size = kmer_size
        self.alphabet = alphabet
        self.C = C
        self.n_components = n_components
        self.max_iter = max_iter
        self.seed = seed

    def fit(self, train_sequences: Sequence[bytes], train_labels: np.ndarray) -> KmerLogisticBaseline:
        """Fit the embedding on the training sequences, then every term's logistic regression."""
        labels = _checked_labels(train_sequences, train_labels)
        counts = kmer_composition(train_sequences, self.kmer_size, self.alphabet)
        self.tfidf_ = TfidfTransformer().fit(counts)
        tfidf = self.tfidf_.transform(counts)
        n_components = max(1, min(self.n_components, min(tfidf.shape) - 1))
        self.svd_ = TruncatedSVD(n_components, algorithm="randomized", random_state=self.seed).fit(tfidf)
        self.scaler_ = StandardScaler().fit(self.svd_.transform(tfidf))
        features = self._embed(counts)  # (N, d)

        self.term_frequency_ = labels.mean(axis=0, dtype=np.float64).astype(np.float32)  # (C,)
        self.fitted_terms_ = np.flatnonzero((self.term_frequency_ > 0) & (self.term_frequency_ < 1))
        if self.fitted_terms_.size == 0:  # every term single-class: nothing to optimise
            self.coef_ = np.zeros((features.shape[1], 0), dtype=np.float32)
            self.intercept_, self.n_iter_ = np.zeros(0, dtype=np.float32), 0
            return self
        self.coef_, self.intercept_, self.n_iter_ = _fit_joint_logistic(
            features, labels[:, self.fitted_terms_], self.C, self.max_iter
        )
        return self

    def predict_proba(self, sequences: Sequence[bytes]) -> np.ndarray:
        """(M, C) float32 in [0, 1]: sigmoid of each term's linear score (frequency if unfitted)."""
        scores = np.tile(self.term_frequency_, (len(sequences), 1))
        if len(sequences) == 0:  # scikit-learn transformers refuse zero rows
            return scores
        features = self._embed(kmer_composition(sequences, self.kmer_size, self.alphabet))
        scores[:, self.fitted_terms_] = expit(features @ self.coef_ + self.intercept_)
        return scores

    def _embed(self, counts: sp.csr_matrix) -> np.ndarray:
        """(M, |A|^k) k-mer frequencies -> (M, d) float32 standardised LSA features."""
        return self.scaler_.transform(self.svd_.transform(self.tfidf_.transform(counts))).astype(np.float32)


def _fit_joint_logistic(
    features: np.ndarray, labels: np.ndarray, C: float, max_iter: int
) -> tuple[np.ndarray, np.ndarray, int]:
    """Minimise sum_j [0.5*||w_j||^2 + C * sum_i logloss] over W (d, T) and b (T,) jointly.

    Args: features (N, d) float32, labels (N, T) float32 0/1, each column holding both classes.
    Returns: W (d, T) float32, b (T,) float32 and the number of L-BFGS iterations run.
    """
    n_features, n_terms = features.shape[1], labels.shape[1]
    frequency = labels.mean(axis=0, dtype=np.float64)
    # Start at W = 0 with each intercept at its term's log-odds: the best constant model.
    start = np.concatenate([np.zeros(n_features * n_terms), np.log(frequency / (1 - frequency))])

    positives = np.flatnonzero(labels.ravel())  # labels are sparse: sum y*s over these only

    def loss_and_gradient(params: np.ndarray) -> tuple[float, np.ndarray]:
        weights = params[: n_features * n_terms].reshape(n_features, n_terms).astype(np.float32)
        intercept = params[n_features * n_terms :].astype(np.float32)
        logits = features @ weights + intercept  # (N, T)
        prob = expit(logits)  # (N, T)
        # logloss(y, s) = softplus(s) - y*s, and softplus(s) = max(s, 0) - log(max(p, 1 - p)) with
        # p = sigmoid(s): stable, and ~4x cheaper than np.logaddexp since p is needed anyway.
        softplus_sum = np.maximum(logits, 0).sum(dtype=np.float64) - np.log(np.maximum(prob, 1 - prob)).sum(
            dtype=np.float64
        )
        loss = C * float(softplus_sum - logits.ravel()[positives].sum(dtype=np.float64))
        loss += 0.5 * float(np.square(weights, dtype=np.float64).sum())
        residual = np.subtract(prob, labels, out=prob)  # (N, T), d logloss / d logit
        grad_weights = C * (features.T @ residual) + weights  # (d, T)
        grad_intercept = C * residual.sum(axis=0, dtype=np.float64)  # (T,)
        return loss, np.concatenate([grad_weights.ravel().astype(np.float64), grad_intercept])

    result = scipy.optimize.minimize(
        loss_and_gradient, start, jac=True, method="L-BFGS-B", options={"maxiter": max_iter}
    )
    weights = result.x[: n_features * n_terms].reshape(n_features, n_terms).astype(np.float32)
    return weights, result.x[n_features * n_terms :].astype(np.float32), int(result.nit)


class KmerNearestNeighbourBaseline:
    """Similarity-weighted vote of the nearest training genes in k-mer profile space (w-BLAST-like).

    score(g, j) = sum_{n in top-k(g)} sim(g, n) * y_nj / sum_{n in top-k(g)} sim(g, n), with sim the
    cosine similarity of k-mer frequency profiles (>= 0, so scores lie in [0, 1]). A gene sharing
    no k-mer with any training gene gets the training frequency of each term.
    """

    def __init__(self, kmer_size: int | None = None, alphabet: Alphabet = "protein", n_neighbours: int = 10):
        """Args: kmer_size (None: 3 for protein, 6 for DNA); alphabet; n_neighbours, the k of top-k
        (capped at the number of training genes)."""
        if n_neighbours < 1:
            raise ValueError(f"n_neighbours must be >= 1, got {n_neighbours}")
        self.kmer_size = kmer_size
        self.alphabet = alphabet
        self.n_neighbours = n_neighbours

    def fit(self, train_sequences: Sequence[bytes], train_labels: np.ndarray) -> KmerNearestNeighbourBaseline:
        """Store the L2-normalised training profiles and their labels."""
        labels = _checked_labels(train_sequences, train_labels)
        self.train_profiles_ = normalize(kmer_composition(train_sequences, self.kmer_size, self.alphabet))
        self.train_labels_ = sp.csr_matrix(labels)  # (N, C) float32, sparse: labels are ~3% dense
        self.term_frequency_ = labels.mean(axis=0, dtype=np.float64).astype(np.float32)
        return self

    def predict_proba(self, sequences: Sequence[bytes]) -> np.ndarray:
        """(M, C) float32 in [0, 1]: the similarity-weighted label vote of the top-k neighbours."""
        if len(sequences) == 0:  # scikit-learn's normalize refuses zero rows
            return np.zeros((0, self.term_frequency_.size), dtype=np.float32)
        profiles = normalize(kmer_composition(sequences, self.kmer_size, self.alphabet))
        return np.vstack(
            [
                self._vote(profiles[start : start + _KNN_BLOCK_ROWS])
                for start in range(0, profiles.shape[0], _KNN_BLOCK_ROWS)
            ]
        )

    def _vote(self, profiles: sp.csr_matrix) -> np.ndarray:
        """(B, |A|^k) normalised profiles -> (B, C) float32 scores."""
        similarity = (profiles @ self.train_profiles_.T).toarray()  # (B, N) cosine similarities
        n_rows, n_train = similarity.shape
        n_neighbours = min(self.n_neighbours, n_train)
        neighbours = np.argpartition(-similarity, n_neighbours - 1, axis=1)[:, :n_neighbours]  # (B, k)
        weights = np.take_along_axis(similarity, neighbours, axis=1)  # (B, k)
        total = weights.sum(axis=1, keepdims=True)  # (B, 1)
        has_neighbour = total[:, 0] > 0
        weights = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
        vote = sp.csr_matrix(
            (weights.ravel(), neighbours.ravel(), np.arange(0, n_rows * n_neighbours + 1, n_neighbours)),
            shape=(n_rows, n_train),
        )
        scores = (vote @ self.train_labels_).toarray().astype(np.float32)  # (B, C)
        scores[~has_neighbour] = self.term_frequency_
        return np.clip(scores, 0.0, 1.0)  # rounding can overshoot 1 by an ulp


BASELINES: dict[str, type[Baseline]] = {
    "naive": NaiveFrequencyBaseline,
    "kmer-lr": KmerLogisticBaseline,
    "kmer-knn": KmerNearestNeighbourBaseline,
}


def run_baseline(
    name: str,
    train_sequences: Sequence[bytes],
    train_labels: np.ndarray,
    eval_sequences: Sequence[bytes],
    **params: object,
) -> np.ndarray:
    """Fit baseline `name` (a key of BASELINES, built with `params`) and score `eval_sequences`.

    Returns: (len(eval_sequences), C) float32 scores in [0, 1], columns as in `train_labels`.
    Raises: ValueError for an unknown name or invalid inputs.
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; expected one of {sorted(BASELINES)}")
    return BASELINES[name](**params).fit(train_sequences, train_labels).predict_proba(eval_sequences)


GO_BASELINES = ("go-knn", "go-mlp")  # evaluation/go_baselines.py: fitted and selected by the harness below
BASELINE_NAMES = tuple(sorted((*BASELINES, *GO_BASELINES)))


def split_sequences(store: GeneStore, indices: np.ndarray) -> list[bytes]:
    """Residues of the genes `indices` (one contiguous split, store order)."""
    return [r.sequence for r in store.read_block(int(indices[0]), int(indices[-1]) + 1)] if len(indices) else []


def validation_objective(store: GeneStore) -> Callable[[np.ndarray], float]:
    """Validation Fmax + macro AUC (labels and scores propagated, as reported) of (n_valid, C) scores:
    what GO baselines select their settings on."""
    valid_labels = store.multi_hot("labels", store.split_indices("valid"))
    propagated_labels = propagate_max(valid_labels, store.label_parents)

    def objective(scores: np.ndarray) -> float:
        propagated = propagate_max(scores, store.label_parents)
        return fmax(propagated_labels, propagated).fmax + macro_auc(propagated_labels, propagated)

    return objective


def store_baseline_scores(name: str, store: GeneStore, split: str) -> np.ndarray:
    """Baseline `name` fitted on the store's training split (GO baselines: settings chosen on its
    validation split), scoring `split` (store order): the one baseline harness of `gp baseline`, the
    training report and the benchmarks."""
    if name not in BASELINE_NAMES:
        raise ValueError(f"unknown baseline {name!r}; expected one of {list(BASELINE_NAMES)}")
    train, target = store.split_indices("train"), store.split_indices(split)
    train_labels = store.multi_hot("labels", train)
    if name in GO_BASELINES:
        go = {part: sp.csr_matrix(store.multi_hot("go_input", store.split_indices(part))) for part in ("train", "valid")}
        model = GoNearestNeighbourBaseline() if name == "go-knn" else GoMlpBaseline()
        model.fit_selected(go["train"], train_labels, go["valid"], validation_objective(store))
        return model.predict_proba(sp.csr_matrix(store.multi_hot("go_input", target)))
    params = {} if name == "naive" else {"alphabet": store.alphabet}  # the naive baseline ignores sequences
    return run_baseline(name, split_sequences(store, train), train_labels, split_sequences(store, target), **params)
