"""Where a worker's checkpoints and metrics go: Ray Train (the worker-side Ray module) or a local folder.

Both reporters give the worker loop the same three calls: the checkpoint to resume from, a staging
directory to write a checkpoint into, and `report(metrics, staged_dir)`, which every rank calls.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from gp_distributed.checkpoint import best_complete_checkpoint, latest_complete_checkpoint
from gp_distributed.console import ProgressBar, quiet_logger, wants_progress_bar
from gp_distributed.train.ranks import WorkerContext, barrier


class Reporter(Protocol):
    def resume_checkpoint(self) -> Iterator[Path | None]: ...

    def staging_dir(self, name: str) -> Iterator[Path]: ...

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None, name: str | None) -> None: ...

    def progress_bar(self, total_steps: int, initial_step: int) -> ProgressBar | None: ...


class LocalReporter:
    """In-process runs (world size 1): checkpoints under `run_dir`, renamed into place when complete."""

    def __init__(self, run_dir: Path, keep_last: int, context: WorkerContext, *, keep_best: bool = False):
        self.run_dir = Path(run_dir)
        self.keep_last = keep_last
        self.keep_best = keep_best  # also keep the best-scored checkpoint (train.select_best)
        self.context = context
        self.last_metrics: dict[str, Any] = {}

    @contextmanager
    def resume_checkpoint(self) -> Iterator[Path | None]:
        yield latest_complete_checkpoint(self.run_dir)

    @contextmanager
    def staging_dir(self, name: str) -> Iterator[Path]:
        staging = self.run_dir / f".{name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            yield staging
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None, name: str | None) -> None:
        self.last_metrics = dict(metrics)
        if checkpoint_dir is None or name is None:
            return
        barrier()  # every rank has written its files
        if self.context.is_rank0:
            final = self.run_dir / name
            shutil.rmtree(final, ignore_errors=True)
            checkpoint_dir.rename(final)
            best = best_complete_checkpoint(self.run_dir) if self.keep_best else None
            for stale in sorted(self.run_dir.glob("checkpoint_*"))[: -self.keep_last]:
                if stale != best:
                    shutil.rmtree(stale, ignore_errors=True)
        barrier()

    def progress_bar(self, total_steps: int, initial_step: int) -> ProgressBar | None:
        """A tqdm bar on this process's stderr when the user sits at a terminal (`console`), else None."""
        if not wants_progress_bar():
            return None
        from tqdm import tqdm

        return tqdm(total=total_steps, initial=initial_step, desc="training", unit="step", dynamic_ncols=True)


class RayReporter:
    """Inside a Ray Train worker: `ray.train.get_checkpoint` / `ray.train.report` (merges every rank's files)."""

    def __init__(self) -> None:
        import ray.train
        from ray.train.v2._internal.execution import context as train_context

        self._train = ray.train
        # Ray Train logs "Reporting training result <every metric> from rank N" at INFO through a logger
        # named by its file path, which its own log level (RunConfig.logging_config) does not cover.
        quiet_logger(train_context.__file__, logging.WARNING)

    @contextmanager
    def resume_checkpoint(self) -> Iterator[Path | None]:
        checkpoint = self._train.get_checkpoint()
        if checkpoint is None:
            yield None
            return
        with checkpoint.as_directory() as directory:
            yield Path(directory)

    @contextmanager
    def staging_dir(self, name: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix=f"gp-{name}-") as directory:
            yield Path(directory)

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None, name: str | None) -> None:
        checkpoint = self._train.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        self._train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=name if checkpoint else None)

    def progress_bar(self, total_steps: int, initial_step: int) -> ProgressBar | None:
        """When the user sits at a terminal (`console`): Ray's tqdm_ray, whose state this worker prints as
        a line that the driver turns into a bar (with its ETA) on the user's terminal; else None."""
        if not wants_progress_bar():
            return None
        from ray.experimental.tqdm_ray import tqdm

        bar = tqdm(total=total_steps, desc="training", unit="step")
        bar.n = initial_step
        return bar


def ray_worker_context() -> WorkerContext:
    import ray.train

    context = ray.train.get_context()
    return WorkerContext(
        world_rank=context.get_world_rank(), world_size=context.get_world_size(), local_rank=context.get_local_rank()
    )
