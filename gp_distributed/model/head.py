"""The phenotype head: a linear map from concept activations to phenotype logits (GenePheno step 5).

Its weight is the model's interpretability: entry (i, j) of `association_matrix()` is the learned
association of concept i with phenotype j (positive: the concept raises the phenotype's logit).
"""

from __future__ import annotations

import torch
from torch import nn


class PhenotypeHead(nn.Module):
    """Linear (n concepts + n_free units -> C phenotypes) with bias; weight (C, n + n_free)."""

    def __init__(self, n_concepts: int, n_labels: int, n_free: int = 0):
        super().__init__()
        self.n_concepts = n_concepts
        self.linear = nn.Linear(n_concepts + n_free, n_labels)

    def forward(self, bottleneck_activations: torch.Tensor) -> torch.Tensor:
        return self.linear(bottleneck_activations)  # (B, C)

    def association_matrix(self) -> torch.Tensor:
        """Concept -> phenotype associations (n, C) of the concept units, a detached copy of the
        weight transposed (free units, if any, are not concepts and are left out)."""
        return self.linear.weight.detach()[:, : self.n_concepts].t().clone()
