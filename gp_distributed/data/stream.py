"""Per-rank, resumable streaming of training genes from the store.

A rank reads its shards (contiguous gene blocks, one residue read each; see sharding.py), tokenises each
block as it is read, pushes its examples through a shuffle buffer, and yields them forever, epoch after
epoch. Order is a pure function of (seed, rank, world_size, epoch): a block's windows come from an RNG
seeded by (seed, rank, epoch, shard), the buffer's picks from the stream's RNG. `state_dict()` captures
the exact position (epoch, shard cursor, the buffer's gene indices, the picks' RNG state and how many of
its drawn picks were used), so a resumed stream yields exactly what the uninterrupted one would have: it
re-reads and re-tokenises the buffered genes' shards, which gives the same windows.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from gp_distributed.data.sharding import assign_shards
from gp_distributed.data.store import GeneRecord, GeneStore

# (sequence bytes, rng) -> token-id windows for one gene
WindowEncoder = Callable[[bytes, np.random.Generator], list[np.ndarray]]
# (joined residues, (G + 1,) int64 gene offsets, rng) -> token-id windows per gene; the same as a
# WindowEncoder called gene after gene
BlockEncoder = Callable[[bytes, np.ndarray, np.random.Generator], list[list[np.ndarray]]]

# Shuffle-buffer picks are drawn this many at a time: an RNG call per gene cost ~2 us, ~5 % of the stream.
PICKS_PER_DRAW = 256


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


def _block_encoder(encode: WindowEncoder) -> BlockEncoder:
    """`encode.encode_joined` where the encoder has one (a GeneWindower: one numpy pass per block), else
    `encode` called gene after gene with the same RNG."""
    encode_joined: BlockEncoder | None = getattr(encode, "encode_joined", None)
    if encode_joined is not None:
        return encode_joined

    def gene_by_gene(joined: bytes, offsets: np.ndarray, rng: np.random.Generator) -> list[list[np.ndarray]]:
        return [encode(joined[lo:hi], rng) for lo, hi in itertools.pairwise(offsets.tolist())]

    return gene_by_gene


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
        self._encode_block = _block_encoder(encode)
        self._rank, self._world_size, self._seed = rank, world_size, seed
        self._buffer_size = shuffle_buffer_genes
        self._shards = store.shards(split, genes_per_shard)
        if not self._shards:
            raise ValueError(f"{store.path}: no '{split}' genes to stream")
        self._shard_starts = np.array([shard.start for shard in self._shards])
        self._epoch = 0
        self._shard_cursor = 0  # position in this epoch's shard list
        self._buffer: list[Example] = []
        self._rng = np.random.default_rng([seed, rank, 0xB0F])
        self._draw_picks()
        self._order: list[int] = []
        self._order_epoch = -1  # the epoch `_order` belongs to

    @property
    def epoch(self) -> int:
        return self._epoch

    def _draw_picks(self) -> None:
        """The next PICKS_PER_DRAW uniform [0, 1) picks; the RNG state before them is what resumes them."""
        self._picks_rng_state = self._rng.bit_generator.state
        self._picks: list[float] = self._rng.random(PICKS_PER_DRAW).tolist()
        self._picks_used = 0

    def _epoch_shards(self) -> list[int]:
        """This epoch's shard order, computed once per epoch (a pure function of the stream's identity)."""
        if self._order_epoch != self._epoch:
            self._order = assign_shards(len(self._shards), self._rank, self._world_size, self._epoch, self._seed)
            self._order_epoch = self._epoch
        return self._order

    def _shard_examples(self, shard_position: int) -> list[Example]:
        """Every gene of one shard, tokenised with the block RNG of (seed, rank, epoch, shard)."""
        shard = self._shards[shard_position]
        # Flat arrays, not GeneRecords: the records' ids, symbols and per-gene objects went unused here.
        block = self._store.read_block_arrays(shard.start, shard.stop)
        rng = np.random.default_rng([self._seed, self._rank, self._epoch, shard_position, 0xB10C])
        windows = self._encode_block(block.residues, block.seq_offsets, rng)
        return list(map(Example, range(shard.start, shard.stop), windows, block.rows("go_input"),
                        block.rows("go_concepts"), block.rows("labels")))

    def _refill(self) -> None:
        """Read whole shards into the buffer until it is full; roll over to the next epoch as needed."""
        while len(self._buffer) < self._buffer_size:
            order = self._epoch_shards()
            if self._shard_cursor >= len(order):
                if not self._buffer:
                    self._epoch, self._shard_cursor = self._epoch + 1, 0
                    continue
                return  # drain the buffer before the next epoch starts: epochs never mix
            position = order[self._shard_cursor]
            self._shard_cursor += 1
            self._buffer.extend(self._shard_examples(position))

    def __iter__(self) -> Iterator[Example]:
        return self

    def __next__(self) -> Example:
        if len(self._buffer) < self._buffer_size:
            self._refill()
        if self._picks_used == PICKS_PER_DRAW:
            self._draw_picks()
        size = len(self._buffer)
        pick = min(int(self._picks[self._picks_used] * size), size - 1)  # min: rounding of u * size up to size
        self._picks_used += 1
        # Swap-remove: O(1), and deterministic given the picks.
        self._buffer[pick], self._buffer[-1] = self._buffer[-1], self._buffer[pick]
        return self._buffer.pop()

    def start_epoch(self, epoch: int) -> None:
        """Jump to the start of `epoch` (elastic resume: cursors of another world size do not map)."""
        self._epoch, self._shard_cursor, self._buffer = epoch, 0, []

    def state_dict(self) -> dict[str, Any]:
        """JSON-ready position: ints, a list of ints, and the picks' RNG state (numpy's bit generator
        state dict) from before the group of picks now being used, of which "picks_used" are used."""
        return {
            "epoch": self._epoch,
            "shard_cursor": self._shard_cursor,
            "buffer_gene_indices": [example.gene_index for example in self._buffer],
            "rng": self._picks_rng_state,
            "picks_used": self._picks_used,
            "rank": self._rank,
            "world_size": self._world_size,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a position saved by `state_dict()` of a stream with the same rank and world size.

        A state without "picks_used" (written before picks were drawn in groups) resumes its RNG as it
        was: deterministic, though not the order the stream that wrote it would have gone on with.
        """
        if (state["rank"], state["world_size"]) != (self._rank, self._world_size):
            raise ValueError(
                f"stream state of rank {state['rank']}/{state['world_size']} given to rank {self._rank}/{self._world_size}"
            )
        self._epoch = int(state["epoch"])
        self._shard_cursor = int(state["shard_cursor"])
        self._rng.bit_generator.state = state["rng"]
        self._draw_picks()
        self._picks_used = int(state.get("picks_used", 0))
        self._buffer = self._examples_of(np.asarray(state["buffer_gene_indices"], dtype=np.int64))

    def _examples_of(self, gene_indices: np.ndarray) -> list[Example]:
        """The buffered examples of this epoch for `gene_indices`, in order: their shards read and
        tokenised again, which gives the same windows (the block RNG depends on the shard alone)."""
        positions = np.searchsorted(self._shard_starts, gene_indices, side="right") - 1
        examples: dict[int, Example] = {}
        for position in np.unique(positions).tolist():
            examples.update((example.gene_index, example) for example in self._shard_examples(position))
        missing = sorted(set(gene_indices.tolist()) - examples.keys())
        if missing:
            raise ValueError(f"stream state buffers genes outside this stream's shards: {missing[:5]}")
        return [examples[index] for index in gene_indices.tolist()]


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
