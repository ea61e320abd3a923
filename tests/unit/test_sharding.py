"""Shard-to-rank assignment is a pure function: a partition of shards per epoch, reproducible."""

import pytest

from gp_distributed.data.sharding import assign_shards, eval_gene_slice


@pytest.mark.parametrize("n_shards, world_size", [(10, 2), (7, 3), (16, 4), (5, 1)])
def test_each_epoch_partitions_the_shards(n_shards: int, world_size: int) -> None:
    for epoch in range(3):
        per_rank = [assign_shards(n_shards, r, world_size, epoch, seed=1) for r in range(world_size)]
        flat = sorted(s for shards in per_rank for s in shards)
        assert flat == list(range(n_shards))
        assert max(map(len, per_rank)) - min(map(len, per_rank)) <= 1


def test_order_is_reproducible_and_changes_with_epoch_and_seed() -> None:
    a = assign_shards(20, 0, 2, epoch=0, seed=7)
    assert a == assign_shards(20, 0, 2, epoch=0, seed=7)
    assert a != assign_shards(20, 0, 2, epoch=1, seed=7)
    assert a != assign_shards(20, 0, 2, epoch=0, seed=8)


def test_fewer_shards_than_ranks_gives_every_rank_data() -> None:
    per_rank = [assign_shards(2, r, 4, epoch=0, seed=0) for r in range(4)]
    assert all(sorted(shards) == [0, 1] for shards in per_rank)


def test_rank_outside_world_is_refused() -> None:
    with pytest.raises(ValueError):
        assign_shards(4, 2, 2, 0, 0)


def test_eval_slices_cover_every_gene_once() -> None:
    for n, world in [(10, 3), (2, 4), (0, 2), (101, 2)]:
        covered = [i for r in range(world) for i in range(n)[eval_gene_slice(n, r, world)]]
        assert covered == list(range(n))
