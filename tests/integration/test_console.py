"""What a user reads: `gp train` on the demo config, run as a user runs it (a subprocess, stdout a pipe),
tracked to a temporary MLflow sqlite database.

Quiet by default: one line per logged step from rank 0, one per evaluation and checkpoint, the per-bin
tables and the next commands; no line twice; no library warning without a traceback. `--verbose` brings
the libraries' own logging back.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, tiny_training_overrides

MAX_STEPS = 12
_NOISE = re.compile(r"Warning|PlacementGroupCleaner|Reporting training result|Downloading artifacts")


def _gp_train(store: Path, tmp_path: Path, *flags: str, max_steps: int = MAX_STEPS,
              tracking: bool = True) -> subprocess.CompletedProcess[str]:
    overrides = tiny_training_overrides(store, tmp_path / "runs", "console", max_steps) + [
        f"tracking.enabled={str(tracking).lower()}", f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        "train.eval_every=6", "train.ckpt_every=6",
    ]
    # The user's environment, minus any console choice a parent process made.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GP_VERBOSE") and k != "GP_PROGRESS_BAR"}
    return subprocess.run(
        [sys.executable, "-m", "gp_distributed.cli", "train", "--config", str(REPO_ROOT / "configs" / "demo.yaml"),
         *flags, *overrides],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False,
    )


def _assert_readable(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    repeated = sorted({line for line in lines if lines.count(line) > 1})
    assert repeated == [], f"lines printed more than once: {repeated}"
    both = lines + result.stderr.splitlines()
    if not any("Traceback (most recent call last)" in line for line in both):
        assert [line for line in both if _NOISE.search(line)] == []
    step_lines = [line for line in lines if ": loss " in line]
    assert all(re.fullmatch(r"step \d+/\d+: loss \d+\.\d{4} lr \S+ \d+\.\d genes/s(, eta \d+m\d\ds)?", x) for x in step_lines)
    assert [line.split(":")[0] for line in lines if ": loss " in line] == [f"step {s}/{MAX_STEPS}" for s in (1, 10, MAX_STEPS)]
    for step in (6, MAX_STEPS):
        assert any(re.fullmatch(rf"step {step}: valid Fmax \d+\.\d\d% AUC \d+\.\d\d% \(\d+ genes\)", x) for x in lines)
        assert f"step {step}: checkpoint checkpoint_{step:08d}" in lines
    assert any(re.fullmatch(rf"step {MAX_STEPS}: test Fmax .*", line) for line in lines)
    assert any(line.split() == ["test", "terms", "#genes", "#terms", "Fmax", "%", "AUC", "%", "AUPR", "%", "Smin"]
               for line in lines)
    assert any(line.startswith("use it: gp predict --model models:/") for line in lines)
    return lines


def test_quiet_untracked_run_prints_each_event_once(demo_store: Path, tmp_path: Path) -> None:
    """The cheap default-suite guard: two steps in this process, no tracking."""
    result = _gp_train(demo_store, tmp_path, "--workers", "0", max_steps=2, tracking=False)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert sorted({line for line in lines if lines.count(line) > 1}) == []
    assert [line for line in lines + result.stderr.splitlines() if _NOISE.search(line)] == []
    assert "built successfully" not in result.stdout + result.stderr
    assert [line.split(":")[0] for line in lines if ": loss " in line] == ["step 1/2", "step 2/2"]
    assert "step 2: checkpoint checkpoint_00000002" in lines
    assert any(line.startswith("step 2: valid Fmax ") for line in lines)
    assert any(line.startswith("step 2: test Fmax ") for line in lines)


@pytest.mark.slow
def test_in_process_training_prints_one_line_per_event(demo_store: Path, tmp_path: Path) -> None:
    result = _gp_train(demo_store, tmp_path, "--workers", "0")
    lines = _assert_readable(result)
    assert "Creating initial MLflow database tables" not in result.stdout + result.stderr
    assert "built successfully" not in result.stdout + result.stderr
    assert len(lines) < 60, "\n".join(lines)


def test_verbose_brings_library_logging_back(demo_store: Path, tmp_path: Path) -> None:
    """Two steps, untracked: DeepSpeed's own output at engine start, hidden when quiet, shows again."""
    result = _gp_train(demo_store, tmp_path, "--workers", "0", "--verbose", max_steps=2, tracking=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "deepspeed_shm_comm_op built successfully" in result.stdout  # its print when the engine starts


@pytest.mark.slow
def test_two_ray_workers_print_rank0_lines_once(demo_store: Path, tmp_path: Path) -> None:
    """The demo's shape: 2 Ray Train workers under DeepSpeed ZeRO-2. Rank 0's lines arrive once each,
    without Ray's worker prefix; Ray Train's own INFO lines and the placement-group cleaner stay quiet."""
    result = _gp_train(demo_store, tmp_path, "--workers", "2")
    lines = _assert_readable(result)
    assert not any("RayTrainWorker" in line or "TrainController" in line for line in lines)
    assert len(lines) < 60, "\n".join(lines)
