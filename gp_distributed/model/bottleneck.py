"""The GO-concept bottleneck: the second-to-last layer, one unit per coarse GO concept (GenePheno step 4).

Each concept unit's logit is supervised by one coarse GO term (L_GO); its sigmoid activation is what the
phenotype head reads, so every phenotype prediction is a linear function of named concept activations.

`n_free` > 0 adds unsupervised units beside the concept units (a "hybrid" bottleneck with a side
channel, departing from the paper): the head reads both, explanations attribute only the concept units.
The depth-2 concepts are coarse functions of the GO input, and with no pretrained GO embeddings here
the concept-only bottleneck loses information the phenotypes need (docs/benchmarks.md, issue 12).
"""

from __future__ import annotations

import torch
from torch import nn


class ConceptBottleneck(nn.Module):
    """Linear (in_features -> n_concepts + n_free): concept logits (B, n), concept activations
    sigmoid(logits) (B, n), and free-unit activations (B, n_free)."""

    def __init__(self, in_features: int, n_concepts: int, n_free: int = 0):
        super().__init__()
        self.n_concepts = n_concepts
        self.linear = nn.Linear(in_features, n_concepts + n_free)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = self.linear(features)  # (B, n + n_free)
        activations = torch.sigmoid(logits)
        return logits[:, : self.n_concepts], activations[:, : self.n_concepts], activations[:, self.n_concepts :]
