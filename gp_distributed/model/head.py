"""The phenotype head: a linear map from concept activations to phenotype logits (GenePheno step 5).

Its weight is the model's interpretability: entry (i, j) of `association_matrix()` is the learned
association of concept i with phenotype j (positive: the concept raises the phenotype's logit).
"""

from __future__ import annotations

import torch
from torch import nn


class PhenotypeHead(nn.Module):
    """Linear (n concepts -> C phenotypes) with bias; weight (C, n) as nn.Linear stores it."""

    def __init__(self, n_concepts: int, n_labels: int):
        super().__init__()
        self.linear = nn.Linear(n_concepts, n_labels)

    def forward(self, concept_activations: torch.Tensor) -> torch.Tensor:
        return self.linear(concept_activations)  # (B, C)

    def association_matrix(self) -> torch.Tensor:
        """Concept -> phenotype associations (n, C), a detached copy of the weight transposed."""
        return self.linear.weight.detach().t().clone()
