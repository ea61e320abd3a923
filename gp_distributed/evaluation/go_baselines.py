"""Baselines that see the same GO annotations as the model (no sequence), scored in the same harness.

Inputs are the genes' GO input terms as a sparse (N, G) 0/1 matrix in the store's GO input vocabulary
(closed under is_a/part_of when the store was ingested with `ingest.go_input_closure`, the default).

- "go-knn": similarity-weighted vote of the k nearest training genes by IDF-weighted cosine of their
  GO sets, mixed with the training prior: score = (1 - a) * vote + a * prior. A gene without GO terms
  gets the prior. k and a are chosen on the validation split (`fit_selected`).
- "go-mlp": DeepPheno's shape: one hidden layer (ReLU, dropout) on the GO multi-hot, one sigmoid per
  term, binary cross-entropy, Adam; the epoch is chosen on the validation split (early stopping).

Both select on `objective(valid_scores)`, which the harness sets to validation Fmax + macro AUC (the
two reported metrics, weighted equally); the test split is never seen while fitting.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.preprocessing import normalize
from torch import nn

Objective = Callable[[np.ndarray], float]  # validation scores (M, C) -> larger is better

KNN_NEIGHBOURS = (5, 10, 25, 50, 100)
KNN_PRIOR_WEIGHTS = (0.0, 0.1, 0.3, 0.5)
_KNN_BLOCK_ROWS = 1024  # evaluation genes per dense similarity block


class GoNearestNeighbourBaseline:
    """IDF-weighted cosine kNN vote over GO sets, mixed with the training prior (module docstring)."""

    def __init__(self, n_neighbours: int = 25, prior_weight: float = 0.0):
        self.n_neighbours = n_neighbours
        self.prior_weight = prior_weight

    def fit(self, train_go: sp.csr_matrix, train_labels: np.ndarray) -> GoNearestNeighbourBaseline:
        train_go = sp.csr_matrix(train_go, dtype=np.float32)
        genes_per_term = np.asarray((train_go > 0).sum(axis=0)).ravel()
        self.idf_ = np.log(train_go.shape[0] / np.maximum(genes_per_term, 1)).astype(np.float32)  # (G,)
        self.train_vectors_ = self._vectors(train_go)
        self.train_labels_ = np.asarray(train_labels, dtype=np.float32)
        self.prior_ = self.train_labels_.mean(axis=0)
        return self

    def _vectors(self, go: sp.csr_matrix) -> sp.csr_matrix:
        return normalize(sp.csr_matrix(go, dtype=np.float32) @ sp.diags(self.idf_), norm="l2")

    def neighbour_votes(self, go: sp.csr_matrix, n_neighbours: int) -> np.ndarray:
        """(M, C) similarity-weighted label mean of each gene's `n_neighbours` nearest training genes;
        NaN rows for genes without GO terms (no similarity to anyone)."""
        vectors = self._vectors(go)
        k = min(n_neighbours, self.train_vectors_.shape[0])
        votes = np.full((vectors.shape[0], self.train_labels_.shape[1]), np.nan, dtype=np.float32)
        for start in range(0, vectors.shape[0], _KNN_BLOCK_ROWS):
            similarity = (vectors[start:start + _KNN_BLOCK_ROWS] @ self.train_vectors_.T).toarray()  # (B, N)
            nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]  # (B, k)
            weights = np.take_along_axis(similarity, nearest, axis=1)  # (B, k)
            total = weights.sum(axis=1, keepdims=True)
            block = np.einsum("bk,bkc->bc", weights, self.train_labels_[nearest]) / np.maximum(total, 1e-12)
            block[total[:, 0] <= 0] = np.nan
            votes[start:start + block.shape[0]] = block
        return votes

    def mix(self, votes: np.ndarray, prior_weight: float) -> np.ndarray:
        scores = (1.0 - prior_weight) * votes + prior_weight * self.prior_[None, :]
        return np.where(np.isnan(votes), self.prior_[None, :], scores).astype(np.float32)

    def predict_proba(self, go: sp.csr_matrix) -> np.ndarray:
        return self.mix(self.neighbour_votes(go, self.n_neighbours), self.prior_weight)

    def fit_selected(self, train_go: sp.csr_matrix, train_labels: np.ndarray, valid_go: sp.csr_matrix,
                     objective: Objective) -> GoNearestNeighbourBaseline:
        """Fit, then set (k, a) to the grid point with the best validation objective."""
        self.fit(train_go, train_labels)
        grid = []
        for k in KNN_NEIGHBOURS:
            votes = self.neighbour_votes(valid_go, k)
            grid += [(objective(self.mix(votes, a)), k, a) for a in KNN_PRIOR_WEIGHTS]
        _, self.n_neighbours, self.prior_weight = max(grid, key=lambda point: point[0])
        return self


@dataclass(frozen=True)
class MlpSettings:
    hidden_units: int = 1024
    dropout: float = 0.5
    learning_rate: float = 1e-3
    batch_size: int = 64
    max_epochs: int = 40
    patience: int = 5  # epochs without a better validation objective before stopping
    min_term_genes: int = 5  # GO input terms seen in fewer training genes are left out
    seed: int = 0


class GoMlpBaseline:
    """DeepPheno-style MLP on the GO multi-hot (module docstring); CPU, fp32."""

    def __init__(self, settings: MlpSettings = MlpSettings()):
        self.settings = settings

    def _dense(self, go: sp.csr_matrix) -> torch.Tensor:
        return torch.from_numpy(sp.csr_matrix(go)[:, self.columns_].toarray().astype(np.float32))

    @torch.no_grad()
    def predict_proba(self, go: sp.csr_matrix) -> np.ndarray:
        self.network_.eval()
        inputs = self._dense(go)
        return torch.cat([torch.sigmoid(self.network_(inputs[i:i + 512])) for i in range(0, len(inputs), 512)]
                         ).numpy() if len(inputs) else np.zeros((0, self.n_labels_), np.float32)

    def fit_selected(self, train_go: sp.csr_matrix, train_labels: np.ndarray, valid_go: sp.csr_matrix,
                     objective: Objective) -> GoMlpBaseline:
        """Train with Adam; keep the weights of the epoch with the best validation objective."""
        s = self.settings
        generator = torch.Generator().manual_seed(s.seed)
        torch.manual_seed(s.seed)
        self.columns_ = np.flatnonzero(np.asarray((sp.csr_matrix(train_go) > 0).sum(axis=0)).ravel() >= s.min_term_genes)
        labels = torch.from_numpy(np.asarray(train_labels, dtype=np.float32))
        self.n_labels_ = labels.shape[1]
        inputs = self._dense(train_go)
        self.network_ = nn.Sequential(nn.Linear(inputs.shape[1], s.hidden_units), nn.ReLU(), nn.Dropout(s.dropout),
                                      nn.Linear(s.hidden_units, self.n_labels_))
        with torch.no_grad():  # start every term at its training log-odds
            frequency = labels.mean(dim=0).clamp(1e-4, 1 - 1e-4)
            self.network_[-1].bias.copy_(torch.log(frequency / (1 - frequency)))
        optimizer = torch.optim.Adam(self.network_.parameters(), lr=s.learning_rate)
        best, best_state, stale = -np.inf, None, 0
        for _ in range(s.max_epochs):
            self.network_.train()
            for batch in torch.randperm(len(inputs), generator=generator).split(s.batch_size):
                loss = nn.functional.binary_cross_entropy_with_logits(self.network_(inputs[batch]), labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            value = objective(self.predict_proba(valid_go))
            if value > best:
                best, best_state, stale = value, copy.deepcopy(self.network_.state_dict()), 0
            else:
                stale += 1
                if stale >= s.patience:
                    break
        self.network_.load_state_dict(best_state)
        return self
