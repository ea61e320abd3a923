"""Which shards a rank reads in an epoch: a pure function, testable without Ray or Zarr.

Every epoch, all shards are permuted by (seed, epoch) and dealt round-robin to ranks, so each rank
sees a different, reproducible set of shards each epoch and the union over ranks is every shard
exactly once. Ranks may get one shard more than others; the stream never ends (it cycles epochs) and
training runs by optimizer-step count, so every rank takes the same number of steps and no collective
waits on a rank that ran out of data.
"""

from __future__ import annotations

import numpy as np


def epoch_shard_order(n_shards: int, epoch: int, seed: int) -> np.ndarray:
    """A permutation of range(n_shards), fixed by (seed, epoch)."""
    return np.random.default_rng([seed, epoch, 0x5EED]).permutation(n_shards)


def assign_shards(n_shards: int, rank: int, world_size: int, epoch: int, seed: int) -> list[int]:
    """The shard indices `rank` (of `world_size`) reads in `epoch`, in reading order."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    if n_shards < world_size:
        # Too few shards to give each rank its own: every rank reads all of them (different shuffles).
        return [int(s) for s in epoch_shard_order(n_shards, epoch, seed + rank)]
    return [int(s) for s in epoch_shard_order(n_shards, epoch, seed)[rank::world_size]]


def eval_gene_slice(n_genes: int, rank: int, world_size: int) -> slice:
    """Contiguous, near-equal slice of evaluation genes for `rank`; slices cover 0..n_genes once."""
    base, extra = divmod(n_genes, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))
