"""Fault injection on the real components (DeepSpeed engine, Zarr store, MLflow server), in-process world
of one: a crash while a checkpoint is being written, a corrupted store shard, a write error (file-size
limit, the unprivileged stand-in for a full disk) during ingest and during checkpointing, and the MLflow
server going away mid-run. The same faults under Ray Train live in tests/integration/test_ray_training.py.
The failure matrix is docs/reliability.md."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient
from safetensors.torch import load_file

from gp_distributed.checkpoint import (
    checkpoint_dir_name,
    is_complete,
    latest_complete_checkpoint,
    read_meta,
)
from gp_distributed.cli import main
from gp_distributed.commands.train import run_training
from gp_distributed.config import load_config

from ..conftest import REPO_ROOT, corrupted_store_copy, tiny_training_overrides

pytestmark = pytest.mark.integration


def _overrides(store: Path, storage: Path, max_steps: int, *extra: str) -> list[str]:
    return [*tiny_training_overrides(store, storage, "run", max_steps), "scaling.num_workers=0", *extra]


def _gp(*args: str, file_size_limit: int | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`gp ...` in a child process (a drill may SIGKILL it); `file_size_limit` bytes per written file make
    writes past it fail with EFBIG, as a full disk would fail them with ENOSPC."""

    def limit_writes() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error from write(), not a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run([sys.executable, "-m", "gp_distributed.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO_ROOT, preexec_fn=limit_writes if file_size_limit else None)


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint / "trainable.safetensors"))


def _assert_same_weights(want: dict[str, torch.Tensor], have: dict[str, torch.Tensor]) -> None:
    assert want.keys() == have.keys()
    for key in want:
        assert torch.equal(want[key], have[key]), key


def test_crash_while_writing_a_checkpoint_never_resumes_from_it(demo_store: Path, tmp_path: Path) -> None:
    reference = run_training(load_config(None, _overrides(demo_store, tmp_path / "ref", 4)))
    crashed = _gp("train", *_overrides(demo_store, tmp_path / "b", 4, "faults.kill_at_step=4",
                                       "faults.kill_during=checkpoint"))
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    run_dir = tmp_path / "b" / "run"
    half_written = run_dir / f".{checkpoint_dir_name(4)}.partial"
    assert (half_written / "engine" / "latest").is_file() and not (half_written / "meta.json").exists()
    assert latest_complete_checkpoint(run_dir) == run_dir / checkpoint_dir_name(2)

    resumed = run_training(load_config(None, _overrides(demo_store, tmp_path / "b", 4)))
    assert read_meta(resumed.checkpoint_dir).step == 4 and is_complete(resumed.checkpoint_dir)
    assert not half_written.exists()
    _assert_same_weights(_weights(reference.checkpoint_dir), _weights(resumed.checkpoint_dir))
    assert resumed.metrics["loss"] == reference.metrics["loss"]


def test_checkpoint_missing_a_rank_file_is_not_complete(demo_store: Path, tmp_path: Path) -> None:
    """What another rank still writing (or killed) leaves: meta.json there, a contract file missing."""
    result = run_training(load_config(None, _overrides(demo_store, tmp_path, 2, "train.zero_stage=2")))
    newest = result.checkpoint_dir
    assert is_complete(newest)
    (newest / "worker_state" / "rank_0.json").unlink()
    assert not is_complete(newest)
    assert latest_complete_checkpoint(result.run_dir) == result.run_dir / checkpoint_dir_name(1)
    (result.run_dir / checkpoint_dir_name(1) / "meta.json").write_text('{"step": 1, "world_')  # torn write
    assert latest_complete_checkpoint(result.run_dir) is None


