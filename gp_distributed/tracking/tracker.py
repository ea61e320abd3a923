"""Experiment tracking: MLflow runs, params and metrics from rank 0 (registry.py logs and registers
models; pyfunc.py is the model class MLflow loads). The tracking package is the only one that imports MLflow.

Where runs go (`resolve_tracking_uri`): the configured `tracking.tracking_uri`, else $MLFLOW_TRACKING_URI,
else `sqlite:///<cwd>/mlflow.db`; always made absolute against the directory the user ran from (MLflow's
own defaults are relative, and Ray workers and `ray job submit` run elsewhere). Experiments created
here keep their artifacts beside a sqlite database, in `<db dir>/mlruns`.

Ranks: rank 0 gets an `MlflowTracker`, every other rank a `NullTracker`, so call sites never branch on
rank. A resumed training continues the MLflow run whose id its checkpoint carries.

Names: MLflow metric names allow letters, digits, `_ - . / : ` and space only; `metric_key` maps the
rest (`valid/>=301/fmax` is logged as `valid/ge301/fmax`). Non-finite values are not logged.

Outages: a training run never dies because MLflow does. When a call from the training tracker fails
(server down, database locked, disk full), it prints one line and keeps training; metrics are kept in
memory (up to `_MAX_BUFFERED_METRICS`) and flushed once MLflow answers again, tried at most every
`_OUTAGE_RETRY_SECONDS`. If MLflow is still away when training ends, the run is left RUNNING and the
unlogged metrics go to a backlog file in the run directory, logged first by the next tracker that
resumes that run (re-running the same command). HTTP clients get
`MLFLOW_HTTP_REQUEST_MAX_RETRIES=2` and `MLFLOW_HTTP_REQUEST_TIMEOUT=30` unless the environment sets
them, so an outage costs a training step seconds, not MLflow's default minutes of backoff. After
training the driver needs MLflow to log and register the model; when it cannot, the command stops
with one line and re-running it (the run is complete, so it only resumes at the final step) finishes
the job.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlparse

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from mlflow.exceptions import MlflowException

from gp_distributed.config import (
    GPConfig,
    TrackingConfig,
    config_to_yaml,
    redact_credentials,
)
from gp_distributed.config_yaml import flatten_dotted
from gp_distributed.errors import ConfigError, InputError

RunStatus = Literal["FINISHED", "FAILED", "KILLED"]
_OUTAGE_RETRY_SECONDS = 60.0
_MAX_BUFFERED_METRICS = 1_000_000  # ~100 MB of `Metric` objects; older ones are dropped beyond that
_BATCH = 100  # MLflow's limit of params or tags per log_batch (metrics: 1000)
_INVALID_NAME_CHARS = re.compile(r"[^/\w.\- :]")
_COMPARISONS = (("<=", "le"), (">=", "ge"), ("<", "lt"), (">", "gt"))


def resolve_tracking_uri(config_uri: str | None, cwd: Path) -> str:
    """The absolute tracking URI: `config_uri`, else $MLFLOW_TRACKING_URI, else sqlite under `cwd`.

    Relative sqlite paths (`sqlite:///mlflow.db`) and plain paths are made absolute against `cwd`;
    server URIs (http, https, databricks) are returned as given.
    """
    uri = config_uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    cwd = Path(cwd).resolve()
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///"):])
        return "sqlite:///" + str(path if path.is_absolute() else cwd / path)
    scheme = urlparse(uri).scheme
    if scheme == "file":
        return Path(urlparse(uri).path).resolve().as_uri()
    if scheme == "":  # a plain path: a file store
        return (cwd / uri).resolve().as_uri()
    return uri


def artifact_location(tracking_uri: str) -> str | None:
    """Where new experiments keep artifacts: `<db dir>/mlruns` for sqlite; None lets MLflow decide."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri[len("sqlite:///"):]).parent / "mlruns").as_uri()
    return None


def metric_key(name: str) -> str:
    """A name MLflow accepts: comparisons spelled out (`>=301` -> `ge301`), other characters -> `_`."""
    for symbol, word in _COMPARISONS:
        name = name.replace(symbol, word)
    return _INVALID_NAME_CHARS.sub("_", name)


