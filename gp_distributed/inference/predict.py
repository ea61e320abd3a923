"""The one prediction path: examples -> batches -> model forward -> phenotype probabilities and concept
activations. Training-time evaluation (through the DeepSpeed engine, each rank its share), `gp
evaluate`, `gp predict`, `gp explain`, `gp embed` and the pyfunc model all call `predict_examples`, so a
gene gets the same windows, batches and scores whichever way it is scored.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from gp_distributed.data.collate import Batch, collate
from gp_distributed.data.stream import Example
from gp_distributed.model.genepheno import ModelOutput


@dataclass(frozen=True)
class BatchShape:
    """What `collate` needs besides the examples: the pad id and the target widths."""

    pad_token_id: int
    n_concepts: int
    n_labels: int
    max_go_terms: int

    def collate(self, examples: list[Example]) -> Batch:
        return collate(examples, self.pad_token_id, self.n_concepts, self.n_labels, self.max_go_terms)


@dataclass(frozen=True)
class ScoredGenes:
    gene_indices: np.ndarray  # (N,) int64, each example's `gene_index`, in input order
    probabilities: np.ndarray  # (N, C) float32, sigmoid of the phenotype logits
    concept_activations: np.ndarray  # (N, n) float32, the bottleneck activations the head reads
    # Gene embeddings, only when `predict_examples(..., embeddings=True)` (training-time evaluation skips them).
    sequence_vectors: np.ndarray | None = None  # (N, 2d) float32 pooled token states ((N, d) with "mean" pooling)
    fused_vectors: np.ndarray | None = None  # (N, mlp_hidden_dim) float32, the MLP output the bottleneck reads


@torch.no_grad()
def predict_examples(forward: Callable[[Batch], ModelOutput], examples: Iterable[Example], shape: BatchShape, *,
                     batch_size: int, device: torch.device | str = "cpu", n_examples: int | None = None,
                     min_batches: int = 0, filler: list[Example] | None = None,
                     show_progress: bool = False, embeddings: bool = False) -> ScoredGenes:
    """Score `examples` in batches of `batch_size`, in order. `forward` is a model (or a DeepSpeed
    engine) in eval mode. `min_batches` > the real batch count runs extra forwards on `filler` and drops
    them: under ZeRO-3 every forward gathers parameters collectively, so every rank must run as many
    forwards as the busiest one. `n_examples` only sizes the progress bar. `embeddings` also collects
    each gene's `sequence_vectors` and `fused_vectors` (None otherwise)."""
    iterator = iter(examples)
    indices, probabilities, activations = [], [], []
    vectors: dict[str, list[np.ndarray]] = {"sequence": [], "fused": []}
    total = None if n_examples is None else -(-n_examples // batch_size)
    with tqdm(total=total, disable=not show_progress, unit="batch", desc="predicting", leave=False) as progress:
        while chunk := list(itertools.islice(iterator, batch_size)):
            batch = shape.collate(chunk)
            output = forward(batch.to(device))
            probabilities.append(torch.sigmoid(output.label_logits.float()).cpu().numpy())
            activations.append(output.concept_activations.float().cpu().numpy())
            if embeddings:
                vectors["sequence"].append(_vectors(output.sequence_vector))
                vectors["fused"].append(_vectors(output.fused_vector))
            indices.append(batch.gene_index.numpy())
            progress.update()
    for _ in range(min_batches - len(indices)):
        forward(shape.collate(filler or []).to(device))
    if not indices:
        # No gene, so no forward told the vectors' widths: (0, 0) stands for them.
        empty = np.zeros((0, 0), np.float32) if embeddings else None
        return ScoredGenes(np.zeros(0, np.int64), np.zeros((0, shape.n_labels), np.float32),
                           np.zeros((0, shape.n_concepts), np.float32), empty, empty)
    sequence, fused = (np.concatenate(vectors[kind]) if embeddings else None for kind in ("sequence", "fused"))
    return ScoredGenes(np.concatenate(indices), np.concatenate(probabilities), np.concatenate(activations),
                       sequence, fused)


def _vectors(tensor: torch.Tensor | None) -> np.ndarray:
    if tensor is None:
        raise ValueError("the model's forward returned no embedding vectors (ModelOutput.sequence_vector/fused_vector)")
    return tensor.float().cpu().numpy()
