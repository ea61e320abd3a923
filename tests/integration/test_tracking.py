"""Tracking and registry on a real sqlite MLflow store in a temporary directory: absolute URIs, rank-0
only tracking, a resumed run continuing the MLflow run its checkpoint names, system metrics, and the
champion alias policy over real registered pyfunc models."""

import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from gp_distributed import checkpoint as ckpt
from gp_distributed.config import TrackingConfig, config_to_yaml, load_config
from gp_distributed.data.store import open_store
from gp_distributed.data.tokenize import tokenizer_for
from gp_distributed.errors import InputError
from gp_distributed.model.genepheno import GenePhenoModel
from gp_distributed.tracking.registry import log_model, register_model
from gp_distributed.tracking.tracker import (
    MlflowTracker,
    NullTracker,
    log_run_inputs,
    metric_history,
    metric_key,
    resolve_tracking_uri,
    start_tracker,
)

from ..conftest import tiny_training_overrides

pytestmark = pytest.mark.integration


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def test_tracking_uri_is_absolute_and_follows_config_then_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///sub/env.db")
    assert resolve_tracking_uri(None, tmp_path) == f"sqlite:///{tmp_path.resolve()}/sub/env.db"
    assert resolve_tracking_uri("sqlite:////data/x.db", tmp_path) == "sqlite:////data/x.db"
    assert resolve_tracking_uri("http://127.0.0.1:5000", tmp_path) == "http://127.0.0.1:5000"
    assert resolve_tracking_uri("mlruns", tmp_path) == (tmp_path.resolve() / "mlruns").as_uri()


def test_metric_names_are_made_acceptable_to_mlflow() -> None:
    assert metric_key("valid/>=301/fmax") == "valid/ge301/fmax"
    assert metric_key("valid/11-30/auc") == "valid/11-30/auc"
    assert metric_key("a<b*c") == "altb_c"


def test_only_rank0_with_tracking_on_gets_a_real_tracker(tracking_uri: str) -> None:
    assert isinstance(start_tracker(TrackingConfig(tracking_uri=tracking_uri), "r", is_rank0=False), NullTracker)
    disabled = TrackingConfig(enabled=False, tracking_uri=tracking_uri)
    assert isinstance(start_tracker(disabled, "r", is_rank0=True), NullTracker)


