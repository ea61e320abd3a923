"""`ray job submit` against a real head on loopback with token auth (cluster/local-head.sh): the demo
config on 2 DeepSpeed ZeRO-2 workers runs to SUCCEEDED, writes checkpoints and metrics, and a second
submission with the same run name continues from the saved step. Stops only the head it started."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gp_distributed.checkpoint import read_meta

from .loopback_cluster import free_ports
from .test_local_head import (
    LOCAL_HEAD,
    RAY_BIN,
    REPO_ROOT,
    STOP_HEAD,
    _isolated_env,
    _read_state,
    _run,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def head() -> Iterator[dict[str, str]]:
    directory = Path(tempfile.mkdtemp(prefix="gpj-", dir="/tmp"))  # short: Ray's socket paths live below it
    gcs_port, dashboard_port = free_ports(2)
    token_file = directory / "token"
    try:
        started = _run([str(LOCAL_HEAD), "--port", str(gcs_port), "--dashboard-port", str(dashboard_port),
                        "--num-cpus", "3", "--temp-dir", str(directory), "--token-file", str(token_file),
                        "--start-timeout", "90"], env=_isolated_env(), timeout=120)
        assert started.returncode == 0, started.stdout + started.stderr
        state = _read_state(directory / "gp-head.env")
        yield {"url": state["GP_HEAD_DASHBOARD_URL"], "token_file": str(token_file)}
    finally:
        if (directory / "gp-head.env").exists():
            _run([str(STOP_HEAD), str(directory / "gp-head.env")])
        shutil.rmtree(directory, ignore_errors=True)


def _ray(head: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = _isolated_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=head["token_file"])
    return _run([str(RAY_BIN), *args], env=env, timeout=timeout)


def _submit_and_wait(head: dict[str, str], submission_id: str, overrides: list[str]) -> str:
    entrypoint = [sys.executable, "-m", "gp_distributed.cli", "train", "--config", "configs/demo.yaml", *overrides]
    submitted = _ray(head, "job", "submit", "--address", head["url"], "--submission-id", submission_id,
                     "--working-dir", str(REPO_ROOT), "--runtime-env", str(REPO_ROOT / "cluster" / "runtime_env.yaml"),
                     "--no-wait", "--", *entrypoint)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = _ray(head, "job", "status", "--address", head["url"], submission_id).stdout.lower()
        if any(f"job '{submission_id}' {word}" in status for word in ("succeeded", "failed", "stopped")):
            break
        time.sleep(5)
    logs = _ray(head, "job", "logs", "--address", head["url"], submission_id).stdout
    assert f"job '{submission_id}' succeeded" in status, status + logs[-3000:]
    return logs


def test_submitted_demo_trains_then_resumes_by_run_name(head: dict[str, str], demo_store: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"  # absolute: the job runs in a temporary copy of the working dir
    common = [f"data.store={demo_store}", f"train.storage_path={runs}", "train.run_name=submitted",
              "scaling.num_workers=2", "train.zero_stage=2", "train.micro_batch_size=4", "data.max_seq_len_tokens=64",
              "train.ckpt_every=2", "train.eval_every=1000", "train.warmup_steps=1", "tracking.enabled=false"]
    logs = _submit_and_wait(head, "gp-submit-1", [*common, "train.max_steps=4"])
    assert read_meta(runs / "submitted" / "checkpoint_00000004").step == 4
    assert "test split:" in logs and "Fmax %" in logs  # the driver's per-bin metrics table
    logs = _submit_and_wait(head, "gp-submit-2", [*common, "train.max_steps=6"])
    assert "resumed from checkpoint_00000004 at step 4" in logs
    assert read_meta(runs / "submitted" / "checkpoint_00000006").step == 6
