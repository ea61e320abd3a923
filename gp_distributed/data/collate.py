"""Examples (one gene each, several token windows) -> one padded `Batch` of tensors.

Shapes: W windows in the batch (every gene has at least one), T the longest window, B genes, G the most
GO input terms of any gene in the batch (at least 1), n concepts, C phenotype labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from gp_distributed.data.stream import Example


@dataclass(frozen=True)
class Batch:
    """One micro-batch. Windows of gene b are the rows w with `window_gene_index[w] == b`."""

    input_ids: torch.Tensor  # (W, T) long, right-padded with the tokenizer's pad id
    attention_mask: torch.Tensor  # (W, T) long, 1 on real tokens (special tokens included)
    window_gene_index: torch.Tensor  # (W,) long, gene row in [0, B) of each window
    go_ids: torch.Tensor  # (B, G) long, GO vocabulary index + 1; 0 is padding
    go_mask: torch.Tensor  # (B, G) bool, True on real GO terms
    concept_targets: torch.Tensor  # (B, n) float32 multi-hot coarse GO concepts
    label_targets: torch.Tensor  # (B, C) float32 multi-hot phenotype terms
    gene_index: torch.Tensor  # (B,) long, the genes' rows in the store

    @property
    def num_genes(self) -> int:
        return self.go_ids.shape[0]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The same batch with every tensor on `device`."""
        moved = {f.name: getattr(self, f.name).to(device, non_blocking=non_blocking) for f in fields(self)}
        return Batch(**moved)


def _multi_hot(index_lists: Sequence[np.ndarray], width: int, what: str) -> torch.Tensor:
    """(len(index_lists), width) float32 rows with ones at each row's indices (one scatter per batch)."""
    lengths = [len(indices) for indices in index_lists]
    columns = np.concatenate([np.asarray(i, dtype=np.int64) for i in index_lists]) if sum(lengths) else np.zeros(0, np.int64)
    if columns.size and (columns.min() < 0 or columns.max() >= width):
        row = int(np.repeat(np.arange(len(lengths)), lengths)[(columns < 0) | (columns >= width)][0])
        raise ValueError(f"{what} index out of range [0, {width}) in batch row {row}")
    targets = np.zeros((len(index_lists), width), dtype=np.float32)
    targets[np.repeat(np.arange(len(lengths)), lengths), columns] = 1.0
    return torch.from_numpy(targets)


def collate(
    examples: Sequence[Example],
    pad_token_id: int,
    n_concepts: int,
    n_labels: int,
    max_go_terms: int | None = None,
) -> Batch:
    """Pad and stack `examples` (in order) into a `Batch`.

    Windows keep their order, gene by gene. A gene's GO inputs are kept in store order, the first
    `max_go_terms` of them when that is set. Concept and label index lists become multi-hot rows of
    width `n_concepts` and `n_labels`.
    """
    if not examples:
        raise ValueError("cannot collate an empty list of examples")
    windows: list[np.ndarray] = []
    window_gene: list[int] = []
    for row, example in enumerate(examples):
        if not example.windows:
            raise ValueError(f"gene {example.gene_index} has no token window")
        windows.extend(example.windows)
        window_gene.extend([row] * len(example.windows))

    longest = max(len(window) for window in windows)
    input_ids = torch.full((len(windows), longest), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(windows), longest), dtype=torch.long)
    for row, window in enumerate(windows):
        input_ids[row, : len(window)] = torch.from_numpy(np.asarray(window, dtype=np.int64))
        attention_mask[row, : len(window)] = 1

    go_lists = [np.asarray(example.go_input, dtype=np.int64)[:max_go_terms] for example in examples]
    go_ids = torch.zeros((len(examples), max(1, *(len(terms) for terms in go_lists))), dtype=torch.long)
    for row, terms in enumerate(go_lists):
        go_ids[row, : len(terms)] = torch.from_numpy(terms) + 1  # shift: 0 is the padding id

    return Batch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        window_gene_index=torch.tensor(window_gene, dtype=torch.long),
        go_ids=go_ids,
        go_mask=go_ids > 0,
        concept_targets=_multi_hot([example.go_concepts for example in examples], n_concepts, "concept"),
        label_targets=_multi_hot([example.labels for example in examples], n_labels, "label"),
        gene_index=torch.tensor([example.gene_index for example in examples], dtype=torch.long),
    )
