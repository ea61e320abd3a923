"""The driver side of training: the only module that imports Ray on the driver.

`resolve_paths(config)` makes every path absolute against the driver's working directory (workers run
elsewhere, and `ray job submit` runs the driver in a temporary copy); `launch_training(config)` then
makes sure the gene store exists and either runs the worker loop in this process (`scaling.num_workers=0`) or starts a Ray Train
`TorchTrainer` over DeepSpeed workers. Re-running with the same run name resumes from the latest
checkpoint under `<storage_path>/<run_name>`, a directory or an object store prefix (`s3://...`, see
train/storage.py: the bucket is checked before Ray starts, and the final checkpoint is copied to a
local directory for what runs after training). What happens after training (report, model logging,
registry) is `commands/train.py`'s.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gp_distributed.checkpoint import latest_complete_checkpoint, run_directory
from gp_distributed.config import GPConfig, is_storage_uri
from gp_distributed.console import (
    ray_driver_log_level,
    ray_train_log_level,
    worker_environment,
)
from gp_distributed.data.store import open_store
from gp_distributed.errors import ConfigError, GpError
from gp_distributed.tracking.tracker import (
    check_artifact_location,
    resolve_tracking_uri,
)
from gp_distributed.train.selection import SELECTION_METRIC


def set_ray_client_environment() -> None:
    """Call before the first `import ray` of a process (the driver entry points do): Ray reads both at
    import time."""
    # Token auth stays on for every Ray client we start or join (Ray 2.60 default for local clusters).
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    # On Linux, Ray 2.60 replaces --node-ip-address=127.0.0.1 by the outward address and listens on
    # every interface unless this is 0: keep a local Ray on loopback only.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@dataclass(frozen=True)
class LaunchResult:
    run_dir: Path | str  # a directory, or the run's object store URI (s3://bucket/prefix/<run name>)
    metrics: dict[str, Any]
    checkpoint_dir: Path | None  # local: the run's own checkpoint, or a copy of the one in object storage


def _absolute(path: Path | None) -> Path | None:
    return None if path is None else Path(path).expanduser().resolve()


def _inside_job_working_copy(cwd: Path) -> bool:
    """`ray job submit` runs the driver in a temporary copy of the submitted directory."""
    return "runtime_resources" in cwd.parts and any(part.startswith("working_dir") for part in cwd.parts)


def _check_outputs_outlive_the_job(config: GPConfig, cwd: Path) -> None:
    """Under `ray job submit`, relative output locations would vanish with the job's working copy."""
    if not _inside_job_working_copy(cwd):
        return
    if not is_storage_uri(config.train.storage_path) and not Path(config.train.storage_path).is_absolute():
        raise ConfigError("config", "train.storage_path", "must be absolute under ray job submit "
                          "(the job's working directory is a temporary copy), e.g. train.storage_path=/shared/runs")
    uri = config.tracking.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if config.tracking.enabled and (uri is None or resolve_tracking_uri(uri, Path("/")) != resolve_tracking_uri(uri, cwd)):
        raise ConfigError("config", "tracking.tracking_uri", "must be absolute under ray job submit "
                          "(the job's working directory is a temporary copy), e.g. sqlite:////shared/mlflow.db")


def resolve_paths(config: GPConfig) -> GPConfig:
    """Every path and the tracking URI made absolute against the driver's working directory, before
    crossing to workers."""
    _check_outputs_outlive_the_job(config, Path.cwd())
    storage = config.train.storage_path
    storage = storage if is_storage_uri(storage) else _absolute(storage)
    ingest_paths = {name: _absolute(getattr(config.ingest, name)) for name in (
        "fasta", "id_map", "labels", "ontology", "go", "go_ontology", "exclusive_pairs", "out")}
    return config.model_copy(update={
        "ingest": config.ingest.model_copy(update=ingest_paths),
        "data": config.data.model_copy(update={"store": _absolute(config.data.store)}),
        "model": config.model.model_copy(update={"backbone_path": _absolute(config.model.backbone_path)}),
        "train": config.train.model_copy(update={"storage_path": storage}),
        "faults": config.faults.model_copy(update={"once_marker": _absolute(config.faults.once_marker)}),
        "tracking": config.tracking.model_copy(
            update={"tracking_uri": resolve_tracking_uri(config.tracking.tracking_uri, Path.cwd())}),
    })


def ensure_store(config: GPConfig) -> None:
    """Open (and so validate) the training store; ingest it first when it is missing but configured."""
    store_path = config.data.store
    if store_path is None:
        raise ConfigError("config", "data.store", "required for training")
    if not store_path.exists():
        if config.ingest.out is None or _absolute(config.ingest.out) != store_path:
            raise ConfigError("config", "data.store", f"{store_path} does not exist (run gp ingest first)")
        from gp_distributed.ingest.pipeline import run_ingest

        print(f"store {store_path} missing: ingesting it from the configured inputs")
        run_ingest(config.ingest)
    open_store(store_path)


def _runtime_env(use_gpu: bool) -> dict[str, Any]:
    # MALLOC_MMAP_THRESHOLD_: glibc then serves every block over 128 KiB with mmap and returns it on
    # free. Its default threshold adapts upwards after frees, so the weights freed when ZeRO-3 partitions
    # a freshly built model stayed resident (measured: 6.1 instead of 4.8 GiB per 1.2B-model worker).
    env_vars = {"RAY_AUTH_MODE": "token", "TOKENIZERS_PARALLELISM": "false", "MALLOC_MMAP_THRESHOLD_": "131072",
                **worker_environment()}
    if not use_gpu:
        env_vars["DS_ACCELERATOR"] = "cpu"
    # The hook runs in every worker process of the job (Train controller and workers included) before its
    # first task: the console's library log levels, set where those libraries log.
    return {"env_vars": env_vars, "worker_process_setup_hook": "gp_distributed.console.configure_worker_process"}


