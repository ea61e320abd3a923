"""The GO-concept bottleneck: the second-to-last layer, one unit per coarse GO concept (GenePheno step 4).

Each unit's logit is supervised by one coarse GO term (L_GO); its sigmoid activation is what the
phenotype head reads, so every phenotype prediction is a linear function of named concept activations.
"""

from __future__ import annotations

import torch
from torch import nn


class ConceptBottleneck(nn.Module):
    """Linear (in_features -> n_concepts) giving concept logits (B, n) and activations sigmoid(logits) (B, n)."""

    def __init__(self, in_features: int, n_concepts: int):
        super().__init__()
        self.linear = nn.Linear(in_features, n_concepts)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        concept_logits = self.linear(features)  # (B, n)
        return concept_logits, torch.sigmoid(concept_logits)