def test_resumed_training_continues_the_run_named_by_its_checkpoint(tracking_uri: str, tmp_path: Path,
                                                                   monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")
    tracking = TrackingConfig(tracking_uri=tracking_uri, experiment="resume-test")
    first_config = load_config(None, ["train.max_steps=2", "train.warmup_steps=1"])
    tracker = start_tracker(tracking, "run", is_rank0=True)
    log_run_inputs(tracker, first_config, {"genes_kept": 500})
    for step in (1, 2):
        tracker.log_metrics({"step": step, "loss": 10.0 - step, "valid/>=301/fmax": 0.1 * step}, step=step)
    time.sleep(2.5)  # two system-metric samples at a 1 s interval
    ckpt.write_meta(tmp_path, ckpt.CheckpointMeta(2, 1, 2, tracker.run_id), config_to_yaml(first_config))
    tracker.end("KILLED")  # preempted

    resumed_id = ckpt.read_meta(tmp_path).tracking_run_id
    resumed = start_tracker(tracking, "run", is_rank0=True, resume_run_id=resumed_id, system_metrics=False)
    assert resumed.run_id == resumed_id and resumed.resumed
    log_run_inputs(resumed, load_config(None, ["train.max_steps=4", "train.warmup_steps=1"]), {"genes_kept": 500})
    for step in (3, 4):
        resumed.log_metrics({"loss": 10.0 - step}, step=step)
    resumed.end()

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("resume-test")
    assert len(client.search_runs([experiment.experiment_id])) == 1
    run = client.get_run(resumed_id)
    assert run.info.status == "FINISHED"
    assert [row["loss"] for row in metric_history(tracking_uri, resumed_id, ["loss"])] == [9.0, 8.0, 7.0, 6.0]
    assert run.data.metrics["valid/ge301/fmax"] == pytest.approx(0.2)
    assert run.data.params["train.max_steps"] == "2" and run.data.tags["param_changed.train.max_steps"] == "4"
    assert any(key.startswith("system/cpu") for key in run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(resumed_id)}
    assert {"config.yaml", "store_summary.json"} <= artifacts
    assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(tmp_path)


def test_a_run_id_missing_from_the_store_starts_a_new_run(tracking_uri: str) -> None:
    tracker = MlflowTracker.start(tracking_uri, "missing", "run", run_id="0" * 32, system_metrics=False)
    assert tracker.run_id != "0" * 32 and not tracker.resumed
    tracker.end()


def _untrained_checkpoint(store_path: Path, directory: Path) -> Path:
    """A checkpoint of the contract written from a freshly initialised model (registry tests need a
    real model package, not a trained one)."""
    config = load_config(None, tiny_training_overrides(store_path, directory, "untrained", 2))
    store = open_store(store_path)
    tokenizer = tokenizer_for(config.model, store.alphabet, config.data.kmer_size)
    model = GenePhenoModel(config.model, len(store.go_input_ids), len(store.concept_ids), len(store.label_ids), tokenizer)
    directory.mkdir(parents=True)
    ckpt.write_trainable(directory, model.trainable_state_dict())
    ckpt.write_meta(directory, ckpt.CheckpointMeta(0, 1, 2, None), config_to_yaml(config))
    return directory


def test_champion_moves_only_to_a_better_validation_fmax(tracking_uri: str, demo_store: Path, tmp_path: Path) -> None:
    checkpoint = _untrained_checkpoint(demo_store, tmp_path / "checkpoint")
    store = open_store(demo_store)

    def register(fmax: float | None):
        tracker = MlflowTracker.start(tracking_uri, "registry-test", "run", system_metrics=False)
        if fmax is not None:
            tracker.log_metrics({"valid/all/fmax": fmax}, step=1)
        tracker.end()
        return register_model(tracking_uri, log_model(tracking_uri, tracker.run_id, checkpoint, store), "gp-test",
                              tracker.run_id)

    client = MlflowClient(tracking_uri, registry_uri=tracking_uri)
    champion = lambda: str(client.get_model_version_by_alias("gp-test", "champion").version)
    candidate = lambda: str(client.get_model_version_by_alias("gp-test", "candidate").version)
    first = register(0.30)
    assert first.promoted and (candidate(), champion()) == ("1", "1")
    worse = register(0.20)
    assert not worse.promoted and worse.candidate_fmax == pytest.approx(0.20)
    assert (candidate(), champion()) == ("2", "1")
    unmeasured = register(None)
    assert not unmeasured.promoted and (candidate(), champion()) == ("3", "1")
    better = register(0.40)
    assert better.promoted and better.champion_version == "4" and (candidate(), champion()) == ("4", "4")
    assert client.get_model_version("gp-test", "4").run_id is not None


def test_an_outage_backlog_is_logged_by_the_resuming_tracker(tmp_path: Path) -> None:
    """The backlog a tracker leaves when MLflow is away at the end goes out first when the run resumes;
    a damaged backlog is one error naming the file and line."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    first = MlflowTracker.start(uri, "backlog", "run", system_metrics=False)
    first.end()
    backlog = tmp_path / f"mlflow_backlog_{first.run_id}.jsonl"
    backlog.write_text('["loss", 0.5, 1000, 7]\n["loss", 0.25, 2000, 8]\n')
    resumed = MlflowTracker.start(uri, "backlog", "run", run_id=first.run_id, system_metrics=False,
                                  backlog_dir=tmp_path)
    resumed.end()
    history = MlflowClient(uri).get_metric_history(first.run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == [(7, 0.5), (8, 0.25)]
    assert not backlog.exists()
    backlog.write_text('["loss", 0.5, 1000, 7]\n{"not": "a metric"}\n')
    with pytest.raises(InputError, match=r"mlflow_backlog_.*\.jsonl:2: unreadable metric backlog entry"):
        MlflowTracker.start(uri, "backlog", "run", run_id=first.run_id, system_metrics=False, backlog_dir=tmp_path)