def start_local_ray(num_cpus: int, *, use_gpu: bool = False, temp_dir: Path | None = None) -> None:
    """A private Ray instance on loopback with token auth, never joining a cluster someone else runs here."""
    set_ray_client_environment()
    import ray

    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level=ray_driver_log_level(),
             _temp_dir=str(temp_dir) if temp_dir else None, runtime_env=_runtime_env(use_gpu))


def _start_or_join_ray(config: GPConfig) -> None:
    set_ray_client_environment()
    import ray

    if ray.is_initialized():
        return
    address = config.scaling.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, runtime_env=_runtime_env(config.scaling.use_gpu), logging_level=ray_driver_log_level())
        return
    needed_cpus = int(config.scaling.num_workers * config.scaling.cpus_per_worker + 0.999) + 1
    start_local_ray(max(needed_cpus, os.cpu_count() or 1), use_gpu=config.scaling.use_gpu)


def _storage(config: GPConfig) -> dict[str, Any]:
    """RunConfig's storage arguments: the storage directory, or an object store path and its filesystem."""
    storage = config.train.storage_path
    if not is_storage_uri(storage):
        return {"storage_path": str(storage)}
    from gp_distributed.train.storage import split_uri, storage_filesystem

    return {"storage_path": split_uri(storage)[1], "storage_filesystem": storage_filesystem()}


def _local_copy(checkpoint: Any, run_name: str) -> Path:
    """A finished checkpoint as a local directory: its own path on a file system, else a download."""
    import pyarrow.fs

    if isinstance(checkpoint.filesystem, pyarrow.fs.LocalFileSystem):
        return Path(checkpoint.path)
    local = Path(tempfile.mkdtemp(prefix=f"gp-{run_name}-")) / Path(checkpoint.path).name
    checkpoint.to_directory(str(local))
    print(f"final checkpoint {checkpoint.path} copied to {local}")
    return local


def _checkpoint_config(config: GPConfig) -> Any:
    """Ray keeps the latest checkpoint and the `keep_last_checkpoints` best: by validation Fmax with
    `train.select_best` (every checkpoint then carries one), else the most recent."""
    import ray.train

    if not config.train.select_best:
        return ray.train.CheckpointConfig(num_to_keep=config.train.keep_last_checkpoints)
    return ray.train.CheckpointConfig(num_to_keep=config.train.keep_last_checkpoints,
                                      checkpoint_score_attribute=SELECTION_METRIC, checkpoint_score_order="max")


def _ray_train(config: GPConfig) -> tuple[dict[str, Any], Path | None]:
    set_ray_client_environment()  # before this process's first `import ray` (token auth is read then)
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from gp_distributed.train.worker import train_loop_per_worker

    _start_or_join_ray(config)
    scaling = config.scaling
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=config.model_dump(mode="json"),
        torch_config=TorchConfig(backend="nccl" if scaling.use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=scaling.num_workers, use_gpu=scaling.use_gpu,
            resources_per_worker={"CPU": scaling.cpus_per_worker, **({"GPU": 1} if scaling.use_gpu else {})},
            placement_strategy=scaling.placement_strategy,
        ),
        run_config=ray.train.RunConfig(
            name=config.train.run_name,
            logging_config=ray.train.LoggingConfig(log_level=ray_train_log_level()),
            **_storage(config),
            checkpoint_config=_checkpoint_config(config),
            failure_config=ray.train.FailureConfig(max_failures=scaling.max_failures),
        ),
    )
    try:
        result = trainer.fit()
    except ray.train.TrainingFailedError as error:
        raise training_failure(error) from None
    checkpoint = _local_copy(result.checkpoint, config.train.run_name) if result.checkpoint is not None else None
    return dict(result.metrics or {}), checkpoint


def training_failure(error: Exception) -> GpError:
    """The one line for a failed `trainer.fit()`: a worker's own `GpError` (bad input found on a worker)
    as it is, anything else as rank, type and first message line (the traceback is in the Ray log above)."""
    import ray.exceptions
    import ray.train

    if not isinstance(error, ray.train.WorkerGroupError):
        return GpError(f"training failed: {str(error).splitlines()[-1]}")
    rank, cause = min(error.worker_failures.items(), key=lambda item: item[0])
    if isinstance(cause, ray.exceptions.RayTaskError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, GpError):
        return cause
    first_line = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return GpError(f"training failed on worker rank {rank} after the configured retries: "
                   f"{type(cause).__name__}: {first_line} (traceback in the Ray log above)")


def launch_training(config: GPConfig) -> LaunchResult:
    """Train (or resume) the configured run, whose paths the caller made absolute (`resolve_paths`, as
    `commands.train.run_training` does before its checks). Returns the last reported metrics and checkpoint."""
    ensure_store(config)
    if config.tracking.enabled and config.tracking.artifact_location is not None:
        check_artifact_location(config.tracking)
    if is_storage_uri(config.train.storage_path):  # before Ray starts: one line, not a failed worker group
        from gp_distributed.train.storage import check_storage

        check_storage(config.train.storage_path)
        run_uri = f"{config.train.storage_path.rstrip('/')}/{config.train.run_name}"
        metrics, checkpoint = _ray_train(config)
        return LaunchResult(run_uri, metrics, checkpoint)
    run_dir = run_directory(config.train.storage_path, config.train.run_name)
    if config.scaling.num_workers == 0:
        from gp_distributed.train.worker import run_in_process

        metrics = run_in_process(config, run_dir)
        checkpoint = latest_complete_checkpoint(run_dir)
    else:
        metrics, checkpoint = _ray_train(config)
    return LaunchResult(run_dir, metrics, checkpoint)