def flatten_params(tree: Mapping[str, Any]) -> dict[str, str]:
    """{"train": {"max_steps": 2}} -> {"train.max_steps": "2"}; lists as JSON, None as "null"."""
    flat = flatten_dotted(dict(tree))
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in flat.items()}


class Tracker(Protocol):
    """What the training loop logs through; `run_id` is None for the null tracker."""

    run_id: str | None

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None: ...

    def log_artifact(self, path: Path, artifact_dir: str | None = None) -> None: ...

    def log_text(self, text: str, artifact_file: str) -> None: ...

    def end(self, status: RunStatus = "FINISHED") -> None: ...


class NullTracker:
    """Every rank but 0, and runs with tracking disabled: accepts everything, logs nothing."""

    run_id: str | None = None

    def log_params(self, params: Mapping[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        pass

    def log_artifact(self, path: Path, artifact_dir: str | None = None) -> None:
        pass

    def log_text(self, text: str, artifact_file: str) -> None:
        pass

    def end(self, status: RunStatus = "FINISHED") -> None:
        pass


def _experiment_id(client: MlflowClient, name: str, tracking_uri: str, configured_location: str | None = None) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=configured_location or artifact_location(tracking_uri))
    except MlflowException:  # created meanwhile by another process
        return client.get_experiment_by_name(name).experiment_id


def _run_exists(client: MlflowClient, run_id: str) -> bool:
    try:
        client.get_run(run_id)
    except MlflowException:
        return False
    return True


def _backlog_path(backlog_dir: Path | None, run_id: str | None) -> Path | None:
    return backlog_dir / f"mlflow_backlog_{run_id}.jsonl" if backlog_dir is not None and run_id else None


def _read_backlog(path: Path) -> list[Metric]:
    """Metrics an outage held back, one JSON array `[key, value, timestamp, step]` per line."""
    metrics = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            key, value, timestamp, step = json.loads(line)
            metrics.append(Metric(str(key), float(value), int(timestamp), int(step)))
        except (ValueError, TypeError) as error:
            raise InputError(path, f"unreadable metric backlog entry: {error}", line=number) from None
    return metrics


class MlflowTracker:
    """Rank 0's tracker over one MLflow run, logged to with explicit run ids.

    `start` opens (or resumes) the run as this thread's MLflow active run, which also runs MLflow's
    system-metrics sampler (CPU, memory, disk, network, GPU; `system/*` metrics, every 10 s) until
    `end`. `attach` logs into an existing run without changing its status (`end` then does nothing).
    """

    def __init__(self, tracking_uri: str, run_id: str, *, owns_run: bool, resumed: bool = False,
                 survive_outages: bool = False, backlog_dir: Path | None = None, held_back: list[Metric] | None = None):
        self.tracking_uri = tracking_uri
        self.run_id: str | None = run_id
        self.resumed = resumed
        self._owns_run = owns_run
        self._client = MlflowClient(tracking_uri)
        self._survive_outages = survive_outages
        self._outage_since: float | None = None  # time.monotonic() of the failure, or of the last retry
        self._pending: list[Metric] = []  # metrics not logged yet because of an outage
        self.dropped_metrics = 0
        self._backlog = _backlog_path(backlog_dir, run_id)
        if held_back:
            self._pending = list(held_back)
            if self._call("log_metrics", self._flush_metrics) and self._backlog is not None:
                print(f"tracking: logged {self._backlog.name} (metrics an earlier outage held back)")
                self._backlog.unlink()

    def _call(self, action: str, call: Callable[..., object], *args: Any, **kwargs: Any) -> bool:
        """Run one MLflow call. A tracker started for training survives its failure (one line, then
        calls are skipped until the retry interval passes); other trackers let it raise."""
        if self._outage_since is not None and time.monotonic() - self._outage_since < _OUTAGE_RETRY_SECONDS:
            return False
        try:
            call(*args, **kwargs)
        except Exception as error:  # any failure of the tracking backend; training must go on
            if not self._survive_outages:
                raise
            if self._outage_since is None:
                print(f"tracking: MLflow at {self.tracking_uri} failed during {action} "
                      f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                      f"training continues, metrics are kept and retried every {_OUTAGE_RETRY_SECONDS:.0f} s",
                      flush=True)
            self._outage_since = time.monotonic()
            return False
        if self._outage_since is not None:
            self._outage_since = None
            print(f"tracking: MLflow at {self.tracking_uri} answers again", flush=True)
        return True

    @classmethod
    def start(cls, tracking_uri: str, experiment: str, run_name: str, *, run_id: str | None = None,
              system_metrics: bool = True, backlog_dir: Path | None = None,
              experiment_artifacts: str | None = None) -> MlflowTracker:
        """A new run in `experiment` (created, when missing, with its artifacts at `experiment_artifacts`
        or by `artifact_location`), or run `run_id` resumed when it exists in this store. Survives
        outages (module docstring), keeping an unlogged backlog in `backlog_dir`."""
        mlflow.set_tracking_uri(tracking_uri)  # the fluent API (active run, model logging) reads it
        client = MlflowClient(tracking_uri)
        if run_id is not None and not _run_exists(client, run_id):
            print(f"tracking: run {run_id} from the checkpoint is not in {tracking_uri}; starting a new run")
            run_id = None
        backlog = _backlog_path(backlog_dir, run_id)
        held_back = _read_backlog(backlog) if backlog is not None and backlog.is_file() else []  # before the run starts
        if run_id is not None:
            run = mlflow.start_run(run_id=run_id, log_system_metrics=system_metrics)
        else:
            run = mlflow.start_run(experiment_id=_experiment_id(client, experiment, tracking_uri, experiment_artifacts),
                                   run_name=run_name, log_system_metrics=system_metrics)
        return cls(tracking_uri, run.info.run_id, owns_run=True, resumed=run_id is not None, survive_outages=True,
                   backlog_dir=backlog_dir, held_back=held_back)

    @classmethod
    def attach(cls, tracking_uri: str, run_id: str) -> MlflowTracker:
        """Log artifacts or metrics into the existing run `run_id` (e.g. `gp explain` after training)."""
        client = MlflowClient(tracking_uri)
        if not _run_exists(client, run_id):
            raise InputError(tracking_uri, f"no MLflow run {run_id}")
        return cls(tracking_uri, run_id, owns_run=False)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log params; on a resumed run, a value that changed is kept as tag `param_changed.<key>`
        (MLflow params are write-once)."""
        self._call("log_params", self._log_params, params)

    def _log_params(self, params: Mapping[str, Any]) -> None:
        flat = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
        existing = self._client.get_run(self.run_id).data.params
        new = [Param(k, v) for k, v in flat.items() if k not in existing]
        changed = {f"param_changed.{k}": v for k, v in flat.items() if k in existing and existing[k] != v}
        for start in range(0, len(new), _BATCH):
            self._client.log_batch(self.run_id, params=new[start : start + _BATCH])
        for key, value in changed.items():
            self._client.set_tag(self.run_id, key, value)

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        """Numeric, finite values at `step` (the optimizer step); the key `step` itself is skipped.
        During an outage they wait in memory and go out, in order, with the first call that succeeds."""
        timestamp = int(time.time() * 1000)
        self._pending.extend(
            Metric(metric_key(k), float(v), timestamp, step)
            for k, v in metrics.items()
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        )
        if len(self._pending) > _MAX_BUFFERED_METRICS:
            self.dropped_metrics += len(self._pending) - _MAX_BUFFERED_METRICS
            del self._pending[: len(self._pending) - _MAX_BUFFERED_METRICS]
        self._call("log_metrics", self._flush_metrics)

    def _flush_metrics(self) -> None:
        while self._pending:
            self._client.log_batch(self.run_id, metrics=self._pending[:1000])
            del self._pending[:1000]

    def log_artifact(self, path: Path, artifact_dir: str | None = None) -> None:
        """A file, or a directory's contents, under `artifact_dir` of the run's artifacts."""
        if Path(path).is_dir():
            self._call("log_artifacts", self._client.log_artifacts, self.run_id, str(path), artifact_dir)
        else:
            self._call("log_artifact", self._client.log_artifact, self.run_id, str(path), artifact_dir)

    def log_text(self, text: str, artifact_file: str) -> None:
        self._call("log_text", self._client.log_text, self.run_id, text, artifact_file)

    def end(self, status: RunStatus = "FINISHED") -> None:
        """End a started run with `status` (stops the system-metrics sampler); idempotent. Metrics held
        back by an outage get one last try whatever the retry interval; if MLflow is still away the run
        stays RUNNING (never FINISHED with metrics missing) and one line says how many were lost."""
        if not self._owns_run:
            return
        self._owns_run = False
        self._outage_since = None
        if self._call("log_metrics", self._flush_metrics) and self._call("end_run", self._end_run, status):
            return
        # The sampler thread would keep failing against the missing backend: stop it without ending the run.
        monitor = mlflow.tracking.fluent.run_id_to_system_metrics_monitor.pop(self.run_id, None)
        if monitor is not None:
            monitor.finish()
        kept = ""
        if self._backlog is not None and self._pending:
            self._backlog.parent.mkdir(parents=True, exist_ok=True)
            lines = (json.dumps([m.key, m.value, m.timestamp, m.step]) for m in self._pending)
            self._backlog.write_text("".join(f"{line}\n" for line in lines))
            kept = f", kept in {self._backlog} for the next resume"
        print(f"tracking: run {self.run_id} left RUNNING: MLflow at {self.tracking_uri} is unavailable; "
              f"{len(self._pending)} metric values not logged{kept}"
              + (f", {self.dropped_metrics} dropped" if self.dropped_metrics else ""), flush=True)

    def _end_run(self, status: RunStatus) -> None:
        active = mlflow.active_run()
        if active is not None and active.info.run_id == self.run_id:
            mlflow.end_run(status)
        else:
            self._client.set_terminated(self.run_id, status)


def start_tracker(tracking: TrackingConfig, run_name: str, *, is_rank0: bool, resume_run_id: str | None = None,
                  system_metrics: bool = True, backlog_dir: Path | None = None) -> Tracker:
    """Rank 0 with tracking enabled: an `MlflowTracker` (resuming `resume_run_id` when that run exists,
    outage backlog in `backlog_dir`); else a `NullTracker`. `tracking.tracking_uri` should already be
    absolute (`resolve_tracking_uri`)."""
    if not (is_rank0 and tracking.enabled):
        return NullTracker()
    uri = resolve_tracking_uri(tracking.tracking_uri, Path.cwd())
    # A step must not wait out MLflow's default HTTP backoff (7 retries, minutes) when the server is down.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    return MlflowTracker.start(uri, tracking.experiment, run_name, run_id=resume_run_id, system_metrics=system_metrics,
                               backlog_dir=backlog_dir, experiment_artifacts=tracking.artifact_location)


def check_artifact_location(tracking: TrackingConfig) -> None:
    """On the driver, before training: a configured `tracking.artifact_location` that the experiment,
    created earlier elsewhere, does not use would be silently ignored (MLflow fixes it at creation)."""
    uri = resolve_tracking_uri(tracking.tracking_uri, Path.cwd())
    experiment = MlflowClient(uri).get_experiment_by_name(tracking.experiment)
    if experiment is not None and experiment.artifact_location.rstrip("/") != str(tracking.artifact_location).rstrip("/"):
        raise ConfigError("config", "tracking.artifact_location",
                          f"experiment {tracking.experiment!r} in {redact_credentials(uri)} keeps its artifacts at "
                          f"{experiment.artifact_location}; name a new tracking.experiment to use "
                          f"{tracking.artifact_location}")


def log_run_inputs(tracker: Tracker, config: GPConfig, store_summary: Mapping[str, Any]) -> None:
    """Flattened config params, the resolved config as `config.yaml` and the store summary as
    `store_summary.json` (call once after the tracker starts; safe on resume)."""
    tracker.log_params({k: redact_credentials(v) for k, v in flatten_params(config.model_dump(mode="json")).items()})
    tracker.log_text(config_to_yaml(config), "config.yaml")
    tracker.log_text(json.dumps(dict(store_summary), indent=1, sort_keys=True), "store_summary.json")


def metric_history(tracking_uri: str, run_id: str, keys: list[str]) -> list[dict[str, float]]:
    """[{"step": s, key: value, ...}] by step, for the `keys` logged in run `run_id` (names as logged)."""
    client = MlflowClient(tracking_uri)
    by_step: dict[int, dict[str, float]] = {}
    for key in keys:
        for metric in client.get_metric_history(run_id, key):
            by_step.setdefault(metric.step, {"step": float(metric.step)})[key] = metric.value
    return [by_step[step] for step in sorted(by_step)]


