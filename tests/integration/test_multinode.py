"""Ray Train across several Ray nodes on 127.0.0.1 (tests/integration/loopback_cluster.py): workers placed
on different nodes by `scaling.placement_strategy`, checked with Ray's state API; and a worker node lost
mid-run (every process of it SIGKILLed by pid), after which the run recovers by itself from the latest
complete checkpoint on the surviving node, finishes in the same MLflow run and registers its model."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import torch
from mlflow import MlflowClient
from safetensors.torch import load_file

from gp_distributed.checkpoint import (
    expected_files,
    is_complete,
    latest_complete_checkpoint,
    read_meta,
)
from gp_distributed.commands.train import TrainingResult, run_training
from gp_distributed.config import load_config

from ..conftest import tiny_training_overrides
from .loopback_cluster import LoopbackCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[LoopbackCluster]:
    """A head without CPUs (it hosts only the driver-side Train controller) and two 2-CPU worker nodes,
    each tagged with a custom resource naming it."""
    import ray

    cluster = LoopbackCluster(head_cpus=0)
    try:
        cluster.start()
        cluster.add_node("a", 2, '{"node_a": 1}')
        cluster.add_node("b", 2, '{"node_b": 1}')
        yield cluster
    finally:
        ray.shutdown()
        cluster.stop()


def _node_ids() -> dict[str, str]:
    """Alive node name ("a", "b", "head") -> Ray node id."""
    import ray

    names = {}
    for node in ray.nodes():
        if node["Alive"]:
            tagged = [k.removeprefix("node_") for k in node["Resources"] if k.startswith("node_")]
            names[tagged[0] if tagged else "head"] = node["NodeID"]
    return names


def _train(cluster: LoopbackCluster, store: Path, storage: Path, run: str, max_steps: int, *extra: str) -> TrainingResult:
    overrides = [*tiny_training_overrides(store, storage, run, max_steps), "scaling.num_workers=2",
                 "scaling.cpus_per_worker=1", f"scaling.address={cluster.gcs_address}", "train.zero_stage=2",
                 "train.micro_batch_size=4", *extra]
    return run_training(load_config(None, overrides))


def _train_worker_nodes(cluster: LoopbackCluster, state: str | None = None) -> list[str]:
    """Node ids of Ray Train's worker actors (in `state` only, when given), from Ray's state API."""
    from ray.util.state import list_actors

    filters = [("class_name", "=", "RayTrainWorker"), *([("state", "=", state)] if state else [])]
    actors = list_actors(address=cluster.dashboard_url, filters=filters, detail=True, limit=1000)
    return [actor.node_id for actor in actors]


def test_strict_spread_puts_each_worker_on_its_own_node(cluster: LoopbackCluster, demo_store: Path,
                                                        tmp_path: Path) -> None:
    """Each node has room for both workers, so only the placement strategy separates them (PACK, the
    default, would put both on one node)."""
    result = _train(cluster, demo_store, tmp_path, "spread", 2, "scaling.placement_strategy=STRICT_SPREAD")
    assert read_meta(result.checkpoint_dir).step == 2
    nodes = _node_ids()
    placed = _train_worker_nodes(cluster)
    assert len(placed) == 2 and set(placed) == {nodes["a"], nodes["b"]}, (placed, nodes)
    # Every server of every node listens on loopback only.
    pids = {p.pid for node in cluster.nodes for p in node.processes()}
    listening = [c for c in psutil.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN and c.pid in pids]
    assert listening and {c.laddr.ip for c in listening} <= LOOPBACK, listening


def _registered_step(run_dir: Path) -> int:
    """The step of the latest checkpoint Ray Train has registered (every rank reported it; 0: none), from the
    controller's own record in the run directory. It trails the latest written checkpoint by up to one
    controller poll (2 s): a checkpoint whose reports were not collected yet is not resumed from."""
    try:
        snapshot = json.loads((run_dir / "checkpoint_manager_snapshot.json").read_text())
        return int(snapshot["latest_checkpoint_result"]["checkpoint_dir_name"].removeprefix("checkpoint_"))
    except (OSError, ValueError, KeyError, TypeError):  # none registered yet, or caught mid-write
        return 0


def _logged_steps(tracking_uri: str, run_id: str) -> list[tuple[int, int]]:
    """(step, timestamp ms) of every `loss` value logged in the run, in logging order."""
    history = MlflowClient(tracking_uri).get_metric_history(run_id, "loss")
    return sorted(((m.step, m.timestamp) for m in history), key=lambda item: (item[1], item[0]))


def test_losing_a_worker_node_mid_run_resumes_from_the_latest_checkpoint(
        cluster: LoopbackCluster, demo_store: Path, tmp_path: Path) -> None:
    import ray

    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracked = ["tracking.enabled=true", f"tracking.tracking_uri={tracking_uri}", "tracking.registered_model_name=lost"]
    # SPREAD: one worker per node while both live, both on the surviving node after the loss.
    common = ["train.ckpt_every=8", "scaling.placement_strategy=SPREAD", "scaling.max_failures=2"]
    run_dir = tmp_path / "lost" / "run"
    outcome: dict[str, object] = {}

    def train_in_background() -> None:
        try:
            outcome["result"] = _train(cluster, demo_store, tmp_path / "lost", "run", 24, *common, *tracked)
        except BaseException as error:  # noqa: BLE001  (re-raised by the test thread below)
            outcome["error"] = error

    trainer = threading.Thread(target=train_in_background, daemon=True)
    trainer.start()
    # Once the first checkpoint (8) is complete, pick the victim: a worker node hosting a worker, not the
    # one the driver (and so the Train controller) runs on; kill it as soon as Ray has registered a
    # checkpoint and a later step is logged.
    deadline = time.monotonic() + 240
    while (first := latest_complete_checkpoint(run_dir)) is None and trainer.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert first is not None, outcome
    run_id = read_meta(first).tracking_run_id
    driver_node = ray.get_runtime_context().get_node_id()
    nodes, hosting = _node_ids(), _train_worker_nodes(cluster, "ALIVE")
    victim = next(name for name in ("a", "b") if nodes[name] != driver_node and nodes[name] in hosting)
    while not 0 < _registered_step(run_dir) < max((s for s, _ in _logged_steps(tracking_uri, run_id)), default=0):
        assert trainer.is_alive() and time.monotonic() < deadline, outcome
        time.sleep(0.1)
    killed_at_ms = time.time() * 1000
    killed = cluster.node(victim).kill()
    resume_step = _registered_step(run_dir)
    assert killed and not cluster.node(victim).processes() and trainer.is_alive()
    assert 8 <= resume_step < 24 and is_complete(run_dir / f"checkpoint_{resume_step:08d}")

    trainer.join(timeout=420)
    assert not trainer.is_alive(), "training did not finish after the node loss"
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    recovered: TrainingResult = outcome["result"]  # type: ignore[assignment]

    # Finished, in the same MLflow run, with the model registered.
    assert read_meta(recovered.checkpoint_dir).step == 24 and recovered.finished is not None
    assert recovered.finished.run_id == run_id and recovered.finished.registration.version == "1"
    # No step lost beyond the last checkpoint: the replay starts right after the latest one registered
    # when the node was lost, and every step 1..24 is logged.
    logged = _logged_steps(tracking_uri, run_id)
    after_loss = [step for step, stamp in logged if stamp > killed_at_ms]
    assert after_loss and min(after_loss) == resume_step + 1, (resume_step, logged)
    assert {step for step, _ in logged} == set(range(1, 25))
    # Every checkpoint kept is whole, to the file.
    for directory in sorted(p for p in run_dir.glob("checkpoint_*") if p.is_dir()):
        files = {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}
        assert is_complete(directory) and files == expected_files(read_meta(directory).step, 2, 2), directory

    # The same as a run made to resume from that checkpoint on purpose (a worker SIGKILLed two steps
    # after it; the retry restores it).
    marker = tmp_path / "killed-once"
    reference = _train(cluster, demo_store, tmp_path / "ref", "run", 24, *common, f"faults.kill_at_step={resume_step + 2}",
                       "faults.kill_rank=1", f"faults.once_marker={marker}")
    assert marker.exists()
    want, have = (load_file(str(r.checkpoint_dir / "trainable.safetensors")) for r in (reference, recovered))
    assert all(torch.equal(want[k], have[k]) for k in want)
    assert recovered.metrics["loss"] == reference.metrics["loss"]
    assert recovered.metrics["test/all/auc"] == reference.metrics["test/all/auc"]
