"""Per-rank, resumable streaming of training genes from the store.

A rank reads its shards (contiguous gene blocks, one residue read each; see sharding.py), pushes genes
through a shuffle buffer, and yields them forever, epoch after epoch. Order is a pure function of
(seed, rank, world_size, epoch); `state_dict()` captures the exact position (epoch, shard cursor, the
buffer's gene indices, the RNG state), so a resumed stream yields exactly what the uninterrupted one
would have. Windowing/tokenisation randomness uses the same RNG, so it resumes exactly too.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from gp_distributed.data.sharding import assign_shards
from gp_distributed.data.store import GeneRecord, GeneStore

# (sequence bytes, rng) -> token-id windows for one gene
WindowEncoder = Callable[[bytes, np.random.Generator], list[np.ndarray]]


@dataclass(frozen=True)
class Example:
    """One gene, tokenised: what collate() batches."""

    gene_index: int
    windows: list[np.ndarray]  # token ids per window, each (T_w,) int64
    go_input: np.ndarray  # GO vocabulary indices
    go_concepts: np.ndarray  # concept indices (bottleneck targets)
    labels: np.ndarray  # phenotype term indices


def make_example(record: GeneRecord, encode: WindowEncoder, rng: np.random.Generator) -> Example:
    return Example(
        gene_index=record.index,
        windows=encode(record.sequence, rng),
        go_input=record.go_input,
        go_concepts=record.go_concepts,
        labels=record.labels,
    )


class TrainStream:
    """Endless, shuffled, resumable iterator of `Example`s for one rank."""

    def __init__(
        self,
        store: GeneStore,
        encode: WindowEncoder,
        *,
        rank: int,
        world_size: int,
        seed: int,
        shuffle_buffer_genes: int,
        genes_per_shard: int | None = None,
        split: str = "train",
    ):
        self._store = store
        self._encode = encode
        self._rank, self._world_size, self._seed = rank, world_size, seed
        self._buffer_size = shuffle_buffer_genes
        self._shards = store.shards(split, genes_per_shard)
        if not self._shards:
            raise ValueError(f"{store.path}: no '{split}' genes to stream")
        self._epoch = 0
        self._shard_cursor = 0  # position in this epoch's shard list
        self._buffer: list[GeneRecord] = []
        self._rng = np.random.default_rng([seed, rank, 0xB0F])
        self._order: list[int] = []
        self._order_epoch = -1  # the epoch `_order` belongs to

    @property
    def epoch(self) -> int:
        return self._epoch

    def _epoch_shards(self) -> list[int]:
        """This epoch's shard order, computed once per epoch (a pure function of the stream's identity)."""
        if self._order_epoch != self._epoch:
            self._order = assign_shards(len(self._shards), self._rank, self._world_size, self._epoch, self._seed)
            self._order_epoch = self._epoch
        return self._order

    def _refill(self) -> None:
        """Read whole shards into the buffer until it is full; roll over to the next epoch as needed."""
        while len(self._buffer) < self._buffer_size:
            order = self._epoch_shards()
            if self._shard_cursor >= len(order):
                if not self._buffer:
                    self._epoch, self._shard_cursor = self._epoch + 1, 0
                    continue
                return  # drain the buffer before the next epoch starts: epochs never mix
            shard = self._shards[order[self._shard_cursor]]
            self._shard_cursor += 1
            self._buffer.extend(self._store.read_block(shard.start, shard.stop))

    def __iter__(self) -> Iterator[Example]:
        return self

    def __next__(self) -> Example:
        self._refill()
        pick = int(self._rng.integers(len(self._buffer)))
        # Swap-remove: O(1), and deterministic given the RNG state.
        self._buffer[pick], self._buffer[-1] = self._buffer[-1], self._buffer[pick]
        return make_example(self._buffer.pop(), self._encode, self._rng)

    def start_epoch(self, epoch: int) -> None:
        """Jump to the start of `epoch` (elastic resume: cursors of another world size do not map)."""
        self._epoch, self._shard_cursor, self._buffer = epoch, 0, []

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self._epoch,
            "shard_cursor": self._shard_cursor,
            "buffer_gene_indices": [r.index for r in self._buffer],
            "rng": self._rng.bit_generator.state,
            "rank": self._rank,
            "world_size": self._world_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a position saved by `state_dict()` of a stream with the same rank and world size."""
        if (state["rank"], state["world_size"]) != (self._rank, self._world_size):
            raise ValueError(
                f"stream state of rank {state['rank']}/{state['world_size']} given to rank {self._rank}/{self._world_size}"
            )
        self._epoch = int(state["epoch"])
        self._shard_cursor = int(state["shard_cursor"])
        self._buffer = [self._store.gene(int(i)) for i in state["buffer_gene_indices"]]
        self._rng.bit_generator.state = state["rng"]


def eval_examples(store: GeneStore, gene_indices: np.ndarray, encode: WindowEncoder, seed: int) -> Iterator[Example]:
    """Evaluation genes in order, read in contiguous blocks. Each gene's windows come from an RNG seeded
    by (seed, its sequence), so a gene scores the same wherever it stands in the input."""
    if len(gene_indices) == 0:
        return
    runs = np.split(gene_indices, np.flatnonzero(np.diff(gene_indices) != 1) + 1)
    for run in runs:
        for record in store.read_block(int(run[0]), int(run[-1]) + 1):
            rng = np.random.default_rng([seed, 0xE7A1, zlib.crc32(record.sequence)])
            yield make_example(record, encode, rng)
