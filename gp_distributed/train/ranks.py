"""Rank discipline in one place: who am I, print on rank 0, barriers and gathers.

Collectives here must be called on every rank (a rank that skips one hangs the others). Under Ray
Train the process group already exists (TorchTrainer sets it up); for in-process runs
`init_single_process_group` creates a world of one on 127.0.0.1 with gloo.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class WorkerContext:
    world_rank: int
    world_size: int
    local_rank: int

    @property
    def is_rank0(self) -> bool:
        return self.world_rank == 0

    def print0(self, *args: Any) -> None:
        if self.is_rank0:
            print(*args, flush=True)


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def init_single_process_group() -> WorkerContext:
    """A world of one on loopback (in-process training and tests): gloo on CPU, NCCL on a GPU."""
    if not dist.is_initialized():
        port = free_loopback_port()
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1", LOCAL_RANK="0")
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    return WorkerContext(world_rank=0, world_size=1, local_rank=0)


def barrier() -> None:
    """All ranks must call."""
    dist.barrier()


def gather_to_rank0(payload: Any, context: WorkerContext) -> list[Any] | None:
    """Every rank's `payload` on rank 0 (in rank order), None elsewhere. All ranks must call."""
    gathered: list[Any] | None = [None] * context.world_size if context.is_rank0 else None
    dist.gather_object(payload, gathered, dst=0)
    return gathered


def broadcast_from_rank0(payload: Any) -> Any:
    """Rank 0's `payload` on every rank. All ranks must call."""
    box = [payload]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_means_and_maxes(means: dict[str, float], maxes: dict[str, float]) -> dict[str, float]:
    """Over ranks, the mean of each value in `means` and the maximum of each in `maxes`, in two collective
    calls whatever the number of keys (a step's metrics; one call per value costs a round trip each).
    Every rank must call with the same keys."""
    world = dist.get_world_size()
    mean_tensor = torch.tensor(list(means.values()), dtype=torch.float64)
    max_tensor = torch.tensor(list(maxes.values()), dtype=torch.float64)
    dist.all_reduce(mean_tensor)
    dist.all_reduce(max_tensor, op=dist.ReduceOp.MAX)
    return {**dict(zip(means, (mean_tensor / world).tolist())), **dict(zip(maxes, max_tensor.tolist()))}