def test_corrupted_store_shard_stops_training_naming_the_shard(demo_store: Path, tmp_path: Path, capsys) -> None:
    store = corrupted_store_copy(demo_store, tmp_path / "corrupt.zarr")
    assert main(["train", *_overrides(store, tmp_path / "runs", 2)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("gp train: error: ") and "corrupted residue data in seq/residues/c/" in err, err
    assert latest_complete_checkpoint(tmp_path / "runs" / "run") is None


def test_write_error_during_ingest_leaves_nothing(demo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "store.zarr"
    done = _gp("ingest", "--quiet", "--config", "configs/demo.yaml", "--out", str(out), file_size_limit=16_384)
    assert done.returncode == 2, done.stderr[-2000:]
    err = done.stderr.strip()
    assert len(err.splitlines()) == 1 and f"{out}: cannot write the store: File too large" in err, err
    assert list(tmp_path.iterdir()) == []


def test_write_error_during_checkpointing_keeps_the_previous_one(demo_store: Path, tmp_path: Path) -> None:
    first = run_training(load_config(None, _overrides(demo_store, tmp_path, 2)))
    before = {p: p.read_bytes() for p in first.checkpoint_dir.rglob("*") if p.is_file()}
    largest = max(len(data) for data in before.values())
    failed = _gp("train", *_overrides(demo_store, tmp_path, 4), file_size_limit=largest // 2)
    assert failed.returncode == 2, failed.stderr[-2000:]
    err = failed.stderr.strip().splitlines()
    assert len(err) == 1 and "checkpoint at step 4: cannot write" in err[0], failed.stderr[-2000:]
    assert "the previous checkpoint is intact" in err[0]
    assert latest_complete_checkpoint(first.run_dir) == first.checkpoint_dir
    assert {p: p.read_bytes() for p in first.checkpoint_dir.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in first.run_dir.iterdir()) == [checkpoint_dir_name(1), checkpoint_dir_name(2)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def mlflow_server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """A real MLflow tracking server on loopback (sqlite backend); the test may kill it."""
    port = _free_port()
    backend = tmp_path / "mlflow"
    backend.mkdir()
    command = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--backend-store-uri", f"sqlite:///{backend}/mlflow.db",
               "--artifacts-destination", str(backend / "artifacts")]
    uri = f"http://127.0.0.1:{port}"
    server = _start_server(command, uri)
    yield uri, server, backend
    _stop_server(server)


def _start_server(command: list[str], uri: str) -> subprocess.Popen:
    # Its own session: the server's uvicorn workers are its children, stopped with it by process group.
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2)
            return server
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                _stop_server(server)
                pytest.fail(f"MLflow server did not start: {command}")
            time.sleep(0.5)


def _stop_server(server: subprocess.Popen) -> None:
    if server.poll() is None:
        os.killpg(server.pid, signal.SIGKILL)
    server.wait()


def test_mlflow_outage_mid_run_training_continues_and_says_so(
    demo_store: Path, tmp_path: Path, mlflow_server: tuple[str, subprocess.Popen, Path]
) -> None:
    uri, server, _ = mlflow_server
    overrides = [*_overrides(demo_store, tmp_path / "runs", 40, "train.ckpt_every=20"), "tracking.enabled=true",
                 f"tracking.tracking_uri={uri}", "tracking.registered_model_name=outage"]
    child = subprocess.Popen([sys.executable, "-m", "gp_distributed.cli", "train", *overrides], cwd=REPO_ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = []
    for line in child.stdout:  # the server goes away once training has logged a few steps
        lines.append(line)
        if line.startswith("step 10/"):
            _stop_server(server)
            break
    out = "".join(lines) + child.stdout.read()
    err = child.stderr.read()
    assert child.wait(timeout=600) == 2, out[-3000:] + err[-3000:]
    assert f"tracking: MLflow at {uri} failed during log_metrics" in out, out[-3000:]
    assert "left RUNNING" in out and "mlflow_backlog_" in out
    # Training itself ran to the end: the final checkpoint is complete.
    final = latest_complete_checkpoint(tmp_path / "runs" / "run")
    assert final is not None and read_meta(final).step == 40
    err_lines = err.strip().splitlines()
    assert err_lines[-1].startswith("gp train: error: training finished") and "run the same command again" in err_lines[-1]
    run_id = read_meta(final).tracking_run_id

    # MLflow back on the same store: the same command logs, registers and ends the run.
    restarted = _start_server(server.args, uri)
    try:
        again = _gp("train", *overrides)
        assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
        run = MlflowClient(uri).get_run(run_id)
        assert run.info.status == "FINISHED"
        # Nothing lost: held back during the outage, kept in the backlog, logged on the re-run.
        assert {m.step for m in MlflowClient(uri).get_metric_history(run_id, "loss")} == set(range(1, 41))
        assert not list((tmp_path / "runs" / "run").glob("mlflow_backlog_*"))
        assert MlflowClient(uri, registry_uri=uri).get_model_version_by_alias("outage", "candidate").run_id == run_id
    finally:
        _stop_server(restarted)
