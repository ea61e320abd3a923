"""Runs in S3-compatible object storage, against a real S3 server on loopback (moto's server, started
here): checkpoints through Ray Train's pyarrow filesystem, MLflow artifacts on the same bucket, resume by
run name from the bucket, `gp predict --model models:/...` reading the model from it; a store that is
unreachable, has no such bucket or refuses the credentials is one line, before Ray starts.

Credentials come from the environment only (dummy keys for the local server)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gp_distributed.checkpoint import expected_files, read_meta
from gp_distributed.cli import main as gp_main
from gp_distributed.commands.train import run_training
from gp_distributed.config import load_config
from gp_distributed.errors import ConfigError
from gp_distributed.train.launcher import start_local_ray

from ..conftest import DEMO_DIR, tiny_training_overrides
from .loopback_cluster import free_ports

BUCKET = "gp-runs"
SECRET = "s3cr3t-never-logged"
MOTO_SERVER = Path(sys.executable).parent / "moto_server"


def _start_s3_server(log: Path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    (port,) = free_ports(1)
    with log.open("wb") as out:
        server = subprocess.Popen([str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], stdout=out,
                                  stderr=subprocess.STDOUT, env={**os.environ, **env})
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(f"moto_server did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.3)


def _stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local S3 server with bucket BUCKET; the AWS variables set for this process (and so for the Ray
    workers it starts) while the module runs. Yields the endpoint URL."""
    server, endpoint = _start_s3_server(tmp_path_factory.mktemp("s3") / "moto.log")
    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="gp-test", AWS_SECRET_ACCESS_KEY=SECRET,
                      AWS_DEFAULT_REGION="us-east-1")
    try:
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _stop(server)


def _keys(prefix: str) -> set[str]:
    import boto3

    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    # Without the empty directory markers pyarrow's create_dir leaves (keys ending in "/").
    return {item["Key"].removeprefix(prefix) for page in pages for item in page.get("Contents", [])
            if not item["Key"].endswith("/")}


def _not_started_error(store: Path, tmp_path: Path, uri: str) -> str:
    import ray

    overrides = [*tiny_training_overrides(store, tmp_path, "x", 2), f"train.storage_path={uri}", "scaling.num_workers=2"]
    with pytest.raises(ConfigError) as raised:
        run_training(load_config(None, overrides))
    assert not ray.is_initialized()  # refused before Ray started
    return str(raised.value)


@pytest.mark.integration
def test_a_store_that_cannot_be_used_is_one_line_before_ray_starts(s3: str, demo_store: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    missing = _not_started_error(demo_store, tmp_path, "s3://no-such-bucket/runs")
    assert missing == (f"config: train.storage_path: s3://no-such-bucket/runs: bucket 'no-such-bucket' does not "
                       f"exist at {s3}")
    (closed,) = free_ports(1)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed}")
    unreachable = _not_started_error(demo_store, tmp_path, f"s3://{BUCKET}/runs")
    assert "refused or did not answer" in unreachable and "Could not connect" in unreachable
    # A server that checks credentials (moto with IAM auth on after its first, unauthenticated, call).
    server, endpoint = _start_s3_server(tmp_path / "moto-auth.log", INITIAL_NO_AUTH_ACTION_COUNT="1")
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        import boto3

        boto3.client("s3").create_bucket(Bucket=BUCKET)  # the one call it lets through
        refused = _not_started_error(demo_store, tmp_path, f"s3://{BUCKET}/runs")
    finally:
        _stop(server)
    assert "ACCESS_DENIED" in refused and SECRET not in refused
    for message in (missing, unreachable, refused):
        assert "\n" not in message


@pytest.mark.integration
@pytest.mark.slow
def test_checkpoints_and_model_live_in_the_bucket_resume_and_serve_from_it(
        s3: str, demo_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import ray

    ray_dir = Path(tempfile.mkdtemp(prefix="gps3-", dir="/tmp"))  # short: Ray's socket paths live below it
    start_local_ray(num_cpus=3, temp_dir=ray_dir)
    try:
        tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
        overrides = [*tiny_training_overrides(demo_store, tmp_path, "s3run", 2), f"train.storage_path=s3://{BUCKET}/runs",
                     "scaling.num_workers=2", "train.zero_stage=2", "train.micro_batch_size=4",
                     "tracking.enabled=true", f"tracking.tracking_uri={tracking_uri}",
                     f"tracking.artifact_location=s3://{BUCKET}/mlflow", "tracking.registered_model_name=s3model",
                     "tracking.experiment=s3"]
        first = run_training(load_config(None, overrides))
        assert first.run_dir == f"s3://{BUCKET}/runs/s3run" and not (tmp_path / "s3run").exists()
        stored = _keys("runs/s3run/checkpoint_00000002/")
        assert stored == expected_files(step=2, world_size=2, zero_stage=2), stored
        # Resume by run name, from the bucket.
        again = run_training(load_config(None, [*overrides, "train.max_steps=4"]))
        meta = read_meta(again.checkpoint_dir)
        assert meta.step == 4 and again.metrics["step"] == 4
        assert again.finished.run_id == first.finished.run_id == meta.tracking_run_id
        assert "checkpoint_00000004/meta.json" in _keys("runs/s3run/")
        # MLflow's artifacts (reports, models) are in the bucket too.
        artifacts = _keys("mlflow/")
        assert any(key.endswith("/report/report.json") for key in artifacts), sorted(artifacts)[:20]
        assert any(key.endswith("MLmodel") for key in artifacts), sorted(artifacts)[:20]
    finally:
        ray.shutdown()
        shutil.rmtree(ray_dir, ignore_errors=True)
    # `gp predict` from the registry: the model's files come from the bucket.
    out = tmp_path / "pred.tsv"
    code = gp_main(["predict", "--model", "models:/s3model@candidate", "--tracking-uri", tracking_uri,
                    "--fasta", str(DEMO_DIR / "proteins.fasta.gz"), "--id-map", str(DEMO_DIR / "gene_ids.tsv"),
                    "--out", str(out), "--min-probability", "0.5", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert out.read_text().startswith("gene\tterm\tname\tprobability\n")
    assert SECRET not in captured.out + captured.err
